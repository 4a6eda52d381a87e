"""``pp.spatial_scales``: the multi-scale spatial graphs of TSstc, stored the scanpy/squidpy way."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, get_args

import numpy as np
import scipy.sparse as sp

from .. import _logging as logg
from .._anndata_utils import target
from .._docs import inject_docs
from .._spatial_graphs import (
    VISIUM_RADII,
    Unit,
    check_memory,
    estimate_pairs,
    nested_graphs,
    radii_for_degrees,
    radius_edges,
    scaled_coordinates,
)
from .._validation import (
    ARRAY_COLUMNS,
    check_anndata,
    check_array_coords,
    check_choice,
    check_copyable,
    check_key,
    check_library,
    check_radii,
    check_spatial,
)

if TYPE_CHECKING:
    from anndata import AnnData


def scale_key(key_added: str, radius: float) -> str:
    """Name of one scale, e.g. ``"tsstc_r2"``; its graphs are ``obsp[f"{name}_connectivities"]``."""
    return f"{key_added}_r{radius:g}"


def stored_graphs(adata: AnnData, key: str) -> list[sp.csr_matrix]:
    """The graphs that ``adata.uns[f"{key}_scales"]`` lists, or an error that says how to rebuild them."""
    keys = [f"{name}_connectivities" for name in adata.uns[f"{key}_scales"]["scale_keys"]]
    missing = [k for k in keys if k not in adata.obsp]
    if missing:
        msg = (
            f"`adata.uns['{key}_scales']` lists spatial scales whose graphs are not in `adata.obsp` "
            f"(missing: {missing}), as after `anndata.concat`, which drops `obsp`. Rebuild them with "
            "`tsstc_sc.pp.spatial_scales(adata)` (`library_key=` for several slides), or pass `radii=`."
        )
        raise ValueError(msg)
    return [adata.obsp[k] for k in keys]


def _is_hexagonal(grid: np.ndarray) -> bool:
    """Visium's array grid: every spot's ``array_row + array_col`` has the same parity."""
    return np.unique(grid.sum(axis=1) % 2).size == 1


def resolve_unit(adata: AnnData, unit: Unit) -> str:
    """``"auto"`` means the Visium array grid when it is there, else nearest-neighbour units."""
    check_choice(unit, get_args(Unit), "unit")
    if unit not in ("auto", "array") or not set(ARRAY_COLUMNS) <= set(adata.obs.columns):
        return "nn" if unit == "auto" else unit
    hexagonal = _is_hexagonal(check_array_coords(adata))
    if unit == "auto":
        if not hexagonal:
            logg.info('the array grid is not hexagonal (not Visium\'s): unit="nn"')
        return "array" if hexagonal else "nn"
    if not hexagonal:
        logg.warning(
            "`adata.obs[['array_row', 'array_col']]` is not Visium's hexagonal grid (e.g. Visium HD's square "
            'bins): radii in array units give far more neighbours than on Visium; consider `unit="nn"`.'
        )
    return unit


def graph_coordinates(adata: AnnData, unit: str, spatial_key: str) -> np.ndarray:
    """The positions the graphs of a resolved ``unit`` are built on: the Visium grid or ``obsm``."""
    return check_array_coords(adata) if unit == "array" else check_spatial(adata, spatial_key)


@dataclass
class ScalesResult:
    """Graphs of every scale and the keys they are stored under, computed without touching ``adata``."""

    radii: np.ndarray
    unit: str
    connectivities: list[sp.csr_matrix]
    index_key: str  # ``f"{key_added}_scales"``
    obsp: dict[str, sp.csr_matrix] = field(repr=False)
    uns: dict[str, dict] = field(repr=False)

    def write_to(self, adata: AnnData) -> None:
        """Store the graphs the scanpy/squidpy way (see :func:`spatial_scales`), first removing the
        scales an earlier call stored under the same ``key_added`` (its index lists them).
        """
        earlier = adata.uns.get(self.index_key, {})
        for name in earlier.get("scale_keys", []):
            adata.obsp.pop(f"{name}_connectivities", None)
            adata.obsp.pop(f"{name}_distances", None)
        for key in earlier.get("neighbors_keys", []):
            adata.uns.pop(key, None)
        for key, value in self.obsp.items():
            adata.obsp[key] = value
        for key, value in self.uns.items():
            adata.uns[key] = value


def compute_spatial_scales(
    adata: AnnData,
    radii: Sequence[float] | None,
    *,
    unit: Unit,
    spatial_key: str,
    library_key: str | None,
    key_added: str,
) -> ScalesResult:
    """Validate the inputs and build every scale (the work of :func:`spatial_scales`, no writing)."""
    check_anndata(adata)
    check_key(key_added)
    radii_arr = check_radii(radii)
    resolved = resolve_unit(adata, unit)
    libraries = check_library(adata, library_key)
    coords = graph_coordinates(adata, resolved, spatial_key)
    if resolved == "array" and spatial_key != "spatial":
        logg.warning(
            f"the graphs are built on the Visium array grid (`adata.obs[['array_row', 'array_col']]`), "
            f"not on `adata.obsm[{spatial_key!r}]`; to build them from those coordinates, pass "
            '`unit="nn"` (or `unit="coords"` with radii in their units).'
        )
    n_shared = len(coords) - len(np.unique(np.c_[libraries, coords], axis=0))
    if n_shared:
        logg.warning(
            f"{n_shared} spot(s) share their coordinates with another spot of the same library; "
            "coincident spots are not neighbours of each other (distance 0)."
        )
    coords, factors = scaled_coordinates(coords, libraries, resolved)
    if radii_arr is None:
        if resolved == "array":
            radii_arr = np.asarray(VISIUM_RADII)
        elif resolved == "nn":
            radii_arr = radii_for_degrees(coords, libraries)
        else:
            msg = '`unit="coords"` has no default radii: pass `radii=` in the units of your coordinates.'
            raise ValueError(msg)
    check_memory(estimate_pairs(coords, libraries, radii_arr[-1]), len(radii_arr), radii_arr[-1])
    graphs = nested_graphs(radius_edges(coords, libraries, radii_arr[-1]), radii_arr)

    obsp, uns, names, mean_degree, n_isolated = {}, {}, [], [], []
    for radius, (conn, dist) in zip(radii_arr, graphs, strict=True):
        name = scale_key(key_added, radius)
        degree = np.diff(conn.indptr)
        obsp[f"{name}_connectivities"] = conn
        obsp[f"{name}_distances"] = dist
        params = {
            "method": "radius",
            "radius": float(radius),
            "unit": resolved,
            "spatial_key": spatial_key,
            "n_neighbors": round(degree.mean()),  # read by scanpy's diffmap, PAGA and DPT
        }
        if library_key is not None:
            params["library_key"] = library_key
        uns[f"{name}_neighbors"] = {
            "connectivities_key": f"{name}_connectivities",
            "distances_key": f"{name}_distances",
            "params": params,
        }
        names.append(name)
        mean_degree.append(degree.mean())
        n_isolated.append(int((degree == 0).sum()))
        logg.info(
            f"scale r={radius:g} ({resolved}): mean degree {degree.mean():.2f}, {n_isolated[-1]} isolated"
        )
    if n_isolated[0]:
        logg.warning(
            f"{n_isolated[0]} spot(s) have no neighbour at the smallest radius {radii_arr[0]:g}; "
            "they keep only their own expression at that scale."
        )
    uns[f"{key_added}_scales"] = {
        "radii": radii_arr,
        "unit": resolved,
        "scale_keys": np.asarray(names),
        "neighbors_keys": np.asarray([f"{name}_neighbors" for name in names]),
        "mean_degree": np.asarray(mean_degree),
        "n_isolated": np.asarray(n_isolated),
        "unit_scale": factors,
        "spatial_key": spatial_key,
        **({"library_key": library_key} if library_key is not None else {}),
    }
    return ScalesResult(radii_arr, resolved, [g[0] for g in graphs], f"{key_added}_scales", obsp, uns)


@inject_docs
def spatial_scales(
    adata: AnnData,
    radii: Sequence[float] | None = None,
    *,
    unit: Unit = "auto",
    spatial_key: str = "spatial",
    library_key: str | None = None,
    key_added: str = "tsstc",
    copy: bool = False,
) -> AnnData | None:
    """Build the nested multi-radius spatial graphs of TSstc (paper Eq. 1).

    Spot ``j`` is a neighbour of spot ``i`` at scale ``v`` iff ``0 < dist(i, j) <= radii[v]``.
    All scales come from one KD-tree query at the largest radius, so they are strictly nested and
    cost O(N·k); no dense N x N matrix is formed. Each scale is stored like a scanpy neighbours
    result, so ``sc.tl.leiden(adata, neighbors_key="tsstc_r2_neighbors")`` and squidpy functions with
    ``connectivity_key="tsstc_r2_connectivities"`` work on it unchanged (``nhood_enrichment`` and a few
    others also take the short ``"tsstc_r2"``; ``spatial_autocorr`` needs the full key).

    Parameters
    ----------
    {adata}
    {radii}
    {unit}
    {spatial_key}
    {library_key}
    key_added
        Prefix of every output key.
    {copy}

    Returns
    -------
    ``None``, or a copy of ``adata`` if ``copy=True``. Writes, for each radius ``r``:

    ``adata.obsp[f"{{key_added}}_r{{r:g}}_connectivities"]``
        Binary symmetric adjacency (CSR, float32, no self loops).
    ``adata.obsp[f"{{key_added}}_r{{r:g}}_distances"]``
        Distances of the same edges in ``unit`` (CSR, float32).
    ``adata.uns[f"{{key_added}}_r{{r:g}}_neighbors"]``
        ``connectivities_key``, ``distances_key`` and ``params`` (scanpy's neighbours layout).
    ``adata.uns[f"{{key_added}}_scales"]``
        Index of the scales: ``radii``, ``unit``, ``scale_keys`` (e.g. ``"tsstc_r2"``; squidpy's
        ``connectivity_key`` is ``"tsstc_r2_connectivities"``), ``neighbors_keys`` (scanpy's
        ``neighbors_key``), ``mean_degree`` and ``n_isolated`` per scale, and ``unit_scale`` (coordinate units per graph unit, per library).

    The scales of an earlier call with the same ``key_added`` are replaced: keys it wrote that this
    call does not write again (e.g. a radius no longer asked for) are removed.

    Examples
    --------
    >>> import tsstc_sc
    >>> adata = tsstc_sc.datasets.synthetic_tissue(n_spots=500)
    >>> tsstc_sc.pp.spatial_scales(adata, radii=[2, 3])
    >>> adata.uns["tsstc_scales"]["scale_keys"].tolist()
    ['tsstc_r2', 'tsstc_r3']
    """
    check_anndata(adata)
    check_copyable(adata, copy=copy)
    result = compute_spatial_scales(
        adata, radii, unit=unit, spatial_key=spatial_key, library_key=library_key, key_added=key_added
    )
    adata = target(adata, copy=copy)
    result.write_to(adata)
    return adata if copy else None
