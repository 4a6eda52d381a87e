"""Time the package's tied Gaussian mixture with the BLAS thread count the caller had and with one.

usage: python benchmarks/blas_threads.py [--sizes 3639 200000] [--repeats 3]

Points: N x 20 Gaussian noise with two shifted thirds, 8 components, 5 starts (``_clustering.gmm``'s
settings for K = 7 with one extra component). Prints one JSON line per size: the median seconds of
``--repeats`` fits with the BLAS threads left as they are and with one, and whether the labels agree.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_info, threadpool_limits


def fit_seconds(x: np.ndarray, threads: int | None) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    with threadpool_limits(limits=threads, user_api="blas"):
        labels = GaussianMixture(8, covariance_type="tied", n_init=5, random_state=0).fit_predict(x)
    return time.perf_counter() - start, labels


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", type=int, nargs="+", default=[3639, 200_000])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    blas = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    rng = np.random.default_rng(0)
    for n in args.sizes:
        x = rng.normal(size=(n, 20))
        x[: n // 3] += 2
        x[n // 3 : 2 * n // 3, 3] += 3
        row = {"n": n, "blas_threads_default": blas}
        labels = {}
        for name, threads in (("default", None), ("one", 1)):
            runs = [fit_seconds(x, threads) for _ in range(args.repeats)]
            row[f"seconds_{name}"] = round(statistics.median(t for t, _ in runs), 2)
            labels[name] = runs[0][1]
        row["same_labels"] = bool((labels["default"] == labels["one"]).all())
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
