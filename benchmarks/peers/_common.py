"""Shared harness of the peer runners: arguments, threads, seeding, scoring and the JSON lines.

Only the standard library is imported at module level, so that this file is imported first by
every runner (before numpy / torch pick their thread pools) and works in every peer's venv.
Each runner calls :func:`main` with a ``fit`` callable that returns one or more
:class:`Variant` (per-observation labels); labels of ``--truth`` are hidden from ``fit`` and only
used to score labelled observations afterwards.

Every run prints one JSON line per variant on stdout and nothing else (everything the peers print,
from Python or C, goes to stderr). A run that fails still prints one JSON line with ``"error"``
(the last lines of the traceback) and exits with status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata, util
from pathlib import Path
from typing import Any

THREAD_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMBA_NUM_THREADS",
)


def _threads() -> int:
    value = os.environ.get("OMP_NUM_THREADS", "")
    if value.isdigit() and int(value) > 0:
        return int(value)
    return len(os.sched_getaffinity(0))


# Respect OMP_NUM_THREADS; where unset, default every pool to the CPUs this process may use.
THREADS = _threads()
for _var in THREAD_VARS:
    os.environ.setdefault(_var, str(THREADS))
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars would flood the stderr logs


@dataclass
class Context:
    """What a peer gets: the data without labels, the number of clusters and the seed."""

    adata: Any  # AnnData, raw counts in X, obs reduced to array_row / array_col where present
    k: int
    seed: int
    threads: int
    visium: bool  # array_row / array_col present (hexagonal Visium grid)
    notes: list[str] = field(default_factory=list)  # departures from the peer's defaults


@dataclass
class Variant:
    """One clustering produced from the run (several may share one training)."""

    name: str
    labels: Any  # one label per observation, in adata order (None where the variant failed)
    notes: list[str] = field(default_factory=list)
    error: str | None = None  # this variant failed, the others of the run stand


#: Starts of the ``"5 starts"`` variants: as many as tsstc-sc's own mixture keeps the best of.
FAIR_STARTS = 5


def tied_gmm(x: Any, k: int, seed: int, starts: int = 1) -> Any:
    """Stand-in for R mclust's EEE model: one shared full covariance (scikit-learn ``tied``).

    ``starts`` > 1 keeps the fit of highest likelihood among that many seeded starts, as tsstc-sc's
    own clusterer does; the published rows fit once.
    """
    from sklearn.mixture import GaussianMixture

    model = GaussianMixture(n_components=k, covariance_type="tied", n_init=starts, random_state=seed)
    return model.fit_predict(x)


def mark_hvg(ctx: Context, n_hvg: int) -> None:
    """seurat_v3 highly variable genes on the raw counts (all genes kept when there are few)."""
    import scanpy as sc

    ctx.adata.var_names_make_unique()
    if ctx.adata.n_vars > n_hvg:
        sc.pp.highly_variable_genes(ctx.adata, flavor="seurat_v3", n_top_genes=n_hvg)
    else:
        ctx.notes.append(f"only {ctx.adata.n_vars} genes: all used (no HVG selection)")


TIED_GMM_NOTE = (
    "R mclust (modelNames='EEE') replaced by sklearn GaussianMixture(n_components=k, "
    "covariance_type='tied', random_state=seed)"
)
FAIR_STARTS_NOTE = (
    "R mclust (modelNames='EEE') replaced by sklearn GaussianMixture(n_components=k, "
    f"covariance_type='tied', n_init={FAIR_STARTS}, random_state=seed): the best of {FAIR_STARTS} "
    "starts by likelihood, as tsstc-sc's own mixture keeps"
)


def _claim_stdout() -> Any:
    """Keep the real stdout for the JSON lines; send everything else (incl. C-level) to stderr."""
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return out


def _tail(text: str, lines: int = 12, chars: int = 3000) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])[-chars:]


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _seed_everything(seed: int, threads: int) -> None:
    random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    import numpy as np

    np.random.seed(seed)  # noqa: NPY002 - the peers draw from the legacy global state
    if util.find_spec("torch") is not None:
        import torch

        torch.manual_seed(seed)
        torch.set_num_threads(threads)


def _load(path: str, truth_key: str, k: int | None, seed: int) -> tuple[Context, Any, Any]:
    import anndata as ad

    adata = ad.read_h5ad(path)
    truth = adata.obs[truth_key].copy()
    known = truth.notna().to_numpy()
    grid = [c for c in ("array_row", "array_col") if c in adata.obs]
    # the peers see no label-like column at all: obs keeps only the Visium array grid
    adata.obs = adata.obs[grid].copy()
    adata.uns = {}
    k = k or int(truth[known].nunique())
    ctx = Context(adata=adata, k=k, seed=seed, threads=THREADS, visium=len(grid) == 2)
    return ctx, truth, known


def main(method: str, dist: str, fit: Callable[[Context], list[Variant]], start: float) -> None:
    """Run ``fit`` on the file given on the command line and print the JSON line(s)."""
    out = _claim_stdout()
    parser = argparse.ArgumentParser(description=f"{method} on one labelled .h5ad; JSON lines on stdout")
    parser.add_argument("path")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--k", type=int, default=None, help="clusters; default: number of truth categories")
    parser.add_argument("--truth", default="ground_truth", help="obs column used ONLY for scoring")
    parser.add_argument(
        "--labels-out", default=None, help="CSV of each observation's label, a column per variant"
    )
    args = parser.parse_args()

    base: dict[str, Any] = {
        "method": method,
        "variant": None,
        "data": Path(args.path).name,
        "seed": args.seed,
        "k": args.k,
        "ari": None,
        "nmi": None,
        "wall_s": None,
        "peak_rss_gb": None,
        "n_obs": None,
        "peer_version": _version(dist),
        "threads": THREADS,
    }

    def emit(*records: dict[str, Any]) -> None:
        # one wall time and peak RSS for all variants of the run (they share one training)
        wall = round(time.perf_counter() - start, 2)
        rss = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 3)
        for record in records:
            out.write(json.dumps({**record, "wall_s": wall, "peak_rss_gb": rss}) + "\n")
        out.flush()

    try:
        ctx, truth, known = _load(args.path, args.truth, args.k, args.seed)
        base.update(k=ctx.k, n_obs=int(ctx.adata.n_obs))
        _seed_everything(args.seed, THREADS)
        variants = fit(ctx)
        base["peer_version"] = _version(dist)
        from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

        y_true = truth[known].astype(str).to_numpy()
        records, columns = [], {}
        for v in variants:
            import numpy as np

            if v.error is not None:
                records.append({**base, "variant": v.name, "error": v.error, "notes": ctx.notes + v.notes})
                continue
            labels = np.asarray(v.labels).astype(str)
            if labels.shape[0] != ctx.adata.n_obs:
                raise ValueError(f"variant {v.name!r}: {labels.shape[0]} labels for {ctx.adata.n_obs} obs")
            y_pred = labels[known]
            columns[v.name] = labels
            records.append(
                {
                    **base,
                    "variant": v.name,
                    "ari": round(float(adjusted_rand_score(y_true, y_pred)), 4),
                    "nmi": round(float(normalized_mutual_info_score(y_true, y_pred)), 4),
                    "n_clusters": len(set(labels.tolist())),
                    "notes": ctx.notes + v.notes,
                }
            )
    except Exception:  # noqa: BLE001 - every failure must still yield a JSON line
        traceback.print_exc()
        emit({**base, "error": _tail(traceback.format_exc())})
        sys.exit(1)
    if args.labels_out and columns:
        import pandas as pd

        pd.DataFrame(columns, index=ctx.adata.obs_names).to_csv(args.labels_out)
    emit(*records)
