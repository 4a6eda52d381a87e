"""The spatial vote: none, a plurality vote (the rule before 2026-11-26) and the packaged strict majority.

usage: python benchmarks/spatial_vote.py DATA.h5ad SEED [SEED ...] >> OUT.jsonl
Trains ``tl.tsstc`` with the defaults but ``refine_labels=False`` (snapshot vote included), then
applies each vote to the same domains over the smallest spatial scale. One JSON line per seed: ARI of
each and the share of spots each vote relabels. Labels (``obs['ground_truth']``) are used only to score.
Set ``OMP_NUM_THREADS=1 MKL_NUM_THREADS=1`` for the published rows.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import scipy.sparse as sp
from sklearn.metrics import adjusted_rand_score

import tsstc_sc
from tsstc_sc._clustering import keeps_every_domain, neighbourhood_votes, spatial_majority_vote


def plurality_vote(labels: np.ndarray, adjacency: sp.csr_matrix) -> np.ndarray:
    """The most frequent label of the closed neighbourhood (own label on ties), as before 2026-11-26."""
    votes = neighbourhood_votes(labels, adjacency)
    votes[np.arange(len(labels)), labels] += 0.5
    voted, k = votes.argmax(axis=1), votes.shape[1]
    return labels if keeps_every_domain(labels, k) and not keeps_every_domain(voted, k) else voted


def main() -> None:
    path, seeds = Path(sys.argv[1]), [int(s) for s in sys.argv[2:]]
    for seed in seeds:
        adata = ad.read_h5ad(path)
        truth = adata.obs["ground_truth"]
        known, k = truth.notna().to_numpy(), truth.nunique()
        tsstc_sc.tl.tsstc(adata, n_clusters=k, random_state=seed, refine_labels=False, progress_bar=False)
        labels = adata.obs["tsstc"].cat.codes.to_numpy()
        smallest = adata.obsp[f"{adata.uns['tsstc_scales']['scale_keys'][0]}_connectivities"]
        votes = {
            "plurality": plurality_vote(labels, smallest),
            "strict": spatial_majority_vote(labels, smallest),
        }
        row = {"data": path.name, "seed": seed}
        for name, voted in {"none": labels, **votes}.items():
            row[name] = round(float(adjusted_rand_score(truth[known].astype(str), voted[known])), 4)
        row |= {f"moved_{name}": round(float(np.mean(voted != labels)), 4) for name, voted in votes.items()}
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
