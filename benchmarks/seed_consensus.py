"""Label consensus over training seeds: does voting across restarts beat (and steady) one training?

usage: python benchmarks/seed_consensus.py RUNS_DIR CONFIG OUT.json DATA.h5ad [...] [--size 3]
RUNS_DIR holds the runs of configuration CONFIG saved by ``ablations.py --save-runs``. For every
``--size`` subset of a dataset's seeds, the domains of each run are matched to the first run's by
the Hungarian algorithm and every spot takes the majority domain (ties: the first run's;
``tsstc_sc._clustering.consensus``, which also combines the snapshots of one training). Labels
(``obs['ground_truth']``) are used only to score. Writes per-run and per-consensus ARI.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import anndata as ad
import numpy as np
from ablations import run_stem  # benchmarks/ is the script's folder, hence on sys.path
from sklearn.metrics import adjusted_rand_score

from tsstc_sc._clustering import consensus


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", type=Path)
    p.add_argument("config")
    p.add_argument("out", type=Path)
    p.add_argument("data", nargs="+", type=Path)
    p.add_argument("--size", type=int, default=3)
    args = p.parse_args()
    result = {}
    for path in args.data:
        truth = ad.read_h5ad(path, backed="r").obs["ground_truth"]
        known = truth.notna().to_numpy()
        k = truth.nunique()
        files = sorted(args.runs.glob(run_stem(args.config, str(path), "*") + ".npz"))
        runs = [np.load(f)["labels"].astype(int) for f in files]

        def ari(labels, truth=truth, known=known):
            return round(float(adjusted_rand_score(truth[known].astype(str), labels[known])), 4)

        result[path.stem] = {
            "seeds": [f.stem.rsplit("__", 1)[1] for f in files],
            "single": [ari(r) for r in runs],
            "consensus": [
                ari(consensus([runs[i] for i in s], k))
                for s in itertools.combinations(range(len(runs)), args.size)
            ],
        }
        print(path.stem, result[path.stem], flush=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
