"""Expression preprocessing inside ``tl.tsstc`` (METHOD.md §0), sparse and side-effect free.

The scaffold's recipe: drop rare genes, ``seurat_v3`` highly variable genes on raw counts, scale
each spot to ``TARGET_SUM`` (1e4) counts, optionally ``log1p``, divide each gene by its standard deviation without
centering and clip at ``max_value``. The result is the GCN input; the ZINB decoder reconstructs the
raw counts of the same genes (kept in :class:`Expression`), or this matrix with ``zinb_target="input"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import anndata as ad
import numpy as np
import scanpy as sc
import scipy.sparse as sp

from . import _logging as logg

#: Counts per spot after normalisation (scanpy's ``normalize_total(target_sum=1e4)``).
TARGET_SUM = 1e4

if TYPE_CHECKING:
    from ._config import TSstcConfig


@dataclass(frozen=True)
class Expression:
    """The preprocessed matrix and what is needed to apply the same transform to new data."""

    x: sp.csr_matrix  # spots x selected genes, float32
    genes: np.ndarray  # names of the selected genes, in column order
    gene_scale: np.ndarray  # per-gene divisor applied after normalisation
    counts: sp.csr_matrix | None = None  # raw counts of the selected genes (training data only)

    def size_factors(self) -> np.ndarray:
        """Library size of each spot over the selected genes, divided by the median (zeros stay 0)."""
        totals = np.asarray(self.counts.sum(axis=1)).ravel()
        median = np.median(totals[totals > 0]) if (totals > 0).any() else 1.0
        return totals / median


def default_min_cells(n_obs: int) -> int:
    """The scaffold keeps genes seen in >= 100 spots; on small data that would drop everything."""
    return int(min(100, max(3, np.ceil(0.01 * n_obs))))


def select_genes(
    counts: sp.csr_matrix, var_names: np.ndarray, *, min_cells: int, n_top_genes: int
) -> np.ndarray:
    """Indices of the kept genes: detected in ``min_cells`` spots, then the ``seurat_v3`` top genes."""
    detected = np.flatnonzero(np.diff(counts.tocsc().indptr) >= min_cells)
    if detected.size == 0:
        msg = (
            f"No gene is detected in at least {min_cells} spots; lower `min_cells` or check that "
            "`adata` holds raw counts."
        )
        raise ValueError(msg)
    if detected.size <= n_top_genes:
        return detected
    sub = ad.AnnData(counts[:, detected], var={"name": var_names[detected]})
    hvg = sc.pp.highly_variable_genes(sub, flavor="seurat_v3", n_top_genes=n_top_genes, inplace=False)
    return detected[np.flatnonzero(hvg["highly_variable"].to_numpy())]


def normalize(counts: sp.csr_matrix, *, log1p: bool) -> sp.csr_matrix:
    """Each spot's counts scaled to ``TARGET_SUM`` (then ``log1p`` if asked); empty spots stay zero."""
    totals = np.asarray(counts.sum(axis=1)).ravel()
    factors = np.divide(TARGET_SUM, totals, out=np.zeros_like(totals, dtype=np.float64), where=totals > 0)
    x = sp.csr_matrix(sp.diags(factors.astype(np.float32)) @ counts, dtype=np.float32)
    if log1p:
        np.log1p(x.data, out=x.data)
    return x


def _column_std(x: sp.csr_matrix) -> np.ndarray:
    mean = np.asarray(x.mean(axis=0)).ravel()
    sq = np.asarray(x.multiply(x).mean(axis=0)).ravel()
    var = np.maximum(sq - mean**2, 0) * x.shape[0] / max(x.shape[0] - 1, 1)  # ddof=1 like sc.pp.scale
    std = np.sqrt(var)
    std[std == 0] = 1.0
    return std


def _scale(x: sp.csr_matrix, gene_scale: np.ndarray, max_value: float | None) -> sp.csr_matrix:
    x = sp.csr_matrix(x @ sp.diags((1.0 / gene_scale).astype(np.float32)), dtype=np.float32)
    if max_value is not None:
        np.minimum(x.data, max_value, out=x.data)
    return x


def preprocess(
    counts: sp.csr_matrix,
    var_names: np.ndarray,
    *,
    min_cells: int | None,
    n_top_genes: int,
    log1p: bool,
    max_value: float | None,
) -> Expression:
    """Select genes and transform raw counts into the model's input (see module docstring)."""
    min_cells = default_min_cells(counts.shape[0]) if min_cells is None else min_cells
    keep = select_genes(counts, var_names, min_cells=min_cells, n_top_genes=n_top_genes)
    x = normalize(counts[:, keep], log1p=log1p)  # a copy: counts stay raw
    gene_scale = _column_std(x)
    logg.info(f"preprocessing: {len(keep)} genes kept (min_cells={min_cells}, n_top_genes={n_top_genes})")
    selected = counts[:, keep]
    return Expression(_scale(x, gene_scale, max_value), np.asarray(var_names)[keep], gene_scale, selected)


def preprocess_as_configured(counts: sp.csr_matrix, var_names: np.ndarray, config: TSstcConfig) -> Expression:
    """:func:`preprocess` with the gene selection and transform of ``config`` (as ``tl.tsstc`` trains)."""
    return preprocess(
        counts,
        var_names,
        min_cells=config.min_cells,
        n_top_genes=config.n_top_genes,
        log1p=config.log1p,
        max_value=config.max_value,
    )


def transform(
    counts: sp.csr_matrix,
    expression: Expression,
    *,
    log1p: bool,
    max_value: float | None,
) -> sp.csr_matrix:
    """Apply a fitted transform to new raw counts that already hold ``expression.genes`` in order."""
    x = normalize(counts, log1p=log1p)
    return _scale(x, expression.gene_scale, max_value)
