"""Time and peak memory of ``pp.spatial_scales`` on 10^6 spots (a whole process per layout).

usage: python benchmarks/spatial_scales_1m.py {visium,single_cell} [N]
visium: hex grid with array_row/array_col, radii 2,3,4,5 in array units.
single_cell: uniform random cells, unit="nn", default radii (degree ladder 8/12/23/34).
"""

from __future__ import annotations

import json
import resource
import sys
import time

import anndata as ad
import numpy as np
import pandas as pd

import tsstc_sc


def visium_like(n: int) -> ad.AnnData:
    cols = int(np.sqrt(2 * n))
    rows = int(np.ceil(2 * n / cols))
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    keep = ((r + c) % 2 == 0).ravel()
    r, c = r.ravel()[keep][:n], c.ravel()[keep][:n]
    obs = pd.DataFrame({"array_row": r, "array_col": c}, index=pd.RangeIndex(n).astype(str))
    return ad.AnnData(obs=obs, obsm={"spatial": np.c_[c * 50.0, r * 50.0 * np.sqrt(3)]})


def single_cell(n: int) -> ad.AnnData:
    rng = np.random.default_rng(0)
    obs = pd.DataFrame(index=pd.RangeIndex(n).astype(str))
    return ad.AnnData(obs=obs, obsm={"spatial": rng.uniform(0, 10 * np.sqrt(n), size=(n, 2))})


def main() -> None:
    layout = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    adata = (visium_like if layout == "visium" else single_cell)(n)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    tsstc_sc.pp.spatial_scales(adata)
    elapsed = time.perf_counter() - start
    idx = adata.uns["tsstc_scales"]
    print(
        json.dumps(
            {
                "layout": layout,
                "n": n,
                "unit": idx["unit"],
                "radii": idx["radii"].tolist(),
                "mean_degree": np.round(idx["mean_degree"], 2).tolist(),
                "seconds": round(elapsed, 2),
                "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2),
                "rss_before_gb": round(before / 1e6, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
