"""Mini-batch training on spatial tiles with their halo (memory bounded by the tile, not by N).

The section is cut into compact patches by recursive median bisection, and each tile gathers patches
from all over the section (:func:`spatial_tiles`). A batch is one tile's spots (its *core*) plus every
spot within ``HALO_HOPS`` hops of the largest spatial graph (its *halo*): SAS and the two GCN layers
reach 3 hops, so the spatial views of core spots are computed exactly as in full-batch training. The gene view sees the gene graph restricted to the batch (its
neighbours outside the batch are dropped: the one approximation). Operators keep their full-graph
normalisation, losses are taken on core spots only and weighted by the tile's share of spots, and the
gradients of all tiles are summed before one optimiser step per epoch, as in full-batch training.
Under ``torch.distributed`` each process takes every ``world_size``-th tile and DDP sums the gradients.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

#: SAS (one hop) + two GCN layers: the receptive field of a spatial view, in hops.
HALO_HOPS = 3
#: Patches per tile (see :func:`spatial_tiles`).
PATCHES_PER_TILE = 8
#: Fewest core spots of a tile: the decoder's batch normalisation needs two.
MIN_TILE_SPOTS = 2


def spatial_tiles(
    coords: np.ndarray, libraries: np.ndarray, batch_size: int, patches: int = PATCHES_PER_TILE
) -> list[np.ndarray]:
    """Tiles of at most ``batch_size`` spots, each the union of about ``patches`` compact patches
    spread over the section. Deterministic; every spot is in exactly one tile.

    Each library is halved at the median of its longer axis, recursively, into equal patches of at
    most ``batch_size / patches`` spots. That order follows space, so tile ``t`` takes every
    ``n_tiles``-th patch: a tile sees all of the section's domains, as the negatives of ``L_R`` and
    the decoder's batch statistics need, and its halo stays that of a few compact patches. A tile
    with fewer than ``MIN_TILE_SPOTS`` spots (tiny ``batch_size`` or one-spot slides) joins the
    smallest other tile, which may then hold one spot more than ``batch_size``.
    """
    size = max(1, batch_size // patches)
    pieces: list[np.ndarray] = []

    def split(index: np.ndarray, depth: int) -> None:
        if depth == 0:
            if len(index):  # halving a single spot (batch_size < 2 * patches) leaves an empty half
                pieces.append(index)
            return
        xy = coords[index]
        axis = int(np.argmax(np.ptp(xy, axis=0)))
        order = index[np.argsort(xy[:, axis], kind="stable")]
        half = len(order) // 2
        split(order[:half], depth - 1)
        split(order[half:], depth - 1)

    for library in np.unique(libraries):
        index = np.flatnonzero(libraries == library)
        split(index, max(0, math.ceil(math.log2(len(index) / size))))
    per_tile = max(1, batch_size // max(len(p) for p in pieces))
    n_tiles = -(-len(pieces) // per_tile)
    tiles = [np.concatenate(pieces[t::n_tiles]) for t in range(n_tiles)]
    while len(tiles) > 1 and min(map(len, tiles)) < MIN_TILE_SPOTS:
        small = tiles.pop(int(np.argmin([len(t) for t in tiles])))
        target = int(np.argmin([len(t) for t in tiles]))
        tiles[target] = np.concatenate([tiles[target], small])
    return [np.sort(t) for t in tiles]


def with_halo(core: np.ndarray, adjacency: sp.csr_matrix, hops: int = HALO_HOPS) -> np.ndarray:
    """``core`` followed by the spots within ``hops`` hops of it (sorted), as one index array."""
    reached = np.zeros(adjacency.shape[0], dtype=bool)
    reached[core] = True
    frontier = reached.copy()
    for _ in range(hops):
        frontier = (adjacency @ frontier.astype(np.float32)) > 0
        frontier &= ~reached
        if not frontier.any():
            break
        reached |= frontier
    reached[core] = False
    return np.concatenate([core, np.flatnonzero(reached)])


@dataclass
class Batch:
    """One tile: its spots (core first) and its restricted operators, all on the host (scipy)."""

    nodes: np.ndarray
    n_core: int
    x: sp.csr_matrix
    propagation: list[sp.csr_matrix]
    aggregation: list[sp.csr_matrix]
    edges: list[sp.csr_matrix]  # spatial edges leaving core spots (rows of halo spots are empty)
    counts: sp.csr_matrix | None
    size_factors: np.ndarray | None
    weight: float  # the tile's share of all spots
    index: int = field(default=0)


def make_batches(
    tiles: list[np.ndarray],
    x: sp.csr_matrix,
    propagation: list[sp.csr_matrix],
    aggregation: list[sp.csr_matrix],
    spatial: list[sp.csr_matrix],
    *,
    counts: sp.csr_matrix | None,
    size_factors: np.ndarray | None,
) -> list[Batch]:
    """Cut the full-graph operators (normalised once, on all spots) down to every tile + halo."""
    n = x.shape[0]
    batches = []
    for i, core in enumerate(tiles):
        nodes = with_halo(core, spatial[-1])
        is_core = sp.diags((np.arange(len(nodes)) < len(core)).astype(np.float32))

        def cut(m: sp.csr_matrix, nodes: np.ndarray = nodes) -> sp.csr_matrix:
            out = m[nodes][:, nodes].tocsr()
            out.sort_indices()
            return out

        edges = []
        for a in spatial:
            e = sp.csr_matrix(is_core @ cut(a))
            e.eliminate_zeros()
            e.sort_indices()
            edges.append(e)
        batches.append(
            Batch(
                nodes=nodes,
                n_core=len(core),
                x=x[nodes],
                propagation=[cut(p) for p in propagation],
                aggregation=[cut(p) for p in aggregation],
                edges=edges,
                counts=None if counts is None else counts[nodes],
                size_factors=None if size_factors is None else size_factors[nodes],
                weight=len(core) / n,
                index=i,
            )
        )
    return batches


def tile_seed(random_state: int, epoch: int, tile: int) -> int:
    """Seed of one tile's random draws in one epoch: the same in one process and under DDP."""
    return int(np.random.SeedSequence([random_state, epoch, tile]).generate_state(1)[0])
