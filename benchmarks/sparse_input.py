"""Where a sparse GCN input pays: the first layer's forward and backward pass, dense against sparse.

usage: python benchmarks/sparse_input.py [--spots 3639] [--genes 3000] [--width 640] [--threads 2]
                                         [--densities 0.05 0.1 0.15 0.2 0.3] [--repeats 6]

``X`` (spots x genes, random nonzeros) times the views' concatenated first-layer weights (``width`` =
128 x views; 640 for four scales and the gene view), then the weights' gradient, as ``tl.tsstc``
trains: a dense tensor, or the package's ``SparseOperator``. Prints one JSON line per density with the
median milliseconds of each. ``SPARSE_X_DENSITY`` in ``_model/_training.py`` sits below the crossover.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import scipy.sparse as sp
import torch
from harness import machine  # benchmarks/ is the script's folder, hence on sys.path

from tsstc_sc._model._graph_ops import SparseOperator


def _median_ms(step, repeats: int) -> float:
    step()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000, 1)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--spots", type=int, default=3639)
    p.add_argument("--genes", type=int, default=3000)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--densities", type=float, nargs="+", default=[0.05, 0.1, 0.15, 0.2, 0.3])
    p.add_argument("--repeats", type=int, default=6)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(args.width, args.genes, generator=generator) * args.genes**-0.5
    grad = torch.randn(args.spots, args.width, generator=generator)
    for density in args.densities:
        x = sp.random(args.spots, args.genes, density=density, format="csr", dtype=np.float32, random_state=1)
        inputs = {
            "dense": torch.from_numpy(x.toarray()),
            "sparse": SparseOperator.from_scipy(x, torch.device("cpu")),
        }

        def step(x_in):
            w = weight.clone().requires_grad_()
            (x_in @ w.T).backward(grad)

        row = {
            "spots": args.spots,
            "genes": args.genes,
            "width": args.width,
            "density": density,
            "threads": args.threads,
            "machine": machine(),
            **{
                f"{name}_ms": _median_ms(lambda x_in=x_in: step(x_in), args.repeats)
                for name, x_in in inputs.items()
            },
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
