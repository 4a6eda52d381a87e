from __future__ import annotations

from itertools import pairwise

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import scipy.sparse as sp
from conftest import make_grid, shared_file

import tsstc_sc


def graphs(adata, key="tsstc"):
    names = adata.uns[f"{key}_scales"]["scale_keys"]
    return [adata.obsp[f"{n}_connectivities"] for n in names], [adata.obsp[f"{n}_distances"] for n in names]


def brute_force(coords, radius):
    d = np.linalg.norm(coords[:, None] - coords[None], axis=-1)
    return (d > 0) & (d <= radius + 1e-9), d


def test_matches_brute_force_and_contract(grid):
    tsstc_sc.pp.spatial_scales(grid, radii=[2, 3, 4])
    conns, dists = graphs(grid)
    coords = grid.obs[["array_row", "array_col"]].to_numpy(float)
    for r, conn, dist in zip([2, 3, 4], conns, dists, strict=True):
        expected, d = brute_force(coords, r)
        assert sp.isspmatrix_csr(conn) and conn.dtype == np.float32 and dist.dtype == np.float32
        np.testing.assert_array_equal(conn.toarray() > 0, expected)
        np.testing.assert_allclose(dist.toarray()[expected], d[expected], rtol=1e-6)
        assert (conn != conn.T).nnz == 0
        assert conn.diagonal().sum() == 0
    # strictly nested
    for small, large in pairwise(conns):
        assert ((small > 0).multiply(large > 0)).nnz == small.nnz < large.nnz
    idx = grid.uns["tsstc_scales"]
    assert idx["unit"] == "array"
    np.testing.assert_allclose(idx["mean_degree"], [np.diff(c.indptr).mean() for c in conns])
    assert grid.uns["tsstc_r2_neighbors"]["connectivities_key"] == "tsstc_r2_connectivities"


def test_hex_grid_radius_two_has_eight_neighbours(grid):
    # interior Visium spots: 4 at sqrt(2) and 4 at 2 (paper radius 2 on the array grid)
    tsstc_sc.pp.spatial_scales(grid, radii=[1, 1.5, 2])
    conns, _ = graphs(grid)
    assert conns[0].nnz == 0  # radius 1 is empty on the array grid
    assert np.diff(conns[1].indptr).max() == 4
    assert np.diff(conns[2].indptr).max() == 8


def test_square_array_grid_is_not_taken_for_visium(monkeypatch):
    """Visium HD-like square bins carry array columns too; their array distances are not Visium's."""
    rows, cols = np.meshgrid(np.arange(20), np.arange(20), indexing="ij")
    adata = ad.AnnData(np.ones((400, 2), dtype=np.float32))
    adata.obs["array_row"], adata.obs["array_col"] = rows.ravel(), cols.ravel()
    adata.obsm["spatial"] = np.c_[cols.ravel(), rows.ravel()] * 8.0
    tsstc_sc.pp.spatial_scales(adata)
    assert adata.uns["tsstc_scales"]["unit"] == "nn"
    warnings = []
    monkeypatch.setattr(tsstc_sc._logging, "warning", warnings.append)
    tsstc_sc.pp.spatial_scales(adata, unit="array", key_added="forced")
    assert any("not Visium's hexagonal grid" in w for w in warnings)


def test_other_coordinates_beside_the_visium_grid_are_said_to_be_unused(grid, monkeypatch):
    """With the array grid present, ``unit="auto"`` builds on it: other ``obsm`` coordinates get a warning."""
    grid.obsm["aligned"] = grid.obsm["spatial"][::-1].copy()  # other positions for every spot
    warnings = []
    monkeypatch.setattr(tsstc_sc._logging, "warning", warnings.append)
    tsstc_sc.pp.spatial_scales(grid, spatial_key="aligned", key_added="aligned")
    tsstc_sc.pp.spatial_scales(grid, key_added="plain")
    assert (
        len(warnings) == 1 and "not on `adata.obsm['aligned']`" in warnings[0] and 'unit="nn"' in warnings[0]
    )
    for radius in (2, 3):  # built on the grid, so the same graphs as with the default coordinates
        assert (
            grid.obsp[f"aligned_r{radius}_connectivities"] != grid.obsp[f"plain_r{radius}_connectivities"]
        ).nnz == 0
    tsstc_sc.pp.spatial_scales(grid, spatial_key="aligned", unit="nn", key_added="nn")
    assert len(warnings) == 1  # what the warning suggests builds on those coordinates, silently


def test_copy_leaves_input_untouched(grid):
    before = grid.copy()
    out = tsstc_sc.pp.spatial_scales(grid, copy=True)
    assert isinstance(out, ad.AnnData) and "tsstc_scales" in out.uns
    assert not grid.obsp and set(grid.uns) == set(before.uns)
    assert tsstc_sc.pp.spatial_scales(grid) is None and "tsstc_scales" in grid.uns


def test_h5ad_round_trip(grid, tmp_path):
    tsstc_sc.pp.spatial_scales(grid)
    grid.write_h5ad(tmp_path / "a.h5ad")
    back = ad.read_h5ad(tmp_path / "a.h5ad")
    for a, b in zip(graphs(grid)[0], graphs(back)[0], strict=True):
        assert (a != b).nnz == 0
    np.testing.assert_array_equal(back.uns["tsstc_scales"]["radii"], [2, 3, 4, 5])


def test_libraries_have_no_cross_edges():
    a, b = make_grid(seed=0), make_grid(seed=1)
    both = ad.concat([a, b], label="slide", keys=["A", "B"], index_unique="-")
    both.obsm["spatial"] = np.r_[a.obsm["spatial"], b.obsm["spatial"]]  # same coordinates, stacked
    tsstc_sc.pp.spatial_scales(both, library_key="slide")
    conn = graphs(both)[0][-1].tocoo()
    lib = both.obs["slide"].to_numpy()
    assert conn.nnz > 0 and (lib[conn.row] == lib[conn.col]).all()
    single = make_grid()
    tsstc_sc.pp.spatial_scales(single)
    assert conn.nnz == 2 * graphs(single)[0][-1].nnz


def test_nn_unit_degree_ladder_on_random_points():
    rng = np.random.default_rng(0)
    adata = ad.AnnData(np.zeros((3000, 2), dtype=np.float32))
    adata.obsm["spatial"] = rng.uniform(0, 1000, size=(3000, 2))
    tsstc_sc.pp.spatial_scales(adata)
    idx = adata.uns["tsstc_scales"]
    assert idx["unit"] == "nn"
    np.testing.assert_allclose(idx["mean_degree"], [8, 12, 23, 34], rtol=0.2)


def test_scales_work_in_scanpy_and_squidpy(grid):
    sq = pytest.importorskip("squidpy")
    tsstc_sc.pp.spatial_scales(grid)
    sc.tl.leiden(grid, neighbors_key="tsstc_r3_neighbors", flavor="igraph", n_iterations=2, key_added="lei")
    assert grid.obs["lei"].nunique() > 1
    grid.obs["half"] = pd.Categorical(np.where(grid.obs["array_col"] < 12, "left", "right"))
    sq.gr.nhood_enrichment(grid, cluster_key="half", connectivity_key="tsstc_r3", n_perms=20, seed=0)
    zscore = grid.uns["half_nhood_enrichment"]["zscore"]
    assert zscore[0, 0] > 0 and zscore[0, 1] < 0  # halves are spatially segregated
    # the full obsp key works for every squidpy function (spatial_autocorr does not take the short one)
    grid.obs["left"] = (grid.obs["array_col"] < 12).astype(float)
    sq.gr.spatial_autocorr(grid, connectivity_key="tsstc_r3_connectivities", genes=["left"], attr="obs")
    assert grid.uns["moranI"].loc["left", "I"] > 0.5
    # scanpy tools that read the neighbours' parameters (diffusion map, PAGA, DPT)
    sc.tl.diffmap(grid, neighbors_key="tsstc_r3_neighbors", n_comps=3)
    assert grid.obsm["X_diffmap"].shape == (grid.n_obs, 3)
    degree = np.diff(grid.obsp["tsstc_r3_connectivities"].indptr).mean()
    assert grid.uns["tsstc_r3_neighbors"]["params"]["n_neighbors"] == round(degree)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"spatial_key": "nope", "unit": "nn"}, KeyError, "obsm"),
        ({"radii": [0, 2]}, ValueError, "positive"),
        ({"radii": [3, 2]}, ValueError, "increasing"),
        ({"radii": [2, 2]}, ValueError, "duplicates"),
        ({"unit": "pixels"}, ValueError, "unit"),
        ({"library_key": "missing"}, KeyError, "library_key"),
        ({"key_added": "a/b"}, ValueError, "key_added"),
        ({"unit": "coords"}, ValueError, "radii="),
    ],
)
def test_bad_arguments_raise_clear_errors(grid, kwargs, error, match):
    before = grid.copy()
    with pytest.raises(error, match=match):
        tsstc_sc.pp.spatial_scales(grid, **kwargs)
    assert not grid.obsp and set(grid.uns) == set(before.uns)


def test_bad_coordinates_raise(grid):
    wrong_shape = grid.copy()
    wrong_shape.obsm["spatial"] = np.zeros((grid.n_obs, 4))
    with pytest.raises(ValueError, match="shape"):
        tsstc_sc.pp.spatial_scales(wrong_shape, unit="nn")
    nan = grid.copy()
    nan.obsm["spatial"][3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        tsstc_sc.pp.spatial_scales(nan, unit="nn")
    no_grid = grid.copy()
    del no_grid.obs["array_row"]
    with pytest.raises(KeyError, match="array_row"):
        tsstc_sc.pp.spatial_scales(no_grid, unit="array")


def test_refuses_a_radius_that_would_exhaust_memory():
    rng = np.random.default_rng(0)
    adata = ad.AnnData(np.zeros((50000, 1), dtype=np.float32))
    adata.obsm["spatial"] = rng.uniform(0, 1, size=(50000, 2))
    with pytest.raises(MemoryError, match="smaller radii"):
        tsstc_sc.pp.spatial_scales(adata, radii=[1e6], unit="coords")


def test_without_a_memory_reading_the_check_is_skipped(monkeypatch):
    from tsstc_sc import _spatial_graphs

    assert _spatial_graphs._physical_memory() > 0  # Linux and macOS read it
    with pytest.raises(MemoryError, match="smaller radii"):
        _spatial_graphs.check_memory(1e15, 4, 5.0)
    monkeypatch.delattr(_spatial_graphs.os, "sysconf")  # as on Windows
    assert _spatial_graphs._physical_memory() is None
    _spatial_graphs.check_memory(1e15, 4, 5.0)  # nothing to compare with: no refusal


def test_rebuilding_replaces_the_earlier_scales(grid):
    adata = grid.copy()
    adata.obsp["mine"] = sp.eye(adata.n_obs, format="csr")
    tsstc_sc.pp.spatial_scales(adata, radii=[2, 3, 4, 5])
    tsstc_sc.pp.spatial_scales(adata, radii=[2, 3])
    assert sorted(k for k in adata.obsp if k.startswith("tsstc")) == [
        "tsstc_r2_connectivities",
        "tsstc_r2_distances",
        "tsstc_r3_connectivities",
        "tsstc_r3_distances",
    ]
    assert sorted(k for k in adata.uns if k.startswith("tsstc")) == [
        "tsstc_r2_neighbors",
        "tsstc_r3_neighbors",
        "tsstc_scales",
    ]
    assert "mine" in adata.obsp  # only what an earlier call stored under the same key_added goes
    tsstc_sc.pp.spatial_scales(adata, radii=[4], key_added="other")
    assert "tsstc_r3_connectivities" in adata.obsp


def test_dlpfc_degrees_match_the_reference():
    adata = ad.read_h5ad(shared_file("dlpfc_151673_5000genes.h5ad"))
    tsstc_sc.pp.spatial_scales(adata, radii=[1, 2, 3, 4, 5], unit="array")
    deg = adata.uns["tsstc_scales"]["mean_degree"]
    assert deg[0] == 0
    np.testing.assert_allclose(deg[1:], [7.71, 11.48, 22.74, 33.77], atol=0.2)


def test_osmfish_nn_ladder():
    adata = ad.read_h5ad(shared_file("osmfish_mouse_sscortex.h5ad"))
    tsstc_sc.pp.spatial_scales(adata, unit="nn")
    np.testing.assert_allclose(adata.uns["tsstc_scales"]["mean_degree"], [8, 12, 23, 34], rtol=0.2)
