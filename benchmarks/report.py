"""Tables, the ARI bar plot and the DLPFC domain maps from the harness CSV, into docs/benchmarks.md.

usage: python benchmarks/report.py [benchmarks/results/harness.csv]
Rewrites the part of docs/benchmarks.md between the ``harness`` markers and the figures under
``docs/_static/``. Labels are read only here, to score and to draw the annotation.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anndata as ad
import matplotlib as mpl
import numpy as np
import pandas as pd

mpl.use("Agg")
import matplotlib.pyplot as plt

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
            if len(s):
                sd = "" if s["count"].iloc[0] < 2 else f" ± {s['std'].iloc[0]:.3f}"
                cells.append(f"{s['mean'].iloc[0]:.3f}{sd} (n={s['count'].iloc[0]})")
            else:
                cells.append("failed" if len(err) else "-")
        target = stats[(stats["entry"] == entry) & stats["data"].isin(TARGET)]
        mean = f"**{target['mean'].mean():.3f}**" if len(target) == len(TARGET) else "-"
        timed = runs[(runs["entry"] == entry) & runs["data"].isin(TARGET) & runs["ari"].notna()]
        wall = f"{timed['wall_s'].median():.0f} s" if len(timed) else "-"
        rss = f"{timed['peak_rss_gb'].median():.2f} GB" if len(timed) else "-"
        lines.append(f"| {entry} | " + " | ".join(cells) + f" | {mean} | {wall} | {rss} |")
    return lines


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


def domain_maps(runs: pd.DataFrame, labels_dir: Path, path: Path) -> bool:
    """Truth | tsstc-sc | best peer for each DLPFC slice (seed 0); False when labels are missing."""
    stats = summary(runs)
    peers = stats[~stats["entry"].str.startswith("tsstc-sc")]
    slices = [d for d in DLPFC if d in set(peers["data"])]  # slices some peer has run on
    if not slices:
        return False
    fig, axes = plt.subplots(len(slices), 3, figsize=(11, 3.8 * len(slices)), squeeze=False)
    for row_axes, data in zip(axes, slices, strict=True):
        adata = ad.read_h5ad(DATA / data)
        peers = stats[(stats["data"] == data) & ~stats["entry"].str.startswith("tsstc-sc")]
        best = peers.sort_values("mean", ascending=False)["entry"].iloc[0]
        panels = [("annotation", adata.obs["ground_truth"].astype(str))]
        for entry in ("tsstc-sc", best):
            row = runs[(runs["entry"] == entry) & (runs["data"] == data) & (runs["seed"] == 0)]
            file = labels_dir / f"{row['method'].iloc[0].replace(' ', '_')}_{Path(data).stem}_0.csv"
            if not file.exists():
                return False
            table_ = pd.read_csv(file, index_col=0)
            column = row["variant"].iloc[0] if row["variant"].iloc[0] in table_ else table_.columns[0]
            panels.append(
                (
                    f"{entry}, ARI {row['ari'].iloc[0]:.3f}",
                    table_[column].astype(str).reindex(adata.obs_names),
                )
            )
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


def main() -> None:
    csv = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "results" / "harness.csv"
    runs = pd.read_csv(csv)
    runs["variant"] = runs["variant"].fillna("defaults")
    runs["entry"] = runs.apply(label, axis=1)
    STATIC.mkdir(parents=True, exist_ok=True)
    bar_plot(runs, STATIC / "benchmark_ari.png")
    maps = domain_maps(runs, csv.parent / "labels", STATIC / "benchmark_domains.png")
    dates = sorted(set(runs["date"].astype(str)))
    section = [
        START,
        f"Measured {', '.join(dates)} on {' and '.join(sorted(set(runs['machine'])))} (the CSV's "
        "`machine` column says which), one whole process per run with the harness's `--threads` "
        "(1 for every row), one or two runs at a time (never more than one per core).",
        "",
        "Command: `bash benchmarks/run.sh` (peers' environments, then "
        "`python benchmarks/harness.py` and `python benchmarks/report.py`); raw rows: "
        f"`benchmarks/results/{csv.name}`. ARI mean ± SD over seeds (n = seeds run); wall and peak RSS "
        "are medians over the 151673/151674 runs.",
        "",
        *table(runs),
        "",
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
    text = DOC.read_text()
    if START in text:
        text = text[: text.index(START)] + "\n".join(section) + text[text.index(END) + len(END) :]
    else:
        text += "\n## Side by side with the peers\n\n" + "\n".join(section) + "\n"
    DOC.write_text(text)


if __name__ == "__main__":
    main()
