"""How often the gene graph joins two spots of the same annotated domain, all genes vs reduced features.

usage: python benchmarks/gene_graph_agreement.py DATA.h5ad [...] [--n-pcs 50]
The model's own preprocessing (defaults) and gene graph (15 neighbours), with cosines on all genes
(the default) and on the top ``--n-pcs`` singular components (``gene_graph_pcs``). Labels
(``obs['ground_truth']``) are used only to score the edges between labelled spots.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import anndata as ad
import numpy as np
import scipy.sparse as sp

from tsstc_sc._config import TSstcConfig
from tsstc_sc._gene_graph import gene_knn_graph
from tsstc_sc._preprocessing import preprocess


def same_domain_fraction(graph: sp.csr_matrix, labels: np.ndarray, known: np.ndarray) -> float:
    coo = graph.tocoo()
    both = known[coo.row] & known[coo.col]
    return float(np.mean(labels[coo.row][both] == labels[coo.col][both]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", nargs="+", type=Path)
    p.add_argument("--n-pcs", type=int, default=50)
    args = p.parse_args()
    config = TSstcConfig()
    print(f"| data | chance | all genes | {args.n_pcs} components |\n|---|---|---|---|")
    for path in args.data:
        adata = ad.read_h5ad(path)
        truth = adata.obs["ground_truth"]
        known, labels = truth.notna().to_numpy(), truth.astype(str).to_numpy()
        expression = preprocess(
            sp.csr_matrix(adata.X),
            np.asarray(adata.var_names),
            min_cells=config.min_cells,
            n_top_genes=config.n_top_genes,
            log1p=config.log1p,
            max_value=config.max_value,
        )
        shares = truth.value_counts(normalize=True).to_numpy()
        cells = [
            same_domain_fraction(gene_knn_graph(expression.x, config.gene_neighbors, n_pcs=n), labels, known)
            for n in (None, args.n_pcs)
        ]
        print(f"| {path.stem} | {np.sum(shares**2):.2f} | {cells[0]:.3f} | {cells[1]:.3f} |", flush=True)


if __name__ == "__main__":
    main()
