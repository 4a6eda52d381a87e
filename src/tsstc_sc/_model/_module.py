"""The TSstc network (paper §3.3-3.5, METHOD.md §2-4): V+1 GCN encoders, per-spot attention fusion,
and a ZINB decoder on the fused embedding.

The first GCN layer is linear, so for every view ``Â P (X W) = Â (P X) W``: ``X`` is multiplied once
by the concatenated first-layer weights of all views, and the SAS mean ``P`` and propagation ``Â``
are applied to the 128-column result. No view ever materialises an N x G matrix.
"""

from __future__ import annotations

import torch
from torch import nn

from ._graph_ops import ColumnSplitOperator, SparseOperator


class GraphConvolution(nn.Module):
    """``Â H W + b`` (Kipf & Welling), with ``Â`` a fixed :class:`SparseOperator`."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, h: torch.Tensor, adj: SparseOperator) -> torch.Tensor:
        """Project, then propagate (cheaper when ``out_features < in_features``)."""
        return adj @ (h @ self.linear.weight.T) + self.linear.bias


class AttentionFusion(nn.Module):
    """Paper Eq. 6-7: ``H = softmax(W2 tanh(W1 [Z_1 .. Z_{V+1}] + b1) + b2)`` per spot; ``Z_f = sum_v H_v Z_v``."""

    def __init__(self, latent_dim: int, n_views: int, hidden: int = 16):
        super().__init__()
        self.score = nn.Sequential(
            nn.Linear(latent_dim * n_views, hidden), nn.Tanh(), nn.Linear(hidden, n_views)
        )

    def forward(self, views: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Fused embedding ``(N, d)`` and per-spot view weights ``(N, V+1)``."""
        weights = torch.softmax(self.score(torch.cat(views, dim=1)), dim=1)
        fused = torch.einsum("nv,nvd->nd", weights, torch.stack(views, dim=1))
        return fused, weights


class ZINBDecoder(nn.Module):
    """``Linear -> BatchNorm -> ReLU`` then three heads: dropout ``pi``, dispersion ``theta``, mean ``mu``."""

    def __init__(self, latent_dim: int, hidden_dim: int, n_genes: int):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(latent_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU())
        self.pi = nn.Linear(hidden_dim, n_genes)
        self.theta = nn.Linear(hidden_dim, n_genes)
        self.mu = nn.Linear(hidden_dim, n_genes)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """ZINB parameters for the rows of ``z``."""
        return self.heads(self.body(z))

    def heads(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``pi``, ``theta``, ``mu`` from the body's output ``h`` (row-wise: may run on any chunk of rows)."""
        pi = torch.sigmoid(self.pi(h))
        theta = torch.clamp(nn.functional.softplus(self.theta(h)), 1e-4, 1e4)
        mu = torch.clamp(torch.exp(self.mu(h)), 1e-5, 1e6)
        return pi, theta, mu


class TSstcModule(nn.Module):
    """Encoders for the gene view and ``n_scales`` spatial views, fusion, and the ZINB decoder."""

    def __init__(self, n_genes: int, n_scales: int, *, hidden_dim: int, latent_dim: int, use_sas: bool):
        super().__init__()
        self.n_views = n_scales + 1
        self.hidden_dim = hidden_dim
        self.use_sas = use_sas
        # first layers of all views side by side: one (G x 128 (V+1)) product per step
        self.first = nn.ModuleList(GraphConvolution(n_genes, hidden_dim) for _ in range(self.n_views))
        self.second = nn.ModuleList(GraphConvolution(hidden_dim, latent_dim) for _ in range(self.n_views))
        self.fusion = AttentionFusion(latent_dim, self.n_views)
        self.decoder = ZINBDecoder(latent_dim, hidden_dim, n_genes)

    def encode(
        self,
        x: torch.Tensor | ColumnSplitOperator,
        propagation: list[SparseOperator],
        aggregation: list[SparseOperator],
    ) -> list[torch.Tensor]:
        """Per-view embeddings ``[Z_spa^1 .. Z_spa^V, Z_gene]`` (spatial views first, gene view last).

        ``x`` is the input, dense or (a sparse one on the CPU) split by gene density;
        ``propagation`` holds ``Â`` for every view (gene view last); ``aggregation`` the SAS means
        ``P^v`` of the spatial views.
        """
        weight = torch.cat([layer.linear.weight for layer in self.first], dim=0)  # (128 (V+1), G)
        projected = torch.split(x @ weight.T, self.hidden_dim, dim=1)
        views = []
        for v in range(self.n_views):
            h = projected[v]
            if self.use_sas and v < self.n_views - 1:
                h = aggregation[v] @ h
            h = torch.relu(propagation[v] @ h + self.first[v].linear.bias)
            views.append(self.second[v](h, propagation[v]))  # no activation: cosines may be negative
        return views
