"""``pl.domains`` (spatial domain maps, optionally beside an annotation) and ``pl.domain_sizes``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._docs import inject_docs
from .._scores import agreement
from ._utils import as_categorical, default_spot_size, finish, library_panels, shared_colors, spatial_grid

if TYPE_CHECKING:
    from anndata import AnnData
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def _check_obs(adata: AnnData, key: str, groundtruth: str | None) -> None:
    for column in (key, groundtruth):
        if column is not None and column not in adata.obs:
            hint = " Run `tsstc_sc.tl.tsstc(adata, n_clusters=...)` first." if column == key else ""
            msg = f"`adata.obs[{column!r}]` not found.{hint}"
            raise KeyError(msg)


def _ari_text(obs: pd.DataFrame, key: str, groundtruth: str) -> str:
    """``"ARI 0.612"`` on the annotated spots, or says that there are none."""
    score = agreement(obs, key, groundtruth)
    return "ARI n/a: no annotated spots" if score is None else f"ARI {score.ari:.3f}"


@inject_docs
def domains(
    adata: AnnData,
    key: str = "tsstc",
    *,
    groundtruth: str | None = None,
    spatial_key: str = "spatial",
    library_key: str | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    return_fig: bool = False,
    **kwargs: Any,
) -> Axes | list[Axes] | Figure | None:
    """Plot spatial domains on the tissue (y axis downwards, like an image).

    Parameters
    ----------
    {domain_key}
    groundtruth
        Column with a reference annotation: drawn beside the domains, ARI (on annotated spots of
        each library) in the title.
    {spatial_key}
    library_key
        Column of :attr:`~anndata.AnnData.obs` naming the slide of each spot: one row of panels per
        slide, with the same colour for a domain on every slide.
    ax
        Axes to draw into (a single panel only: no ``groundtruth``, one library).
    {show}
    **kwargs
        Passed to :func:`scanpy.pl.embedding` (e.g. ``size``, ``frameon``, ``legend_loc``,
        ``palette``); ``title``: one title per panel, replacing the default ones.

    Returns
    -------
    The axes (a list when there is more than one panel), the figure with ``return_fig=True``, or
    ``None`` when shown. Colours are shared with scanpy through ``adata.uns[f"{{key}}_colors"]``
    (and ``f"{{groundtruth}}_colors"``; set there if missing, replaced by a ``palette``); nothing
    else in ``adata`` changes.

    Examples
    --------
    >>> import tsstc_sc
    >>> adata = tsstc_sc.datasets.synthetic_tissue(n_spots=300)
    >>> ax = tsstc_sc.pl.domains(adata, "domain", show=False)
    >>> ax.get_title()
    'domain'
    """
    _check_obs(adata, key, groundtruth)
    columns = [groundtruth, key] if groundtruth is not None else [key]
    obs = pd.DataFrame(
        {c: as_categorical(adata, c) for c in columns}, index=np.arange(adata.n_obs).astype(str)
    )
    panels = library_panels(adata, obs, spatial_key=spatial_key, library_key=library_key)
    titles = []
    for library, panel in panels:
        row = list(columns)
        if groundtruth is not None:
            row[1] = f"{key} ({_ari_text(panel.obs, key, groundtruth)})"
        titles.append([t if library is None else f"{library}: {t}" for t in row])
    kwargs.setdefault("size", default_spot_size(max(p.n_obs for _, p in panels)))
    fig, axes = spatial_grid(panels, columns, titles, spatial_key=spatial_key, ax=ax, **kwargs)
    for column in columns:  # once drawn; with a palette, as scanpy does: the colours drawn are shared
        if "palette" in kwargs:
            adata.uns[f"{column}_colors"] = list(panels[0][1].uns[f"{column}_colors"])
        else:
            shared_colors(adata, column)  # stores them where missing
    out = finish(fig, axes, show=show, return_fig=return_fig)
    return out[0] if isinstance(out, list) and len(out) == 1 else out


@inject_docs
def domain_sizes(
    adata: AnnData,
    key: str = "tsstc",
    *,
    groundtruth: str | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    return_fig: bool = False,
) -> Axes | Figure | None:
    """Bar chart of spots per domain; with ``groundtruth``, each bar split by the annotation.

    Shows at a glance whether a domain is one annotated region, a mixture, or a tiny fragment.

    Parameters
    ----------
    {domain_key}
    groundtruth
        Column with a reference annotation: stacked bars, one colour per annotated region
        (unannotated spots in grey).
    ax
        Axes to draw into.
    {show}

    Returns
    -------
    The axes, the figure with ``return_fig=True``, or ``None`` when shown. Colours are shared with
    scanpy through ``adata.uns[f"{{key}}_colors"]`` (and ``f"{{groundtruth}}_colors"``; set there if
    missing); nothing else in ``adata`` changes.

    Examples
    --------
    >>> import tsstc_sc
    >>> adata = tsstc_sc.datasets.synthetic_tissue(n_spots=300, n_domains=4)
    >>> ax = tsstc_sc.pl.domain_sizes(adata, "domain", show=False)
    >>> int(sum(bar.get_height() for bar in ax.patches)) == adata.n_obs
    True
    """
    import matplotlib.pyplot as plt

    _check_obs(adata, key, groundtruth)
    domains_ = as_categorical(adata, key)
    if ax is None:
        _, ax = plt.subplots(
            figsize=(max(4.0, 0.5 * len(domains_.categories) + 2), 3.5), layout="constrained"
        )
    names = [str(c) for c in domains_.categories]
    if groundtruth is None:
        counts = pd.Series(domains_).value_counts(sort=False).reindex(domains_.categories, fill_value=0)
        ax.bar(names, counts.to_numpy(), color=shared_colors(adata, key))
    else:
        truth = as_categorical(adata, groundtruth)
        regions = [*map(str, truth.categories), "unannotated"]
        colors = [*shared_colors(adata, groundtruth), "lightgrey"]
        table = np.zeros((len(names), len(regions)))
        known = domains_.codes >= 0
        np.add.at(table, (domains_.codes[known], truth.codes[known]), 1)  # code -1 (NaN) -> last column
        bottom = np.zeros(len(names))
        for region, color, values in zip(regions, colors, table.T, strict=True):
            if values.any():
                ax.bar(names, values, bottom=bottom, color=color, label=region)
                bottom += values
        ax.legend(title=groundtruth, frameon=False, fontsize="small", bbox_to_anchor=(1, 1), loc="upper left")
    ax.set_xlabel(key)
    ax.set_ylabel("spots")
    ax.spines[["top", "right"]].set_visible(False)
    return finish(ax.figure, ax, show=show, return_fig=return_fig)
