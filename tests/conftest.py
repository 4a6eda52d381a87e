"""Shared fixtures: small hand-made sections (no dependency on the code under test) and real data."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"

collect_ignore = ["scripts"]  # programs the tests launch (e.g. under torchrun), not test modules


def shared_file(name: str) -> Path:
    """Path of a real dataset from ``../shared/data``, skipping the test where it is absent."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{name} not found in {SHARED_DATA.resolve()} (see shared/data/DATA.md)")
    return path


def make_grid(n_rows: int = 12, n_cols: int = 24, n_genes: int = 30, seed: int = 0) -> ad.AnnData:
    """A Visium-like hex grid (row + col even) with Poisson counts and pixel coordinates."""
    rows, cols = np.meshgrid(np.arange(n_rows), np.arange(n_cols), indexing="ij")
    keep = (rows + cols) % 2 == 0
    rows, cols = rows[keep], cols[keep]
    rng = np.random.default_rng(seed)
    counts = rng.poisson(2.0, size=(len(rows), n_genes)).astype(np.float32)
    adata = ad.AnnData(sp.csr_matrix(counts))
    adata.obs_names = [f"s{i}" for i in range(adata.n_obs)]
    adata.var_names = [f"g{i}" for i in range(n_genes)]
    adata.obs["array_row"] = rows
    adata.obs["array_col"] = cols
    adata.obsm["spatial"] = np.c_[cols * 50.0 + 100, rows * 50.0 * np.sqrt(3) + 80]
    return adata


@pytest.fixture
def grid() -> ad.AnnData:
    return make_grid()
