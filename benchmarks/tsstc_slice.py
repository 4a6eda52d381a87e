"""One whole-process TSstc run on a labelled slice: prints one JSON line (ARI, NMI, wall, peak RSS).

usage: python benchmarks/tsstc_slice.py PATH.h5ad [--device cpu] [--seed 0] [--k 7] [--param key=value ...]
                                       [--labels-out FILE.csv]
Labels (obs['ground_truth']) are used only to score, after training and clustering.
"""

from __future__ import annotations

import argparse
import ast
import json
import resource
import time

START = time.perf_counter()

import anndata as ad  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score  # noqa: E402

import tsstc_sc  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("path")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--k", type=int, default=None, help="default: number of truth domains")
    p.add_argument("--truth", default="ground_truth")
    p.add_argument("--param", nargs="*", default=[], help="TSstc keyword overrides, key=value")
    p.add_argument("--labels-out", default=None, help="write each spot's domain to this CSV")
    args = p.parse_args()
    kwargs = {k: ast.literal_eval(v) for k, v in (item.split("=", 1) for item in args.param)}
    adata = ad.read_h5ad(args.path)
    known = adata.obs[args.truth].notna().to_numpy()
    k = args.k or adata.obs[args.truth].nunique()
    fit_start = time.perf_counter()
    tsstc_sc.tl.tsstc(
        adata, n_clusters=k, device=args.device, random_state=args.seed, progress_bar=False, **kwargs
    )
    fit = time.perf_counter() - fit_start
    truth, pred = adata.obs[args.truth][known].astype(str), adata.obs["tsstc"][known].astype(str)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if args.labels_out:
        adata.obs[["tsstc"]].to_csv(args.labels_out)
    result = {
        "variant": "defaults" if not kwargs else "custom",
        "data": args.path.rsplit("/", 1)[-1],
        "device": adata.uns["tsstc"]["params"]["device"],
        "seed": args.seed,
        "k": k,
        "params": kwargs,
        "ari": round(float(adjusted_rand_score(truth, pred)), 4),
        "nmi": round(float(normalized_mutual_info_score(truth, pred)), 4),
        "epochs_run": int(adata.uns["tsstc"]["params"]["epochs_run"]),
        "fit_s": round(fit, 2),
        "wall_s": round(time.perf_counter() - START, 2),
        "peak_rss_gb": round(peak_kb / 1e6, 3),
        "mean_scale_weights": np.round(adata.obsm["tsstc_scale_weights"].mean(0), 3).tolist(),
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
