"""Shared plotting conventions: scanpy's ``show`` / ``return_fig``, image-like spatial axes, colours
shared through ``uns[f"{key}_colors"]`` and one row of panels per library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._validation import check_library, check_spatial

if TYPE_CHECKING:
    from collections.abc import Sequence

    from anndata import AnnData
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def as_tissue(axes: Sequence[Axes]) -> None:
    """Spatial panels like an image: y downwards, equal aspect."""
    for a in axes:
        if not a.yaxis_inverted():
            a.invert_yaxis()
        a.set_aspect("equal")


def default_spot_size(n_obs: int) -> float:
    """Marker size that keeps a section readable from hundreds to 10^5 spots."""
    return max(10.0, 120000 / max(n_obs, 1))


def categories(adata: AnnData, key: str) -> pd.Index:
    """Categories of ``obs[key]`` as scanpy would make them (sorted strings unless already categorical)."""
    col = adata.obs[key]
    if isinstance(col.dtype, pd.CategoricalDtype):
        return col.cat.categories
    return col.dropna().astype(str).astype("category").cat.categories


def shared_colors(adata: AnnData, key: str, *, store: bool = True) -> list[str]:
    """Colours of the categories of ``obs[key]``, shared with ``sc.pl`` through ``uns[f"{key}_colors"]``.

    Existing colours are kept; missing ones are chosen as scanpy does and, with ``store``, stored, so
    a later ``sc.pl.umap(adata, color=key)`` uses the same palette.
    """
    import scanpy as sc
    from matplotlib import rcParams
    from matplotlib.colors import to_hex

    n = len(categories(adata, key))
    colors = adata.uns.get(f"{key}_colors")
    if colors is not None and len(colors) >= n:
        return list(colors)[:n]
    cycle = rcParams["axes.prop_cycle"].by_key()["color"]
    palettes = [cycle, sc.pl.palettes.default_20, sc.pl.palettes.default_28, sc.pl.palettes.default_102]
    palette = next((p for p in palettes if len(p) >= n), ["grey"] * n)
    chosen = [to_hex(c) for c in palette[:n]]
    if store:
        adata.uns[f"{key}_colors"] = chosen
    return chosen


def library_panels(
    adata: AnnData, obs: pd.DataFrame, *, spatial_key: str, library_key: str | None
) -> list[tuple[str | None, AnnData]]:
    """Light AnnData objects (``obs`` columns + coordinates), one per library, for ``sc.pl.embedding``.

    Categorical columns keep every category and colour of the full data, so a domain has the same
    colour on every slide. The user's ``adata`` is never handed to scanpy and not changed here: the
    caller stores the colours once the plot is drawn.
    """
    import anndata as ad

    coords = check_spatial(adata, spatial_key)
    check_library(adata, library_key)
    if library_key is None:
        groups = [(None, np.ones(adata.n_obs, dtype=bool))]
    else:
        lib = adata.obs[library_key].astype(str).to_numpy()
        groups = [(name, lib == name) for name in pd.unique(lib)]
    panels = []
    for name, mask in groups:
        panel = ad.AnnData(obs=obs.loc[mask].copy(), obsm={spatial_key: coords[mask]})
        for column in obs.columns:
            if isinstance(obs[column].dtype, pd.CategoricalDtype):
                panel.uns[f"{column}_colors"] = shared_colors(adata, column, store=False)
        panels.append((name, panel))
    return panels


def as_categorical(adata: AnnData, key: str) -> pd.Categorical:
    """``obs[key]`` as the categorical scanpy would plot, without converting the user's column."""
    col = adata.obs[key]
    if isinstance(col.dtype, pd.CategoricalDtype):
        return col.array
    return pd.Categorical(col.astype(str).where(col.notna()), categories=categories(adata, key))


def spatial_grid(
    panels: list[tuple[str | None, AnnData]],
    columns: Sequence[str],
    titles: Sequence[Sequence[str]],
    *,
    spatial_key: str,
    ax: Axes | None = None,
    wrap: int = 3,
    **kwargs: Any,
) -> tuple[Figure, list[Axes]]:
    """Draw ``columns`` (one panel each) for every library (one row each) with ``sc.pl.embedding``.

    A single library's panels wrap after ``wrap`` per row. A ``title`` in ``kwargs`` (one string per
    panel, in drawing order; a string for a single panel) replaces ``titles``.
    """
    import matplotlib.pyplot as plt
    import scanpy as sc

    n_panels = len(panels) * len(columns)
    flat_titles = [title for row_titles in titles for title in row_titles]
    if "title" in kwargs:
        given = kwargs.pop("title")
        flat_titles = [given] if isinstance(given, str) else list(given)
        if len(flat_titles) != n_panels:
            msg = f"`title` needs one title per panel ({n_panels}, in drawing order), got {len(flat_titles)}."
            raise ValueError(msg)
    n_cols = len(columns) if len(panels) > 1 else min(len(columns), wrap)
    n_rows = -(-n_panels // n_cols)
    if ax is not None:
        if n_panels != 1:
            msg = f"`ax` draws a single panel, but this plot has {n_panels}; leave `ax` out."
            raise ValueError(msg)
        fig, grid = ax.figure, [ax]
    else:
        fig, grid2d = plt.subplots(
            n_rows, n_cols, figsize=(5.4 * n_cols, 4.4 * n_rows), squeeze=False, layout="constrained"
        )
        grid = list(grid2d.ravel())
        for unused in grid[n_panels:]:
            unused.remove()
    jobs = [(panel, color) for _, panel in panels for color in columns]
    for (panel, color), title, a in zip(jobs, flat_titles, grid, strict=False):
        sc.pl.embedding(panel, basis=spatial_key, color=color, title=title, ax=a, show=False, **kwargs)
    axes = grid[:n_panels]
    as_tissue(axes)
    return fig, axes


def finish(
    fig: Figure, axes: Axes | list[Axes], *, show: bool | None, return_fig: bool
) -> Axes | list[Axes] | Figure | None:
    """Return the figure or the axes, or show (scanpy's ``settings.autoshow`` when ``show`` is None)."""
    import scanpy as sc

    if return_fig:
        return fig
    if show if show is not None else sc.settings.autoshow:
        import matplotlib.pyplot as plt

        plt.show()
        return None
    return axes
