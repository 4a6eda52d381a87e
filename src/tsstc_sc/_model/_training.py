"""Training of TSstc (full batch, or spatial tiles: ``_minibatch``): ``L = lambda_r * sum_v L_R^v + alpha * L_C`` with Adam (METHOD.md §4).

Randomness is local: parameters are initialised inside ``torch.random.fork_rng`` and every draw
(negatives, ZINB subsample) comes from one seeded ``torch.Generator``. On CPU the same seed gives
bit-identical results.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch
from torch.utils.checkpoint import checkpoint

from .. import _logging as logg
from .._config import TSstcConfig
from ._graph_ops import ColumnSplitOperator, EdgeIndex, SparseOperator, mean_aggregation, normalized_adjacency
from ._losses import negative_weights, refine_neighbors, sample_negatives, spatial_regularization, zinb_nll
from ._minibatch import Batch, tile_seed
from ._module import TSstcModule, ZINBDecoder

#: X may be dense on the device up to this many bytes (larger X always stays sparse).
DENSE_X_BYTES = 2**30
#: On the CPU X stays sparse up to this fraction of nonzero entries: the first layer's product and its
#: gradient then beat dense GEMM (crossover about 0.2 on 2 cores; 3,000 Visium genes are ~0.1).
SPARSE_X_DENSITY = 0.15
#: In a sparse X on the CPU, genes nonzero in more than this fraction of spots are stored dense (see
#: ``ColumnSplitOperator``; the crossover of the two products on 2 cores is about 0.2).
DENSE_COLUMN_DENSITY = 0.2
#: Above this many entries (spots x genes) the ZINB loss runs in checkpointed row chunks.
ZINB_CHUNK_ENTRIES = 2**25


@dataclass
class ReconstructionTarget:
    """What the ZINB decoder reconstructs: dense on the device when it fits, else rows on demand."""

    dense: torch.Tensor | None
    host: sp.csr_matrix = field(repr=False)
    size_factors: torch.Tensor | None  # per-spot scale of the ZINB mean; None = 1

    @classmethod
    def build(
        cls,
        target: sp.csr_matrix,
        size_factors: np.ndarray | None,
        device: torch.device,
        *,
        dense: torch.Tensor | None = None,
        densify: bool = True,
    ) -> ReconstructionTarget:
        """``dense`` may pass an already uploaded dense copy of ``target`` (the input itself).

        Otherwise ``target`` is made dense on ``device`` when ``densify`` and it fits.
        """
        if dense is None and densify and _fits_dense(target):
            dense = torch.from_numpy(target.toarray()).to(device)  # bounded: at most DENSE_X_BYTES
        return cls(
            dense,
            target,
            None if size_factors is None else torch.from_numpy(size_factors.astype(np.float32)).to(device),
        )

    def rows(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Target rows and their size factors."""
        factors = None if self.size_factors is None else self.size_factors[index, None]
        if self.dense is not None:
            return self.dense[index], factors
        # large data: only these rows are made dense, at most ZINB_CHUNK_ENTRIES entries (see
        # reconstruction_loss)
        return torch.from_numpy(self.host[index.cpu().numpy()].toarray()).to(index.device), factors


@dataclass
class GraphInputs:
    """The model's fixed inputs on a device: expression, ZINB target and every graph operator.

    In a mini-batch the first ``n_core`` spots are the tile and the rest its halo: losses are taken
    on the core only.
    """

    x: torch.Tensor | ColumnSplitOperator
    propagation: list[SparseOperator]  # Â of each spatial view, then the gene view
    aggregation: list[SparseOperator]  # SAS mean of each spatial view
    edges: list[EdgeIndex]  # spatial edges of each view (candidates for L_R)
    target: ReconstructionTarget
    n_core: int

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
        propagation, aggregation = normalized_operators(spatial, gene, config)
        return cls.upload(
            x,
            propagation,
            aggregation,
            spatial,
            device,
            counts=counts,
            size_factors=size_factors,
            dense_target=wants_dense_target(config, device),
        )

    @classmethod
    def upload(
        cls,
        x: sp.csr_matrix,
        propagation: list[sp.csr_matrix],
        aggregation: list[sp.csr_matrix],
        edges: list[sp.csr_matrix],
        device: torch.device,
        *,
        counts: sp.csr_matrix | None = None,
        size_factors: np.ndarray | None = None,
        n_core: int | None = None,
        dense_target: bool = True,
    ) -> GraphInputs:
        """Upload already normalised operators (and the edges of ``L_R``) to ``device``.

        ``dense_target=False`` keeps a separate ZINB target (``counts``) sparse on the host.
        """
        if wants_dense_input(x, device):
            x_dev = torch.from_numpy(x.toarray()).to(device)
        else:  # dense columns only where all of X would have fitted dense
            dense_above = DENSE_COLUMN_DENSITY if _fits_dense(x) else 1.0
            x_dev = ColumnSplitOperator.from_scipy(x, device, dense_above)
        if counts is None:
            target = ReconstructionTarget.build(
                x, None, device, dense=x_dev if isinstance(x_dev, torch.Tensor) else None
            )
        else:
            target = ReconstructionTarget.build(counts, size_factors, device, densify=dense_target)
        return cls(
            x=x_dev,
            propagation=[SparseOperator.from_scipy(m, device) for m in propagation],
            aggregation=[SparseOperator.from_scipy(m, device) for m in aggregation],
            edges=[EdgeIndex.from_scipy(a, device) for a in edges],
            target=target,
            n_core=x.shape[0] if n_core is None else n_core,
        )


def _fits_dense(x: sp.csr_matrix) -> bool:
    """Whether ``x`` made dense (float32) stays within ``DENSE_X_BYTES``."""
    return x.shape[0] * x.shape[1] * 4 <= DENSE_X_BYTES


def wants_dense_input(x: sp.csr_matrix, device: torch.device) -> bool:
    """Whether the GCN input ``X`` is made dense on the device: when it fits, except a sparse ``X`` on the CPU."""
    sparse_pays = device.type == "cpu" and x.nnz <= SPARSE_X_DENSITY * x.shape[0] * x.shape[1]
    return _fits_dense(x) and not sparse_pays


def wants_dense_target(config: TSstcConfig, device: torch.device) -> bool:
    """Whether the ZINB target (counts) is made dense on the device.

    On the CPU a sampled ZINB loss reads its rows straight from the sparse counts: a dense copy would
    cost N x G floats for nothing. A GPU keeps it to avoid transfers.
    """
    return config.zinb_batch_size is None or device.type != "cpu"


def batch_inputs(batch: Batch, device: torch.device, *, dense_target: bool) -> GraphInputs:
    """One tile + halo on ``device`` (built anew each time: only one tile is on the device at once)."""
    return GraphInputs.upload(
        batch.x,
        batch.propagation,
        batch.aggregation,
        batch.edges,
        device,
        counts=batch.counts,
        size_factors=batch.size_factors,
        n_core=batch.n_core,
        dense_target=dense_target,
    )


def normalized_operators(
    spatial: list[sp.csr_matrix], gene: sp.csr_matrix, config: TSstcConfig
) -> tuple[list[sp.csr_matrix], list[sp.csr_matrix]]:
    """``Â`` of every view (spatial views, then the gene view) and the SAS means of the spatial views."""
    propagation = [normalized_adjacency(a, config.adj_norm) for a in [*spatial, gene]]
    return propagation, [mean_aggregation(a) for a in spatial]


@dataclass
class TrainingHistory:
    """Per-epoch loss components and the fraction of candidate edges kept per view."""

    total: list[float] = field(default_factory=list)
    reconstruction: list[float] = field(default_factory=list)
    regularization: list[list[float]] = field(default_factory=list)  # epochs x views
    kept_fraction: list[list[float]] = field(default_factory=list)  # epochs x views
    _best: float = field(default=math.inf, repr=False)
    _stale: int = field(default=0, repr=False)

    def record(self, values: list[float], kept: list[float]) -> None:
        """One epoch: ``values`` = ``[total, L_C, L_R of each view]``."""
        self.total.append(values[0])
        self.reconstruction.append(values[1])
        self.regularization.append(list(values[2:]))
        self.kept_fraction.append(list(kept))

    def stalled(self, config: TSstcConfig) -> bool:
        """Label-free stopping: no relative improvement of ``tol`` for ``patience`` epochs."""
        if config.tol <= 0:
            return False
        value = self.total[-1]
        if self._best == math.inf or value < self._best - config.tol * abs(self._best):
            self._best, self._stale = value, 0
        else:
            self._stale += 1
        return self._stale >= config.patience


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
        neg_src, neg_dst = sample_negatives(
            inputs.n_core, edges.n_obs, config.n_negatives, generator, z_spatial.device
        )
        weight, n_pairs = negative_weights(neg_src, neg_dst, keep, edges, config.n_negatives, inputs.n_core)
        losses.append(
            spatial_regularization(
                z_spatial,
                (edges.src[keep], edges.dst[keep]),
                (neg_src, neg_dst, weight),
                n_negative_pairs=n_pairs,
                normalization=config.lr_normalization,
                temperature=config.lr_temperature,
            )
        )
        kept.append(float(keep.float().mean()) if keep.numel() else 0.0)
    return losses, kept


def reconstruction_loss(
    module: TSstcModule,
    fused: torch.Tensor,
    inputs: GraphInputs,
    batch_size: int | None,
    generator: torch.Generator,
) -> torch.Tensor:
    """ZINB ``L_C`` on the fused embedding, on a random subset of (core) spots (an unbiased estimate).

    Over more than ``ZINB_CHUNK_ENTRIES`` entries (the paper's loss on every spot of a large section)
    the heads and the likelihood run in row chunks that are recomputed in the backward pass, so
    memory stays bounded by a chunk instead of growing as N x genes.
    """
    n = inputs.n_core
    if batch_size is None or batch_size >= n:
        index = torch.arange(n, device=fused.device)
    else:
        index = torch.randperm(n, generator=generator, device=fused.device)[:batch_size]
    hidden = module.decoder.body(fused[index])  # BatchNorm sees all the sampled spots at once
    step = max(1, ZINB_CHUNK_ENTRIES // module.decoder.mu.out_features)
    if len(index) <= step:
        return _zinb_rows(module.decoder, hidden, index, inputs.target)
    chunks = [(hidden[s : s + step], index[s : s + step]) for s in range(0, len(index), step)]
    return sum(
        checkpoint(_zinb_rows, module.decoder, h, i, inputs.target, use_reentrant=False)
        * (len(i) / len(index))
        for h, i in chunks
    )


def _zinb_rows(
    decoder: ZINBDecoder, hidden: torch.Tensor, index: torch.Tensor, target: ReconstructionTarget
) -> torch.Tensor:
    """Mean ZINB negative log-likelihood of the target rows ``index`` given the decoder body's ``hidden``."""
    x, size_factors = target.rows(index)
    pi, theta, mu = decoder.heads(hidden)
    if size_factors is not None:
        mu = mu * size_factors
    return zinb_nll(x, pi, theta, mu)


class TileLoss(torch.nn.Module):
    """The training loss of one set of inputs as a module ``forward``, so that DDP can wrap it."""

    def __init__(self, module: TSstcModule, config: TSstcConfig):
        super().__init__()
        self.module, self.config = module, config

    def forward(
        self, inputs: GraphInputs, generator: torch.Generator, zinb_batch_size: int | None
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], list[float]]:
        """``(loss, L_C, [L_R per view], kept fraction per view)``."""
        config = self.config
        views = self.module.encode(inputs.x, inputs.propagation, inputs.aggregation)
        fused, _ = self.module.fusion(views)
        zero = fused.new_zeros(())
        reg, kept = (
            regularization_losses(views, inputs, config, generator)
            if config.lambda_r > 0
            else ([zero] * len(inputs.edges), [math.nan] * len(inputs.edges))
        )
        rec = (
            reconstruction_loss(self.module, fused, inputs, zinb_batch_size, generator)
            if config.alpha > 0
            else zero
        )
        loss = config.lambda_r * torch.stack(reg).sum() + config.alpha * rec
        return loss, rec, reg, kept


def _progress(*, visible: bool):
    """tqdm.auto only for a visible bar: in a notebook without ipywidgets merely importing it warns."""
    from tqdm import tqdm

    if visible:
        from tqdm.auto import tqdm
    return tqdm


def _distributed() -> tuple[int, int]:
    """``(world_size, rank)`` under an initialised ``torch.distributed`` process group, else ``(1, 0)``."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size(), torch.distributed.get_rank()
    return 1, 0


def check_tiles_per_process(tiles: list[Batch], world: int) -> None:
    """Under DDP every process trains its share ``tiles[rank::world]``; an empty share would leave the
    other processes waiting for its gradients.
    """
    if len(tiles) < world:
        n = sum(tile.n_core for tile in tiles)
        msg = (
            f"{len(tiles)} spatial tile(s) for {world} processes: every process needs at least one. Pass a "
            f"smaller `batch_size` (about {n // world:,} spots or fewer for {world} processes), or start "
            "fewer processes."
        )
        raise ValueError(msg)


def train(
    module: TSstcModule,
    data: GraphInputs | list[Batch],
    config: TSstcConfig,
    generator: torch.Generator,
    *,
    random_state: int,
    progress_bar: bool,
    on_epoch_end: Callable[[int], None] | None = None,
) -> TrainingHistory:
    """Optimise ``module`` in place and return the loss history.

    ``data`` is the whole section (full batch: one step per epoch, draws from ``generator``) or its
    spatial tiles (mini-batch: the tiles' gradients are summed, then one step per epoch; each tile's
    draws come from its own seed, so one process and DDP draw the same). ``on_epoch_end`` is called
    with the number of epochs done after each optimiser step (e.g. to take embedding snapshots).
    """
    optimizer = torch.optim.Adam(module.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    history = TrainingHistory()
    step = TileLoss(module, config)
    world, rank = _distributed()
    if isinstance(data, list) and world > 1:
        check_tiles_per_process(data, world)
        step = torch.nn.parallel.DistributedDataParallel(step, find_unused_parameters=config.alpha == 0)
    device = next(module.parameters()).device
    module.train()
    with _progress(visible=progress_bar)(
        range(config.epochs), desc="TSstc", disable=not progress_bar, leave=False
    ) as bar:
        for epoch in bar:
            optimizer.zero_grad(set_to_none=True)
            if isinstance(data, GraphInputs):
                loss, rec, reg, kept = step(data, generator, config.zinb_batch_size)
                _check_finite(loss, epoch, config)
                loss.backward()
                values = [float(loss.detach()), float(rec.detach()), *(float(r.detach()) for r in reg)]
            else:
                values, kept = _minibatch_epoch(
                    step, data[rank::world], config, device, epoch, random_state, world
                )
                _check_finite(torch.tensor(values[0]), epoch, config)
            optimizer.step()
            history.record(values, kept)
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1)
            bar.set_postfix(loss=f"{values[0]:.4f}", refresh=False)
            if history.stalled(config):
                logg.info(f"TSstc: loss stopped improving, stopping after {epoch + 1} epochs")
                break
    module.eval()
    return history


def _minibatch_epoch(
    step: torch.nn.Module,
    batches: list[Batch],
    config: TSstcConfig,
    device: torch.device,
    epoch: int,
    random_state: int,
    world: int,
) -> tuple[list[float], list[float]]:
    """Accumulate the weighted gradients of this process's tiles.

    Returns ``(loss, L_C, L_R...)`` and the kept fractions, summed over every tile of every process.
    """
    sums, kept_sums = None, None
    for j, batch in enumerate(batches):
        inputs = batch_inputs(batch, device, dense_target=wants_dense_target(config, device))
        generator = torch.Generator(device=device).manual_seed(tile_seed(random_state, epoch, batch.index))
        zinb = (
            None if config.zinb_batch_size is None else max(2, round(config.zinb_batch_size * batch.weight))
        )
        last = j == len(batches) - 1
        with contextlib.nullcontext() if world == 1 or last else step.no_sync():
            loss, rec, reg, kept = step(inputs, generator, zinb)
            # DDP averages gradients over processes; the tiles' weighted losses are meant to add up
            (loss * (batch.weight * world)).backward()
        part = torch.stack([loss.detach(), rec.detach(), *(r.detach() for r in reg)]) * batch.weight
        sums = part if sums is None else sums + part
        kept_part = torch.tensor(kept, dtype=torch.float64) * batch.weight
        kept_sums = kept_part if kept_sums is None else kept_sums + kept_part
    if world > 1:
        torch.distributed.all_reduce(sums)
        torch.distributed.all_reduce(kept_sums)
    return sums.tolist(), kept_sums.tolist()


@torch.no_grad()
def embed(module: TSstcModule, data: GraphInputs | list[Batch]) -> tuple[np.ndarray, np.ndarray]:
    """Fused embedding and per-spot view weights as float32 NumPy arrays (tile by tile for tiles)."""
    if isinstance(data, GraphInputs):
        fused, weights = module.fusion(module.encode(data.x, data.propagation, data.aggregation))
        return fused.cpu().numpy().astype(np.float32), weights.cpu().numpy().astype(np.float32)
    device = next(module.parameters()).device
    n = sum(b.n_core for b in data)
    fused_all = np.empty((n, module.second[0].linear.out_features), dtype=np.float32)
    weights_all = np.empty((n, module.n_views), dtype=np.float32)
    for batch in data:
        fused, weights = embed(module, batch_inputs(batch, device, dense_target=False))  # no loss here
        core = batch.nodes[: batch.n_core]
        fused_all[core], weights_all[core] = fused[: batch.n_core], weights[: batch.n_core]
    return fused_all, weights_all
