"""Full-batch training of TSstc: ``L = lambda_r * sum_v L_R^v + alpha * L_C`` with Adam (METHOD.md §4).

Randomness is local: parameters are initialised inside ``torch.random.fork_rng`` and every draw
(negatives, ZINB subsample) comes from one seeded ``torch.Generator``. On CPU the same seed gives
bit-identical results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

from .. import _logging as logg
from .._config import TSstcConfig
from ._graph_ops import EdgeIndex, SparseOperator, mean_aggregation, normalized_adjacency
from ._losses import negative_weights, refine_neighbors, sample_negatives, spatial_regularization, zinb_nll
from ._module import TSstcModule

#: Keep X dense on the device below this many bytes (dense GEMM is ~7x faster than sparse here).
DENSE_X_BYTES = 2**30


@dataclass
class ReconstructionTarget:
    """What the ZINB decoder reconstructs: dense on the device when it fits, else rows on demand."""

    dense: torch.Tensor | None
    host: sp.csr_matrix = field(repr=False)
    lgamma_x1: torch.Tensor | None = field(repr=False)  # lgamma(target + 1), dense only
    size_factors: torch.Tensor | None  # per-spot scale of the ZINB mean; None = 1

    @classmethod
    def build(
        cls,
        target: sp.csr_matrix,
        size_factors: np.ndarray | None,
        device: torch.device,
        *,
        dense: torch.Tensor | None = None,
    ) -> ReconstructionTarget:
        """``dense`` may pass an already uploaded dense copy of ``target`` (the input itself)."""
        if dense is None and target.shape[0] * target.shape[1] * 4 <= DENSE_X_BYTES:
            dense = torch.from_numpy(target.toarray()).to(device)  # bounded: at most DENSE_X_BYTES
        return cls(
            dense,
            target,
            torch.lgamma(dense + 1) if dense is not None else None,
            None if size_factors is None else torch.from_numpy(size_factors.astype(np.float32)).to(device),
        )

    def rows(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Target rows, their ``lgamma(x + 1)`` and size factors."""
        factors = None if self.size_factors is None else self.size_factors[index, None]
        if self.dense is not None:
            return self.dense[index], self.lgamma_x1[index], factors
        # large data: only the sampled rows (zinb_batch_size x genes) are ever dense
        x = torch.from_numpy(self.host[index.cpu().numpy()].toarray()).to(index.device)
        return x, torch.lgamma(x + 1), factors


@dataclass
class GraphInputs:
    """The model's fixed inputs on a device: expression, ZINB target and every graph operator."""

    x: torch.Tensor | SparseOperator
    propagation: list[SparseOperator]  # Â of each spatial view, then the gene view
    aggregation: list[SparseOperator]  # SAS mean of each spatial view
    edges: list[EdgeIndex]  # spatial edges of each view (candidates for L_R)
    target: ReconstructionTarget

    @classmethod
    def build(
        cls,
        x: sp.csr_matrix,
        spatial: list[sp.csr_matrix],
        gene: sp.csr_matrix,
        config: TSstcConfig,
        device: torch.device,
        *,
        counts: sp.csr_matrix | None = None,
        size_factors: np.ndarray | None = None,
    ) -> GraphInputs:
        """Normalise graphs and upload everything once (nothing goes back to the host per epoch).

        The ZINB target is ``x`` itself, or ``counts`` with ``size_factors`` when given.
        """
        if x.shape[0] * x.shape[1] * 4 <= DENSE_X_BYTES:
            x_dev = torch.from_numpy(x.toarray()).to(device)
        else:
            x_dev = SparseOperator.from_scipy(x, device)
        if counts is None:
            target = ReconstructionTarget.build(
                x, None, device, dense=x_dev if isinstance(x_dev, torch.Tensor) else None
            )
        else:
            target = ReconstructionTarget.build(counts, size_factors, device)
        return cls(
            x=x_dev,
            propagation=[
                SparseOperator.from_scipy(normalized_adjacency(a, config.adj_norm), device) for a in spatial
            ]
            + [SparseOperator.from_scipy(normalized_adjacency(gene, config.adj_norm), device)],
            aggregation=[SparseOperator.from_scipy(mean_aggregation(a), device) for a in spatial],
            edges=[EdgeIndex.from_scipy(a, device) for a in spatial],
            target=target,
        )


@dataclass
class TrainingHistory:
    """Per-epoch loss components and the fraction of candidate edges kept per view."""

    total: list[float] = field(default_factory=list)
    reconstruction: list[float] = field(default_factory=list)
    regularization: list[list[float]] = field(default_factory=list)  # epochs x views
    kept_fraction: list[list[float]] = field(default_factory=list)  # epochs x views


def _check_finite(loss: torch.Tensor, epoch: int, config: TSstcConfig) -> None:
    if not torch.isfinite(loss):
        msg = (
            f"The training loss became {loss.item()} at epoch {epoch + 1}. This usually means a learning "
            f"rate that is too high (lr={config.lr}) or extreme expression values; lower `lr`, keep "
            f"`max_value` (={config.max_value}) set, or check that the input holds raw counts."
        )
        raise FloatingPointError(msg)


def regularization_losses(
    views: list[torch.Tensor], inputs: GraphInputs, config: TSstcConfig, generator: torch.Generator
) -> tuple[list[torch.Tensor], list[float]]:
    """``L_R`` of every spatial view with its cross-view-refined positives and sampled negatives."""
    z_gene = views[-1]
    losses, kept = [], []
    for z_spatial, edges in zip(views[:-1], inputs.edges, strict=True):
        keep = refine_neighbors(z_spatial, z_gene, edges, config.refine_rule, config.refine_value)
        neg_src, neg_dst = sample_negatives(edges.n_obs, config.n_negatives, generator, z_spatial.device)
        weight, n_pairs = negative_weights(neg_src, neg_dst, keep, edges, config.n_negatives)
        losses.append(
            spatial_regularization(
                z_spatial,
                (edges.src[keep], edges.dst[keep]),
                (neg_src, neg_dst, weight),
                n_negative_pairs=n_pairs,
                normalization=config.lr_normalization,
            )
        )
        kept.append(float(keep.float().mean()) if keep.numel() else 0.0)
    return losses, kept


def reconstruction_loss(
    module: TSstcModule,
    fused: torch.Tensor,
    inputs: GraphInputs,
    config: TSstcConfig,
    generator: torch.Generator,
) -> torch.Tensor:
    """ZINB ``L_C`` on the fused embedding, on a random subset of spots (an unbiased estimate)."""
    n = fused.shape[0]
    if config.zinb_batch_size is None or config.zinb_batch_size >= n:
        index = torch.arange(n, device=fused.device)
    else:
        index = torch.randperm(n, generator=generator, device=fused.device)[: config.zinb_batch_size]
    target, lgamma_x1, size_factors = inputs.target.rows(index)
    pi, theta, mu = module.decoder(fused[index])
    if size_factors is not None:
        mu = mu * size_factors
    return zinb_nll(target, pi, theta, mu, lgamma_x1)


def train(
    module: TSstcModule,
    inputs: GraphInputs,
    config: TSstcConfig,
    generator: torch.Generator,
    *,
    progress_bar: bool,
) -> TrainingHistory:
    """Optimise ``module`` in place and return the loss history."""
    optimizer = torch.optim.Adam(module.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    history = TrainingHistory()
    best, stale = math.inf, 0
    module.train()
    # tqdm.auto only for a visible bar: in a notebook without ipywidgets merely importing it warns
    from tqdm import tqdm

    if progress_bar:
        from tqdm.auto import tqdm

    with tqdm(range(config.epochs), desc="TSstc", disable=not progress_bar, leave=False) as bar:
        for epoch in bar:
            optimizer.zero_grad(set_to_none=True)
            views = module.encode(inputs.x, inputs.propagation, inputs.aggregation)
            fused, _ = module.fusion(views)
            zero = fused.new_zeros(())
            reg, kept = (
                regularization_losses(views, inputs, config, generator)
                if config.lambda_r > 0
                else ([zero] * len(inputs.edges), [math.nan] * len(inputs.edges))
            )
            rec = reconstruction_loss(module, fused, inputs, config, generator) if config.alpha > 0 else zero
            loss = config.lambda_r * torch.stack(reg).sum() + config.alpha * rec
            _check_finite(loss, epoch, config)
            loss.backward()
            optimizer.step()

            value = float(loss.detach())
            history.total.append(value)
            history.reconstruction.append(float(rec.detach()))
            history.regularization.append([float(r.detach()) for r in reg])
            history.kept_fraction.append(kept)
            bar.set_postfix(loss=f"{value:.4f}", refresh=False)
            if config.tol > 0:
                if value < best - config.tol * abs(best):
                    best, stale = value, 0
                else:
                    stale += 1
                if stale >= config.patience:
                    logg.info(f"TSstc: loss stopped improving, stopping after {epoch + 1} epochs")
                    break
    module.eval()
    return history


@torch.no_grad()
def embed(module: TSstcModule, inputs: GraphInputs) -> tuple[np.ndarray, np.ndarray]:
    """Fused embedding and per-spot view weights as float32 NumPy arrays."""
    fused, weights = module.fusion(module.encode(inputs.x, inputs.propagation, inputs.aggregation))
    return fused.cpu().numpy().astype(np.float32), weights.cpu().numpy().astype(np.float32)
