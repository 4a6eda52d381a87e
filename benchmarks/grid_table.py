"""Markdown tables of ``grid.py`` results against the defaults' runs: ARI means, then paired changes.

usage: python benchmarks/grid_table.py BASELINE.jsonl RESULTS.jsonl [RESULTS.jsonl ...]
BASELINE.jsonl holds the defaults' runs (one configuration). Table 1: ARI mean (seeds; SD) of the
defaults on the seeds that the other runs used, then of every configuration. Table 2: the change
against the defaults, paired by dataset and seed: mean (pairs; SD of the paired changes). Runs that
failed (no ARI) are listed after the tables.
"""

from __future__ import annotations

import sys

import pandas as pd
from ablation_table import failures, pivot  # benchmarks/ is the script's folder, hence on sys.path


def paired_changes(runs: pd.DataFrame, baseline: pd.DataFrame) -> pd.DataFrame:
    """Each run's ARI minus the defaults' on the same dataset and seed (runs the defaults lack dropped)."""
    base = baseline.set_index(["data", "seed"])["ari"].rename("base")
    paired = runs.join(base, on=["data", "seed"], how="inner")
    return paired.assign(ari=paired["ari"] - paired["base"])


def main() -> None:
    baseline = pd.read_json(sys.argv[1], lines=True)
    runs = pd.concat([pd.read_json(path, lines=True) for path in sys.argv[2:]], ignore_index=True)
    failed = failures(runs)
    runs = runs.dropna(subset=["ari"])  # failed runs have no ARI
    order = list(dict.fromkeys(runs["config"]))
    baseline = baseline[baseline["seed"].isin(set(runs["seed"]))]
    name = baseline["config"].iloc[0]
    print("\n".join(pivot(pd.concat([baseline, runs]), "config", [name, *order])))
    print()
    print("\n".join(pivot(paired_changes(runs, baseline), "config", order)))
    if failed:
        print("\nRuns that failed (recorded, not dropped):\n")
        print("\n".join(failed))


if __name__ == "__main__":
    main()
