"""Nested multi-radius spatial graphs (METHOD.md §1), in O(N·k) time and memory.

One KD-tree radius query per library at the largest radius gives every edge once; each scale
keeps the edges whose distance is within its radius, so the scales are nested by construction.
No N x N matrix is ever formed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree

Unit = Literal["auto", "array", "nn", "coords"]

#: Paper radii on the Visium array grid (radius 1 is empty there: the nearest spot is at sqrt(2)).
VISIUM_RADII = (2.0, 3.0, 4.0, 5.0)
#: Mean degrees of those radii on Visium DLPFC; the target ladder for data without a grid.
DEGREE_LADDER = (8.0, 12.0, 23.0, 34.0)
#: Refuse graphs whose estimated size exceeds this fraction of the machine's memory.
MEMORY_FRACTION = 0.5
_SAMPLE = 2000  # spots sampled per library to estimate degrees and sizes before allocating
_TOL = 1e-9  # relative slack so that a spot exactly at distance R (grid data) is inside radius R


@dataclass(frozen=True)
class EdgeList:
    """Undirected edges ``i < j`` with their distances, all libraries together."""

    i: np.ndarray
    j: np.ndarray
    dist: np.ndarray
    n_obs: int


def split_libraries(libraries: np.ndarray) -> list[np.ndarray]:
    """Spot indices of each library, in library-code order."""
    order = np.argsort(libraries, kind="stable")
    bounds = np.flatnonzero(np.diff(libraries[order])) + 1
    return np.split(order, bounds)


def median_nn_distance(coords: np.ndarray) -> float:
    """Median distance from each spot to its nearest other spot (0 if all points coincide; 1 for a
    single spot, which has no neighbour to measure).
    """
    if len(coords) < 2:
        return 1.0
    d, _ = cKDTree(coords).query(coords, k=2)
    return float(np.median(d[:, 1]))


def scaled_coordinates(coords: np.ndarray, libraries: np.ndarray, unit: str) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates in the graph unit and the per-library scale factor applied (1 unless ``"nn"``)."""
    groups = split_libraries(libraries)
    factors = np.ones(len(groups))
    if unit != "nn":
        return coords, factors
    out = np.empty_like(coords)
    for lib, idx in enumerate(groups):
        factor = median_nn_distance(coords[idx])
        if factor <= 0:
            msg = (
                "More than half of the spots share their coordinates with another spot, so the median "
                'nearest-neighbour distance is 0 and `unit="nn"` is undefined. Remove duplicated '
                'coordinates or use `unit="coords"` with radii in coordinate units.'
            )
            raise ValueError(msg)
        factors[lib] = factor
        out[idx] = coords[idx] / factor
    return out, factors


def _sample(idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return idx if len(idx) <= _SAMPLE else rng.choice(idx, _SAMPLE, replace=False)


def radii_for_degrees(coords: np.ndarray, libraries: np.ndarray) -> np.ndarray:
    """Radii whose mean degree reaches each target of ``DEGREE_LADDER``, from sampled k-NN distances.

    Radii are rounded *up* to two decimals (readable keys, ties on grids stay inside) and
    duplicates are dropped, so a regular grid may yield fewer scales than targets.
    """
    k = int(np.ceil(max(DEGREE_LADDER) * 1.5)) + 1
    rng = np.random.default_rng(0)
    pooled, n_query = [], 0
    for idx in split_libraries(libraries):
        query = _sample(idx, rng)
        kk = min(k, len(idx))
        if kk < 2:
            continue
        d, _ = cKDTree(coords[idx]).query(coords[query], k=kk)
        pooled.append(d[:, 1:].ravel())
        n_query += len(query)
    if not pooled:
        msg = "Every library has a single spot: there are no spatial neighbours to connect."
        raise ValueError(msg)
    dists = np.sort(np.concatenate(pooled))
    picks = [dists[min(round(t * n_query), len(dists)) - 1] for t in DEGREE_LADDER]
    radii = np.unique(np.ceil(np.asarray(picks) * 100) / 100)
    return radii[radii > 0]


def estimate_pairs(coords: np.ndarray, libraries: np.ndarray, radius: float) -> float:
    """Expected number of undirected pairs within ``radius``, from a sample of spots."""
    rng = np.random.default_rng(0)
    total = 0.0
    for idx in split_libraries(libraries):
        query = _sample(idx, rng)
        counts = cKDTree(coords[idx]).query_ball_point(coords[query], radius, return_length=True)
        total += (np.mean(counts) - 1) * len(idx) / 2  # minus self, each pair counted twice
    return total


def _physical_memory() -> int | None:
    """Bytes of physical memory, or ``None`` where the system does not say (``os.sysconf`` is POSIX only)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(n_pairs: float, n_scales: int, radius: float) -> None:
    """Refuse before allocating when the graphs would not fit (edge list + 2 CSR per scale); skipped
    where the machine's memory cannot be read.
    """
    nbytes = n_pairs * (8 + 8 + 8) + 2 * n_pairs * n_scales * 2 * (4 + 4)
    memory = _physical_memory()
    limit = float("inf") if memory is None else memory * MEMORY_FRACTION
    if nbytes > limit:
        msg = (
            f"A radius of {radius:g} would create about {2 * n_pairs:,.0f} edges (~{nbytes / 1e9:.1f} GB for "
            f"{n_scales} scale(s)), more than {MEMORY_FRACTION:.0%} of this machine's memory. "
            "Use smaller radii, or check the unit (pixel coordinates with array-unit radii?)."
        )
        raise MemoryError(msg)


def radius_edges(coords: np.ndarray, libraries: np.ndarray, radius: float) -> EdgeList:
    """All pairs closer than ``radius`` within each library (never across libraries)."""
    r = radius * (1 + _TOL)
    parts_i, parts_j, parts_d = [], [], []
    for idx in split_libraries(libraries):
        pairs = cKDTree(coords[idx]).query_pairs(r, output_type="ndarray")
        a, b = idx[pairs[:, 0]], idx[pairs[:, 1]]
        parts_i.append(a)
        parts_j.append(b)
        parts_d.append(np.linalg.norm(coords[a] - coords[b], axis=1))
    dist = np.concatenate(parts_d)
    # coincident spots (distance 0) are not neighbours in the paper's definition 0 < d <= R
    keep = dist > 0
    return EdgeList(
        np.concatenate(parts_i)[keep], np.concatenate(parts_j)[keep], dist[keep], n_obs=len(coords)
    )


def nested_graphs(edges: EdgeList, radii: np.ndarray) -> list[tuple[sp.csr_matrix, sp.csr_matrix]]:
    """Symmetric CSR float32 ``(connectivities, distances)`` for each radius, no self loops."""
    # sort once by distance: each scale is then a prefix of the edge list
    order = np.argsort(edges.dist, kind="stable")
    i, j, d = edges.i[order], edges.j[order], edges.dist[order].astype(np.float32)
    ends = np.searchsorted(edges.dist[order], radii * (1 + _TOL), side="right")
    n = edges.n_obs
    graphs = []
    for end in ends:
        rows = np.concatenate([i[:end], j[:end]])
        cols = np.concatenate([j[:end], i[:end]])
        dist = sp.csr_matrix((np.concatenate([d[:end], d[:end]]), (rows, cols)), shape=(n, n))
        dist.sort_indices()
        conn = dist.copy()
        conn.data[:] = 1.0
        graphs.append((conn, dist))
    return graphs
