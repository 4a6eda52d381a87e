"""The gene (feature) graph of TSstc (paper Eq. 2): cosine k-NN, self removed, symmetrised by union.

Cosines on all genes of the preprocessed matrix (the scaffold), or on its top ``n_pcs`` principal
components, which drop the noise that all-gene cosines sum over (on the olfactory bulb the all-gene
graph links spots of the same layer hardly more often than chance; docs/benchmarks.md). Exact
blockwise top-k for moderate N; above ``EXACT_MAX_OBS`` spots, always principal components (50 when
``n_pcs`` is not given) and an approximate index (pynndescent), so the cost stays O(N·k) in memory
and near-linear in time.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from . import _logging as logg

#: Above this many spots the gene graph uses PCA + pynndescent instead of exact search.
EXACT_MAX_OBS = 20_000
#: Principal components the approximate index searches when ``n_pcs`` is not given.
APPROXIMATE_PCS = 50
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


def principal_components(x: sp.csr_matrix, n_pcs: int, *, random_state: int) -> np.ndarray:
    """Top ``n_pcs`` principal components of ``x`` (centred implicitly: the sparse matrix stays sparse).

    ARPACK, O(nnz) per iteration: about 30 s for 1,000,000 cells x 500 genes on 2 cores.
    """
    from sklearn.decomposition import PCA

    n_components = min(n_pcs, x.shape[1] - 1, x.shape[0] - 1)
    pca = PCA(n_components, svd_solver="arpack", random_state=random_state)
    return pca.fit_transform(x).astype(np.float32)


def approximate_cosine_knn(x: np.ndarray | sp.csr_matrix, k: int, *, random_state: int) -> np.ndarray:
    """Approximate k nearest neighbours under cosine distance (pynndescent; for large N)."""
    from pynndescent import NNDescent

    index = NNDescent(x, n_neighbors=k + 1, metric="cosine", random_state=random_state, n_jobs=1)
    idx, dist = index.neighbor_graph
    # self is usually returned first but not always: rank it last, then keep the k nearest others
    dist = np.where(idx == np.arange(len(idx))[:, None], np.inf, dist)
    order = np.argsort(dist, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(idx, order, axis=1)


def gene_knn_graph(
    x: sp.csr_matrix, k: int, *, n_pcs: int | None = None, random_state: int = 0
) -> sp.csr_matrix:
    """Binary symmetric (union) k-NN graph under cosine similarity, CSR float32, no self loops.

    ``n_pcs``: cosines on this many principal components (:func:`principal_components`); ``None``:
    on the whole matrix (the scaffold). Above ``EXACT_MAX_OBS`` spots: on ``n_pcs`` (default
    ``APPROXIMATE_PCS``) principal components, searched approximately.
    """
    n = x.shape[0]  # k < n: the estimator caps `gene_neighbors` at n - 1
    approximate = n > EXACT_MAX_OBS
    if approximate:
        n_pcs = n_pcs or APPROXIMATE_PCS
        logg.info(f"gene graph: {n} spots > {EXACT_MAX_OBS}, {n_pcs} principal components and pynndescent")
    reduce = n_pcs is not None and n_pcs < x.shape[1]
    features = principal_components(x, n_pcs, random_state=random_state) if reduce else x
    if approximate:
        idx = approximate_cosine_knn(features, k, random_state=random_state)
    else:
        if not reduce and n * x.shape[1] <= 2e8:
            features = x.toarray()  # dense BLAS is ~8x faster when it fits (at most 2e8 entries)
        idx = exact_cosine_knn(features, k)
    rows = np.repeat(np.arange(n), idx.shape[1])
    a = sp.csr_matrix((np.ones(rows.size, dtype=np.float32), (rows, idx.ravel())), shape=(n, n))
    a = a.maximum(a.T).tocsr()
    a.setdiag(0)
    a.eliminate_zeros()
    a.sort_indices()
    return a.astype(np.float32)
