"""Tables, the ARI bar plot and the DLPFC domain maps from the harness CSV, into docs/benchmarks.md.

usage: python benchmarks/report.py [benchmarks/results/harness.csv] [--doc docs/benchmarks.md]
Rewrites the part of the doc between the ``harness`` markers and the figures under
``docs/_static/``. Labels are read only here, to score and to draw the annotation. Each run's saved
domains are counted: a run that returned another number of domains than K is marked in the table.
"""

from __future__ import annotations

import argparse
from functools import cache
from pathlib import Path

import anndata as ad
import matplotlib as mpl
import numpy as np
import pandas as pd

mpl.use("Agg")
import matplotlib.pyplot as plt
from harness import labels_dir_for, labels_file

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = ROOT.parent / "shared" / "data"
DOC = ROOT / "docs" / "benchmarks.md"
STATIC = ROOT / "docs" / "_static"
START, END = "<!-- harness:start -->", "<!-- harness:end -->"
SHORT = {
    "dlpfc_151673_5000genes.h5ad": "151673",
    "dlpfc_151674_5000genes.h5ad": "151674",
    "dlpfc_151510_500genes.h5ad": "151510 (500 genes)",
    "osmfish_mouse_sscortex.h5ad": "osmFISH",
    "mouse_olfactory_bulb_st.h5ad": "olfactory bulb",
}
TARGET = ["dlpfc_151673_5000genes.h5ad", "dlpfc_151674_5000genes.h5ad"]
DLPFC = [d for d in SHORT if d.startswith("dlpfc_")]


def label(row: pd.Series) -> str:
    return row["method"] if row["variant"] in ("defaults", "") else f"{row['method']}, {row['variant']}"


@cache
def _saved_labels(path: Path) -> pd.DataFrame | None:
    return pd.read_csv(path, index_col=0) if path.exists() else None


def run_labels(row: pd.Series, labels_dir: Path) -> pd.Series | None:
    """The domains a run saved for its variant (``None`` when they were not saved)."""
    table_ = _saved_labels(labels_file(labels_dir, row["method"], row["data"], row["seed"]))
    if table_ is None:
        return None
    if row["variant"] in table_:
        return table_[row["variant"]]
    return table_.iloc[:, 0] if table_.shape[1] == 1 else None  # a single unnamed variant


def domains_found(runs: pd.DataFrame, labels_dir: Path) -> pd.Series:
    """Number of distinct domains in each run's saved labels (NaN where none were saved)."""
    found = [run_labels(row, labels_dir) for _, row in runs.iterrows()]
    return pd.Series([np.nan if lab is None else lab.nunique() for lab in found], index=runs.index)


def summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean, SD and seed count of ARI per (entry, dataset)."""
    ok = runs[runs["error"].isna() | (runs["error"] == "")]
    return ok.groupby(["entry", "data"])["ari"].agg(["mean", "std", "count"]).reset_index()


def table(runs: pd.DataFrame) -> list[str]:
    stats = summary(runs)
    datasets = [d for d in SHORT if d in set(runs["data"])]
    head = (
        "| method | "
        + " | ".join(SHORT[d] for d in datasets)
        + " | mean 151673/151674 | wall, 151673/4 | peak RSS |"
    )
    lines = [head, "|" + "---|" * (len(datasets) + 4)]
    entries = stats[stats["data"].isin(TARGET)].groupby("entry")["mean"].mean().sort_values(ascending=False)
    entries = [*entries.index, *sorted(set(runs["entry"]) - set(entries.index))]
    for entry in entries:
        cells = []
        for d in datasets:
            s = stats[(stats["entry"] == entry) & (stats["data"] == d)]
            err = runs[(runs["entry"] == entry) & (runs["data"] == d) & runs["error"].fillna("").ne("")]
            off_k = runs[(runs["entry"] == entry) & (runs["data"] == d) & runs["off_k"]]
            if len(s):
                sd = "" if s["count"].iloc[0] < 2 else f" ± {s['std'].iloc[0]:.3f}"
                mark = " †" if len(off_k) else ""
                cells.append(f"{s['mean'].iloc[0]:.3f}{sd} (n={s['count'].iloc[0]}){mark}")
            else:
                cells.append("failed" if len(err) else "-")
        target = stats[(stats["entry"] == entry) & stats["data"].isin(TARGET)]
        mean = f"**{target['mean'].mean():.3f}**" if len(target) == len(TARGET) else "-"
        timed = runs[(runs["entry"] == entry) & runs["data"].isin(TARGET) & runs["ari"].notna()]
        wall = f"{timed['wall_s'].median():.0f} s" if len(timed) else "-"
        rss = f"{timed['peak_rss_gb'].median():.2f} GB" if len(timed) else "-"
        lines.append(f"| {entry} | " + " | ".join(cells) + f" | {mean} | {wall} | {rss} |")
    return lines


def other_k(runs: pd.DataFrame) -> list[str]:
    """One line per (entry, dataset) whose runs returned another number of domains than K."""
    out = []
    for (entry, data), group in runs[runs["off_k"]].groupby(["entry", "data"], sort=False):
        seeds = ", ".join(
            f"seed {int(r.seed)}: {int(r.found)}" for r in group.sort_values("seed").itertuples()
        )
        out.append(f"* {entry} on {SHORT.get(data, data)} (K = {int(group['k'].iloc[0])}): {seeds}")
    return out


def errors(runs: pd.DataFrame) -> list[str]:
    failed = runs[runs["error"].fillna("").ne("")].drop_duplicates(["entry", "data"])
    out = []
    for _, row in failed.iterrows():
        last = [line for line in str(row["error"]).strip().splitlines() if line.strip()][-1][:300]
        out.append(f"* {row['entry']} on {SHORT.get(row['data'], row['data'])}: `{last}`")
    return out


def bar_plot(runs: pd.DataFrame, path: Path) -> None:
    ok = runs[runs["ari"].notna()]
    datasets = [d for d in SHORT if d in set(ok["data"])]
    entries = list(dict.fromkeys(ok.sort_values("method", key=lambda m: m != "tsstc-sc")["entry"]))
    fig, ax = plt.subplots(figsize=(2.2 * len(datasets) + 2, 5), layout="constrained")
    width = 0.8 / len(entries)
    colors = plt.get_cmap("tab10")
    for i, entry in enumerate(entries):
        sub = ok[ok["entry"] == entry]
        means = [sub[sub["data"] == d]["ari"].mean() for d in datasets]
        sds = [sub[sub["data"] == d]["ari"].std(ddof=1) for d in datasets]
        x = np.arange(len(datasets)) + (i - (len(entries) - 1) / 2) * width
        ax.bar(x, means, width, yerr=np.nan_to_num(sds), capsize=2, label=entry, color=colors(i % 10))
    ax.set_xticks(np.arange(len(datasets)), [SHORT[d] for d in datasets])
    ax.set_ylabel("ARI (mean ± SD over seeds)")
    ax.legend(fontsize=7, ncol=2, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.08))
    ax.spines[["top", "right"]].set_visible(False)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def map_panels(runs: pd.DataFrame, stats: pd.DataFrame, data: str, labels_dir: Path) -> list | None:
    """(title, labels) of tsstc-sc and the best peer on ``data`` at their lowest common seed, or
    ``None`` when either has no saved labels there."""
    peers = stats[(stats["data"] == data) & ~stats["entry"].str.startswith("tsstc-sc")]
    best = peers.sort_values("mean", ascending=False)["entry"].iloc[0]
    ok = runs[(runs["data"] == data) & runs["ari"].notna()]
    seeds = set(ok[ok["entry"] == "tsstc-sc"]["seed"]) & set(ok[ok["entry"] == best]["seed"])
    if not seeds:
        return None
    panels = []
    for entry in ("tsstc-sc", best):
        row = ok[(ok["entry"] == entry) & (ok["seed"] == min(seeds))].iloc[0]
        labels = run_labels(row, labels_dir)
        if labels is None:
            return None
        panels.append((f"{entry}, seed {int(row['seed'])}, ARI {row['ari']:.3f}", labels.astype(str)))
    return panels


def domain_maps(runs: pd.DataFrame, labels_dir: Path, path: Path) -> bool:
    """Truth | tsstc-sc | best peer for each DLPFC slice; False when no slice has both runs' labels."""
    stats = summary(runs)
    rows = []
    for data in DLPFC:
        if data in set(stats[~stats["entry"].str.startswith("tsstc-sc")]["data"]):
            panels = map_panels(runs, stats, data, labels_dir)
            if panels is not None:
                rows.append((data, panels))
    if not rows:
        return False
    fig, axes = plt.subplots(len(rows), 3, figsize=(11, 3.8 * len(rows)), squeeze=False)
    for row_axes, (data, found) in zip(axes, rows, strict=True):
        adata = ad.read_h5ad(DATA / data)
        panels = [("annotation", adata.obs["ground_truth"].astype(str))]
        panels += [(title, labels.reindex(adata.obs_names)) for title, labels in found]
        xy = adata.obsm["spatial"]
        for ax, (title, lab) in zip(row_axes, panels, strict=True):
            codes = pd.Categorical(lab).codes
            ax.scatter(xy[:, 0], -xy[:, 1], c=codes, cmap="tab10", s=4, linewidths=0)
            ax.set_title(f"{SHORT[data]}\n{title}", fontsize=9)
            ax.set_aspect("equal")
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def threads_text(runs: pd.DataFrame) -> str:
    counts = sorted({str(int(t)) for t in runs["threads"].dropna()}) if "threads" in runs else []
    if not counts:
        return "the harness's `--threads` (not recorded in this CSV)"
    missing = ", not recorded for some rows" if runs["threads"].isna().any() else ""
    return f"`--threads` {' or '.join(counts)} (the CSV's `threads` column{missing})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("csv", nargs="?", type=Path, default=HERE / "results" / "harness.csv")
    p.add_argument("--doc", type=Path, default=DOC, help="markdown file whose harness section is rewritten")
    args = p.parse_args()
    csv = args.csv
    runs = pd.read_csv(csv)
    runs["variant"] = runs["variant"].fillna("defaults")
    runs["entry"] = runs.apply(label, axis=1)
    labels_dir = labels_dir_for(csv)
    runs["found"] = domains_found(runs, labels_dir)
    runs["off_k"] = runs["found"].notna() & (runs["found"] != runs["k"])
    STATIC.mkdir(parents=True, exist_ok=True)
    bar_plot(runs, STATIC / "benchmark_ari.png")
    maps = domain_maps(runs, labels_dir, STATIC / "benchmark_domains.png")
    dates = sorted(set(runs["date"].astype(str)))
    section = [
        START,
        f"Measured {', '.join(dates)} on {' and '.join(sorted(set(runs['machine'])))} (the CSV's "
        f"`machine` column says which), one whole process per run with {threads_text(runs)}, one or "
        "two runs at a time (never more than one per core).",
        "",
        "Command: `bash benchmarks/run.sh` (peers' environments, then "
        "`python benchmarks/harness.py` and `python benchmarks/report.py`); raw rows: "
        f"`benchmarks/results/{csv.name}`. ARI mean ± SD over seeds (the sample SD, n - 1; n = seeds "
        "run); wall and peak RSS are medians over the 151673/151674 runs, peak RSS as `ru_maxrss` in "
        "KiB / 10^6 (2.4% below decimal gigabytes), as in every table of this page. † = some runs "
        "returned another number of domains than K (listed below the table).",
        "",
        *table(runs),
        "",
        *(["Runs with another number of domains than K:", "", *other_k(runs), ""] if other_k(runs) else []),
        *(["Runs that failed (recorded, not dropped):", "", *errors(runs), ""] if errors(runs) else []),
        "![ARI per method and dataset](_static/benchmark_ari.png)",
        "",
        *(
            ["![Domain maps: annotation, tsstc-sc, best peer](_static/benchmark_domains.png)", ""]
            if maps
            else []
        ),
        END,
    ]
    text = args.doc.read_text() if args.doc.exists() else ""
    if START in text:
        text = text[: text.index(START)] + "\n".join(section) + text[text.index(END) + len(END) :]
    else:
        text += "\n## Side by side with the peers\n\n" + "\n".join(section) + "\n"
    args.doc.write_text(text)


if __name__ == "__main__":
    main()
