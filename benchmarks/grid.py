"""Run ``tsstc_slice.py`` over datasets x configurations x seeds, several processes at a time.

usage: python benchmarks/grid.py GRID.json OUT.jsonl [--jobs 4] [--device cpu] [--threads 1]
GRID.json: {"data": [paths], "seeds": [0, 1, 2], "configs": {"name": {"param": value, ...}, ...}}
Each run is a whole process (its own wall time and peak RSS); results append to OUT.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run_one(path: str, name: str, params: dict, seed: int, device: str, threads: int) -> dict:
    cmd = [sys.executable, str(HERE / "tsstc_slice.py"), path, "--device", device, "--seed", str(seed)]
    if params:
        cmd += ["--param", *[f"{k}={v!r}" for k, v in params.items()]]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        return {"config": name, "data": Path(path).name, "seed": seed, "error": proc.stderr[-2000:]}
    return {"config": name, **json.loads(lines[-1])}


def grid_tasks(grid: dict) -> list[tuple[str, str, dict, int]]:
    """(path, configuration name, parameters, seed) for every cell of a grid file."""
    return [
        (path, name, params, seed)
        for name, params in grid["configs"].items()
        for path in grid["data"]
        for seed in grid["seeds"]
    ]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("grid")
    p.add_argument("out")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    grid = json.loads(Path(args.grid).read_text())
    tasks = grid_tasks(grid)
    with ThreadPoolExecutor(args.jobs) as pool, Path(args.out).open("a") as out:
        futures = [pool.submit(run_one, *t, args.device, args.threads) for t in tasks]
        for fut in futures:
            result = fut.result()
            out.write(json.dumps(result) + "\n")
            out.flush()
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
