"""squidpy niches, ``calculate_niche(flavor='cellcharter')``, on one labelled .h5ad (see README.md).

usage: .venvs/squidpy/bin/python run_squidpy.py PATH.h5ad --seed S [--k K] [--truth ground_truth]

normalize_total + log1p (all genes), ``sq.gr.spatial_neighbors`` (Visium: ``coord_type='grid',
n_neighs=6``; otherwise the generic 6-nearest-neighbour graph), then ``sq.gr.calculate_niche`` with
its documented cellcharter defaults (distance 3, mean aggregation, PCA of the concatenated 0..3-hop
aggregates since no ``use_rep``), ``n_components=K`` and ``random_state=seed``. Variants: its own GMM
(full covariance, init 'random_from_data') and a tied GMM at K on the same niche features (the PCA
embedding calculate_niche clusters, captured by wrapping squidpy's GMM helper).
"""

import time

START = time.perf_counter()

from _common import FAIR_STARTS, FAIR_STARTS_NOTE, Context, Variant, main, tied_gmm  # noqa: E402


def fit(ctx: Context) -> list[Variant]:
    import numpy as np
    import scanpy as sc
    import squidpy as sq
    from squidpy.gr import _niche

    adata = ctx.adata
    adata.var_names_make_unique()
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    if ctx.visium:
        sq.gr.spatial_neighbors(adata, coord_type="grid", n_neighs=6)
        graph = "Visium grid graph (coord_type='grid', n_neighs=6)"
    else:
        sq.gr.spatial_neighbors(adata, coord_type="generic", n_neighs=6)
        graph = "no Visium grid: generic 6-nearest-neighbour graph"

    # calculate_niche keeps its niche features internal: record what it hands to its GMM
    captured, failed = [], []
    own_gmm = _niche._get_GMM_clusters

    def capture(embedding, n_components, random_state):
        captured.append(embedding)
        try:
            return own_gmm(embedding, n_components, random_state)
        except ValueError as err:  # e.g. a collapsed component: that variant fails, the tied one stands
            failed.append(f"squidpy's own GMM failed: {type(err).__name__}: {err}")
            return np.zeros(embedding.shape[0], dtype=int)

    _niche._get_GMM_clusters = capture
    try:
        sq.gr.calculate_niche(adata, flavor="cellcharter", n_components=ctx.k, random_state=ctx.seed)
    finally:
        _niche._get_GMM_clusters = own_gmm
    if len(captured) != 1:
        raise RuntimeError(f"expected one niche embedding from calculate_niche, got {len(captured)}")
    features = captured[0]
    ctx.notes.append(graph)
    feat_note = f"niche features: {features.shape[1]} PCs of the 0..3-hop mean aggregates"
    return [
        Variant(
            "cellcharter + own GMM",
            None if failed else adata.obs["cellcharter_niche"].to_numpy(),
            ["squidpy's GaussianMixture (full covariance, init_params='random_from_data')", feat_note],
            error=failed[0] if failed else None,
        ),
        Variant(
            "cellcharter + tied GMM",
            tied_gmm(features, ctx.k, ctx.seed),
            ["sklearn GaussianMixture(covariance_type='tied') on the niche features", feat_note],
        ),
        Variant(
            "cellcharter + tied GMM, 5 starts",
            tied_gmm(features, ctx.k, ctx.seed, FAIR_STARTS),
            [FAIR_STARTS_NOTE, feat_note],
        ),
    ]


if __name__ == "__main__":
    main("squidpy-cellcharter", "squidpy", fit, START)
