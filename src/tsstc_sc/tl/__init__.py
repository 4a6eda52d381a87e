"""Tools: the TSstc model.

``TSstc`` (the estimator) is imported lazily so that ``import tsstc_sc`` does not import torch.
"""

from .._config import TSstcConfig
from ._tsstc import tsstc

__all__ = ["TSstc", "TSstcConfig", "tsstc"]


def __getattr__(name: str):
    if name == "TSstc":
        from .._model._estimator import TSstc

        return TSstc
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
