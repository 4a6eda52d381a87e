"""Side-by-side benchmark: tsstc-sc and its peers on every labelled dataset, one whole process per run.

usage: python benchmarks/harness.py [--methods tsstc-sc GraphST ...] [--data PATH ...] [--seeds 0 1 2]
                                    [--out benchmarks/results/harness.csv] [--threads 2]

Each run is a separate process (its own wall time and peak RSS) that prints JSON lines (one per
variant); rows are appended to the CSV and each run's labels are written under
``benchmarks/results/labels/`` for the domain maps. Runs already in the CSV are skipped, so an
interrupted harness resumes where it stopped. Peers run from their own virtual environments
(``benchmarks/peers/setup.sh``); a peer that cannot run is recorded with its error, not dropped.
"""

from __future__ import annotations

import argparse
import csv
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
COLUMNS += ["date", "machine"]


def machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    return f"{os.cpu_count()} cores {cpu}, Python {platform.python_version()}"


def run(method: str, path: Path, seed: int, threads: int, labels_dir: Path) -> list[dict]:
    python, script = METHODS[method]
    labels = labels_dir / f"{method.replace(' ', '_')}_{path.stem}_{seed}.csv"
    cmd = [str(python), str(script), str(path), "--seed", str(seed), "--labels-out", str(labels)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    base = {"method": method, "data": path.name, "seed": seed}
    if not python.exists():
        return [{**base, "error": f"{python} missing: run `bash benchmarks/peers/setup.sh`"}]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if not rows:
        return [{**base, "error": (proc.stderr or f"exit {proc.returncode}, no output")[-1500:]}]
    return [{**base, "variant": "defaults", **row, "method": method} for row in rows]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--methods", nargs="*", default=list(METHODS))
    p.add_argument("--data", nargs="*", type=Path, default=[DATA / name for name in DATASETS])
    p.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    p.add_argument("--out", type=Path, default=HERE / "results" / "harness.csv")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    labels_dir = args.out.parent / "labels"
    labels_dir.mkdir(parents=True, exist_ok=True)
    done = set()
    if args.out.exists():
        with args.out.open() as f:
            done = {(r["method"], r["data"], r["seed"]) for r in csv.DictReader(f) if not r["error"]}
    new_file = not args.out.exists()
    stamp = {"date": date.today().isoformat(), "machine": machine()}
    with args.out.open("a", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
        if new_file:
            writer.writeheader()
        for path in args.data:
            for seed in args.seeds:
                for method in args.methods:
                    if (method, path.name, str(seed)) in done:
                        continue
                    for row in run(method, path, seed, args.threads, labels_dir):
                        row["notes"] = (
                            "; ".join(row.get("notes") or [])
                            if isinstance(row.get("notes"), list)
                            else row.get("notes", "")
                        )
                        writer.writerow({**row, **stamp})
                        print(json.dumps({k: row.get(k) for k in [*COLUMNS[:9], "error"]}), flush=True)
                    f.flush()


if __name__ == "__main__":
    main()
