from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from tsstc_sc import _gene_graph
from tsstc_sc._gene_graph import exact_cosine_knn, gene_knn_graph


def features(n=600, g=40, seed=0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    centres = rng.gamma(1.0, 2.0, size=(4, g))
    return sp.csr_matrix(rng.poisson(centres[rng.integers(0, 4, n)]).astype(np.float32))


def test_exact_knn_matches_brute_force_cosine():
    x = features()
    dense = x.toarray().astype(np.float64)
    unit = dense / np.linalg.norm(dense, axis=1, keepdims=True)
    sim = unit @ unit.T
    np.fill_diagonal(sim, -np.inf)
    got = exact_cosine_knn(x.toarray(), 5)
    # same similarity values as the brute-force top 5 (ties may swap indices)
    np.testing.assert_allclose(
        np.take_along_axis(sim, got, 1), -np.sort(-sim, axis=1)[:, :5], rtol=1e-5, atol=1e-6
    )


def test_graph_is_symmetric_binary_without_self_loops_and_has_at_least_k_neighbours():
    g = gene_knn_graph(features(), 6)
    assert (g != g.T).nnz == 0 and g.diagonal().sum() == 0 and set(np.unique(g.data)) == {1.0}
    assert np.diff(g.indptr).min() >= 6 and g.dtype == np.float32


def test_large_data_path_recovers_most_exact_neighbours(monkeypatch):
    x = features(n=1500)
    exact = gene_knn_graph(x, 8)
    monkeypatch.setattr(_gene_graph, "EXACT_MAX_OBS", 100)  # force PCA + pynndescent
    approx = gene_knn_graph(x, 8)
    assert approx.diagonal().sum() == 0 and (approx != approx.T).nnz == 0
    recall = exact.multiply(approx).nnz / exact.nnz
    assert recall > 0.9, recall  # measured 0.95
