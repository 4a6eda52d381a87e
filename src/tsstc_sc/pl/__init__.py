"""Plotting."""

from ._domains import domain_sizes, domains
from ._training import loss, scale_degrees, scale_weights

__all__ = ["domain_sizes", "domains", "loss", "scale_degrees", "scale_weights"]
