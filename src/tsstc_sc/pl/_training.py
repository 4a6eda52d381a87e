"""``pl.scale_weights`` (which spatial scale each spot relies on) and ``pl.loss`` (training curves)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .._docs import inject_docs
from ._utils import as_tissue, default_spot_size, finish

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
    show: bool | None = None,
    return_fig: bool = False,
    **kwargs: Any,
) -> list[Axes] | Figure | None:
    """Map the per-spot attention weight of every view: which spatial scale each region relies on.

    Parameters
    ----------
    {fitted}
    {spatial_key}
    {show}
    **kwargs
        Passed to :func:`scanpy.pl.embedding` (e.g. ``size``, ``color_map``).

    Returns
    -------
    One panel per view (spatial scales, then the gene view), colour = attention weight in [0, 1].

    Examples
    --------
    >>> import tsstc_sc
    >>> adata = tsstc_sc.datasets.synthetic_tissue(n_spots=300, n_genes=150)
    >>> tsstc_sc.tl.tsstc(adata, n_clusters=4, epochs=2, progress_bar=False)
    >>> len(tsstc_sc.pl.scale_weights(adata, show=False))
    5
    """
    import anndata as ad
    import pandas as pd
    import scanpy as sc

    names = [str(n) for n in _results(adata, key)["scale_weight_names"]]
    weights = adata.obsm[f"{key}_scale_weights"]
    columns = [f"{key} weight {n}" for n in names]
    # a light AnnData sharing the coordinates, so the user's obs is not touched
    panel = ad.AnnData(
        obs=pd.DataFrame(np.asarray(weights), index=adata.obs_names, columns=columns),
        obsm={spatial_key: np.asarray(adata.obsm[spatial_key])},
    )
    kwargs.setdefault("size", default_spot_size(adata.n_obs))
    kwargs.setdefault("vmin", 0.0)
    kwargs.setdefault("vmax", float(np.max(weights)))
    axes = list(
        np.atleast_1d(
            sc.pl.embedding(panel, basis=spatial_key, color=columns, title=names, show=False, **kwargs)
        )
    )
    as_tissue(axes)
    return finish(axes[0].figure, axes, show=show, return_fig=return_fig)


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
