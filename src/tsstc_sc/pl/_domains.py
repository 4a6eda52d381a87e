"""``pl.domains``: spatial domain maps, optionally beside a ground-truth annotation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .._docs import inject_docs
from ._utils import as_tissue, default_spot_size, finish

if TYPE_CHECKING:
    from anndata import AnnData
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def _ari_title(adata: AnnData, key: str, groundtruth: str) -> str:
    from sklearn.metrics import adjusted_rand_score

    known = adata.obs[groundtruth].notna().to_numpy()
    ari = adjusted_rand_score(adata.obs[groundtruth][known].astype(str), adata.obs[key][known].astype(str))
    return f"{key} (ARI {ari:.3f})"


@inject_docs
def domains(
    adata: AnnData,
    key: str = "tsstc",
    *,
    groundtruth: str | None = None,
    spatial_key: str = "spatial",
    ax: Axes | None = None,
    show: bool | None = None,
    return_fig: bool = False,
    **kwargs: Any,
) -> Axes | list[Axes] | Figure | None:
    """Plot spatial domains on the tissue (y axis downwards, like an image).

    Parameters
    ----------
    adata
        Annotated data with ``obs[key]`` (run :func:`tsstc_sc.tl.tsstc` first).
    key
        Column of :attr:`~anndata.AnnData.obs` with the domains.
    groundtruth
        Column with a reference annotation: drawn beside the domains, ARI in the title.
    {spatial_key}
    ax
        Axes to draw into (only without ``groundtruth``).
    {show}
    **kwargs
        Passed to :func:`scanpy.pl.embedding` (e.g. ``size``, ``palette``, ``frameon``).

    Returns
    -------
    The axes (a list with ``groundtruth``), the figure with ``return_fig=True``, or ``None`` when shown.
    Colours are shared with scanpy through ``adata.uns[f"{{key}}_colors"]``.

    Examples
    --------
    >>> import tsstc_sc
    >>> adata = tsstc_sc.datasets.synthetic_tissue(n_spots=300)
    >>> axes = tsstc_sc.pl.domains(adata, "domain", show=False)
    """
    import scanpy as sc

    for column in (key, groundtruth):
        if column is not None and column not in adata.obs:
            hint = " Run `tsstc_sc.tl.tsstc(adata, n_clusters=...)` first." if column == key else ""
            msg = f"`adata.obs[{column!r}]` not found.{hint}"
            raise KeyError(msg)
    if spatial_key not in adata.obsm:
        msg = f"No coordinates in `adata.obsm[{spatial_key!r}]`; pass `spatial_key=`."
        raise KeyError(msg)
    if groundtruth is not None and ax is not None:
        msg = "`ax` draws a single panel; leave it out when passing `groundtruth`."
        raise ValueError(msg)
    colors = [groundtruth, key] if groundtruth is not None else key
    titles = [groundtruth, _ari_title(adata, key, groundtruth)] if groundtruth is not None else key
    kwargs.setdefault("size", default_spot_size(adata.n_obs))
    axes = sc.pl.embedding(adata, basis=spatial_key, color=colors, title=titles, ax=ax, show=False, **kwargs)
    axes_list = list(np.atleast_1d(axes))
    as_tissue(axes_list)
    out = finish(axes_list[0].figure, axes_list, show=show, return_fig=return_fig)
    return axes if isinstance(out, list) else out
