"""Ablations and sensitivity: train once per (dataset, configuration, seed), score several clusterings.

usage: python benchmarks/ablations.py GRID.json OUT.jsonl [--jobs 1] [--threads 2] [--save-runs DIR]
GRID.json: {"data": [paths], "seeds": [0, 1, 2], "configs": {"name": {"param": value, ...}, ...},
            "clusterings": [names of CLUSTERINGS] (optional; default all)}
``param`` may be any ``tl.tsstc`` keyword (``radii`` included). Each training is a whole process;
its domains from ``tl.tsstc`` are scored (row ``tl.tsstc``), then the last epoch's fused embedding is
clustered in-process by every variant of ``CLUSTERINGS`` (with and without the spatial majority
vote; no snapshot vote), so clusterer x refinement costs no retraining. Labels
(``obs['ground_truth']``) are used only to score. One JSON line per (run, clustering) in OUT.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from grid import grid_tasks  # benchmarks/ is the script's folder, hence on sys.path

#: name -> (cluster_method, cluster_pcs, extra_components)
CLUSTERINGS = {
    "gmm": ("gmm", 20, 0),
    "gmm_extra1": ("gmm", 20, 1),
    "gmm_raw": ("gmm", None, 0),
    "kmeans": ("kmeans", 20, 0),
    "leiden": ("leiden", 20, 0),
}


def score_one(
    path: str, params: dict, seed: int, save_to: str | None = None, clusterings: list[str] | None = None
) -> list[dict]:
    """Train TSstc once and score every clustering variant (runs inside the worker process)."""
    start = time.perf_counter()
    import anndata as ad
    import numpy as np
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    import tsstc_sc
    from tsstc_sc._clustering import cluster, spatial_majority_vote

    adata = ad.read_h5ad(path)
    known = adata.obs["ground_truth"].notna().to_numpy()
    truth = adata.obs["ground_truth"][known].astype(str).to_numpy()
    k = adata.obs["ground_truth"].nunique()
    params = dict(params)
    radii = params.pop("radii", None)
    fit_start = time.perf_counter()
    tsstc_sc.tl.tsstc(
        adata, radii, n_clusters=k, random_state=seed, progress_bar=False, device="cpu", **params
    )
    fit_s = time.perf_counter() - fit_start
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    embedding = adata.obsm["X_tsstc"]
    if save_to is not None:  # for consensus experiments across seeds (benchmarks/seed_consensus.py)
        np.savez(save_to, embedding=embedding, labels=adata.obs["tsstc"].cat.codes.to_numpy())
    smallest = adata.obsp[f"{adata.uns['tsstc_scales']['scale_keys'][0]}_connectivities"]
    base = {
        "data": Path(path).name,
        "seed": seed,
        "k": k,
        "fit_s": round(fit_s, 2),
        "wall_s": round(time.perf_counter() - start, 2),
        "peak_rss_gb": round(peak_gb, 3),
        "mean_scale_weights": np.round(adata.obsm["tsstc_scale_weights"].mean(0), 3).tolist(),
    }

    def scored(name: str, labels: np.ndarray) -> dict:
        pred = labels[known].astype(str)
        return {
            **base,
            "clustering": name,
            "ari": round(float(adjusted_rand_score(truth, pred)), 4),
            "nmi": round(float(normalized_mutual_info_score(truth, pred)), 4),
        }

    # the domains tl.tsstc returned (its clusterer, snapshot vote and refinement), then the last epoch's
    rows = [scored("tl.tsstc", adata.obs["tsstc"].to_numpy())]
    for name in clusterings or CLUSTERINGS:
        method, pcs, extra = CLUSTERINGS[name]
        try:
            labels, _ = cluster(embedding, k, method, random_state=seed, n_pcs=pcs, extra_components=extra)
        except (ImportError, RuntimeError) as err:  # e.g. no igraph/leidenalg
            rows.append({**base, "clustering": name, "error": repr(err)})
            continue
        rows.append(scored(name, labels))
        rows.append(scored(name + "+vote", spatial_majority_vote(labels, smallest)))
    return rows


def run_stem(config: str, path: str, seed: int | str) -> str:
    """File name (no suffix) of a saved run: configuration, dataset and seed, safe characters only."""
    return re.sub(r"\W+", "_", config).strip("_") + f"__{Path(path).stem}__{seed}"


def run_one(
    path: str,
    name: str,
    params: dict,
    seed: int,
    threads: int,
    save_dir: str | None,
    clusterings: list[str] | None,
) -> list[dict]:
    save_to = None if save_dir is None else str(Path(save_dir) / f"{run_stem(name, path, seed)}.npz")
    code = f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import ablations; "
    code += (
        f"print(json.dumps(ablations.score_one({path!r}, {params!r}, {seed}, {save_to!r}, {clusterings!r})))"
    )
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("[")]
    if proc.returncode or not lines:
        return [
            {
                "config": name,
                "params": params,
                "data": Path(path).name,
                "seed": seed,
                "error": proc.stderr[-2000:],
            }
        ]
    return [{"config": name, "params": params, **row} for row in json.loads(lines[-1])]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("grid")
    p.add_argument("out")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--save-runs", default=None, help="folder for each run's embedding and domains (.npz)")
    args = p.parse_args()
    grid = json.loads(Path(args.grid).read_text())
    tasks = grid_tasks(grid)
    with ThreadPoolExecutor(args.jobs) as pool, Path(args.out).open("a") as out:
        for rows in pool.map(
            lambda t: run_one(*t, args.threads, args.save_runs, grid.get("clusterings")), tasks
        ):
            for row in rows:
                out.write(json.dumps(row) + "\n")
            out.flush()
            print(json.dumps(rows[0]), flush=True)


if __name__ == "__main__":
    main()
