"""TSstc spatial domain identification for the scverse ecosystem.

``import tsstc_sc`` is light: torch is imported only when a model is trained.
"""

from importlib.metadata import PackageNotFoundError, version

from . import datasets, pl, pp, tl

try:
    __version__ = version("tsstc-sc")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "datasets", "pl", "pp", "tl"]
