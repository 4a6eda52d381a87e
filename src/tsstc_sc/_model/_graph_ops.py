"""Graph operators of TSstc as sparse matrices, and their torch form (METHOD.md §1-2).

Every operator is O(nnz): GCN propagation ``D^-1/2 (A+I) D^-1/2`` (or row-normalised), the SAS mean
over the closed neighbourhood ``D^-1 (A+I)``, and edge lists for the regulariser.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch

AdjNorm = Literal["symmetric", "row"]


def with_self_loops(adj: sp.csr_matrix) -> sp.csr_matrix:
    """``A + I`` on a binary adjacency without self loops."""
    return sp.csr_matrix(adj + sp.identity(adj.shape[0], dtype=np.float32, format="csr"), dtype=np.float32)


def normalized_adjacency(adj: sp.csr_matrix, norm: AdjNorm = "symmetric") -> sp.csr_matrix:
    """GCN propagation matrix: ``D^-1/2 (A+I) D^-1/2`` (paper) or ``D^-1 (A+I)`` (scaffold)."""
    a = with_self_loops(adj)
    degree = np.asarray(a.sum(axis=1)).ravel()
    if norm == "symmetric":
        d = sp.diags((1.0 / np.sqrt(degree)).astype(np.float32))
        out = d @ a @ d
    elif norm == "row":
        out = sp.diags((1.0 / degree).astype(np.float32)) @ a
    else:
        msg = f'`adj_norm` must be "symmetric" or "row", got {norm!r}.'
        raise ValueError(msg)
    out = sp.csr_matrix(out, dtype=np.float32)
    out.sort_indices()
    return out


def mean_aggregation(adj: sp.csr_matrix) -> sp.csr_matrix:
    """SAS (paper Eq. 3): the mean over each spot's closed spatial neighbourhood, as ``D^-1 (A+I)``."""
    return normalized_adjacency(adj, "row")


@contextmanager
def _quiet_csr():
    """Silence torch's CSR notices: "beta state" and "invariant checks ... disabled".

    CSR is ~4x faster than COO for ``A @ H`` here, and ours come from valid, index-sorted scipy CSR.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support", category=UserWarning)
        warnings.filterwarnings("ignore", message="Sparse invariant checks", category=UserWarning)
        yield


def _csr_tensor(m: sp.csr_matrix, device: torch.device) -> torch.Tensor:
    with _quiet_csr():
        return torch.sparse_csr_tensor(
            torch.from_numpy(m.indptr.astype(np.int64)),
            torch.from_numpy(m.indices.astype(np.int64)),
            torch.from_numpy(m.data.astype(np.float32)),
            size=m.shape,
            device=device,
            check_invariants=False,
        )


class _SpMM(torch.autograd.Function):
    """``M @ H`` with the backward ``M^T @ G`` from a stored transpose (no transpose per step)."""

    @staticmethod
    def forward(ctx, matrix: torch.Tensor, matrix_t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        ctx.matrix_t = matrix_t
        return matrix @ h

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, None, ctx.matrix_t @ grad


@dataclass
class SparseOperator:
    """A fixed sparse matrix on a device that multiplies dense tensors with autograd support."""

    matrix: torch.Tensor
    matrix_t: torch.Tensor

    @classmethod
    def from_scipy(cls, m: sp.csr_matrix, device: torch.device) -> SparseOperator:
        """Upload ``m`` (and its transpose, shared when ``m`` is symmetric) as CSR tensors."""
        t = _csr_tensor(m, device)
        symmetric = m.shape[0] == m.shape[1] and (m != m.T).nnz == 0  # X (spots x genes) is not square
        return cls(t, t if symmetric else _csr_tensor(m.T.tocsr(), device))

    def __matmul__(self, h: torch.Tensor) -> torch.Tensor:
        return _SpMM.apply(self.matrix, self.matrix_t, h)


class _SplitColumnsMM(torch.autograd.Function):
    """``M @ H`` for ``M`` stored as its dense columns and its sparse ones (backward: ``M^T @ G`` by part)."""

    @staticmethod
    def forward(ctx, op: ColumnSplitOperator, h: torch.Tensor) -> torch.Tensor:
        ctx.op = op
        dense_part = op.dense @ h.index_select(0, op.dense_columns)
        return dense_part + op.sparse @ h.index_select(0, op.sparse_columns)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        op = ctx.op
        out = grad.new_empty((op.n_columns, grad.shape[1]))
        out.index_copy_(0, op.dense_columns, op.dense.T @ grad)
        out.index_copy_(0, op.sparse_columns, op.sparse_t @ grad)
        return None, out


@dataclass
class ColumnSplitOperator:
    """A fixed sparse matrix (the GCN input ``X``) whose densest columns are kept dense.

    A CSR product pays per nonzero entry, and on the CPU its transposed product (the first layer's
    weight gradient) runs about twice as slowly on rows as long as a gene detected in most spots.
    Such columns go through a dense GEMM instead; the rest stay sparse. The two parts add up to
    ``M @ H`` (summed in another order than one product: results agree up to rounding).
    """

    dense: torch.Tensor  # (n_rows, n_dense) columns ``dense_columns`` of M
    sparse: torch.Tensor  # CSR (n_rows, n_sparse): columns ``sparse_columns`` of M
    sparse_t: torch.Tensor  # CSR transpose of ``sparse``
    dense_columns: torch.Tensor
    sparse_columns: torch.Tensor
    n_columns: int

    @classmethod
    def from_scipy(cls, m: sp.csr_matrix, device: torch.device, dense_above: float) -> ColumnSplitOperator:
        """Columns with more than ``dense_above`` of their entries nonzero are stored dense.

        The dense block is ``n_rows x n_dense``: the caller bounds it (``GraphInputs.upload`` passes
        ``dense_above < 1`` only when all of ``m`` would fit in ``DENSE_X_BYTES``).
        """
        m = sp.csr_matrix(m, dtype=np.float32)
        is_dense = np.bincount(m.indices, minlength=m.shape[1]) > dense_above * m.shape[0]
        dense_columns, sparse_columns = np.flatnonzero(is_dense), np.flatnonzero(~is_dense)
        sparse = m[:, sparse_columns].tocsr() if len(dense_columns) else m  # no copy of a large X
        if not sparse.has_sorted_indices:
            sparse = sparse.sorted_indices()
        return cls(
            torch.from_numpy(m[:, dense_columns].toarray()).to(device),  # bounded by the caller (above)
            _csr_tensor(sparse, device),
            _csr_tensor(sparse.T.tocsr(), device),
            torch.from_numpy(dense_columns).to(device),
            torch.from_numpy(sparse_columns).to(device),
            m.shape[1],
        )

    def __matmul__(self, h: torch.Tensor) -> torch.Tensor:
        return _SplitColumnsMM.apply(self, h)


@dataclass
class EdgeIndex:
    """Directed edge list of a symmetric adjacency (both directions), CSR-ordered by source."""

    src: torch.Tensor
    dst: torch.Tensor
    indptr: torch.Tensor
    n_obs: int

    @classmethod
    def from_scipy(cls, adj: sp.csr_matrix, device: torch.device) -> EdgeIndex:
        """Edges of ``adj`` in CSR order, so per-source reductions are contiguous segments."""
        if not adj.has_sorted_indices:
            adj = adj.sorted_indices()
        src = np.repeat(np.arange(adj.shape[0]), np.diff(adj.indptr))
        return cls(
            torch.from_numpy(src).to(device),
            torch.from_numpy(adj.indices.astype(np.int64)).to(device),
            torch.from_numpy(adj.indptr.astype(np.int64)).to(device),
            adj.shape[0],
        )

    @property
    def degree(self) -> torch.Tensor:
        """Number of edges leaving each spot."""
        return self.indptr[1:] - self.indptr[:-1]

    def segment_sum(self, values: torch.Tensor) -> torch.Tensor:
        """Per-source sum of an edge quantity (deterministic: a CSR row reduction)."""
        return torch.segment_reduce(values, "sum", offsets=self.indptr, axis=0, unsafe=True)


def _csr_from_pairs(
    rows: torch.Tensor,
    cols: torch.Tensor,
    values: torch.Tensor,
    shape: tuple[int, int],
    *,
    rows_sorted: bool = False,
) -> torch.Tensor:
    """CSR tensor of (possibly repeated) pairs, in the given order within a row; repeats add up under ``@``."""
    if not rows_sorted:
        order = torch.argsort(rows, stable=True)
        rows, cols, values = rows[order], cols[order], values[order]
    crow = torch.zeros(shape[0] + 1, dtype=torch.int64, device=rows.device)
    crow[1:] = torch.cumsum(torch.bincount(rows, minlength=shape[0]), 0)
    with _quiet_csr():
        return torch.sparse_csr_tensor(crow, cols, values, shape, check_invariants=False)


def edge_dot(a: torch.Tensor, b: torch.Tensor, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """Row-wise dot products ``<a[src_e], b[dst_e]>`` for pairs sorted by ``src`` (not differentiable).

    On the CPU a sampled dense-dense product (SDDMM) over the pairs' CSR pattern, ~10x faster than
    gathering two ``(E, d)`` matrices; elsewhere the gather, which is bandwidth-bound but fast. The
    SDDMM refuses more pairs than the matrix has entries (repeats on a tiny section): gathered too.
    """
    if a.device.type != "cpu" or len(src) > a.shape[0] * b.shape[0]:
        return (a.index_select(0, src) * b.index_select(0, dst)).sum(1)
    pattern = _csr_from_pairs(src, dst, a.new_zeros(len(src)), (a.shape[0], b.shape[0]), rows_sorted=True)
    return torch.sparse.sampled_addmm(pattern, a, b.T, beta=0.0).values()


class _PairDot(torch.autograd.Function):
    """``s_e = <u_src(e), u_dst(e)>`` with a sparse-matrix backward (``src`` must be sorted).

    Autograd through ``u[src]`` accumulates with a sort-based scatter that is ~50x slower on CPU
    than the two CSR products used here: ``grad_u = S u + S^T u`` with ``S_ij = sum_e g_e``.
    """

    @staticmethod
    def forward(ctx, u: torch.Tensor, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(u, src, dst)
        return edge_dot(u, u, src, dst)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        u, src, dst = ctx.saved_tensors
        n = u.shape[0]
        forward_pairs = _csr_from_pairs(src, dst, grad, (n, n), rows_sorted=True)
        grad_u = forward_pairs @ u + _csr_from_pairs(dst, src, grad, (n, n)) @ u
        return grad_u, None, None


def pair_dot(u: torch.Tensor, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """Row-wise dot products ``<u[src], u[dst]>`` for pairs sorted by ``src``, differentiable in ``u``."""
    return _PairDot.apply(u, src, dst)
