"""Markdown tables of ``grid.py`` results against the defaults' runs: ARI means, then paired changes.

usage: python benchmarks/grid_table.py BASELINE.jsonl RESULTS.jsonl [RESULTS.jsonl ...]
BASELINE.jsonl holds the defaults' runs (one configuration). Table 1: ARI mean (seeds; SD) of the
defaults on the seeds that the other runs used, then of every configuration. Table 2: the mean
change against the defaults over the seeds both ran (paired by dataset and seed).
"""

from __future__ import annotations

import sys

import pandas as pd
from ablation_table import pivot  # benchmarks/ is the script's folder, hence on sys.path
from report import SHORT


def paired_changes(runs: pd.DataFrame, baseline: pd.DataFrame, order: list[str]) -> list[str]:
    datasets = [d for d in SHORT if d in set(runs["data"])]
    base = baseline.set_index(["data", "seed"])["ari"]
    lines = ["| config | " + " | ".join(SHORT[d] for d in datasets) + " |", "|---" * (len(datasets) + 1) + "|"]
    for name in order:
        cells = []
        for d in datasets:
            sub = runs[(runs["config"] == name) & (runs["data"] == d)].set_index(["data", "seed"])["ari"]
            both = sub.index.intersection(base.index)
            cells.append(f"{(sub[both] - base[both]).mean():+.3f}" if len(both) else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    baseline = pd.read_json(sys.argv[1], lines=True)
    runs = pd.concat([pd.read_json(path, lines=True) for path in sys.argv[2:]], ignore_index=True)
    runs = runs[runs["ari"].notna()] if "ari" in runs else runs
    order = list(dict.fromkeys(runs["config"]))
    baseline = baseline[baseline["seed"].isin(set(runs["seed"]))]
    name = baseline["config"].iloc[0]
    print("\n".join(pivot(pd.concat([baseline, runs]), "config", [name, *order])))
    print()
    print("\n".join(paired_changes(runs, baseline, order)))


if __name__ == "__main__":
    main()
