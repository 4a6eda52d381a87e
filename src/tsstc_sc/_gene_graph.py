"""The gene (feature) graph of TSstc (paper Eq. 2): cosine k-NN, self removed, symmetrised by union.

Exact blockwise top-k on the preprocessed matrix for moderate N; above ``EXACT_MAX_OBS`` spots the
features are first reduced by PCA and the neighbours come from an approximate index (pynndescent),
so the cost stays O(N·k) in memory and near-linear in time.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from . import _logging as logg

#: Above this many spots the gene graph uses PCA + pynndescent instead of exact search.
EXACT_MAX_OBS = 20_000
_BLOCK = 1024


def _unit_rows(x: np.ndarray | sp.csr_matrix) -> np.ndarray | sp.csr_matrix:
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel() if sp.issparse(x) else (x * x).sum(axis=1))
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0).astype(np.float32)
    return sp.csr_matrix(sp.diags(inv) @ x) if sp.issparse(x) else x * inv[:, None]


def exact_cosine_knn(x: np.ndarray | sp.csr_matrix, k: int) -> np.ndarray:
    """Indices of the ``k`` most cosine-similar other rows, blockwise (memory O(block x N))."""
    unit = _unit_rows(x)
    unit_t = unit.T.tocsr() if sp.issparse(unit) else np.ascontiguousarray(unit.T)
    n = x.shape[0]
    out = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, _BLOCK):
        stop = min(start + _BLOCK, n)
        sim = unit[start:stop] @ unit_t
        sim = sim.toarray() if sp.issparse(sim) else np.asarray(sim)
        sim[np.arange(stop - start), np.arange(start, stop)] = -np.inf  # no self
        top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        # order by similarity, ties broken by index, so the result does not depend on the partition
        order = np.lexsort((top, -np.take_along_axis(sim, top, axis=1)), axis=1)
        out[start:stop] = np.take_along_axis(top, order, axis=1)
    return out


def approximate_cosine_knn(x: sp.csr_matrix, k: int, *, n_pcs: int, random_state: int) -> np.ndarray:
    """PCA to ``n_pcs`` then pynndescent under cosine distance (for large N)."""
    from pynndescent import NNDescent
    from sklearn.decomposition import TruncatedSVD

    pcs = TruncatedSVD(n_components=min(n_pcs, x.shape[1] - 1), random_state=random_state).fit_transform(x)
    index = NNDescent(pcs, n_neighbors=k + 1, metric="cosine", random_state=random_state, n_jobs=1)
    idx, dist = index.neighbor_graph
    # self is usually returned first but not always: rank it last, then keep the k nearest others
    dist = np.where(idx == np.arange(len(idx))[:, None], np.inf, dist)
    order = np.argsort(dist, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(idx, order, axis=1)


def gene_knn_graph(x: sp.csr_matrix, k: int, *, random_state: int = 0) -> sp.csr_matrix:
    """Binary symmetric (union) k-NN graph under cosine similarity, CSR float32, no self loops."""
    n = x.shape[0]
    if k >= n:
        msg = f"The gene graph needs `n_neighbors` < number of spots ({n}), got {k}."
        raise ValueError(msg)
    if n <= EXACT_MAX_OBS:
        dense = x.toarray() if n * x.shape[1] <= 2e8 else x  # dense BLAS is ~8x faster when it fits
        idx = exact_cosine_knn(dense, k)
    else:
        logg.info(f"gene graph: {n} spots > {EXACT_MAX_OBS}, using PCA(50) + approximate k-NN (pynndescent)")
        idx = approximate_cosine_knn(x, k, n_pcs=50, random_state=random_state)
    rows = np.repeat(np.arange(n), idx.shape[1])
    a = sp.csr_matrix((np.ones(rows.size, dtype=np.float32), (rows, idx.ravel())), shape=(n, n))
    a = a.maximum(a.T).tocsr()
    a.setdiag(0)
    a.eliminate_zeros()
    a.sort_indices()
    return a.astype(np.float32)
