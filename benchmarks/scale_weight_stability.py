"""How much of the per-spot scale weights (``obsm['tsstc_scale_weights']``) is the training seed's?

usage: python benchmarks/scale_weight_stability.py OUT.json DATA.h5ad [...] [--seeds 0 1 2] [--jobs 2]

Trains ``tl.tsstc`` with its defaults once per dataset and seed (one thread per process) and reports,
per view: the mean weight of each seed, and the Pearson correlation of the per-spot weight maps
between every pair of seeds (1 = the same map whatever the seed). Labels are not read.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np


def weights_of(path: str, seed: int) -> tuple[list[str], np.ndarray]:
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
    import anndata as ad
    import torch

    import tsstc_sc

    torch.set_num_threads(1)
    adata = ad.read_h5ad(path)
    k = adata.obs["ground_truth"].nunique()  # the number of domains only, as every benchmark run
    tsstc_sc.tl.tsstc(adata, n_clusters=k, random_state=seed, progress_bar=False)
    names = [str(n) for n in adata.uns["tsstc"]["scale_weight_names"]]
    return names, np.asarray(adata.obsm["tsstc_scale_weights"])


def summarize(names: list[str], runs: dict[int, np.ndarray]) -> dict:
    seeds = sorted(runs)
    views = {}
    for v, name in enumerate(names):
        pairs = [np.corrcoef(runs[a][:, v], runs[b][:, v])[0, 1] for a, b in itertools.combinations(seeds, 2)]
        views[name] = {
            "mean_weight_per_seed": [round(float(runs[s][:, v].mean()), 3) for s in seeds],
            "map_correlation_between_seeds": [round(float(r), 3) for r in pairs],
        }
    return {"seeds": seeds, "views": views}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("data", nargs="+")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--jobs", type=int, default=2)
    args = p.parse_args()
    tasks = [(path, seed) for path in args.data for seed in args.seeds]
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(weights_of, *zip(*tasks, strict=True)))
    report = {}
    for path in args.data:
        runs = {seed: w for (p_, seed), (_, w) in zip(tasks, results, strict=True) if p_ == path}
        names = next(n for (p_, _), (n, _) in zip(tasks, results, strict=True) if p_ == path)
        report[Path(path).name] = summarize(names, runs)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
