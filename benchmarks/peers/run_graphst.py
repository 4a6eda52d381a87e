"""GraphST (graphst-modern) on one labelled .h5ad: JSON line per variant (see README.md).

usage: .venvs/graphst/bin/python run_graphst.py PATH.h5ad --seed S [--k K] [--truth ground_truth]

Documented Visium pipeline (GraphST DLPFC tutorial): ``GraphST.GraphST(adata, device, random_seed)``
(its own preprocessing: HVG 3000 seurat_v3, normalise, log1p, scale), ``.train()``, then its
clustering convention (PCA 20 of ``obsm['emb']`` with random_state 42, mclust EEE) with and without
the radius-50 label refinement. mclust is replaced by a tied GMM (no R here), fitted once
(as published) and as the best of five starts (as tsstc-sc's own mixture).
"""

import time

START = time.perf_counter()

from _common import FAIR_STARTS, FAIR_STARTS_NOTE, TIED_GMM_NOTE, Context, Variant, main, tied_gmm  # noqa: E402


def fit(ctx: Context) -> list[Variant]:
    import torch
    from GraphST import GraphST
    from GraphST.utils import refine_label
    from sklearn.decomposition import PCA

    adata = ctx.adata
    adata.var_names_make_unique()
    if not ctx.visium:
        ctx.notes.append(
            "no Visium grid: GraphST default datatype='10X' graph (3 nearest spots) on obsm['spatial'], "
            "dense N x N matrices (memory grows as N^2)"
        )
    model = GraphST.GraphST(adata, device=torch.device("cpu"), random_seed=ctx.seed)
    adata = model.train()
    # GraphST's clustering convention: PCA(20, random_state=42) of the embedding, then mclust EEE
    emb_pca = PCA(n_components=20, random_state=42).fit_transform(adata.obsm["emb"].copy())
    variants = []
    for name, starts, note in (
        ("tied GMM", 1, TIED_GMM_NOTE),
        ("tied GMM, 5 starts", FAIR_STARTS, FAIR_STARTS_NOTE),
    ):
        adata.obs["domain"] = tied_gmm(emb_pca, ctx.k, ctx.seed, starts).astype(str)
        refined = refine_label(adata, radius=50, key="domain")
        variants += [
            Variant(name, adata.obs["domain"].to_numpy(), [note]),
            Variant(f"{name} + refine", refined, [note, "GraphST refine_label radius=50"]),
        ]
    return variants


if __name__ == "__main__":
    main("GraphST", "graphst-modern", fit, START)
