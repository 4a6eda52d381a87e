"""Plotting."""

from ._domains import domains

__all__ = ["domains"]
