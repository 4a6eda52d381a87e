"""Parameter descriptions shared by several public functions (filled in with :func:`inject_docs`)."""

from __future__ import annotations

from inspect import cleandoc

_DOCS = {
    "adata": """\
adata
    Annotated data matrix with spots (cells) as observations.""",
    "radii": """\
radii
    Radii of the nested spatial graphs, strictly increasing, in ``unit``. ``None`` picks defaults:
    ``[2, 3, 4, 5]`` on the Visium array grid (the paper's radii); with ``unit="nn"`` the radii whose
    mean degrees reach about 8, 12, 23 and 34 neighbours; ``unit="coords"`` needs them given.""",
    "unit": """\
unit
    Unit of ``radii``. ``"array"``: Visium array coordinates ``obs['array_row']``,
    ``obs['array_col']``, as in the paper (the six nearest spots, equally far apart on the slide, are
    at array distances sqrt(2) and 2, so these radii are not isotropic; ``"nn"`` is). ``"nn"``: coordinates divided
    by the median nearest-neighbour distance of each library (any platform). ``"coords"``: the raw
    units of ``obsm[spatial_key]``. ``"auto"``: ``"array"`` when the array columns hold Visium's
    hexagonal grid (``array_row + array_col`` of one parity), else ``"nn"`` (e.g. Visium HD's square
    bins, whose array distances are not Visium's).""",
    "spatial_key": """\
spatial_key
    Key in :attr:`~anndata.AnnData.obsm` holding the spot coordinates (the graphs of
    ``unit="array"`` use the array grid instead).""",
    "library_key": """\
library_key
    Column of :attr:`~anndata.AnnData.obs` naming the slide of each spot. Graphs are built per
    library, with no edges across slides.""",
    "copy": """\
copy
    Return a modified copy instead of writing to ``adata``.""",
    "domain_key": """\
adata
    Annotated data with ``obs[key]`` (run :func:`tsstc_sc.tl.tsstc` first).
key
    Column of :attr:`~anndata.AnnData.obs` with the domains.""",
    "fitted": """\
adata
    Annotated data after :func:`tsstc_sc.tl.tsstc`.
key
    The ``key_added`` of that run.""",
    "show": """\
show
    Show the figure; ``None`` follows scanpy's ``settings.autoshow``.
return_fig
    Return the :class:`~matplotlib.figure.Figure` instead of the axes.""",
}


def inject_docs(func):
    """Replace ``{name}`` placeholders in ``func.__doc__`` with the shared descriptions."""
    doc = cleandoc(func.__doc__ or "")
    func.__doc__ = doc.format(**_DOCS)
    return func
