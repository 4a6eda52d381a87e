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
    searched = []
    search = _gene_graph.approximate_cosine_knn
    monkeypatch.setattr(
        _gene_graph,
        "approximate_cosine_knn",
        lambda *a, **kw: searched.append(a[0].shape) or search(*a, **kw),
    )
    approx = gene_knn_graph(x, 8)
    assert searched == [x.shape]  # the approximate search ran (on every feature: fewer than 50)
    assert approx.diagonal().sum() == 0 and (approx != approx.T).nnz == 0
    recall = exact.multiply(approx).nnz / exact.nnz
    assert recall > 0.9, recall  # measured 0.95


def programme_and_noise(n=600, seed=0) -> tuple[sp.csr_matrix, np.ndarray]:
    """4 domains, each up-regulating (x2) every 4th of 400 low-count programme genes, plus 600 noise genes,
    scaled per gene and clipped like the model's input."""
    rng = np.random.default_rng(seed)
    domain = rng.integers(0, 4, n)
    means = np.full((4, 400), 0.3)
    for d in range(4):
        means[d, d::4] *= 2.0
    programme = rng.poisson(means[domain])
    x = np.hstack([programme, rng.poisson(rng.gamma(0.5, 1.0, 600), size=(n, 600))]).astype(np.float64)
    x /= x.std(0, ddof=1).clip(1e-9)  # a gene never detected stays 0
    return sp.csr_matrix(np.minimum(x, 10).astype(np.float32)), domain


def test_reduced_features_link_more_spots_of_the_same_domain():
    x, domain = programme_and_noise()

    def same_domain(graph):
        coo = graph.tocoo()
        return np.mean(domain[coo.row] == domain[coo.col])

    all_genes, reduced = same_domain(gene_knn_graph(x, 15)), same_domain(gene_knn_graph(x, 15, n_pcs=50))
    assert reduced > all_genes + 0.08, (all_genes, reduced)  # measured 0.56 -> 0.72


def test_n_pcs_at_or_above_the_gene_count_leaves_the_features_alone():
    x = features()  # 40 genes
    np.testing.assert_array_equal(gene_knn_graph(x, 6, n_pcs=40).toarray(), gene_knn_graph(x, 6).toarray())


def test_large_data_path_centres_its_components(monkeypatch):
    """Principal components ignore a constant added to every gene; uncentred singular ones would not."""
    monkeypatch.setattr(_gene_graph, "EXACT_MAX_OBS", 100)  # force PCA + pynndescent
    x, _ = programme_and_noise()
    shifted = sp.csr_matrix(x.toarray() + 3.0)
    plain, moved = gene_knn_graph(x, 8, n_pcs=20), gene_knn_graph(shifted, 8, n_pcs=20)
    assert plain.multiply(moved).nnz / plain.nnz > 0.95  # measured 0.995; uncentred: 0.885
