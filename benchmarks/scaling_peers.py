"""A peer on the scaling benchmark's synthetic sections, with a time limit: time, memory, or how it died.

usage: python benchmarks/scaling_peers.py OUT.jsonl --sizes 10000 25000 50000 [--peer graphst]
                                          [--threads 2] [--timeout 600]
       python benchmarks/scaling_peers.py --table OUT.jsonl SCALING.jsonl   (side by side with tsstc-sc)

The section is ``datasets.synthetic_tissue(N, layout="single_cell", random_state=0)``, the same as
``scaling.py`` uses, written to a temporary .h5ad and given to the peer's runner in its own virtual
environment (``benchmarks/peers``; the domains are hidden from the peer and used only to score). The
peer runs as one process under ``--timeout``; its wall time and peak RSS come from ``os.wait4``, so
they are recorded whether it finishes, runs out of time or is killed (e.g. for memory).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEERS = HERE / "peers"
#: peer -> (method, runner, the variant reported: declared before any run, never chosen by its ARI)
RUNNERS = {"graphst": ("GraphST", "run_graphst.py", "tied GMM + refine")}


def run_peer(runner: list[str], env: dict, timeout: float) -> tuple[int, float, float, str]:
    """Exit status, wall seconds, peak RSS (GB) and stdout of one process, killed after ``timeout``."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(
            runner, stdout=out, stderr=subprocess.DEVNULL, env=env, start_new_session=True
        )
        status, usage = None, None
        while status is None:
            pid, raw, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                status = os.waitstatus_to_exitcode(raw)
            elif time.perf_counter() - start > timeout:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                time.sleep(1)
        proc.returncode = status  # reaped by wait4 already
        out.seek(0)
        return status, time.perf_counter() - start, usage.ru_maxrss / 1e6, out.read()


def run(out: Path, sizes: list[int], peer: str, threads: int, timeout: float) -> None:
    import tsstc_sc

    method, script, variant = RUNNERS[peer]
    python = PEERS / ".venvs" / peer / "bin" / "python"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"synthetic_{n}.h5ad"
            tsstc_sc.datasets.synthetic_tissue(n, layout="single_cell", random_state=0).write_h5ad(path)
            runner = [str(python), str(PEERS / script), str(path), "--seed", "0", "--truth", "domain"]
            status, wall, peak, stdout = run_peer(runner, env, timeout)
        row = {"method": method, "n": n, "threads": threads, "timeout_s": timeout}
        lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
        reported = [r for r in lines if r.get("variant") == variant]
        if status == 0 and reported:
            row |= {"status": "finished", "ari": reported[0].get("ari"), "variant": variant}
        elif status == -signal.SIGKILL and wall > timeout:
            row["status"] = f"stopped at the {timeout:.0f} s limit"
        elif status == -signal.SIGKILL:
            row["status"] = "killed (SIGKILL: out of memory)"
        else:
            error = lines[-1].get("error", "") if lines else ""
            row["status"] = f"failed (exit {status}): {error.splitlines()[-1] if error else 'no output'}"
        row |= {"wall_s": round(wall, 1), "peak_rss_gb": round(peak, 3), "date": time.strftime("%Y-%m-%d")}
        print(json.dumps(row), flush=True)
        with out.open("a") as f:
            f.write(json.dumps(row) + "\n")


def table(peer_path: Path, ours_path: Path) -> str:
    """Markdown: for every N a peer was run at, its row and tsstc-sc's full-batch run with the same threads."""
    peers = [json.loads(line) for line in peer_path.read_text().splitlines()]
    ours = [json.loads(line) for line in ours_path.read_text().splitlines()]
    lines = [
        "| N | threads | method | outcome | ARI | wall | peak RSS |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in sorted(peers, key=lambda r: (r["n"], r["method"])):
        mine = [
            r for r in ours
            if r.get("n") == p["n"] and r.get("threads") == p["threads"] and r.get("batch_size") is None
            and r.get("source") == "synthetic" and "error" not in r
        ]  # fmt: skip
        for r in mine[-1:]:
            lines.append(
                f"| {p['n']:,} | {p['threads']} | tsstc-sc | finished | {r['ari']:.3f} | {r['wall_s']:.0f} s "
                f"| {r['peak_rss_gb']:.2f} GB |"
            )
        ari = f"{p['ari']:.3f}" if p.get("ari") is not None else "-"
        lines.append(
            f"| {p['n']:,} | {p['threads']} | {p['method']} | {p['status']} | {ari} | {p['wall_s']:.0f} s "
            f"| {p['peak_rss_gb']:.2f} GB |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", type=Path)
    p.add_argument("--sizes", nargs="*", type=int, default=[10000, 25000, 50000])
    p.add_argument("--peer", choices=sorted(RUNNERS), default="graphst")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--table", action="store_true", help="side-by-side table of PEERS.jsonl and SCALING.jsonl")
    args = p.parse_args()
    if args.table:
        print(table(*args.paths))
    else:
        run(args.paths[0], args.sizes, args.peer, args.threads, args.timeout)


if __name__ == "__main__":
    main()
