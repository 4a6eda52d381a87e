"""BANKSY (pybanksy) in domain mode on one labelled .h5ad: JSON line per variant (see README.md).

usage: .venvs/banksy/bin/python run_banksy.py PATH.h5ad --seed S [--k K] [--truth ground_truth]

Documented pipeline (pybanksy README and example notebooks): ``filter_utils.normalize_total``
(library size to the median, no log), 2000 HVGs with ``filter_utils.filter_hvg(flavor='seurat')``
(selected on a log1p copy; the BANKSY matrix uses the normalised, unlogged counts),
``initialize_banksy`` (k_geom 15, scaled_gaussian decay, max_m 1), ``generate_banksy_matrix`` with
lambda 0.8 (domain segmentation), ``pca_umap`` with 20 PCs. Variants: a tied GMM at K on the 20
PCs (BANKSY's mclust EEE option, without R; leiden-free) and BANKSY's own Leiden partition with its
resolution search for K clusters (``run_Leiden_partition(max_labels=K)``).
"""

import time

START = time.perf_counter()

from _common import FAIR_STARTS, FAIR_STARTS_NOTE, TIED_GMM_NOTE, Context, Variant, main, tied_gmm  # noqa: E402

LAMBDA = 0.8
K_GEOM = 15
PCA_DIMS = 20
N_HVG = 2000
DECAY = "scaled_gaussian"
MAX_M = 1


def fit(ctx: Context) -> list[Variant]:
    from banksy.cluster_methods import run_Leiden_partition
    from banksy.embed_banksy import generate_banksy_matrix
    from banksy.initialize_banksy import initialize_banksy
    from banksy_utils import filter_utils
    from banksy_utils.umap_pca import pca_umap

    adata = ctx.adata
    adata.var_names_make_unique()
    adata.X = adata.X.astype("float64")
    adata = filter_utils.normalize_total(adata)
    if adata.n_vars > N_HVG:
        adata, _ = filter_utils.filter_hvg(adata, n_top_genes=N_HVG, flavor="seurat")
        adata = adata.copy()
    else:
        ctx.notes.append(f"only {adata.n_vars} genes: all used (no HVG selection)")
    coord_keys = ("x", "y", "spatial")
    banksy_dict = initialize_banksy(
        adata,
        coord_keys,
        num_neighbours=K_GEOM,
        nbr_weight_decay=DECAY,
        max_m=MAX_M,
        plt_edge_hist=False,
        plt_nbr_weights=False,
        plt_agf_angles=False,
        plt_theta=False,
    )
    banksy_dict, _ = generate_banksy_matrix(adata, banksy_dict, [LAMBDA], MAX_M)
    pca_umap(banksy_dict, pca_dims=[PCA_DIMS], plt_remaining_var=False, add_umap=False)
    pcs = banksy_dict[DECAY][LAMBDA]["adata"].obsm[f"reduced_pc_{PCA_DIMS}"]
    gmm = tied_gmm(pcs, ctx.k, ctx.seed)

    results, _ = run_Leiden_partition(
        banksy_dict,
        resolutions=[],
        num_nn=50,
        num_iterations=-1,
        partition_seed=ctx.seed,
        match_labels=False,
        max_labels=ctx.k,
    )
    leiden = results.iloc[0]
    leiden_note = f"BANKSY Leiden (num_nn 50) at the resolution its search found: {leiden['resolution']:.2f}"
    params = f"lambda {LAMBDA}, k_geom {K_GEOM}, {PCA_DIMS} PCs, max_m {MAX_M}"
    ctx.notes.append(params)
    return [
        Variant("tied GMM (leiden-free)", gmm, [TIED_GMM_NOTE]),
        Variant(
            "tied GMM, 5 starts (leiden-free)",
            tied_gmm(pcs, ctx.k, ctx.seed, FAIR_STARTS),
            [FAIR_STARTS_NOTE],
        ),
        Variant("Leiden, resolution searched to K", leiden["labels"].dense, [leiden_note]),
    ]


if __name__ == "__main__":
    main("BANKSY", "pybanksy", fit, START)
