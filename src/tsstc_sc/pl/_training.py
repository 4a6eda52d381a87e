"""``pl.scale_weights`` (which scale each spot relies on), ``pl.scale_degrees`` and ``pl.loss``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._docs import inject_docs
from ..pp._spatial_scales import stored_graphs
from ._utils import default_spot_size, finish, library_panels, spatial_grid

if TYPE_CHECKING:
    from anndata import AnnData
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def _results(adata: AnnData, key: str) -> dict:
    if key not in adata.uns or f"{key}_scale_weights" not in adata.obsm:
        msg = f"No TSstc results under key {key!r}. Run `tsstc_sc.tl.tsstc(adata, n_clusters=..., key_added={key!r})` first."
        raise KeyError(msg)
    return adata.uns[key]


@inject_docs
def scale_weights(
    adata: AnnData,
    key: str = "tsstc",
    *,
    spatial_key: str = "spatial",
    library_key: str | None = None,
    show: bool | None = None,
    return_fig: bool = False,
    **kwargs: Any,
) -> list[Axes] | Figure | None:
    """Map the per-spot attention weight of every view: which spatial scale each region relies on.

    The weights are one training's: with the default 20 epochs they depend on the attention's random
    start as much as on the tissue (over three seeds, the maps of one scale correlated between -0.94
    and 0.89 on DLPFC 151673; docs/benchmarks.md). Train with another ``random_state`` and compare
    before reading biology into a map.

    Parameters
    ----------
    {fitted}
    {spatial_key}
    library_key
        Column of :attr:`~anndata.AnnData.obs` naming the slide of each spot: one row per slide.
    {show}
    **kwargs
        Passed to :func:`scanpy.pl.embedding` (e.g. ``size``, ``color_map``); ``title``: one title per
        panel, replacing the view names.

    Returns
    -------
    One panel per view (spatial scales, then the gene view) and library, colour = attention weight
    on one scale from 0 to the largest weight.

    Examples
    --------
    >>> import tsstc_sc
    >>> adata = tsstc_sc.datasets.synthetic_tissue(n_spots=300, n_genes=150)
    >>> tsstc_sc.tl.tsstc(adata, n_clusters=4, epochs=2, progress_bar=False)
    >>> len(tsstc_sc.pl.scale_weights(adata, show=False))
    5
    """
    names = [str(n) for n in _results(adata, key)["scale_weight_names"]]
    weights = np.asarray(adata.obsm[f"{key}_scale_weights"])
    columns = [f"{key} weight {n}" for n in names]
    obs = pd.DataFrame(weights, index=np.arange(adata.n_obs).astype(str), columns=columns)
    panels = library_panels(adata, obs, spatial_key=spatial_key, library_key=library_key)
    titles = [[n if library is None else f"{library}: {n}" for n in names] for library, _ in panels]
    kwargs.setdefault("size", default_spot_size(max(p.n_obs for _, p in panels)))
    kwargs.setdefault("vmin", 0.0)
    kwargs.setdefault("vmax", float(weights.max()))
    fig, axes = spatial_grid(panels, columns, titles, spatial_key=spatial_key, **kwargs)
    return finish(fig, axes, show=show, return_fig=return_fig)


@inject_docs
def scale_degrees(
    adata: AnnData,
    key: str = "tsstc",
    *,
    ax: Axes | None = None,
    show: bool | None = None,
    return_fig: bool = False,
) -> Axes | Figure | None:
    """Neighbours per spot at every spatial scale: what the radii mean on this platform.

    Parameters
    ----------
    adata
        Annotated data after :func:`tsstc_sc.pp.spatial_scales` (or :func:`tsstc_sc.tl.tsstc`).
    key
        The ``key_added`` of that run.
    ax
        Axes to draw into.
    {show}

    Returns
    -------
    One box per scale (spots' degrees, mean marked), the figure with ``return_fig=True``, or ``None``.

    Examples
    --------
    >>> import tsstc_sc
    >>> adata = tsstc_sc.datasets.synthetic_tissue(n_spots=300)
    >>> tsstc_sc.pp.spatial_scales(adata, radii=[1.5, 3])
    >>> [t.get_text() for t in tsstc_sc.pl.scale_degrees(adata, show=False).get_xticklabels()]
    ['r=1.5', 'r=3']
    """
    import matplotlib.pyplot as plt

    index = adata.uns.get(f"{key}_scales")
    if index is None:
        msg = f"No spatial scales under key {key!r}. Run `tsstc_sc.pp.spatial_scales(adata, key_added={key!r})` first."
        raise KeyError(msg)
    degrees = [np.diff(graph.tocsr().indptr) for graph in stored_graphs(adata, key)]
    if ax is None:
        _, ax = plt.subplots(figsize=(1.2 * len(degrees) + 2, 3.5), layout="constrained")
    labels = [f"r={r:g}" for r in index["radii"]]
    ax.boxplot(degrees, showmeans=True, showfliers=False)
    ax.set_xticks(np.arange(1, len(labels) + 1), labels)
    ax.set_xlabel(f"spatial scale ({index['unit']} units)")
    ax.set_ylabel("neighbours per spot")
    ax.spines[["top", "right"]].set_visible(False)
    return finish(ax.figure, ax, show=show, return_fig=return_fig)


@inject_docs
def loss(
    adata: AnnData,
    key: str = "tsstc",
    *,
    show: bool | None = None,
    return_fig: bool = False,
) -> list[Axes] | Figure | None:
    """Training curves: the total loss, the ZINB reconstruction ``L_C`` and ``L_R`` of every scale.

    Parameters
    ----------
    {fitted}
    {show}

    Returns
    -------
    Three axes (total, reconstruction, regularisation per scale), or the figure.

    Examples
    --------
    >>> import tsstc_sc
    >>> adata = tsstc_sc.datasets.synthetic_tissue(n_spots=300, n_genes=150)
    >>> tsstc_sc.tl.tsstc(adata, n_clusters=4, epochs=3, progress_bar=False)
    >>> [a.get_title() for a in tsstc_sc.pl.loss(adata, show=False)]
    ['total', 'L_C (ZINB)', 'L_R per scale']
    """
    import matplotlib.pyplot as plt

    results = _results(adata, key)
    history = results["loss"]
    epochs = np.arange(1, len(history["total"]) + 1)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2), layout="constrained")
    axes[0].plot(epochs, history["total"], color="black")
    axes[0].set_title("total")
    axes[1].plot(epochs, history["reconstruction"], color="tab:blue")
    axes[1].set_title("L_C (ZINB)")
    reg = np.atleast_2d(history["regularization"])
    for name, curve in zip(results["scale_weight_names"][:-1], reg.T, strict=True):
        axes[2].plot(epochs, curve, label=str(name))
    axes[2].set_title("L_R per scale")
    axes[2].legend(frameon=False, fontsize="small")
    for a in axes:
        a.set_xlabel("epoch")
    return finish(fig, list(axes), show=show, return_fig=return_fig)
