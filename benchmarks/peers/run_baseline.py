"""Non-spatial scanpy baseline on one labelled .h5ad: one JSON line (see README.md).

usage: .venvs/squidpy/bin/python run_baseline.py PATH.h5ad --seed S [--k K] [--truth ground_truth]

HVG 3000 (seurat_v3 on the raw counts), normalize_total, log1p, scale, PCA 30, tied GMM at K.
No spatial information at all: the floor every spatial method should clear.
"""

import time

START = time.perf_counter()

from _common import FAIR_STARTS, FAIR_STARTS_NOTE, Context, Variant, main, mark_hvg, tied_gmm  # noqa: E402

N_HVG = 3000
N_PCS = 30


def fit(ctx: Context) -> list[Variant]:
    import scanpy as sc

    adata = ctx.adata
    mark_hvg(ctx, N_HVG)
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    if "highly_variable" in adata.var:
        adata = adata[:, adata.var["highly_variable"].to_numpy()].copy()
    sc.pp.scale(adata)
    n_pcs = min(N_PCS, adata.n_vars - 1, adata.n_obs - 1)
    sc.pp.pca(adata, n_comps=n_pcs, random_state=ctx.seed)
    pcs = adata.obsm["X_pca"]
    return [
        Variant(f"PCA {n_pcs} + tied GMM", tied_gmm(pcs, ctx.k, ctx.seed)),
        Variant(
            f"PCA {n_pcs} + tied GMM, 5 starts",
            tied_gmm(pcs, ctx.k, ctx.seed, FAIR_STARTS),
            [FAIR_STARTS_NOTE],
        ),
    ]


if __name__ == "__main__":
    main("scanpy-PCA (non-spatial)", "scanpy", fit, START)
