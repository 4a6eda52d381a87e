"""Markdown tables from ``ablations.py`` results, into docs/benchmarks.md between the ablation markers.

usage: python benchmarks/ablation_table.py RESULTS.jsonl [RESULTS.jsonl ...] [--stdout]
(``--stdout``: print the tables instead of writing them between the markers.) Table 1: every configuration with the default clustering (tied GMM on PCA 20), with and without
the spatial majority vote. Table 2: the clusterers x vote on the configuration that was scored with every clusterer.
Cells: mean ARI over seeds (seeds run; SD). Runs that failed (no ARI) are listed below the tables.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
from report import SHORT  # benchmarks/ is the script's folder, hence on sys.path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
START, END = "<!-- ablations:start -->", "<!-- ablations:end -->"


def cell(values: pd.Series) -> str:
    if values.empty:
        return "-"
    sd = f", SD {values.std(ddof=1):.3f}" if len(values) > 1 else ""
    return f"{values.mean():.3f} ({len(values)}{sd})"


def pivot(runs: pd.DataFrame, rows: str, order: list[str]) -> list[str]:
    datasets = [d for d in SHORT if d in set(runs["data"])]
    lines = [
        "| " + rows + " | " + " | ".join(SHORT[d] for d in datasets) + " |",
        "|---" * (len(datasets) + 1) + "|",
    ]
    for name in order:
        sub = runs[runs[rows] == name]
        lines.append(f"| {name} | " + " | ".join(cell(sub[sub["data"] == d]["ari"]) for d in datasets) + " |")
    return lines


def failures(runs: pd.DataFrame) -> list[str]:
    """One line per failed (configuration, dataset, seed), with the last line of its error."""
    failed = runs[runs["ari"].isna()].drop_duplicates(["config", "data", "seed"])
    return [
        f"* {row['config']} on {SHORT.get(row['data'], row['data'])}, seed {row['seed']}: "
        f"`{str(row.get('error') or 'no ARI').strip().splitlines()[-1][:200]}`"
        for _, row in failed.iterrows()
    ]


def main() -> None:
    paths = [arg for arg in sys.argv[1:] if arg != "--stdout"]
    runs = pd.DataFrame([json.loads(line) for path in paths for line in Path(path).read_text().splitlines()])
    failed = failures(runs) if "ari" in runs else []
    runs = runs[runs["ari"].notna()]
    configs = list(dict.fromkeys(runs["config"]))
    gmm = runs[runs["clustering"].isin(["gmm", "gmm+vote"])].copy()
    gmm["configuration"] = gmm["config"] + gmm["clustering"].map({"gmm": "", "gmm+vote": " + vote"})
    order = [c + v for c in configs for v in ("", " + vote")]
    every_clusterer = runs[runs["clustering"] == "leiden"]["config"]  # configurations scored with each one
    clusterers = []
    if len(every_clusterer):
        scored_all = every_clusterer.iloc[0]
        default = runs[runs["config"] == scored_all].rename(columns={"clustering": "clusterer"})
        clusterers = [
            "",
            f"Clusterer x label refinement, on the embeddings of `{scored_all}`:",
            "",
            *pivot(default, "clusterer", list(dict.fromkeys(default["clusterer"]))),
        ]
    section = [
        START,
        "Configurations (tied GMM on PCA 20 of the embedding; `+ vote` = the spatial majority vote, "
        "`refine_labels=True`). ARI mean (seeds; SD):",
        "",
        *pivot(gmm, "configuration", order),
        *clusterers,
        *(["", "Runs that failed (recorded, not dropped):", "", *failed] if failed else []),
        END,
    ]
    if "--stdout" in sys.argv:
        print("\n".join(section[1:-1]))
        return
    text = DOC.read_text()
    text = text[: text.index(START)] + "\n".join(section) + text[text.index(END) + len(END) :]
    DOC.write_text(text)


if __name__ == "__main__":
    main()
