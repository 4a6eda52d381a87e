"""One validation layer shared by every public function.

Each check either returns clean data or raises a ``ValueError``/``KeyError``/``TypeError``
that says what is wrong and how to fix it. Nothing here modifies ``adata``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

if TYPE_CHECKING:
    from anndata import AnnData

ARRAY_COLUMNS = ("array_row", "array_col")


def check_anndata(adata: object) -> AnnData:
    """Refuse anything that is not an :class:`~anndata.AnnData`, one without spots, or one whose spot names repeat."""
    from anndata import AnnData

    if not isinstance(adata, AnnData):
        msg = f"Expected an AnnData object as first argument, got {type(adata).__name__}."
        raise TypeError(msg)
    if adata.n_obs == 0:
        msg = "`adata` has no observations (spots); nothing to compute."
        raise ValueError(msg)
    check_unique_names(adata, "obs", "results are stored per spot")
    return adata


def check_unique_names(adata: AnnData, axis: Literal["obs", "var"], why: str) -> None:
    """``obs_names`` or ``var_names`` must be unique; ``why`` says what relies on it."""
    names = getattr(adata, f"{axis}_names")
    if not names.is_unique:
        dup = names[names.duplicated()][0]
        msg = (
            f"`adata.{axis}_names` are not unique (e.g. {dup!r} repeats); {why}, so make them unique "
            f"first: `adata.{axis}_names_make_unique()`."
        )
        raise ValueError(msg)


def check_copyable(adata: AnnData, *, copy: bool) -> None:
    """``copy`` is a boolean, and ``copy=True`` needs an in-memory AnnData: say so before any work."""
    if check_bool(copy, "copy") and adata.isbacked:
        msg = (
            "`copy=True` on a backed AnnData (opened with `backed=`) cannot copy without a file: load it "
            "first with `adata = adata.to_memory()`, or pass `copy=False` to write the results into it."
        )
        raise ValueError(msg)


#: Largest seed: scikit-learn and NumPy take seeds below 2**32, and restarts add 1 per training.
MAX_SEED = 2**31 - 1


def check_random_state(random_state: object) -> int:
    """An integer seed in ``[0, MAX_SEED]``: results are reproducible for a seed (and thread count)."""
    if random_state is None:
        msg = "`random_state` must be an integer seed (e.g. 0), got None."
        raise TypeError(msg)
    seed = check_integer(random_state, "random_state", optional=False)
    if not 0 <= seed <= MAX_SEED:
        msg = f"`random_state` must be between 0 and {MAX_SEED} (2**31 - 1), got {seed}."
        raise ValueError(msg)
    return seed


def check_spatial(adata: AnnData, spatial_key: str) -> np.ndarray:
    """Return ``adata.obsm[spatial_key]`` as a finite float64 array of shape ``(n_obs, 2 or 3)``."""
    if spatial_key not in adata.obsm:
        available = ", ".join(map(repr, adata.obsm.keys())) or "none"
        msg = (
            f"No spatial coordinates in `adata.obsm[{spatial_key!r}]` (obsm keys: {available}). "
            "Store the x, y coordinates there (squidpy/scanpy convention) or pass `spatial_key=`."
        )
        raise KeyError(msg)
    coords = adata.obsm[spatial_key]
    if isinstance(coords, pd.DataFrame):
        coords = coords.to_numpy()
    try:
        coords = np.asarray(coords, dtype=np.float64)
    except (TypeError, ValueError) as e:
        msg = f"`adata.obsm[{spatial_key!r}]` must be numeric coordinates: {e}"
        raise TypeError(msg) from None
    if coords.ndim != 2 or coords.shape[1] not in (2, 3):
        msg = (
            f"`adata.obsm[{spatial_key!r}]` must have shape (n_obs, 2) or (n_obs, 3), got {coords.shape}. "
            "Pass the spot coordinates, one row per spot."
        )
        raise ValueError(msg)
    bad = ~np.isfinite(coords).all(axis=1)
    if bad.any():
        msg = (
            f"{int(bad.sum())} spot(s) have NaN or infinite coordinates in `adata.obsm[{spatial_key!r}]` "
            f"(first: {adata.obs_names[np.flatnonzero(bad)[0]]!r}). Remove them, e.g. "
            f"`adata = adata[np.isfinite(adata.obsm[{spatial_key!r}]).all(1)].copy()`."
        )
        raise ValueError(msg)
    return coords


def check_array_coords(adata: AnnData) -> np.ndarray:
    """Return the Visium array grid ``(array_row, array_col)`` as float64, or explain what is missing."""
    missing = [c for c in ARRAY_COLUMNS if c not in adata.obs]
    if missing:
        msg = (
            f'`unit="array"` needs the Visium grid columns {list(ARRAY_COLUMNS)} in `adata.obs`; '
            f"missing: {missing}. Load Visium data with `tsstc_sc.datasets.read_visium`, or use "
            '`unit="nn"` for data without an array grid.'
        )
        raise KeyError(msg)
    try:
        grid = adata.obs[list(ARRAY_COLUMNS)].to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        msg = f"`adata.obs` columns {list(ARRAY_COLUMNS)} must be numeric array indices."
        raise TypeError(msg) from None
    if not np.isfinite(grid).all():
        msg = f"`adata.obs` columns {list(ARRAY_COLUMNS)} contain NaN or infinite values; every spot needs its array position."
        raise ValueError(msg)
    return grid


def check_radii(radii: Sequence[float] | float | None) -> np.ndarray | None:
    """Return strictly increasing positive radii as float64, ``None`` passes through (= defaults)."""
    if radii is None:
        return None
    try:
        arr = np.atleast_1d(np.asarray(radii, dtype=np.float64))
    except (TypeError, ValueError):
        msg = f"`radii` must be a number or a list of numbers, e.g. [2, 3, 4, 5], got {radii!r}."
        raise TypeError(msg) from None
    if arr.ndim != 1 or arr.size == 0:
        msg = f"`radii` must be a non-empty list of numbers, got {radii!r}."
        raise ValueError(msg)
    if not np.isfinite(arr).all() or (arr <= 0).any():
        msg = f"`radii` must be positive finite numbers, got {arr.tolist()}."
        raise ValueError(msg)
    if (np.diff(arr) <= 0).any():
        msg = (
            f"`radii` must be strictly increasing without duplicates, got {arr.tolist()}; "
            f"pass e.g. {sorted(set(arr.tolist()))}."
        )
        raise ValueError(msg)
    return arr


def check_library(adata: AnnData, library_key: str | None) -> np.ndarray:
    """Integer library codes per spot (all zeros without ``library_key``)."""
    if library_key is None:
        return np.zeros(adata.n_obs, dtype=np.int64)
    if library_key not in adata.obs:
        msg = f"`library_key={library_key!r}` is not a column of `adata.obs`."
        raise KeyError(msg)
    col = adata.obs[library_key]
    if col.isna().any():
        msg = (
            f"`adata.obs[{library_key!r}]` has {int(col.isna().sum())} missing value(s); "
            "every spot must belong to a library (slide)."
        )
        raise ValueError(msg)
    return pd.Categorical(col).codes.astype(np.int64)


def check_key(key: str) -> str:
    """``key_added``: output keys become h5ad paths, so a non-empty string without ``/``."""
    if not isinstance(key, str) or not key or "/" in key:
        msg = f"`key_added` must be a non-empty string without '/', got {key!r}."
        raise ValueError(msg)
    return key


def check_counts(adata: AnnData, layer: str | None) -> sp.csr_matrix:
    """Raw counts from ``X`` or ``layers[layer]`` as CSR float32 (a copy; ``adata`` is never touched).

    Refuses NaN/inf, negative or non-integer values, which usually mean log-normalised data.
    """
    if layer is not None and layer not in adata.layers:
        available = ", ".join(map(repr, adata.layers.keys())) or "none"
        msg = f"`layer={layer!r}` not found in `adata.layers` (layers: {available})."
        raise KeyError(msg)
    where = "adata.X" if layer is None else f"adata.layers[{layer!r}]"
    x = adata.X if layer is None else adata.layers[layer]
    if x is None:
        msg = f"{where} is empty; TSstc needs raw counts (pass `layer=` if they are in a layer)."
        raise ValueError(msg)
    if hasattr(x, "to_memory"):  # backed / lazy arrays
        x = x.to_memory()
    if sp.issparse(x):
        x = sp.csr_matrix(x, dtype=np.float32, copy=True)
    else:
        try:
            x = sp.csr_matrix(np.asarray(x, dtype=np.float32))
        except (TypeError, ValueError):
            msg = f"{where} must be a numeric matrix of raw counts, got dtype {getattr(x, 'dtype', type(x))}."
            raise TypeError(msg) from None
    x.sum_duplicates()
    values = x.data
    if not np.isfinite(values).all():
        msg = f"{where} contains NaN or infinite values; TSstc needs raw counts."
        raise ValueError(msg)
    if (values < 0).any():
        msg = (
            f"{where} contains negative values (min {values.min():g}): it looks scaled or log-transformed. "
            "TSstc needs raw counts: pass `layer='counts'` or restore them (e.g. from `adata.raw`)."
        )
        raise ValueError(msg)
    if not np.array_equal(values, np.round(values)):
        msg = (
            f"{where} holds non-integer values (e.g. {values[values != np.round(values)][0]:g}): it looks "
            "normalised or log-transformed. TSstc normalises internally and needs raw counts: pass "
            "`layer='counts'` or restore them (e.g. from `adata.raw`)."
        )
        raise ValueError(msg)
    x.eliminate_zeros()
    empty = np.diff(x.indptr) == 0
    if empty.any():
        msg = (
            f"{int(empty.sum())} spot(s) have no counts at all (e.g. {adata.obs_names[np.flatnonzero(empty)[0]]!r}); "
            "they carry no expression to learn from. Remove them first, e.g. "
            "`sc.pp.filter_cells(adata, min_counts=1)`."
        )
        raise ValueError(msg)
    return x


def check_choice(value: object, allowed: tuple, name: str) -> object:
    """``value`` when it is one of ``allowed`` (e.g. ``typing.get_args`` of a ``Literal``), else an error listing them."""
    if value not in allowed:
        msg = f"`{name}` must be one of {allowed}, got {value!r}."
        raise ValueError(msg)
    return value


def _scalar(value: object, name: str, kind: type, what: str, *, optional: bool) -> object:
    """``value`` if it is a ``kind`` (a boolean only where ``kind`` is ``bool``), or ``None`` if ``optional``."""
    if value is None and optional:
        return None
    boolean = isinstance(value, bool | np.bool_)
    if boolean != (kind is bool) or not (boolean or isinstance(value, kind)):
        msg = f"`{name}` must be {what}{' or None' if optional else ''}, got {value!r}."
        raise TypeError(msg)
    return value


def check_integer(value: object, name: str, *, optional: bool = True) -> int | None:
    """``value`` as a plain ``int`` (NumPy integers too; not booleans or floats); ``None`` if ``optional``."""
    value = _scalar(value, name, numbers.Integral, "an integer", optional=optional)
    return None if value is None else int(value)


def check_bool(value: object, name: str, *, optional: bool = False) -> bool | None:
    """``value`` as a plain ``bool`` (NumPy booleans too): ``"no"`` or ``0`` would silently mean something."""
    value = _scalar(value, name, bool, "True or False", optional=optional)
    return None if value is None else bool(value)


def check_number(value: object, name: str, *, optional: bool = False) -> float | None:
    """``value`` as a finite ``float`` (NumPy numbers too; not booleans); ``None`` if ``optional``."""
    value = _scalar(value, name, numbers.Real, "a number", optional=optional)
    if value is None:
        return None
    if not math.isfinite(value):
        msg = f"`{name}` must be finite, got {value!r}."
        raise ValueError(msg)
    return float(value)


def check_n_clusters(n_clusters: object, n_obs: int) -> int | None:
    """``None`` or an integer between 2 and the number of spots."""
    n_clusters = check_integer(n_clusters, "n_clusters")
    if n_clusters is None:
        return None
    if not 2 <= n_clusters <= n_obs:
        msg = f"`n_clusters` must be between 2 and the number of spots ({n_obs}), got {n_clusters}."
        raise ValueError(msg)
    return int(n_clusters)


def resolve_device(device: str) -> str:
    """``"auto"`` means CUDA when available (under ``torchrun``, the process's own GPU ``LOCAL_RANK``);
    a requested GPU that is absent is an error, not a fallback.
    """
    import os

    import torch

    if device == "auto":
        if not torch.cuda.is_available():
            return "cpu"
        local_rank = os.environ.get("LOCAL_RANK")
        return "cuda" if local_rank is None else f"cuda:{int(local_rank) % torch.cuda.device_count()}"
    if not isinstance(device, str):
        msg = f"`device` must be a string like 'auto', 'cpu' or 'cuda:0', got {device!r}."
        raise TypeError(msg)
    try:
        dev = torch.device(device)
    except RuntimeError:
        msg = f"Unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'."
        raise ValueError(msg) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        msg = f"device={device!r} was requested but no CUDA GPU is available; use device='cpu' or 'auto'."
        raise ValueError(msg)
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        msg = f"device={device!r} does not exist: {torch.cuda.device_count()} CUDA device(s) visible."
        raise ValueError(msg)
    if dev.type not in ("cpu", "cuda"):
        msg = f"device={device!r} is not supported; use 'auto', 'cpu' or 'cuda'."
        raise ValueError(msg)
    return str(dev)
