"""Cost against section size: one whole process per N, time per stage and peak RSS, ARI where truth exists.

usage: python benchmarks/scaling.py OUT.jsonl --sizes 5000 20000 50000 [--source synthetic|dlpfc]
                                    [--batch-size B] [--device cpu] [--threads 2]
       python benchmarks/scaling.py --table OUT.jsonl [...]     (markdown table + log-log slopes)
       python benchmarks/scaling.py --plot FIG.png OUT.jsonl [...]
       python benchmarks/scaling.py --docs OUT.jsonl [...]      (both into docs/benchmarks.md)

``synthetic``: ``datasets.synthetic_tissue(N, layout="single_cell")`` (2,000 genes, known domains).
``dlpfc``: tiled copies of DLPFC 151673 (``../shared/data``), each copy shifted on the array grid so
copies never touch; truth = the layer annotation. Each N runs in its own process, so wall time and
peak RSS are whole-process figures; the child reports the peak after building the graphs and at the end.
Finished sizes already in OUT are skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DLPFC = HERE.parents[1] / "shared" / "data" / "dlpfc_151673_5000genes.h5ad"


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KiB / 10^6, as every table here


def _commit() -> str:
    """The code measured: short hash, ``+dirty`` when the package or benchmarks have local changes."""
    git = ["git", "-C", str(HERE.parent)]
    head = subprocess.run(
        [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run([*git, "diff", "--quiet", "HEAD", "--", "src", "benchmarks"]).returncode != 0
    return head + "+dirty" * dirty


def tiled_dlpfc(n: int):
    """Copies of 151673 side by side (shifted by more than the largest radius) up to ``n`` spots."""
    import anndata as ad
    import numpy as np

    base = ad.read_h5ad(DLPFC)
    copies = -(-n // base.n_obs)
    width_px = np.ptp(base.obsm["spatial"][:, 0]) * 1.2
    width_col = (int(base.obs["array_col"].max()) // 2 + 10) * 2  # even: keeps the hex parity
    tiles = []
    for i in range(copies):
        tile = base.copy()
        tile.obs_names = [f"{name}-{i}" for name in base.obs_names]
        tile.obs["array_col"] = base.obs["array_col"].to_numpy() + i * width_col  # not index-aligned
        tile.obsm["spatial"] = base.obsm["spatial"] + np.array([i * width_px, 0.0])
        tiles.append(tile)
    adata = ad.concat(tiles, merge="same")
    return adata[:n].copy()


def child(n: int, source: str, device: str, batch_size: int | None) -> dict:
    """Run the whole pipeline on N spots in this process; return the measurements."""
    start = time.perf_counter()
    commit = _commit()  # the code this process imports, before anything can change on disk
    from sklearn.metrics import adjusted_rand_score

    import tsstc_sc

    if source == "synthetic":
        adata = tsstc_sc.datasets.synthetic_tissue(n, layout="single_cell", random_state=0)
        truth_key = "domain"
    else:
        adata = tiled_dlpfc(n)
        truth_key = "ground_truth"
    data_s = time.perf_counter() - start
    k = adata.obs[truth_key].nunique()
    t = time.perf_counter()
    tsstc_sc.pp.spatial_scales(adata)
    graphs_s = time.perf_counter() - t
    peak_graphs = _peak_gb()
    tsstc_sc.tl.tsstc(adata, n_clusters=k, device=device, batch_size=batch_size, progress_bar=False)
    timings = {key: float(v) for key, v in adata.uns["tsstc"]["timings"].items()}
    epochs = int(adata.uns["tsstc"]["params"]["epochs_run"])
    known = adata.obs[truth_key].notna().to_numpy()
    ari = adjusted_rand_score(adata.obs[truth_key][known].astype(str), adata.obs["tsstc"][known].astype(str))
    return {
        "source": source,
        "n": int(adata.n_obs),
        "batch_size": batch_size,
        "device": device,
        "threads": int(os.environ.get("OMP_NUM_THREADS", "0")) or None,
        "k": int(k),
        "ari": round(float(ari), 4),
        "data_s": round(data_s, 2),
        "graphs_s": round(graphs_s, 2),
        "preprocessing_s": round(timings["graphs_and_preprocessing"], 2),  # graphs reused: preprocessing
        "train_s": round(timings["training"], 2),
        "epoch_s": round(timings["training"] / epochs, 3),
        "cluster_s": round(timings["clustering"], 2),
        "refine_s": round(timings.get("refinement", 0.0), 2),
        "wall_s": round(time.perf_counter() - start, 2),
        "peak_rss_graphs_gb": round(peak_graphs, 3),
        "peak_rss_stage_gb": {
            key: round(float(v), 3) for key, v in adata.uns["tsstc"].get("peak_rss_gb", {}).items()
        },
        "peak_rss_gb": round(_peak_gb(), 3),
        "commit": commit,
    }


def run(out: Path, sizes: list[int], source: str, device: str, threads: int, batch_size: int | None) -> None:
    done = set()
    if out.exists():
        rows = [r for r in map(json.loads, out.read_text().splitlines()) if "error" not in r]
        done = {(r["source"], r["n"], r.get("batch_size"), r["threads"]) for r in rows}
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    for n in sizes:
        if (source, n, batch_size, threads) in done:
            print(f"{source} N={n}: already in {out}")
            continue
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, __file__, "--child", str(n), "--source", source, "--device", device]
            + ([] if batch_size is None else ["--batch-size", str(batch_size)]),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        last = ""
        for line in proc.stderr:  # stream the child's log (warnings, errors); keep the last line
            sys.stderr.write(line)
            last = line.strip() or last
        stdout = proc.stdout.read()
        if proc.wait() == 0:
            row = json.loads(stdout.strip().splitlines()[-1])
        else:
            error = last if "Error" in last else f"exit {proc.returncode}"
            row = {"source": source, "n": n, "batch_size": batch_size, "device": device, "error": error}
        row["process_s"] = round(time.perf_counter() - start, 2)
        row["date"] = time.strftime("%Y-%m-%d")
        print(json.dumps(row))
        with out.open("a") as f:
            f.write(json.dumps(row) + "\n")


def load(paths: list[Path]) -> list[dict]:
    """Finished runs; ``mode`` names the data, the training (full batch or tile size) and the threads."""
    rows = [r for p in paths for r in map(json.loads, p.read_text().splitlines()) if "error" not in r]
    for r in rows:
        batch = r.get("batch_size")
        training = "full batch" if batch is None else f"tiles of {batch:,}"
        threads = r["threads"]
        r["mode"] = f"{r['source']}, {training}, {threads} thread{'s' * (threads > 1)}"
    return rows


def slope(rows: list[dict], key: str, lo: int = 20000) -> float | None:
    """Least-squares slope of log(key) against log(N) for N >= lo (None with fewer than two sizes)."""
    import numpy as np

    pts = [(r["n"], r[key]) for r in rows if r["n"] >= lo and r[key] > 0]
    if len({n for n, _ in pts}) < 2:
        return None
    x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(np.polyfit(x, y, 1)[0])


def table(paths: list[Path]) -> str:
    rows = sorted(load(paths), key=lambda r: (r["mode"], r["n"]))
    head = "| data, training | N | ARI | graphs | preprocessing | training (per epoch) | clustering | wall | peak RSS |"
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        lines.append(
            f"| {r['mode']} | {r['n']:,} | {r['ari']:.3f} | {r['graphs_s']:.1f} s | {r['preprocessing_s']:.1f} s "
            f"| {r['train_s']:.1f} s ({r['epoch_s']:.2f} s) | {r['cluster_s']:.1f} s | {r['wall_s']:.0f} s "
            f"| {r['peak_rss_gb']:.2f} GB |"
        )
    for mode in sorted({r["mode"] for r in rows}):
        sub = [r for r in rows if r["mode"] == mode]
        fits = {key: slope(sub, key) for key in ("peak_rss_gb", "wall_s", "epoch_s")}
        text = (
            ", ".join(f"{key} {v:.2f}" for key, v in fits.items() if v is not None)
            or "fewer than two sizes >= 20k"
        )
        lines.append(f"\nLog-log slope ({mode}, N >= 20,000): {text}.")
    return "\n".join(lines)


def plot(fig_path: Path, paths: list[Path]) -> None:
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    rows = load(paths)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), layout="constrained")
    for mode in sorted({r["mode"] for r in rows}):
        sub = sorted((r for r in rows if r["mode"] == mode), key=lambda r: r["n"])
        n = [r["n"] for r in sub]
        axes[0].loglog(n, [r["wall_s"] for r in sub], "o-", label=mode)
        axes[1].loglog(n, [r["peak_rss_gb"] for r in sub], "o-", label=mode)
    for a, label in zip(axes, ["wall time (s)", "peak RSS (GB)"], strict=True):
        a.yaxis.set_major_formatter(mpl.ticker.ScalarFormatter())
        a.yaxis.set_minor_formatter(mpl.ticker.NullFormatter())
        a.set_xlabel("cells / spots")
        a.set_ylabel(label)
        a.grid(which="both", alpha=0.3)
    axes[0].legend(frameon=False, loc="lower right", fontsize="small")
    fig.savefig(fig_path, dpi=110)


def write_docs(paths: list[Path]) -> None:
    """The table between the ``scaling`` markers of docs/benchmarks.md, the figure in docs/_static."""
    docs = HERE.parent / "docs"
    plot(docs / "_static" / "scaling.png", paths)
    page = (docs / "benchmarks.md").read_text()
    start, end = "<!-- scaling:start -->", "<!-- scaling:end -->"
    head, tail = page.split(start)[0], page.split(end)[1]
    (docs / "benchmarks.md").write_text(f"{head}{start}\n{table(paths)}\n{end}{tail}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="*", type=Path)
    p.add_argument("--sizes", nargs="*", type=int, default=[5000, 20000, 50000, 100000, 250000])
    p.add_argument("--source", choices=["synthetic", "dlpfc"], default="synthetic")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--batch-size", type=int, default=None, help="mini-batch training with tiles of this many spots"
    )
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    p.add_argument("--table", action="store_true", help="print the markdown table of the given files")
    p.add_argument("--plot", type=Path, help="write the log-log figure of the given files")
    p.add_argument("--docs", action="store_true", help="write the table and figure into docs/")
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.source, args.device, args.batch_size)))
    elif args.table:
        print(table(args.paths))
    elif args.plot:
        plot(args.plot, args.paths)
    elif args.docs:
        write_docs(args.paths)
    else:
        run(args.paths[0], args.sizes, args.source, args.device, args.threads, args.batch_size)


if __name__ == "__main__":
    main()
