"""Sparse, sampled and reordered computations against their dense textbook formulas (small data)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from tsstc_sc._model._graph_ops import (
    ColumnSplitOperator,
    EdgeIndex,
    SparseOperator,
    edge_dot,
    mean_aggregation,
    normalized_adjacency,
    pair_dot,
)
from tsstc_sc._model._losses import (
    negative_weights,
    refine_neighbors,
    sample_negatives,
    spatial_regularization,
    zinb_nll,
)
from tsstc_sc._model._module import TSstcModule

CPU = torch.device("cpu")


def random_graph(n=40, p=0.15, seed=0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    a = (rng.random((n, n)) < p).astype(np.float32)
    a = np.triu(a, 1)
    a = a + a.T
    a[5] = a[:, 5] = 0  # an isolated spot
    return sp.csr_matrix(a)


def test_normalized_adjacency_matches_dense_formulas():
    a = random_graph()
    dense = a.toarray() + np.eye(a.shape[0])
    d = dense.sum(1)
    sym = np.diag(d**-0.5) @ dense @ np.diag(d**-0.5)
    np.testing.assert_allclose(normalized_adjacency(a, "symmetric").toarray(), sym, rtol=1e-6)
    np.testing.assert_allclose(normalized_adjacency(a, "row").toarray(), dense / d[:, None], rtol=1e-6)
    with pytest.raises(ValueError, match="adj_norm"):
        normalized_adjacency(a, "nope")


def test_sas_reordered_products_equal_dense_mean_then_gcn():
    """Â (P (X W)) computed sparsely equals the paper's order: X_spa = mean over closed neighbourhood, then GCN."""
    rng = np.random.default_rng(1)
    a = random_graph()
    x = rng.poisson(1.0, size=(a.shape[0], 12)).astype(np.float32)
    w = rng.normal(size=(12, 5)).astype(np.float32)
    closed = a.toarray() + np.eye(a.shape[0])
    x_spa = closed @ x / closed.sum(1, keepdims=True)  # paper Eq. 3 with the mean
    expected = normalized_adjacency(a).toarray() @ x_spa @ w
    p = SparseOperator.from_scipy(mean_aggregation(a), CPU)
    adj = SparseOperator.from_scipy(normalized_adjacency(a), CPU)
    got = adj @ (p @ (torch.from_numpy(x) @ torch.from_numpy(w)))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=1e-5)


def test_sparse_operator_gradient_uses_the_transpose():
    m = sp.csr_matrix(np.random.default_rng(2).random((6, 6)).astype(np.float32))  # not symmetric
    op = SparseOperator.from_scipy(m, CPU)
    h = torch.randn(6, 3, requires_grad=True)
    (op @ h).pow(2).sum().backward()
    h2 = h.detach().clone().requires_grad_()
    (torch.from_numpy(m.toarray()) @ h2).pow(2).sum().backward()
    torch.testing.assert_close(h.grad, h2.grad)


def test_pair_dot_gradient_matches_autograd_indexing():
    g = torch.Generator().manual_seed(0)
    u = torch.randn(30, 4, dtype=torch.float64, requires_grad=True)
    src = torch.sort(torch.randint(0, 30, (200,), generator=g)).values
    dst = torch.randint(0, 30, (200,), generator=g)
    weights = torch.randn(200, dtype=torch.float64)
    (pair_dot(u, src, dst) * weights).sum().backward()
    u2 = u.detach().clone().requires_grad_()
    ((u2[src] * u2[dst]).sum(1) * weights).sum().backward()
    torch.testing.assert_close(u.grad, u2.grad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_edge_dot_matches_gather_with_repeats_and_empty_rows(dtype):
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(50, 8, generator=g, dtype=dtype), torch.randn(70, 8, generator=g, dtype=dtype)
    src = torch.sort(torch.randint(0, 25, (400,), generator=g)).values  # rows 25-49 have no pairs
    dst = torch.randint(0, 70, (400,), generator=g)  # unsorted within a row, with repeats
    torch.testing.assert_close(edge_dot(a, b, src, dst), (a[src] * b[dst]).sum(1))
    u = torch.randn(30, 4, dtype=dtype, generator=g)
    torch.testing.assert_close(
        pair_dot(u, src[src < 30], dst[src < 30] % 30), (u[src[src < 30]] * u[dst[src < 30] % 30]).sum(1)
    )


def cosine_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.normalize(a, dim=1) @ F.normalize(b, dim=1).T


@pytest.fixture
def views():
    g = torch.Generator().manual_seed(3)
    a = random_graph(seed=3)
    n = a.shape[0]
    return a, torch.randn(n, 8, generator=g), torch.randn(n, 8, generator=g)


def test_refinement_on_edges_matches_the_dense_cross_view_matrix(views):
    a, z_spa, z_gene = views
    edges = EdgeIndex.from_scipy(a, CPU)
    s = cosine_matrix(z_spa, z_gene).numpy()  # the paper's N x N S^v, only for this check
    dense = a.toarray() > 0
    keep = refine_neighbors(z_spa, z_gene, edges, "mean", None).numpy()
    expected = []
    for i in range(a.shape[0]):
        nbrs = np.flatnonzero(dense[i])
        if nbrs.size:
            expected.extend(s[i, nbrs] >= s[i, nbrs].mean() - 1e-6)
    np.testing.assert_array_equal(keep, expected)
    top = refine_neighbors(z_spa, z_gene, edges, "top_ratio", 0.5).numpy()
    src = edges.src.numpy()
    for i in np.unique(src):
        deg = (src == i).sum()
        assert top[src == i].sum() == np.ceil(0.5 * deg)
    assert refine_neighbors(z_spa, z_gene, edges, "none", None).all()
    kept, expected_above_zero = refine_neighbors(z_spa, z_gene, edges, "threshold", 0.0).numpy(), []
    for i in range(a.shape[0]):
        row = s[i, np.flatnonzero(dense[i])]
        if row.size:
            expected_above_zero.extend((row >= 0) | (row >= row.max() - 1e-6))
    np.testing.assert_array_equal(kept, expected_above_zero)
    assert 0 < kept.mean() < 1  # the threshold removed some edges and kept others
    # no cosine reaches 2: every spot with neighbours keeps exactly its best one
    strict = refine_neighbors(z_spa, z_gene, edges, "threshold", 2.0).numpy()
    assert strict.sum() == len(np.unique(src)) and set(src[strict]) == set(src)


def kept_positives(views):
    """The refined positives of one view as an edge mask and as a dense N x N boolean matrix."""
    a, z_spa, z_gene = views
    n = a.shape[0]
    edges = EdgeIndex.from_scipy(a, CPU)
    keep = refine_neighbors(z_spa, z_gene, edges, "mean", None)
    pos = np.zeros((n, n), dtype=bool)
    pos[edges.src[keep].numpy(), edges.dst[keep].numpy()] = True
    return z_spa, n, edges, keep, pos


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_regularization_with_all_negatives_equals_dense_formula(views, temperature):
    z_spa, n, edges, keep, pos = kept_positives(views)
    neg = ~pos & ~np.eye(n, dtype=bool)
    ns, nd = np.nonzero(neg)
    p = torch.sigmoid(cosine_matrix(z_spa, z_spa) / temperature).numpy()
    log_pos, log_neg = np.log(p[pos]), np.log(1 - p[neg])
    for norm, expected in [
        ("balanced", -log_pos.mean() - log_neg.mean()),
        ("scaffold", -(log_pos.sum() + log_neg.sum()) / (2 * n * n)),
    ]:
        got = spatial_regularization(
            z_spa,
            (edges.src[keep], edges.dst[keep]),
            (torch.from_numpy(ns), torch.from_numpy(nd), torch.ones(len(ns))),
            n_negative_pairs=float(neg.sum()),
            normalization=norm,
            temperature=temperature,
        )
        np.testing.assert_allclose(got.item(), expected, rtol=1e-5)


def test_sampled_negatives_are_unbiased_and_skip_positives(views):
    z_spa, n, edges, keep, pos = kept_positives(views)
    f = torch.nn.functional.softplus(cosine_matrix(z_spa, z_spa)).numpy()
    exact = f[~pos & ~np.eye(n, dtype=bool)].sum()
    g = torch.Generator().manual_seed(0)
    estimates = []
    for _ in range(300):
        src, dst = sample_negatives(n, n, 16, g, CPU)
        assert (src != dst).all()
        w, n_pairs = negative_weights(src, dst, keep, edges, 16, n)
        assert n_pairs == (~pos & ~np.eye(n, dtype=bool)).sum()
        assert (w[torch.from_numpy(pos[src.numpy(), dst.numpy()])] == 0).all()
        estimates.append((w.numpy() * f[src.numpy(), dst.numpy()]).sum())
    assert abs(np.mean(estimates) - exact) < 0.01 * exact


def test_zinb_matches_a_direct_likelihood_and_its_gradients_and_sampling_is_unbiased():
    g = torch.Generator().manual_seed(4)
    x = torch.poisson(torch.full((50, 7), 1.5), generator=g)
    assert 0.1 < (x == 0).float().mean() < 0.5  # both branches are exercised
    params = [
        (torch.rand(50, 7, generator=g) * 0.5).requires_grad_(),
        (torch.rand(50, 7, generator=g) * 3 + 0.2).requires_grad_(),
        (torch.rand(50, 7, generator=g) * 4 + 0.1).requires_grad_(),
    ]
    pi, theta, mu = params
    nb = torch.distributions.NegativeBinomial(total_count=theta, logits=torch.log(mu) - torch.log(theta))
    direct = torch.where(
        x == 0, torch.log(pi + (1 - pi) * nb.log_prob(x).exp()), torch.log(1 - pi) + nb.log_prob(x)
    )
    full = zinb_nll(x, pi, theta, mu)
    torch.testing.assert_close(full, -direct.mean(), rtol=1e-4, atol=1e-5)
    # the nonzero entries' terms are taken apart from the zeros': every entry's gradient is still its own
    for ours, reference in zip(
        torch.autograd.grad(full, params), torch.autograd.grad(-direct.mean(), params), strict=True
    ):
        torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-6)
    pi, theta, mu = (p.detach() for p in params)
    full = full.detach()
    # the per-epoch subsample of spots is an unbiased estimate of the full mean
    rows = [torch.randperm(50, generator=g)[:10] for _ in range(2000)]
    sampled = torch.stack([zinb_nll(x[r], pi[r], theta[r], mu[r]) for r in rows])
    assert abs(sampled.mean() - full) < 0.01 * full


def test_gcn_input_is_sparse_on_the_cpu_only_when_that_is_faster(monkeypatch):
    from tsstc_sc._model import _training

    sparse_x = sp.random(200, 100, density=0.05, format="csr", dtype=np.float32, random_state=0)
    dense_x = sp.random(200, 100, density=0.5, format="csr", dtype=np.float32, random_state=0)
    assert not _training.wants_dense_input(sparse_x, CPU)
    assert _training.wants_dense_input(dense_x, CPU)
    assert _training.wants_dense_input(sparse_x, torch.device("cuda"))  # dense GEMM on a GPU
    monkeypatch.setattr(_training, "DENSE_X_BYTES", 200 * 100 * 4 - 1)  # too large to be dense
    assert not _training.wants_dense_input(dense_x, CPU)
    assert not _training.wants_dense_input(sparse_x, torch.device("cuda"))


@pytest.mark.parametrize(("dense_above", "n_dense"), [(1.0, 0), (0.3, 5), (0.0, 11)])
def test_column_split_product_and_gradient_equal_the_dense_ones(dense_above, n_dense):
    """Its densest columns dense, the rest CSR: ``M @ H`` and ``M^T @ G`` as with ``M`` dense."""
    m = sp.random(40, 12, density=0.3, format="csr", dtype=np.float32, random_state=4).tolil()
    m[:, 5] = 0  # an empty column stays sparse even at dense_above=0, and gets a zero gradient
    m = m.tocsr()
    m.eliminate_zeros()
    op = ColumnSplitOperator.from_scipy(m, CPU, dense_above)
    assert op.dense.shape == (40, n_dense)
    h = torch.randn(12, 3, requires_grad=True)
    weights = torch.randn(40, 3)
    got = op @ h.T.contiguous().T  # a non-contiguous H, as the first layer's weight.T
    (got * weights).sum().backward()
    h2 = h.detach().clone().requires_grad_()
    expected = torch.from_numpy(m.toarray()) @ h2
    (expected * weights).sum().backward()
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(h.grad, h2.grad)
    assert torch.all(h.grad[5] == 0)


def test_encoding_a_sparse_input_equals_the_dense_one_with_its_gradients():
    a = random_graph()
    n = a.shape[0]
    x = sp.random(n, 12, density=0.2, format="csr", dtype=np.float32, random_state=3)
    torch.manual_seed(0)
    module = TSstcModule(12, 2, hidden_dim=16, latent_dim=8, use_sas=True)
    prop = [SparseOperator.from_scipy(normalized_adjacency(a), CPU) for _ in range(3)]
    agg = [SparseOperator.from_scipy(mean_aggregation(a), CPU) for _ in range(2)]

    def views_and_grads(x_in):
        module.zero_grad()
        views = module.encode(x_in, prop, agg)
        torch.stack(views).square().sum().backward()
        return [v.detach() for v in views] + [layer.linear.weight.grad.clone() for layer in module.first]

    dense = views_and_grads(torch.from_numpy(x.toarray()))
    sparse = views_and_grads(ColumnSplitOperator.from_scipy(x, CPU, 0.2))
    for d, s in zip(dense, sparse, strict=True):
        torch.testing.assert_close(s, d, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("densify", [True, False])
def test_chunked_zinb_equals_the_whole_loss_and_its_gradients(densify, monkeypatch):
    """Above ``ZINB_CHUNK_ENTRIES`` the loss runs in checkpointed chunks: same value, same gradients."""
    from tsstc_sc._model import _training

    g = torch.Generator().manual_seed(5)
    counts = sp.random(90, 12, density=0.4, format="csr", dtype=np.float32, random_state=5)
    counts.data = np.ceil(counts.data * 5)
    factors = np.linspace(0.5, 2.0, 90)
    target = _training.ReconstructionTarget.build(counts, factors, CPU, densify=densify)
    inputs = SimpleNamespace(n_core=90, target=target)
    module = TSstcModule(12, 1, hidden_dim=8, latent_dim=4, use_sas=True)
    fused = torch.randn(90, 4, generator=g)

    def loss_and_grads():
        z = fused.clone().requires_grad_()
        module.zero_grad()
        loss = _training.reconstruction_loss(module, z, inputs, None, g)
        loss.backward()
        return loss.detach(), z.grad, module.decoder.mu.weight.grad.clone()

    whole = loss_and_grads()
    monkeypatch.setattr(_training, "ZINB_CHUNK_ENTRIES", 12 * 25)  # 4 chunks of <= 25 rows
    chunked = loss_and_grads()
    for a, b in zip(whole, chunked, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_attention_fusion_receives_gradient_and_weights_sum_to_one():
    a = random_graph()
    n = a.shape[0]
    torch.manual_seed(0)
    module = TSstcModule(12, 2, hidden_dim=16, latent_dim=8, use_sas=True)
    prop = [SparseOperator.from_scipy(normalized_adjacency(a), CPU) for _ in range(3)]
    agg = [SparseOperator.from_scipy(mean_aggregation(a), CPU) for _ in range(2)]
    x = torch.rand(n, 12)
    views = module.encode(x, prop, agg)
    fused, weights = module.fusion(views)
    torch.testing.assert_close(weights.sum(1), torch.ones(n))
    pi, theta, mu = module.decoder(fused)
    zinb_nll(x, pi, theta, mu).backward()
    for name, param in module.fusion.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


@pytest.mark.parametrize("method", ["gmm", "kmeans"])
def test_large_data_clustering_fits_a_subsample_and_assigns_every_spot(method, monkeypatch):
    from tsstc_sc import _clustering

    rng = np.random.default_rng(0)
    centres = rng.normal(scale=6, size=(4, 5))
    truth = rng.integers(0, 4, 3000)
    embedding = centres[truth] + rng.normal(size=(3000, 5))
    monkeypatch.setattr(_clustering, "FIT_MAX_OBS", 500)
    fits = []  # (spots fitted, their labels from the fit)
    fit = getattr(_clustering, method)

    def spy(x, *args, **kwargs):
        fits.append((x, fit(x, *args, **kwargs)[0]))
        return fit(x, *args, **kwargs)

    monkeypatch.setattr(_clustering, method, spy)
    labels, _ = _clustering.cluster(embedding, 4, method, random_state=0)
    assert [len(x) for x, _ in fits] == [500]  # the model saw the subsample only
    assert labels.shape == (3000,) and set(labels.tolist()) == {0, 1, 2, 3}
    fitted_x, fitted_labels = fits[0]
    fitted_rows = np.flatnonzero((embedding[:, None] == fitted_x[None]).all(-1).any(1))
    assert len(fitted_rows) == 500
    # the rule that assigns every spot gives the fitted spots the domains of the fit itself
    np.testing.assert_array_equal(labels[fitted_rows], fitted_labels)
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(truth, labels) > 0.99


def test_consensus_matches_renamed_domains_and_takes_the_majority():
    from tsstc_sc._clustering import consensus, match_labels

    reference = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
    renamed = np.array([2, 2, 2, 0, 0, 0, 1, 1, 1])  # the same partition under other names
    np.testing.assert_array_equal(match_labels(reference, renamed, 3), reference)
    np.testing.assert_array_equal(consensus([reference, renamed, renamed], 3), reference)
    # spot 2 is outvoted by two runs that agree; spot 5 splits three ways and keeps the reference's
    second = np.array([0, 0, 1, 1, 1, 2, 2, 2, 2])
    third = np.array([2, 2, 0, 0, 0, 2, 1, 1, 1])  # [0, 0, 1, 1, 1, 0, 2, 2, 2] under other names
    voted = consensus([reference, second, third], 3)
    np.testing.assert_array_equal(voted, [0, 0, 1, 1, 1, 1, 2, 2, 2])
    # weighted: the reference alone (weight 1) outweighs the two others (0.4 each) everywhere
    np.testing.assert_array_equal(consensus([reference, second, third], 3, [1.0, 0.4, 0.4]), reference)
    # two runs of weight 0.8 outweigh it where they agree (spot 2), not where they split (spot 5)
    weighted = consensus([reference, second, third], 3, [1.0, 0.8, 0.8])
    np.testing.assert_array_equal(weighted, [0, 0, 1, 1, 1, 1, 2, 2, 2])


def test_merge_to_joins_the_smallest_cluster_to_the_nearest_centroid():
    from tsstc_sc._clustering import merge_to

    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [9.0, 0.0], [0.0, 30.0]])  # clusters 7, 3, 5, 9
    sizes = [100, 100, 5, 40]
    embedding = np.concatenate(
        [c + rng.normal(scale=0.1, size=(s, 2)) for c, s in zip(centres, sizes, strict=True)]
    )
    labels = np.repeat([7, 3, 5, 9], sizes)
    # two merges: the 5 spots near (9, 0) join cluster 3 at (10, 0), then the 40 at (0, 30) join the
    # nearest of what is left, cluster 7 at (0, 0); the two left are numbered in order: 3 -> 0, 7 -> 1
    merged = merge_to(labels, embedding, 2)
    np.testing.assert_array_equal(merged, np.repeat([1, 0, 0, 1], sizes))
