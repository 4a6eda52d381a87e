"""Plotting."""

from ._domains import domains
from ._training import loss, scale_weights

__all__ = ["domains", "loss", "scale_weights"]
