"""Where a sparse GCN input pays: the first layer's forward and backward pass, dense against sparse.

usage: python benchmarks/sparse_input.py [--spots 3639] [--genes 3000] [--width 640] [--threads 2]
                                         [--densities 0.05 0.1 0.15 0.2 0.3] [--repeats 6]
                                         [--data PATH.h5ad ...]

``X`` (spots x genes, random nonzeros, or with ``--data`` a slice's raw counts preprocessed as
``tl.tsstc`` does) times the views' concatenated first-layer weights (``width`` = 128 x views; 640 for
four scales and the gene view), then the weights' gradient, as ``tl.tsstc`` trains: a dense tensor,
one CSR matrix (``SparseOperator``), or its densest genes dense and the rest CSR
(``ColumnSplitOperator`` at ``DENSE_COLUMN_DENSITY``, what ``tl.tsstc`` uses on the CPU). Prints one
JSON line per matrix with the median milliseconds of each. ``SPARSE_X_DENSITY`` in
``_model/_training.py`` sits below the crossover of dense and sparse.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import anndata as ad
import numpy as np
import scipy.sparse as sp
import torch
from harness import machine  # benchmarks/ is the script's folder, hence on sys.path

from tsstc_sc._config import TSstcConfig
from tsstc_sc._model._graph_ops import ColumnSplitOperator, SparseOperator
from tsstc_sc._model._training import DENSE_COLUMN_DENSITY
from tsstc_sc._preprocessing import preprocess_as_configured


def _median_ms(step, repeats: int) -> float:
    step()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000, 1)


def _slice_input(path: str) -> sp.csr_matrix:
    """A slice's GCN input: its raw counts preprocessed with the default configuration."""
    adata = ad.read_h5ad(path)
    return preprocess_as_configured(
        sp.csr_matrix(adata.X, dtype=np.float32), np.asarray(adata.var_names), TSstcConfig()
    ).x


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--spots", type=int, default=3639)
    p.add_argument("--genes", type=int, default=3000)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--densities", type=float, nargs="+", default=[0.05, 0.1, 0.15, 0.2, 0.3])
    p.add_argument("--repeats", type=int, default=6)
    p.add_argument(
        "--data", nargs="*", default=[], help="slices (.h5ad, raw counts) timed after the random X"
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    matrices = [
        (
            f"random, {density:g} nonzero",
            sp.random(
                args.spots, args.genes, density=density, format="csr", dtype=np.float32, random_state=1
            ),
        )
        for density in args.densities
    ] + [(path.rsplit("/", 1)[-1], _slice_input(path)) for path in args.data]
    generator = torch.Generator().manual_seed(0)
    for name, x in matrices:
        weight = torch.randn(args.width, x.shape[1], generator=generator) * x.shape[1] ** -0.5
        grad = torch.randn(x.shape[0], args.width, generator=generator)
        cpu = torch.device("cpu")
        inputs = {
            "dense": torch.from_numpy(x.toarray()),
            "sparse": SparseOperator.from_scipy(x, cpu),
            "split": ColumnSplitOperator.from_scipy(x, cpu, DENSE_COLUMN_DENSITY),
        }

        def step(x_in, weight=weight, grad=grad):
            w = weight.clone().requires_grad_()
            (x_in @ w.T).backward(grad)

        row = {
            "matrix": name,
            "spots": x.shape[0],
            "genes": x.shape[1],
            "width": args.width,
            "density": round(x.nnz / (x.shape[0] * x.shape[1]), 4),
            "dense_genes": int(inputs["split"].dense.shape[1]),
            "threads": args.threads,
            "machine": machine(),
            **{
                f"{key}_ms": _median_ms(lambda x_in=x_in: step(x_in), args.repeats)
                for key, x_in in inputs.items()
            },
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
