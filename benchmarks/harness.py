"""Side-by-side benchmark: tsstc-sc and its peers on every labelled dataset, one whole process per run.

usage: python benchmarks/harness.py [--methods tsstc-sc GraphST ...] [--data PATH ...] [--seeds 0 1 2]
                                    [--out benchmarks/results/harness.csv] [--threads 1]
                                    [--timeout 7200]

Each run is a separate process (its own wall time and peak RSS) that prints JSON lines (one per
variant), with the same thread limits for every method; rows are appended to the CSV (with the
thread count) and each run's labels are written beside it, under ``labels/`` for
``harness.csv`` and under ``<csv name>_labels/`` for any other CSV, for the domain maps and the
count of domains found. Runs already in the CSV are skipped, so an interrupted harness resumes where
it stopped; several harness processes may share one CSV (each row is written under a file lock,
and a run another process finished first is not written twice). Peers run from their own virtual
environments (``benchmarks/peers/setup.sh``); a peer that cannot run, crashes or passes
``--timeout`` is recorded with its error, not dropped.
"""

from __future__ import annotations

import argparse
import csv
import fcntl
import json
import os
import platform
import subprocess
import sys
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data"
DATASETS = [
    "dlpfc_151673_5000genes.h5ad",
    "dlpfc_151674_5000genes.h5ad",
    "dlpfc_151510_500genes.h5ad",
    "osmfish_mouse_sscortex.h5ad",
    "mouse_olfactory_bulb_st.h5ad",
]
VENVS = HERE / "peers" / ".venvs"
#: method -> (python, runner script)
METHODS = {
    "tsstc-sc": (Path(sys.executable), HERE / "tsstc_slice.py"),
    "GraphST": (VENVS / "graphst" / "bin" / "python", HERE / "peers" / "run_graphst.py"),
    "STAGATE": (VENVS / "stagate" / "bin" / "python", HERE / "peers" / "run_stagate.py"),
    "BANKSY": (VENVS / "banksy" / "bin" / "python", HERE / "peers" / "run_banksy.py"),
    "squidpy niche": (VENVS / "squidpy" / "bin" / "python", HERE / "peers" / "run_squidpy.py"),
    "PCA + GMM": (VENVS / "squidpy" / "bin" / "python", HERE / "peers" / "run_baseline.py"),
}
COLUMNS = ["method", "variant", "data", "seed", "k", "ari", "nmi", "wall_s", "peak_rss_gb", "notes", "error"]
COLUMNS += ["date", "machine", "threads"]
#: Every library's thread pool, limited alike for every method.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")


def machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    return f"{os.cpu_count()} cores {cpu}, Python {platform.python_version()}"


def labels_dir_for(out: Path) -> Path:
    """Where the runs of the CSV ``out`` keep their labels (``labels/`` beside ``harness.csv``)."""
    return out.parent / ("labels" if out.name == "harness.csv" else f"{out.stem}_labels")


def labels_file(labels_dir: Path, method: str, data: str, seed: int | str) -> Path:
    return labels_dir / f"{method.replace(' ', '_')}_{Path(data).stem}_{seed}.csv"


def run(method: str, path: Path, seed: int, threads: int, labels_dir: Path, timeout: float) -> list[dict]:
    python, script = METHODS[method]
    labels = labels_file(labels_dir, method, path.name, seed)
    cmd = [str(python), str(script), str(path), "--seed", str(seed), "--labels-out", str(labels)]
    env = {**os.environ, **dict.fromkeys(THREAD_VARIABLES, str(threads))}
    base = {"method": method, "data": path.name, "seed": seed}
    if not python.exists():
        return [{**base, "error": f"{python} missing: run `bash benchmarks/peers/setup.sh`"}]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        return [{**base, "error": f"stopped at the {timeout:.0f} s limit (--timeout)"}]
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if not rows:
        return [{**base, "error": (proc.stderr or f"exit {proc.returncode}, no output")[-1500:]}]
    return [{**base, "variant": "defaults", **row, "method": method} for row in rows]


def finished(f) -> set[tuple[str, str, str]]:
    """(method, data, seed) of the runs in the open CSV ``f`` that did not fail; adds missing columns.

    A CSV written before a column was added is rewritten once with the current header (the new
    columns empty in its rows).
    """
    f.seek(0)
    reader = csv.DictReader(f)
    rows = list(reader)
    if reader.fieldnames is None or reader.fieldnames != COLUMNS:
        f.seek(0)
        f.truncate()
        writer = csv.DictWriter(f, COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        f.flush()
    return {(r["method"], r["data"], r["seed"]) for r in rows if not r["error"]}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--methods", nargs="*", choices=list(METHODS), default=list(METHODS))
    p.add_argument("--data", nargs="*", type=Path, default=[DATA / name for name in DATASETS])
    p.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    p.add_argument("--out", type=Path, default=HERE / "results" / "harness.csv")
    p.add_argument("--threads", type=int, default=1, help="thread limit of every library, every method")
    p.add_argument("--timeout", type=float, default=7200, help="seconds before a run is stopped and recorded")
    args = p.parse_args()
    labels_dir = labels_dir_for(args.out)
    labels_dir.mkdir(parents=True, exist_ok=True)
    stamp = {"date": date.today().isoformat(), "machine": machine(), "threads": args.threads}
    with args.out.open("a+", newline="") as f:
        for path in args.data:
            for seed in args.seeds:
                for method in args.methods:
                    key = (method, path.name, str(seed))
                    fcntl.flock(f, fcntl.LOCK_EX)
                    done = finished(f)
                    fcntl.flock(f, fcntl.LOCK_UN)
                    if key in done:
                        continue
                    rows = run(method, path, seed, args.threads, labels_dir, args.timeout)
                    fcntl.flock(f, fcntl.LOCK_EX)
                    if key not in finished(f):  # another harness process may have finished it meanwhile
                        f.seek(0, os.SEEK_END)
                        writer = csv.DictWriter(f, COLUMNS, extrasaction="ignore", lineterminator="\n")
                        for row in rows:
                            row["notes"] = (
                                "; ".join(row.get("notes") or [])
                                if isinstance(row.get("notes"), list)
                                else row.get("notes", "")
                            )
                            writer.writerow({**row, **stamp})
                            print(json.dumps({k: row.get(k) for k in [*COLUMNS[:9], "error"]}), flush=True)
                        f.flush()
                    fcntl.flock(f, fcntl.LOCK_UN)


if __name__ == "__main__":
    main()
