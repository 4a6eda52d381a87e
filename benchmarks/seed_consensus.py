"""Label consensus over training seeds: does voting across restarts beat (and steady) one training?

usage: python benchmarks/seed_consensus.py RUNS_DIR CONFIG OUT.json DATA.h5ad [...] [--size 3]
RUNS_DIR holds the runs of configuration CONFIG saved by ``ablations.py --save-runs``. For every
``--size`` subset of a dataset's seeds, the domains of each run are matched to the first run's by
the Hungarian algorithm and every spot takes the majority domain (ties: the first run's). Labels
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
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score


def match(reference: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """``labels`` renamed to the ``reference`` domains they overlap most (one-to-one)."""
    overlap = np.zeros((k, k))
    np.add.at(overlap, (labels, reference), 1)
    rows, cols = linear_sum_assignment(-overlap)
    rename = np.empty(k, dtype=int)
    rename[rows] = cols
    return rename[labels]


def consensus(runs: list[np.ndarray], k: int) -> np.ndarray:
    """Majority domain of every spot over ``runs`` matched to the first one."""
    reference = runs[0]
    votes = np.zeros((len(reference), k))
    for labels in [reference] + [match(reference, r, k) for r in runs[1:]]:
        votes[np.arange(len(reference)), labels] += 1
    votes[np.arange(len(reference)), reference] += 0.5
    return votes.argmax(1)


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
