"""How often the gene graph joins two spots of the same annotated domain, all genes vs reduced features.

usage: python benchmarks/gene_graph_agreement.py DATA.h5ad [...] [--n-pcs 50]
The model's own preprocessing (defaults) and gene graph (15 neighbours), with cosines on all genes
(the scaffold) and on the top ``--n-pcs`` principal components (``gene_graph_pcs``), the latter also
through the path taken above 20,000 spots (approximate search), forced here on the small data. Labels
(``obs['ground_truth']``) are used only to score the edges between labelled spots.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import anndata as ad
import numpy as np
import scipy.sparse as sp

from tsstc_sc import _gene_graph
from tsstc_sc._config import TSstcConfig
from tsstc_sc._gene_graph import gene_knn_graph
from tsstc_sc._preprocessing import preprocess_as_configured


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
    exact_limit = _gene_graph.EXACT_MAX_OBS
    print(f"| data | chance | all genes | {args.n_pcs} components | the same, large-data path |")
    print("|---|---|---|---|---|")
    for path in args.data:
        adata = ad.read_h5ad(path)
        truth = adata.obs["ground_truth"]
        known, labels = truth.notna().to_numpy(), truth.astype(str).to_numpy()
        expression = preprocess_as_configured(sp.csr_matrix(adata.X), np.asarray(adata.var_names), config)
        shares = truth.value_counts(normalize=True).to_numpy()
        cells = []
        for n_pcs, limit in ((None, exact_limit), (args.n_pcs, exact_limit), (args.n_pcs, 0)):
            _gene_graph.EXACT_MAX_OBS = limit  # 0: the large-data path
            graph = gene_knn_graph(expression.x, config.gene_neighbors, n_pcs=n_pcs)
            cells.append(f"{same_domain_fraction(graph, labels, known):.3f}")
        print(f"| {path.stem} | {np.sum(shares**2):.2f} | {' | '.join(cells)} |", flush=True)


if __name__ == "__main__":
    main()
