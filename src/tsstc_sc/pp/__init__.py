"""Preprocessing: multi-scale spatial graphs."""

from ._spatial_scales import spatial_scales

__all__ = ["spatial_scales"]
