"""Do the views embed in shared coordinates? The cosine between two views' embeddings of the same spot.

usage: python benchmarks/view_alignment.py RUNS_DIR [--epoch 20]

``RUNS_DIR`` holds the runs saved by ``representations.py dump``. For every run and every pair of views
(spatial scales, then the gene view), the median over spots of ``cos(z_v(i), z_w(i))``; printed per
dataset as the smallest and largest of those medians over pairs and runs. The attention sums the views
spot by spot (``Z_f = sum_v H_v Z_v``), which averages like with like only if these are near 1.
Labels are not read.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np


def _unit_rows(z: np.ndarray) -> np.ndarray:
    return z / np.linalg.norm(z, axis=1, keepdims=True).clip(1e-12)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder")
    p.add_argument("--epoch", type=int, default=20)
    args = p.parse_args()
    medians: dict[str, list[float]] = {}
    for path in sorted(Path(args.folder).glob("*__*.npz")):
        if path.stem.endswith("_adjacency"):
            continue
        run = np.load(path)
        n_views = sum(name.startswith("view") and name.endswith(f"_{args.epoch}") for name in run.files)
        views = [_unit_rows(run[f"view{v}_{args.epoch}"]) for v in range(n_views)]
        stem = path.stem.rsplit("__", 1)[0]
        for a, b in itertools.combinations(views, 2):
            medians.setdefault(stem, []).append(float(np.median((a * b).sum(axis=1))))
    print("| dataset | view pairs x runs | median cosine per pair: min | max |\n|---|---|---|---|")
    for stem, values in medians.items():
        print(f"| {stem} | {len(values)} | {min(values):.2f} | {max(values):.2f} |")


if __name__ == "__main__":
    main()
