"""Shared plotting conventions (scanpy's ``show`` / ``return_fig``, image-like spatial axes)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def as_tissue(axes: list[Axes]) -> None:
    """Spatial panels like an image: y downwards, equal aspect."""
    for a in axes:
        if not a.yaxis_inverted():
            a.invert_yaxis()
        a.set_aspect("equal")


def default_spot_size(n_obs: int) -> float:
    """Marker size that keeps a section readable from hundreds to 10^5 spots."""
    return max(10.0, 120000 / max(n_obs, 1))


def finish(
    fig: Figure, axes: list[Axes], *, show: bool | None, return_fig: bool
) -> list[Axes] | Figure | None:
    """Return the figure or the axes, or show (scanpy's ``settings.autoshow`` when ``show`` is None)."""
    import scanpy as sc

    if return_fig:
        return fig
    if show if show is not None else sc.settings.autoshow:
        import matplotlib.pyplot as plt

        plt.show()
        return None
    return axes
