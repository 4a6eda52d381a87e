"""STAGATE (stagate-modern, PyG) on one labelled .h5ad: one JSON line (see README.md).

usage: .venvs/stagate/bin/python run_stagate.py PATH.h5ad --seed S [--k K] [--truth ground_truth]

Documented Visium pipeline (STAGATE DLPFC tutorial): HVG 3000 (seurat_v3 on counts), normalize_total
1e4, log1p, ``Cal_Spatial_Net(rad_cutoff=150)`` (Visium pixel coordinates), ``train_STAGATE`` with its
defaults, mclust EEE on ``obsm['STAGATE']`` -> tied GMM. Data without a Visium grid get a
k-nearest-neighbour graph (``model='KNN', k_cutoff=6``) instead of the 150-pixel radius.
"""

import time

START = time.perf_counter()

from _common import FAIR_STARTS, FAIR_STARTS_NOTE, TIED_GMM_NOTE, Context, Variant, main, mark_hvg, tied_gmm  # noqa: E402

N_HVG = 3000


def fit(ctx: Context) -> list[Variant]:
    import scanpy as sc
    import STAGATE_pyG as STAGATE

    adata = ctx.adata
    mark_hvg(ctx, N_HVG)
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    if ctx.visium:
        STAGATE.Cal_Spatial_Net(adata, rad_cutoff=150, verbose=False)
    else:
        STAGATE.Cal_Spatial_Net(adata, model="KNN", k_cutoff=6, verbose=False)
        ctx.notes.append("no Visium grid: Cal_Spatial_Net(model='KNN', k_cutoff=6) instead of rad_cutoff=150")
    STAGATE.train_STAGATE(adata, random_seed=ctx.seed, device="cpu", verbose=False)
    emb = adata.obsm["STAGATE"]
    return [
        Variant("tied GMM", tied_gmm(emb, ctx.k, ctx.seed), [TIED_GMM_NOTE]),
        Variant("tied GMM, 5 starts", tied_gmm(emb, ctx.k, ctx.seed, FAIR_STARTS), [FAIR_STARTS_NOTE]),
    ]


if __name__ == "__main__":
    main("STAGATE", "stagate-modern", fit, START)
