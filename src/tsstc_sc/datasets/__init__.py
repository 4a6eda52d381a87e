"""Built-in synthetic tissue and loaders for real data given a local copy."""

from ._readers import read_h5ad, read_visium
from ._synthetic import synthetic_tissue

__all__ = ["read_h5ad", "read_visium", "synthetic_tissue"]
