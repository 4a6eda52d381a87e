"""Mini-batch training on spatial tiles, in one process and data-parallel over two (torchrun, gloo)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

import tsstc_sc
from tsstc_sc._model._minibatch import MIN_TILE_SPOTS, spatial_tiles, with_halo

WORKER = Path(__file__).parent / "scripts" / "ddp_worker.py"


@pytest.fixture(scope="module")
def section():
    return tsstc_sc.datasets.synthetic_tissue(n_spots=1200, n_genes=200, n_domains=4, random_state=3)


def test_tiles_partition_the_section_and_the_halo_covers_the_receptive_field(section):
    tsstc_sc.pp.spatial_scales(section)
    coords = section.obsm["spatial"]
    tiles = spatial_tiles(coords, np.zeros(section.n_obs, dtype=int), 300)
    assert sorted(np.concatenate(tiles).tolist()) == list(range(section.n_obs))
    assert all(150 <= len(t) <= 300 for t in tiles)
    largest = section.obsp["tsstc_r5_connectivities"].tocsr()
    nodes = with_halo(tiles[0], largest, hops=3)
    assert np.array_equal(nodes[: len(tiles[0])], tiles[0])
    reach = np.zeros(section.n_obs, dtype=bool)
    reach[tiles[0]] = True
    for _ in range(3):
        reach |= (largest @ reach.astype(np.float32)) > 0
    assert set(nodes.tolist()) == set(np.flatnonzero(reach).tolist())


@pytest.mark.parametrize(
    ("n", "batch_size", "n_libraries"),
    [(2, 2, 1), (5, 2, 1), (7, 2, 1), (1000, 2, 1), (40, 3, 25), (257, 40, 3), (5000, 999, 2)],
)
def test_tiles_partition_any_section_within_the_batch_size(n, batch_size, n_libraries):
    rng = np.random.default_rng(n)
    tiles = spatial_tiles(rng.random((n, 2)), rng.integers(0, n_libraries, n), batch_size)
    assert sorted(np.concatenate(tiles).tolist()) == list(range(n))
    # two spots at least (the decoder's batch normalisation), so a leftover spot may join a full tile
    assert all(MIN_TILE_SPOTS <= len(t) <= batch_size + MIN_TILE_SPOTS - 1 for t in tiles)


def test_every_tile_spans_the_section(section):
    # compact tiles of a layered section would each hold one or two layers: the negatives of L_R and
    # the decoder's batch statistics would then come from the wrong mix of domains
    coords = section.obsm["spatial"]
    tiles = spatial_tiles(coords, np.zeros(section.n_obs, dtype=int), 300)
    domains = section.obs["domain"].to_numpy()
    for tile in tiles:
        assert set(domains[tile]) == set(domains)
    contiguous = spatial_tiles(coords, np.zeros(section.n_obs, dtype=int), 300, patches=1)
    assert any(set(domains[tile]) != set(domains) for tile in contiguous)


def test_minibatch_is_seeded_and_close_to_full_batch(section):
    full = tsstc_sc.tl.tsstc(section, n_clusters=4, progress_bar=False, copy=True)
    runs = [
        tsstc_sc.tl.tsstc(section, n_clusters=4, batch_size=300, progress_bar=False, copy=True)
        for _ in range(2)
    ]
    np.testing.assert_array_equal(runs[0].obsm["X_tsstc"], runs[1].obsm["X_tsstc"])
    assert runs[0].uns["tsstc"]["params"]["batch_size"] == 300
    truth = section.obs["domain"]
    assert (
        adjusted_rand_score(truth, runs[0].obs["tsstc"]) > adjusted_rand_score(truth, full.obs["tsstc"]) - 0.1
    )
    # the loss is the same objective, estimated tile by tile
    np.testing.assert_allclose(
        runs[0].uns["tsstc"]["loss"]["total"][0], full.uns["tsstc"]["loss"]["total"][0], rtol=0.05
    )


def _torchrun(
    section, tmp_path, batch_size: int, timeout: int, processes: int = 2
) -> subprocess.CompletedProcess:
    """``processes`` ``torchrun`` processes training ``section`` on tiles of ``batch_size`` spots."""
    section.write_h5ad(tmp_path / "in.h5ad")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    cmd += [str(WORKER), str(tmp_path / "in.h5ad"), str(tmp_path / "out.csv"), "4", str(batch_size)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False)


def test_torchrun_two_processes_give_the_single_process_domains(section, tmp_path):
    proc = _torchrun(section, tmp_path, batch_size=300, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = pd.read_csv(tmp_path / "out.csv", index_col=0)["tsstc"].astype(str)
    single = tsstc_sc.tl.tsstc(section, n_clusters=4, batch_size=300, progress_bar=False, copy=True)
    assert adjusted_rand_score(single.obs["tsstc"].astype(str), ddp.loc[section.obs_names]) >= 0.95


def test_torchrun_with_fewer_tiles_than_processes_says_what_to_change(section, tmp_path):
    # two tiles for three processes: the process without a tile used to fail while the others waited
    proc = _torchrun(section, tmp_path, batch_size=section.n_obs - 1, timeout=300, processes=3)
    assert proc.returncode != 0
    assert "2 spatial tile(s) for 3 processes" in proc.stderr
    assert "smaller `batch_size`" in proc.stderr


@pytest.mark.slow
def test_minibatch_on_a_real_slice_is_within_002_ari_of_full_batch():
    import anndata as ad
    from conftest import shared_file

    adata = ad.read_h5ad(shared_file("dlpfc_151673_5000genes.h5ad"))
    known = adata.obs["ground_truth"].notna()
    aris = []
    for batch_size in (None, 1000):
        out = tsstc_sc.tl.tsstc(adata, n_clusters=7, batch_size=batch_size, progress_bar=False, copy=True)
        aris.append(adjusted_rand_score(adata.obs["ground_truth"][known], out.obs["tsstc"][known]))
    assert abs(aris[0] - aris[1]) <= 0.02, aris
