"""A simulated spatial transcriptomics section with known domains: the package's built-in data."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse
from scipy.special import expit

from .. import _logging as logg
from .._validation import check_choice, check_integer, check_number, check_random_state

_SPOT_SPACING_PX = 100.0  # centre-to-centre distance of neighbouring Visium-like spots, in pixels
_CELL_SPACING_UM = 10.0  # typical distance between neighbouring cells, in micrometres
_DEFAULT_N_DOMAINS = {"layered": 7, "patchy": 5}
_MIN_SPOTS = 50
_MIN_SPOTS_PER_DOMAIN = 10
_MIN_GENES = 100
_BLOCK_ENTRIES = 1 << 20  # spots x genes per block; fixed, so results never depend on n_jobs
_MAX_DEFAULT_JOBS = 8  # more threads rarely help: the sampling is partly memory-bound
_INVERSION_MAX_MEAN = 10.0  # above this mean, non-zero counts are drawn by rejection instead of inversion

# gene programme sizes, as fractions of n_genes (each at least 3 genes, shared sets at least 1)
_MARKER_FRACTION = 0.03
_SHARED_FRACTION = 0.01
_NUISANCE_FRACTION = 0.015
_N_NUISANCE = 3
_BASELINE_LOG_SD = 2.6  # spread of the genes' baseline expression (log-normal)
_MARKER_LOG_FOLD = (0.9, 2.0)  # range of the markers' natural-log fold changes
_SHARED_LOG_FOLD = (0.6, 1.4)
_NUISANCE_LOG_FOLD = (0.6, 1.2)
_NUISANCE_SHAPE = 1.0  # gamma shape of the spot-level nuisance activities (mean 1)


@dataclass(frozen=True)
class _Domains:
    labels: np.ndarray  # (n,) int, hard ground-truth domain of every spot
    weights: np.ndarray  # (n, k) float32, soft membership used to mix the gene programmes
    names: list[str]
    adjacent: list[tuple[int, int]]  # pairs of touching domains, which share some marker genes


@dataclass(frozen=True)
class _Programmes:
    profiles: np.ndarray  # (k + n_nuisance, n_genes) float32: expected fraction of a spot's counts per gene
    size: np.ndarray  # (n_genes,) negative binomial size (inverse dispersion)
    dropout: np.ndarray  # (n_genes,) zero-inflation probability
    annotation: np.ndarray  # (n_genes,) str: which programme a gene belongs to


def synthetic_tissue(
    n_spots: int = 3000,
    *,
    layout: Literal["visium", "single_cell"] = "visium",
    geometry: Literal["layered", "patchy"] = "layered",
    n_domains: int | None = None,
    n_genes: int = 2000,
    library_size: float = 1000.0,
    boundary_width: float = 1.5,
    effect_size: float = 1.0,
    n_jobs: int | None = None,
    random_state: int = 0,
) -> ad.AnnData:
    """Simulate a spatial transcriptomics section with known spatial domains.

    Domains are laid out either as curved, cortex-like layers of unequal width or as irregular,
    tumour-like blobs in a background. Each domain up-regulates (and a few genes down-regulate) its
    own marker genes, touching domains share some markers, three spatially random "cell state"
    programmes add non-domain variation, and most genes are housekeeping. Near a boundary a spot's
    expression is a mixture of the programmes on both sides, weighted by a logistic function of its
    signed distance to the boundary, so domain edges are genuinely blurred. Counts are drawn from a
    zero-inflated negative binomial with per-gene dispersion and dropout and log-normal library sizes
    (with a smooth spatial trend). With the defaults, about 10% of the entries are non-zero and a
    non-spatial PCA + k-means recovers the layers only partly (ARI about 0.3-0.5), while spatial
    smoothing helps clearly (about 0.8).

    The same ``random_state`` gives the same data whatever ``n_jobs`` (on a given platform: float32
    maths may round differently on other CPUs or numpy builds). The counts are generated block-wise
    straight into CSR, so 10⁶ spots x 2000 genes take about 3 GB of memory at peak.

    Parameters
    ----------
    n_spots
        Number of spots (or cells); the result has exactly this many.
    layout
        ``"visium"``: a hexagonal Visium-like grid of spots 100 px apart, roughly square, filled row
        by row (the last row may be partial). ``obs['array_row']`` and ``obs['array_col']`` follow
        the Visium convention ((row + col) even, neighbours at (row, col ± 2) and (row ± 1, col ± 1))
        and may exceed Visium's 78 x 128 array for large ``n_spots``; ``obsm['spatial']`` is affine in
        them. Each spot mixes the programmes of the domains it overlaps.
        ``"single_cell"``: cells scattered in a square (a jittered grid, at least 2 µm apart, about
        10 µm between neighbours), coordinates in µm, no array columns. Each cell expresses a single
        domain's programme, drawn near boundaries from the soft memberships (intermixed cells).
    geometry
        ``"layered"``: bands bounded by gently curved arcs, some much thinner than others.
        ``"patchy"``: ``n_domains - 1`` irregular blobs ("Domain1", …) in a ``"Background"`` domain.
    n_domains
        Number of domains; ``None`` means 7 for ``"layered"`` and 5 for ``"patchy"``.
    n_genes
        Number of genes (at least 100).
    library_size
        Median size factor of the spots, roughly their median number of counts.
    boundary_width
        Length scale of the mixing across domain boundaries, in spot (or cell) spacings: the
        logistic scale of the soft membership. 0 gives sharp boundaries.
    effect_size
        Multiplies all marker fold changes (log scale): larger is easier.
    n_jobs
        Threads used to draw the counts; ``None`` uses all cores, at most 8, and ``-1`` all cores.
        Does not change the result.
    random_state
        Seed of the simulation.

    Returns
    -------
    AnnData with raw integer counts in ``X`` (CSR, float32), ``obs['domain']`` (categorical ground
    truth), ``obsm['spatial']`` (x, y; float64), ``obsm['domain_weights']`` (the programme mixture of
    every spot, columns in the order of the domain categories), ``var['programme']`` (which
    programme a gene belongs to: ``"marker:<domain>"``, ``"shared:<domain>+<domain>"``,
    ``"nuisance:<j>"`` or ``"housekeeping"``), ``var['nb_size']`` and ``var['dropout']`` (the
    negative binomial size and zero-inflation probability of every gene), the array coordinates for
    ``"visium"`` and the arguments in ``uns['synthetic']``.

    Examples
    --------
    >>> import tsstc_sc
    >>> adata = tsstc_sc.datasets.synthetic_tissue(n_spots=300, n_genes=200)
    >>> adata.n_obs, adata.obs["domain"].nunique()
    (300, 7)
    >>> bool(((adata.obs["array_row"] + adata.obs["array_col"]) % 2 == 0).all())
    True
    """
    check_choice(layout, ("visium", "single_cell"), "layout")
    check_choice(geometry, tuple(_DEFAULT_N_DOMAINS), "geometry")
    n_domains = _DEFAULT_N_DOMAINS[geometry] if n_domains is None else n_domains
    n_spots, n_domains, n_genes = (
        check_integer(value, name, optional=False)
        for value, name in ((n_spots, "n_spots"), (n_domains, "n_domains"), (n_genes, "n_genes"))
    )
    library_size, boundary_width, effect_size = (
        check_number(value, name)
        for value, name in (
            (library_size, "library_size"),
            (boundary_width, "boundary_width"),
            (effect_size, "effect_size"),
        )
    )
    _check_sizes(n_spots, n_domains, n_genes, library_size, boundary_width)
    n_jobs, seed = _workers(n_jobs), check_random_state(random_state)
    rng = np.random.default_rng(seed)
    pos, spatial, array_coords = _spot_positions(n_spots, layout, rng)
    make_domains = _layered_domains if geometry == "layered" else _patchy_domains
    domains = make_domains(pos, n_domains, boundary_width, rng)
    weights = domains.weights if layout == "visium" else _draw_single_programme(domains.weights, rng)

    programmes = _gene_programmes(n_genes, domains, effect_size, rng)
    library = _library_sizes(pos, weights, library_size, rng)
    states = rng.gamma(_NUISANCE_SHAPE, 1 / _NUISANCE_SHAPE, size=(n_spots, _N_NUISANCE)).astype(np.float32)
    loadings = library[:, None] * np.c_[weights, states]
    logg.info(f"simulating {n_spots} spots x {n_genes} genes ({layout}, {geometry}, {n_domains} domains)")
    counts = _sample_counts(loadings, programmes, rng, n_jobs)

    obs = pd.DataFrame(
        {"domain": pd.Categorical.from_codes(domains.labels, categories=domains.names), **array_coords},
        index=pd.Index([f"spot_{i}" for i in range(n_spots)]),
    )
    var = pd.DataFrame(
        {
            "programme": pd.Categorical(programmes.annotation),
            "nb_size": programmes.size,
            "dropout": programmes.dropout,
        },
        index=pd.Index([f"gene_{j}" for j in range(n_genes)]),
    )
    params = {
        "n_spots": n_spots,
        "layout": layout,
        "geometry": geometry,
        "n_domains": n_domains,
        "n_genes": n_genes,
        "library_size": float(library_size),
        "boundary_width": float(boundary_width),
        "effect_size": float(effect_size),
        "random_state": seed,
        "spot_spacing": _SPOT_SPACING_PX if layout == "visium" else _CELL_SPACING_UM,
        "spatial_unit": "pixel" if layout == "visium" else "micrometre",
    }
    return ad.AnnData(
        counts,
        obs=obs,
        var=var,
        obsm={"spatial": spatial, "domain_weights": weights},
        uns={"synthetic": params},
    )


def _check_sizes(
    n_spots: int, n_domains: int, n_genes: int, library_size: float, boundary_width: float
) -> None:
    if n_spots < _MIN_SPOTS:
        msg = f"n_spots must be at least {_MIN_SPOTS}, got {n_spots}"
        raise ValueError(msg)
    if n_domains < 2:
        msg = f"n_domains must be at least 2, got {n_domains}"
        raise ValueError(msg)
    if n_spots < _MIN_SPOTS_PER_DOMAIN * n_domains:
        msg = (
            f"n_spots={n_spots} is too small for {n_domains} domains: "
            f"need at least {_MIN_SPOTS_PER_DOMAIN * n_domains} ({_MIN_SPOTS_PER_DOMAIN} per domain)"
        )
        raise ValueError(msg)
    if n_genes < _MIN_GENES:
        msg = f"n_genes must be at least {_MIN_GENES}, got {n_genes}"
        raise ValueError(msg)
    if 2 * _n_programme_genes(n_genes, n_domains) > n_genes:
        msg = f"n_genes={n_genes} is too small for {n_domains} domains: marker genes would exceed half the genes"
        raise ValueError(msg)
    if library_size <= 0:
        msg = f"library_size must be positive, got {library_size}"
        raise ValueError(msg)
    if boundary_width < 0:
        msg = f"boundary_width must be non-negative, got {boundary_width}"
        raise ValueError(msg)


def _workers(n_jobs: object) -> int:
    """Threads for the counts: ``None`` all cores up to 8, ``-1`` all cores, else a positive count."""
    cores = os.cpu_count() or 1
    n_jobs = check_integer(n_jobs, "n_jobs")
    if n_jobs is None:
        return min(_MAX_DEFAULT_JOBS, cores)
    if n_jobs == -1:
        return cores
    if n_jobs < 1:
        msg = f"`n_jobs` must be a positive number of threads, -1 (all cores) or None, got {n_jobs}."
        raise ValueError(msg)
    return n_jobs


# --- spot positions --------------------------------------------------------------------------------


def _spot_positions(
    n_spots: int, layout: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Positions in spot spacings, ``obsm['spatial']`` and the array columns of ``obs`` (Visium only)."""
    if layout == "visium":
        array_row, array_col = _visium_array(n_spots)
        pos = np.c_[array_col / 2, array_row * np.sqrt(3) / 2]
        return pos, _SPOT_SPACING_PX * (pos + 1.0), {"array_row": array_row, "array_col": array_col}
    pos = _scattered_cells(n_spots, rng)
    return pos, _CELL_SPACING_UM * pos, {}


def _visium_array(n_spots: int) -> tuple[np.ndarray, np.ndarray]:
    """Array (row, col) of a roughly square hexagonal grid filled row by row with exactly n_spots spots."""
    per_row = max(2, round(np.sqrt(n_spots * np.sqrt(3) / 2)))  # width per_row ≈ height n_rows·√3/2
    index = np.arange(n_spots)
    array_row = index // per_row
    array_col = 2 * (index % per_row) + array_row % 2
    return array_row, array_col


def _scattered_cells(n_cells: int, rng: np.random.Generator) -> np.ndarray:
    """Cell positions (in cell spacings) on a jittered square grid with random empty sites."""
    side = int(np.ceil(np.sqrt(n_cells)))
    sites = np.sort(rng.choice(side * side, size=n_cells, replace=False))
    jitter = rng.uniform(-0.4, 0.4, size=(n_cells, 2))
    return np.c_[sites % side, sites // side] + 0.5 + jitter


# --- domains ---------------------------------------------------------------------------------------


def _layered_domains(
    pos: np.ndarray, n_domains: int, boundary_width: float, rng: np.random.Generator
) -> _Domains:
    """Bands between concentric, gently wavy arcs; widths drawn unequal, some layers thin."""
    extent = np.ptp(pos, axis=0).max()
    angle = rng.uniform(-np.pi / 8, np.pi / 8)
    along = pos @ np.array([np.cos(angle), np.sin(angle)])
    across = pos @ np.array([-np.sin(angle), np.cos(angle)])
    # arcs around a far centre on either side of the section, bulging one way or the other
    radius = extent * rng.uniform(0.7, 2.0)
    side = rng.choice([-1.0, 1.0])
    centre_across = (across.min() - radius) if side > 0 else (across.max() + radius)
    centre_along = np.median(along) + extent * rng.uniform(-0.3, 0.3)
    depth = np.hypot(along - centre_along, across - centre_across)
    wave = rng.uniform(0.5, 2.0) * 2 * np.pi / extent
    depth += 0.02 * extent * np.sin(wave * along + rng.uniform(0, 2 * np.pi))

    fractions = rng.dirichlet(np.full(n_domains, 2.0))
    fractions = np.maximum(fractions, 0.35 / n_domains)
    cuts = np.quantile(depth, np.cumsum(fractions / fractions.sum())[:-1])
    labels = np.searchsorted(cuts, depth)
    # probability of lying beyond each boundary; consecutive differences are the layer memberships
    beyond = _soft_step(depth[:, None] - cuts[None, :], boundary_width)
    ones, zeros = np.ones((len(pos), 1)), np.zeros((len(pos), 1))
    weights = -np.diff(np.c_[ones, beyond, zeros], axis=1)
    names = [f"Layer{k + 1}" for k in range(n_domains)]
    adjacent = [(k, k + 1) for k in range(n_domains - 1)]
    return _Domains(labels, weights.astype(np.float32), names, adjacent)


def _patchy_domains(
    pos: np.ndarray, n_domains: int, boundary_width: float, rng: np.random.Generator
) -> _Domains:
    """Irregular, non-overlapping blobs of unequal size (centred on spots) in a background domain."""
    n_blobs = n_domains - 1
    lo, hi = pos.min(axis=0), pos.max(axis=0)
    area = np.prod(hi - lo)
    radii = np.sqrt(rng.dirichlet(np.full(n_blobs, 3.0)) * 0.45 * area / np.pi)
    orders = np.arange(2, 7)  # angular harmonics of the noisy radius, amplitudes decaying with order
    harmonics = rng.uniform(0, 0.3, size=(n_blobs, len(orders))) / (orders - 1)
    phases = rng.uniform(0, 2 * np.pi, size=(n_blobs, len(orders)))
    reach = 1 + harmonics.sum(axis=1)  # largest radius relative to the base radius
    centres = _place_centres(pos, radii * reach, lo, hi, rng)
    radii = _shrink_to_separate(centres, radii, reach)

    inside = np.zeros((len(pos), n_blobs))
    for j in range(n_blobs):
        offset = pos - centres[j]
        theta = np.arctan2(offset[:, 1], offset[:, 0])
        wobble = (harmonics[j] * np.cos(orders * theta[:, None] + phases[j])).sum(axis=1)
        signed_distance = np.hypot(offset[:, 0], offset[:, 1]) - radii[j] * (1 + wobble)
        inside[:, j] = _soft_step(-signed_distance, boundary_width)
    hard = inside > 0.5  # the soft step is exactly 0.5 on the boundary
    labels = np.where(hard.any(axis=1), hard.argmax(axis=1) + 1, 0)
    # blobs do not overlap, so painting them in turn over the background gives valid mixtures
    weights = np.empty((len(pos), n_domains))
    uncovered = np.ones(len(pos))
    for j in range(n_blobs - 1, -1, -1):
        weights[:, j + 1] = inside[:, j] * uncovered
        uncovered *= 1 - inside[:, j]
    weights[:, 0] = uncovered
    names = ["Background", *(f"Domain{j + 1}" for j in range(n_blobs))]
    adjacent = [(0, j + 1) for j in range(n_blobs)]
    return _Domains(labels, weights.astype(np.float32), names, adjacent)


def _place_centres(
    pos: np.ndarray, reach: np.ndarray, lo: np.ndarray, hi: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Blob centres on spots, largest blob first, each the best of 30 candidates (best-candidate sampling)."""
    centres = np.empty((len(reach), 2))
    placed: list[int] = []
    for j in np.argsort(-reach):
        candidates = pos[rng.choice(len(pos), size=30)]
        margin = np.minimum(candidates - lo, hi - candidates).min(axis=1) - 0.5 * reach[j]
        score = np.minimum(margin, 0.0)
        for i in placed:
            gap = np.linalg.norm(candidates - centres[i], axis=1) - reach[i] - reach[j]
            score += np.minimum(gap, 0.0)
        centres[j] = candidates[score.argmax()]
        placed.append(j)
    return centres


def _shrink_to_separate(centres: np.ndarray, radii: np.ndarray, reach: np.ndarray) -> np.ndarray:
    """Shrink blobs that would overlap so that no two touch; each keeps its centre spot."""
    radii = radii.copy()
    for i in range(len(radii)):
        for j in range(i + 1, len(radii)):
            gap = np.linalg.norm(centres[i] - centres[j])
            extent = radii[i] * reach[i] + radii[j] * reach[j]
            if extent > gap:
                radii[[i, j]] *= gap / extent
    return radii


def _soft_step(signed_distance: np.ndarray, width: float) -> np.ndarray:
    """Logistic step of the signed distance on length scale ``width``; a hard step for ``width == 0``."""
    if width == 0:
        return (signed_distance > 0) + 0.5 * (signed_distance == 0)
    return expit(signed_distance / width)


def _draw_single_programme(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One programme per cell, drawn from the soft memberships (cells intermix near boundaries)."""
    cumulative = np.cumsum(weights, axis=1)
    draw = rng.random((len(weights), 1)) * cumulative[:, -1:]
    chosen = (draw > cumulative).sum(axis=1)
    return np.eye(weights.shape[1], dtype=np.float32)[chosen]


# --- expression ------------------------------------------------------------------------------------


def _n_programme_genes(n_genes: int, n_domains: int) -> int:
    """Genes taken by markers, shared markers and nuisance programmes (an upper bound for patchy)."""
    n_markers, n_shared, n_nuisance = _programme_sizes(n_genes, n_domains)
    return n_domains * n_markers + (n_domains - 1) * n_shared + _N_NUISANCE * n_nuisance


def _programme_sizes(n_genes: int, n_domains: int) -> tuple[int, int, int]:
    """Marker genes per domain, shared genes per adjacent pair and genes per nuisance programme.

    Fractions of ``n_genes``, capped so that many domains take at most 25% (markers) and 10%
    (shared) of the genes; at least 3 markers, 1 shared gene and 3 nuisance genes.
    """
    return (
        max(3, round(min(_MARKER_FRACTION, 0.25 / n_domains) * n_genes)),
        max(1, round(min(_SHARED_FRACTION, 0.1 / n_domains) * n_genes)),
        max(3, round(_NUISANCE_FRACTION * n_genes)),
    )


def _gene_programmes(
    n_genes: int, domains: _Domains, effect_size: float, rng: np.random.Generator
) -> _Programmes:
    """Baseline expression, per-domain log fold changes, nuisance programmes and ZINB noise parameters."""
    n_domains = len(domains.names)
    n_markers, n_shared, n_nuisance = _programme_sizes(n_genes, n_domains)
    baseline = rng.lognormal(0.0, _BASELINE_LOG_SD, size=n_genes)
    # programme genes come from the better expressed half, as real markers do; the rest is housekeeping
    order = rng.permutation(np.argsort(-baseline)[: n_genes // 2])
    annotation = np.full(n_genes, "housekeeping", dtype=object)
    log_fold = np.zeros((n_domains, n_genes))

    start = 0
    for k, name in enumerate(domains.names):
        genes = order[start : start + n_markers]
        start += n_markers
        sign = np.where(rng.random(n_markers) < 0.2, -1.0, 1.0)
        log_fold[k, genes] = sign * rng.uniform(*_MARKER_LOG_FOLD, size=n_markers)
        annotation[genes] = f"marker:{name}"
    for a, b in domains.adjacent:
        genes = order[start : start + n_shared]
        start += n_shared
        shared = rng.uniform(*_SHARED_LOG_FOLD, size=n_shared)
        log_fold[a, genes] = shared
        log_fold[b, genes] = shared
        annotation[genes] = f"shared:{domains.names[a]}+{domains.names[b]}"
    domain_profiles = baseline * np.exp(effect_size * log_fold)
    domain_profiles /= domain_profiles.sum(axis=1, keepdims=True)

    nuisance_profiles = np.zeros((_N_NUISANCE, n_genes))
    for j in range(_N_NUISANCE):
        genes = order[start : start + n_nuisance]
        start += n_nuisance
        nuisance_profiles[j, genes] = baseline[genes] * np.expm1(
            rng.uniform(*_NUISANCE_LOG_FOLD, size=n_nuisance)
        )
        annotation[genes] = f"nuisance:{j + 1}"
    nuisance_profiles /= baseline.sum()

    return _Programmes(
        profiles=np.r_[domain_profiles, nuisance_profiles].astype(np.float32),
        size=rng.lognormal(np.log(2.5), 0.6, size=n_genes),
        dropout=rng.beta(1.5, 13.5, size=n_genes),
        annotation=annotation.astype(str),
    )


def _library_sizes(
    pos: np.ndarray, weights: np.ndarray, median: float, rng: np.random.Generator
) -> np.ndarray:
    """Log-normal size factors with a per-domain depth and a smooth spatial trend (tissue quality)."""
    extent = np.ptp(pos, axis=0).max()
    frequencies = rng.normal(0, 1.5, size=(3, 2)) * 2 * np.pi / extent
    trend = np.cos(pos @ frequencies.T + rng.uniform(0, 2 * np.pi, size=3)).sum(axis=1) / np.sqrt(3)
    domain_depth = weights @ rng.normal(0.0, 0.15, size=weights.shape[1])
    log_size = np.log(median) + domain_depth + 0.15 * trend + rng.normal(0.0, 0.45, size=len(pos))
    return np.exp(log_size).astype(np.float32)


# --- counts ----------------------------------------------------------------------------------------


def _sample_counts(
    loadings: np.ndarray, programmes: _Programmes, rng: np.random.Generator, n_jobs: int
) -> sparse.csr_matrix:
    """Zero-inflated negative binomial counts with means ``loadings @ profiles``, block by block.

    Blocks are drawn in parallel with their own random streams and appended in order to arrays
    that grow in place, so memory stays close to the size of the result.
    """
    n_spots, n_genes = len(loadings), programmes.profiles.shape[1]
    rows_per_block = max(1, _BLOCK_ENTRIES // n_genes)
    starts = range(0, n_spots, rows_per_block)
    block_rngs = rng.spawn(len(starts))

    def block(i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        start = starts[i]
        return _sample_block(loadings[start : start + rows_per_block], programmes, block_rngs[i])

    indptr = np.zeros(n_spots + 1, dtype=np.int64)
    indices, data = np.empty(0, dtype=np.int32), np.empty(0, dtype=np.float32)
    n_workers = min(len(starts), n_jobs)
    with ThreadPoolExecutor(n_workers) as pool:
        for start, (row_nnz, cols, values) in zip(starts, pool.map(block, range(len(starts))), strict=True):
            nnz = indptr[start]
            if nnz + len(cols) > len(indices):  # grow to 5% above the total expected at this density
                expected = (nnz + len(cols)) * n_spots / (start + len(row_nnz))
                capacity = int(max(1.05 * expected, 1.25 * len(indices), nnz + len(cols)))
                indices.resize(capacity, refcheck=False)
                data.resize(capacity, refcheck=False)
            indices[nnz : nnz + len(cols)] = cols
            data[nnz : nnz + len(cols)] = values
            indptr[start + 1 : start + 1 + len(row_nnz)] = nnz + np.cumsum(row_nnz)
    indices.resize(indptr[-1], refcheck=False)
    data.resize(indptr[-1], refcheck=False)
    if indptr[-1] <= np.iinfo(np.int32).max:
        indptr = indptr.astype(np.int32)
    return sparse.csr_matrix((data, indices, indptr), shape=(n_spots, n_genes))


def _sample_block(
    loadings: np.ndarray, programmes: _Programmes, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts of a block of spots as (non-zeros per row, column indices, values), in CSR order.

    A negative binomial entry with mean μ is zero when a uniform draw ``u`` falls below
    ``P(0) = (1 + μ / r)^-r``. As ``P(0) >= 1 - μ``, only entries with ``u + μ >= 1`` (a float32
    addition per entry) need that exact test. The positive entries are then drawn from the negative
    binomial conditioned on being positive, reusing ``u`` (uniform on [P(0), 1) given that it is
    positive), and dropouts zero each of them with probability π.
    """
    n_genes = programmes.profiles.shape[1]
    # einsum, not BLAS: the inner dimension is tiny and threaded BLAS inside threads oversubscribes
    mean = np.einsum("sp,pg->sg", loadings, programmes.profiles)
    uniform = rng.random(mean.shape, dtype=np.float32)
    flat = np.flatnonzero(uniform + mean >= 1)
    mean, uniform = mean.ravel()[flat].astype(np.float64), uniform.ravel()[flat]
    rows, cols = np.divmod(flat, n_genes)
    size = programmes.size[cols]
    p_zero = np.exp(-size * np.log1p(mean / size))
    positive = np.flatnonzero(uniform >= p_zero)
    keep = positive[np.flatnonzero(rng.random(len(positive)) >= programmes.dropout[cols[positive]])]
    values = _positive_negative_binomial(mean[keep], size[keep], p_zero[keep], uniform[keep], rng)
    return np.bincount(rows[keep], minlength=len(loadings)), cols[keep].astype(np.int32), values


def _positive_negative_binomial(
    mean: np.ndarray, size: np.ndarray, p_zero: np.ndarray, uniform: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Negative binomial draws conditioned on being positive, as float32.

    Small means invert the CDF at ``uniform`` (uniform on [``p_zero``, 1)); large means, where zeros
    are rare, redraw gamma-Poisson values until they are positive.
    """
    out = np.empty(len(mean), dtype=np.float32)
    small = np.flatnonzero(mean <= _INVERSION_MAX_MEAN)
    out[small] = _invert_negative_binomial(mean[small], size[small], p_zero[small], uniform[small])
    large = np.flatnonzero(mean > _INVERSION_MAX_MEAN)
    while large.size:
        draws = rng.poisson(rng.gamma(size[large], mean[large] / size[large]))
        out[large] = draws
        large = large[np.flatnonzero(draws == 0)]
    return out


def _invert_negative_binomial(
    mean: np.ndarray, size: np.ndarray, p_zero: np.ndarray, uniform: np.ndarray
) -> np.ndarray:
    """Smallest k >= 1 with NB CDF(k) > uniform, walking the CDF with the pmf recursion from P(0).

    All entries step together; the finished ones are dropped once they are the majority.
    """
    success = mean / (mean + size)
    offset = success * (size - 1)  # pmf(k) = pmf(k - 1) * (offset / k + success)
    pmf, cdf = p_zero.copy(), p_zero.copy()
    count = np.ones(len(mean))  # 1 + number of k >= 1 with CDF(k) <= uniform
    out = np.empty(len(mean))
    index = np.arange(len(mean))
    k = 0
    while index.size:
        k += 1
        pmf *= offset / k + success
        cdf += pmf
        undone = cdf <= uniform
        count += undone
        if 2 * np.count_nonzero(undone) <= len(index):
            done, keep = np.flatnonzero(~undone), np.flatnonzero(undone)
            out[index[done]] = count[done]
            index, pmf, cdf, count = index[keep], pmf[keep], cdf[keep], count[keep]
            offset, success, uniform = offset[keep], success[keep], uniform[keep]
    return out
