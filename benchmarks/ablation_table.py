"""Markdown tables from ``ablations.py`` results, into docs/benchmarks.md between the ablation markers.

usage: python benchmarks/ablation_table.py RESULTS.jsonl [RESULTS.jsonl ...] [--stdout]
(``--stdout``: print the tables instead of writing them between the markers.) Table 1: every configuration with the default clustering (tied GMM on PCA 20), with and without
the spatial majority vote. Table 2: the clusterers x vote on the configuration that was scored with every clusterer.
Cells: mean ARI over seeds (seeds run; SD).
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


def main() -> None:
    paths = [arg for arg in sys.argv[1:] if arg != "--stdout"]
    runs = pd.DataFrame([json.loads(line) for path in paths for line in Path(path).read_text().splitlines()])
    runs = runs[runs["ari"].notna()]
    configs = list(dict.fromkeys(runs["config"]))
    gmm = runs[runs["clustering"].isin(["gmm", "gmm+vote"])].copy()
    gmm["configuration"] = gmm["config"] + gmm["clustering"].map({"gmm": "", "gmm+vote": " + vote"})
    order = [c + v for c in configs for v in ("", " + vote")]
    scored_all = runs[runs["clustering"] == "leiden"]["config"].iloc[0]  # the run with every clusterer
    default = runs[runs["config"] == scored_all].rename(columns={"clustering": "clusterer"})
    section = [
        START,
        "Configurations (tied GMM on PCA 20 of the embedding; `+ vote` = the spatial majority vote, "
        "`refine_labels=True`). ARI mean (seeds; SD):",
        "",
        *pivot(gmm, "configuration", order),
        "",
        f"Clusterer x label refinement, on the embeddings of `{scored_all}`:",
        "",
        *pivot(default, "clusterer", list(dict.fromkeys(default["clusterer"]))),
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
