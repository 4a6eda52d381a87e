"""One process of a ``torchrun`` data-parallel TSstc run (used by tests/test_distributed.py).

usage: torchrun --standalone --nproc_per_node 2 tests/scripts/ddp_worker.py IN.h5ad OUT.csv N_CLUSTERS BATCH_SIZE
"""

import sys

import anndata as ad
import torch.distributed as dist

import tsstc_sc

dist.init_process_group("gloo")
adata = ad.read_h5ad(sys.argv[1])
tsstc_sc.tl.tsstc(
    adata, n_clusters=int(sys.argv[3]), batch_size=int(sys.argv[4]), device="cpu", progress_bar=False
)
if dist.get_rank() == 0:
    adata.obs[["tsstc"]].to_csv(sys.argv[2])
dist.destroy_process_group()
