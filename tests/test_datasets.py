"""The built-in synthetic tissue and the readers for local real data."""

from __future__ import annotations

import io
import json
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import scipy.sparse as sp
from conftest import shared_file
from matplotlib.image import imsave
from scipy import stats
from scipy.spatial import cKDTree
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from tsstc_sc.datasets import read_h5ad, read_visium, synthetic_tissue
from tsstc_sc.datasets._synthetic import _Programmes, _sample_counts

SPACING = 100.0  # pixel distance between neighbouring synthetic Visium spots


@pytest.fixture(scope="module")
def tissue() -> ad.AnnData:
    """The default synthetic tissue (layered, Visium-like, 3000 spots x 2000 genes)."""
    return synthetic_tissue()


@pytest.fixture
def scanpy_log():
    """Everything logged through scanpy's logger (which the package uses) while the test runs."""
    original, buffer = sc.settings.logfile, io.StringIO()
    sc.settings.logfile = buffer
    yield buffer
    sc.settings.logfile = original


def neighbour_labels(adata: ad.AnnData, k: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Domain codes of every spot and of its k nearest spatial neighbours."""
    coords = adata.obsm["spatial"]
    _, idx = cKDTree(coords).query(coords, k=k + 1)
    codes = adata.obs["domain"].cat.codes.to_numpy()
    return codes, codes[idx[:, 1:]]


def pca_embedding(adata: ad.AnnData) -> np.ndarray:
    norm = adata.copy()
    sc.pp.normalize_total(norm, target_sum=1e4)
    sc.pp.log1p(norm)
    sc.pp.pca(norm, n_comps=30, random_state=0)
    return norm.obsm["X_pca"]


# --- synthetic tissue: reproducibility ------------------------------------------------------------


def assert_same_tissue(a: ad.AnnData, b: ad.AnnData) -> None:
    for attr in ("data", "indices", "indptr"):
        np.testing.assert_array_equal(getattr(a.X, attr), getattr(b.X, attr))
    pd.testing.assert_frame_equal(a.obs, b.obs)
    pd.testing.assert_frame_equal(a.var, b.var)
    np.testing.assert_array_equal(a.obsm["spatial"], b.obsm["spatial"])
    np.testing.assert_array_equal(a.obsm["domain_weights"], b.obsm["domain_weights"])


@pytest.mark.parametrize("layout", ["visium", "single_cell"])
@pytest.mark.parametrize("geometry", ["layered", "patchy"])
def test_same_seed_gives_identical_data(layout, geometry):
    kwargs = {"n_spots": 400, "n_genes": 200, "layout": layout, "geometry": geometry, "random_state": 3}
    assert_same_tissue(synthetic_tissue(**kwargs), synthetic_tissue(**kwargs))


def test_different_seeds_give_different_data():
    a = synthetic_tissue(400, n_genes=200, random_state=0)
    b = synthetic_tissue(400, n_genes=200, random_state=1)
    assert (a.X != b.X).nnz > 0.5 * a.X.nnz
    assert not np.array_equal(a.obs["domain"].cat.codes, b.obs["domain"].cat.codes)


def test_threads_do_not_change_the_result():
    # 2500 spots x 2000 genes span several sampling blocks
    kwargs = {"n_spots": 2500, "random_state": 5}
    assert_same_tissue(synthetic_tissue(**kwargs, n_jobs=1), synthetic_tissue(**kwargs, n_jobs=3))
    assert_same_tissue(
        synthetic_tissue(**kwargs, n_jobs=1), synthetic_tissue(**kwargs, n_jobs=-1)
    )  # all cores


# --- synthetic tissue: layouts ---------------------------------------------------------------------


@pytest.mark.parametrize("n_spots", [50, 301, 3000])
def test_visium_layout_is_a_hexagonal_array(n_spots):
    adata = synthetic_tissue(n_spots, n_genes=100, n_domains=3)
    assert adata.n_obs == n_spots
    rows, cols = adata.obs["array_row"].to_numpy(), adata.obs["array_col"].to_numpy()
    assert np.issubdtype(rows.dtype, np.integer)
    assert np.issubdtype(cols.dtype, np.integer)
    assert rows.min() == 0
    assert cols.min() == 0
    assert np.all((rows + cols) % 2 == 0)
    array = np.c_[rows, cols].astype(float)

    # in array units the nearest neighbours are diagonal, at sqrt(2)
    dist, _ = cKDTree(array).query(array, k=2)
    np.testing.assert_allclose(dist[:, 1], np.sqrt(2))

    # in pixels every spot has at most 6 neighbours, all exactly one spacing away;
    # they are the 4 diagonal (sqrt(2)) and 2 same-row (2) array neighbours
    xy = adata.obsm["spatial"]
    assert xy.dtype == np.float64
    assert xy.shape == (n_spots, 2)
    pairs = cKDTree(xy).query_pairs(1.01 * SPACING, output_type="ndarray")
    np.testing.assert_allclose(np.linalg.norm(xy[pairs[:, 0]] - xy[pairs[:, 1]], axis=1), SPACING)
    degree = np.bincount(pairs.ravel(), minlength=n_spots)
    assert degree.max() == 6
    assert (degree == 6).mean() >= 0.5  # most spots are inside the section
    hex_steps = {tuple(np.abs(array[i] - array[j]).astype(int)) for i, j in pairs}
    assert hex_steps == {(1, 1), (0, 2)}


def test_visium_pixels_are_affine_in_array_coordinates(tissue):
    design = np.c_[np.ones(tissue.n_obs), tissue.obs[["array_col", "array_row"]].to_numpy(float)]
    coef, *_ = np.linalg.lstsq(design, tissue.obsm["spatial"], rcond=None)
    np.testing.assert_allclose(design @ coef, tissue.obsm["spatial"], atol=1e-6)
    np.testing.assert_allclose(coef[1:], [[SPACING / 2, 0], [0, SPACING * np.sqrt(3) / 2]], atol=1e-9)


def test_visium_grid_grows_beyond_the_visium_array():
    adata = synthetic_tissue(20_000, n_genes=100)
    assert adata.obs["array_row"].max() > 77
    assert adata.obs["array_col"].max() > 127
    extent = np.ptp(adata.obsm["spatial"], axis=0)
    assert 0.8 < extent[0] / extent[1] < 1.25  # roughly square


@pytest.mark.parametrize("n_spots", [50, 777])
def test_single_cell_layout(n_spots):
    adata = synthetic_tissue(n_spots, n_genes=100, layout="single_cell", geometry="patchy")
    assert adata.n_obs == n_spots
    assert "array_row" not in adata.obs
    assert "array_col" not in adata.obs
    xy = adata.obsm["spatial"]
    assert xy.shape == (n_spots, 2)
    assert np.isfinite(xy).all()
    dist, _ = cKDTree(xy).query(xy, k=2)
    assert dist[:, 1].min() >= 2.0  # micrometres: no two cells on top of each other
    assert 5 < np.median(dist[:, 1]) < 15
    # no grid: positions are not on a lattice
    assert len(np.unique(np.round(dist[:, 1], 3))) > n_spots / 2
    # a cell expresses a single domain's programme
    weights = adata.obsm["domain_weights"]
    assert set(np.unique(weights)) == {0.0, 1.0}
    np.testing.assert_array_equal(weights.sum(axis=1), 1)


# --- synthetic tissue: domains ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("geometry", "n_domains", "expected"),
    [
        ("layered", None, [f"Layer{k}" for k in range(1, 8)]),
        ("layered", 12, [f"Layer{k}" for k in range(1, 13)]),
        ("patchy", None, ["Background", "Domain1", "Domain2", "Domain3", "Domain4"]),
        ("patchy", 2, ["Background", "Domain1"]),
    ],
)
@pytest.mark.parametrize("layout", ["visium", "single_cell"])
def test_domain_labels(geometry, n_domains, expected, layout):
    adata = synthetic_tissue(1200, n_genes=200, geometry=geometry, n_domains=n_domains, layout=layout)
    domain = adata.obs["domain"]
    assert isinstance(domain.dtype, pd.CategoricalDtype)
    assert list(domain.cat.categories) == expected  # natural order, not lexicographic
    assert (domain.value_counts() > 0).all()
    assert adata.obsm["domain_weights"].shape == (1200, len(expected))


@pytest.mark.parametrize("seed", range(6))
def test_every_domain_is_present_in_small_tissues(seed):
    for geometry in ("layered", "patchy"):
        adata = synthetic_tissue(70, n_genes=100, geometry=geometry, random_state=seed)
        assert adata.obs["domain"].value_counts().min() > 0


def test_layered_widths_are_unequal(tissue):
    counts = tissue.obs["domain"].value_counts()
    assert counts.max() > 2 * counts.min()


@pytest.mark.parametrize("geometry", ["layered", "patchy"])
def test_domains_are_spatially_contiguous(tissue, geometry):
    adata = tissue if geometry == "layered" else synthetic_tissue(geometry="patchy", n_genes=100)
    codes, neighbours = neighbour_labels(adata)
    majority = np.array([np.bincount(row).argmax() for row in neighbours])
    assert (majority == codes).mean() > 0.85


def test_patchy_background_is_the_largest_domain():
    counts = synthetic_tissue(geometry="patchy", n_genes=100).obs["domain"].value_counts()
    assert counts.idxmax() == "Background"


def test_boundaries_mix_neighbouring_programmes(tissue):
    weights = tissue.obsm["domain_weights"]
    codes = tissue.obs["domain"].cat.codes.to_numpy()
    np.testing.assert_allclose(weights.sum(axis=1), 1, rtol=1e-5)
    assert (weights.argmax(axis=1) == codes).mean() > 0.9
    mixed = weights.max(axis=1) < 0.9
    assert 0.1 < mixed.mean() < 0.6
    # spots on a boundary share their weight with an adjacent layer only
    top_two = np.sort(np.argsort(weights[mixed], axis=1)[:, -2:], axis=1)
    assert (np.diff(top_two, axis=1) == 1).mean() > 0.95


def test_sharp_boundaries():
    adata = synthetic_tissue(500, n_genes=100, boundary_width=0)
    weights = adata.obsm["domain_weights"]
    assert set(np.unique(weights)) == {0.0, 1.0}
    np.testing.assert_array_equal(weights.argmax(axis=1), adata.obs["domain"].cat.codes)


# --- synthetic tissue: counts ----------------------------------------------------------------------


def test_counts_are_raw_integers_in_csr(tissue):
    x = tissue.X
    assert isinstance(x, sp.csr_matrix)
    assert x.dtype == np.float32
    assert x.has_canonical_format
    assert np.all(x.data > 0)
    assert np.all(x.data == np.round(x.data))
    assert list(tissue.obs_names[:2]) == ["spot_0", "spot_1"]
    assert list(tissue.var_names[:2]) == ["gene_0", "gene_1"]


def test_count_statistics_are_plausible(tissue):
    library = np.asarray(tissue.X.sum(axis=1)).ravel()
    assert library.std() / library.mean() > 0.2
    assert 500 < np.median(library) < 2000
    zero_fraction = 1 - tissue.X.nnz / np.prod(tissue.shape)
    assert 0.8 < zero_fraction < 0.95
    # overdispersion: variance well above the mean for expressed genes
    norm = tissue.X.multiply(np.median(library) / library[:, None]).tocsc()
    mean = np.asarray(norm.mean(axis=0)).ravel()
    var = np.asarray(norm.power(2).mean(axis=0)).ravel() - mean**2
    expressed = mean > 1
    assert np.median(var[expressed] / mean[expressed]) > 2


def test_markers_change_in_their_domain(tissue):
    library = np.asarray(tissue.X.sum(axis=1)).ravel()
    fractions = sp.csr_matrix(tissue.X.multiply(1 / library[:, None]))
    codes = tissue.obs["domain"].cat.codes.to_numpy()
    programme = tissue.var["programme"].astype(str).to_numpy()
    for k, name in enumerate(tissue.obs["domain"].cat.categories):
        genes = programme == f"marker:{name}"
        assert genes.sum() >= 3
        inside = np.asarray(fractions[codes == k][:, genes].mean(axis=0)).ravel()
        outside = np.asarray(fractions[codes != k][:, genes].mean(axis=0)).ravel()
        log_ratio = np.log(inside / outside)
        assert (log_ratio > 0.2).mean() > 0.6  # mostly up-regulated...
        assert (log_ratio < -0.1).mean() > 0.05  # ...a few down
    assert (programme == "housekeeping").mean() > 0.5


@pytest.mark.parametrize(
    ("mean", "size", "dropout"),
    [(0.3, 2.0, 0.1), (4.0, 0.5, 0.0), (4.0, 5.0, 0.3), (40.0, 3.0, 0.2)],  # the last: rejection path
)
def test_counts_follow_the_zero_inflated_negative_binomial(mean, size, dropout):
    n = 200_000
    programmes = _Programmes(
        profiles=np.array([[mean]], dtype=np.float32),
        size=np.array([size]),
        dropout=np.array([dropout]),
        annotation=np.array(["housekeeping"]),
    )
    counts = _sample_counts(np.ones((n, 1), dtype=np.float32), programmes, np.random.default_rng(0), 2)
    values = counts.toarray().ravel()
    observed = np.bincount(values.astype(int), minlength=200)[:200] / n
    expected = (1 - dropout) * stats.nbinom.pmf(np.arange(200), size, size / (size + mean))
    expected[0] += dropout
    np.testing.assert_allclose(observed, expected, atol=4 * np.sqrt(expected.max() / n))
    np.testing.assert_allclose(values.mean(), (1 - dropout) * mean, rtol=0.02)


def test_boundaries_are_hard_but_signal_is_there(tissue):
    truth = tissue.obs["domain"].cat.codes.to_numpy()
    embedding = pca_embedding(tissue)
    kmeans = KMeans(n_clusters=7, n_init=3, random_state=0)
    ari = adjusted_rand_score(truth, kmeans.fit_predict(embedding))
    assert 0.1 < ari < 0.9
    # averaging over the 6 nearest spots twice (a plain spatial smoother) helps clearly
    _, idx = cKDTree(tissue.obsm["spatial"]).query(tissue.obsm["spatial"], k=7)
    smoothed = embedding[idx].mean(axis=1)
    smoothed = smoothed[idx].mean(axis=1)
    ari_smoothed = adjusted_rand_score(truth, kmeans.fit_predict(smoothed))
    assert ari_smoothed > ari + 0.15


def test_generating_parameters_are_recorded(tissue):
    params = tissue.uns["synthetic"]
    expected = {"n_spots": 3000, "layout": "visium", "geometry": "layered", "n_domains": 7, "random_state": 0}
    assert {key: params[key] for key in expected} == expected
    assert (tissue.var["nb_size"] > 0).all()
    assert tissue.var["dropout"].between(0, 1).all()


@pytest.mark.parametrize("layout", ["visium", "single_cell"])
def test_h5ad_round_trip(tmp_path, layout):
    adata = synthetic_tissue(300, n_genes=150, layout=layout, geometry="patchy")
    adata.write_h5ad(tmp_path / "tissue.h5ad")
    back = read_h5ad(tmp_path / "tissue.h5ad")
    assert isinstance(back.X, sp.csr_matrix)
    assert back.X.dtype == np.float32
    assert_same_tissue(adata, back)
    assert back.uns["synthetic"] == adata.uns["synthetic"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_spots": 10}, "n_spots must be at least 50"),
        ({"n_domains": 1}, "n_domains must be at least 2"),
        ({"n_spots": 60}, "too small for 7 domains"),
        ({"layout": "slide"}, r"`layout` must be one of \('visium', 'single_cell'\), got 'slide'"),
        ({"geometry": "round"}, r"`geometry` must be one of \('layered', 'patchy'\), got 'round'"),
        ({"n_genes": 50}, "n_genes must be at least 100"),
        ({"n_genes": 100, "n_domains": 12}, "n_genes=100 is too small for 12 domains"),
        ({"library_size": 0}, "library_size must be positive"),
        ({"boundary_width": -1}, "boundary_width must be non-negative"),
        ({"n_jobs": 0}, r"`n_jobs` must be a positive number of threads, -1 \(all cores\) or None, got 0"),
        ({"random_state": -1}, "`random_state` must be between 0 and"),
        ({"library_size": float("nan")}, "`library_size` must be finite, got nan"),
        ({"library_size": float("inf")}, "`library_size` must be finite, got inf"),
        ({"boundary_width": float("nan")}, "`boundary_width` must be finite, got nan"),
        ({"effect_size": float("nan")}, "`effect_size` must be finite, got nan"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        synthetic_tissue(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"n_spots": "100"}, "n_spots"), ({"n_spots": None}, "n_spots"), ({"n_genes": 150.5}, "n_genes"),
     ({"n_domains": 3.5}, "n_domains"), ({"n_jobs": 2.0}, "n_jobs"), ({"random_state": 1.5}, "random_state")],
)  # fmt: skip
def test_arguments_that_are_not_integers(kwargs, name):
    with pytest.raises(TypeError, match=f"`{name}` must be an integer"):
        synthetic_tissue(**{"n_genes": 150, **kwargs})


@pytest.mark.parametrize("name", ["library_size", "boundary_width", "effect_size"])
@pytest.mark.parametrize("value", ["2", True, None])
def test_arguments_that_are_not_numbers(name, value):
    with pytest.raises(TypeError, match=f"`{name}` must be a number, got {value!r}"):
        synthetic_tissue(n_genes=150, **{name: value})


# --- readers ---------------------------------------------------------------------------------------

GENES = ["GENE_A", "GENE_B", "GENE_A", "GENE_C"]  # a repeated symbol, as in real 10x references
MATRIX_BARCODES = ["AAAC-1", "AAAG-1", "AACT-1", "ACGT-1", "AGGT-1"]
# (in_tissue, array_row, array_col, pxl_row, pxl_col); the matrix lacks "TTTT-1", "ACGT-1" is off tissue
POSITIONS = {
    "AAAC-1": (1, 0, 0, 1000, 2000),
    "AAAG-1": (1, 0, 2, 1000, 2100),
    "AACT-1": (1, 1, 1, 1087, 2050),
    "ACGT-1": (0, 1, 3, 1087, 2150),
    "AGGT-1": (1, 2, 0, 1173, 2000),
    "TTTT-1": (0, 2, 2, 1173, 2100),
}
COUNTS = np.array([[1, 0, 3, 0], [0, 2, 0, 0], [5, 0, 0, 1], [0, 0, 0, 7], [2, 2, 2, 2]])
SCALEFACTORS = {"spot_diameter_fullres": 96.4, "tissue_hires_scalef": 0.15, "tissue_lowres_scalef": 0.045}


def write_space_ranger(
    outs: Path, *, legacy_positions: bool = False, images: bool = True, library_ids: bool = True
) -> None:
    """A tiny Space Ranger ``outs/`` folder: 10x v3 h5 matrix, positions, images and scale factors."""
    (outs / "spatial").mkdir(parents=True)
    matrix = sp.csr_matrix(COUNTS)  # barcodes x genes CSR = genes x barcodes CSC, the 10x layout
    with h5py.File(outs / "filtered_feature_bc_matrix.h5", "w") as f:
        if library_ids:
            f.attrs["library_ids"] = np.array([b"sample_1"])
        f.attrs["chemistry_description"] = "Visium Spatial Gene Expression"
        f.attrs["software_version"] = "spaceranger-2.1.0"
        group = f.create_group("matrix")
        group["data"] = matrix.data.astype(np.int32)
        group["indices"] = matrix.indices.astype(np.int64)
        group["indptr"] = matrix.indptr.astype(np.int64)
        group["shape"] = np.array([len(GENES), len(MATRIX_BARCODES)], dtype=np.int32)
        group["barcodes"] = np.array(MATRIX_BARCODES, dtype="S")
        features = group.create_group("features")
        features["id"] = np.array([f"ENSG{i:05d}" for i in range(len(GENES))], dtype="S")
        features["name"] = np.array(GENES, dtype="S")
        features["feature_type"] = np.array(["Gene Expression"] * len(GENES), dtype="S")
        features["genome"] = np.array(["GRCh38"] * len(GENES), dtype="S")
    positions = pd.DataFrame(
        [(barcode, *values) for barcode, values in POSITIONS.items()],
        columns=[
            "barcode",
            "in_tissue",
            "array_row",
            "array_col",
            "pxl_row_in_fullres",
            "pxl_col_in_fullres",
        ],
    )
    if legacy_positions:
        positions.to_csv(outs / "spatial" / "tissue_positions_list.csv", header=False, index=False)
    else:
        positions.to_csv(outs / "spatial" / "tissue_positions.csv", index=False)
    (outs / "spatial" / "scalefactors_json.json").write_text(json.dumps(SCALEFACTORS))
    if images:
        rng = np.random.default_rng(0)
        imsave(outs / "spatial" / "tissue_hires_image.png", rng.random((30, 20, 3)))
        imsave(outs / "spatial" / "tissue_lowres_image.png", rng.random((9, 6, 3)))


@pytest.mark.parametrize("legacy_positions", [False, True])
def test_read_visium(tmp_path, legacy_positions):
    outs = tmp_path / "sample" / "outs"
    write_space_ranger(outs, legacy_positions=legacy_positions)
    adata = read_visium(outs)

    in_tissue = [b for b in MATRIX_BARCODES if POSITIONS[b][0] == 1]
    assert list(adata.obs_names) == in_tissue
    assert list(adata.var_names) == ["GENE_A", "GENE_B", "GENE_A-1", "GENE_C"]
    assert list(adata.var["gene_ids"]) == ["ENSG00000", "ENSG00001", "ENSG00002", "ENSG00003"]
    rows = [MATRIX_BARCODES.index(b) for b in in_tissue]
    np.testing.assert_array_equal(adata.X.toarray(), COUNTS[rows])
    expected = np.array([POSITIONS[b] for b in in_tissue])
    np.testing.assert_array_equal(adata.obs["in_tissue"], 1)
    np.testing.assert_array_equal(adata.obs["array_row"], expected[:, 1])
    np.testing.assert_array_equal(adata.obs["array_col"], expected[:, 2])
    np.testing.assert_array_equal(adata.obsm["spatial"], expected[:, [4, 3]])  # x = column, y = row
    assert adata.obsm["spatial"].dtype == np.float64

    library = adata.uns["spatial"]["sample_1"]
    assert library["images"]["hires"].shape == (30, 20, 4)
    assert library["images"]["lowres"].shape == (9, 6, 4)
    assert library["scalefactors"] == SCALEFACTORS
    assert library["metadata"]["software_version"] == "spaceranger-2.1.0"


def test_read_visium_without_images(tmp_path):
    write_space_ranger(tmp_path / "outs", images=False)
    adata = read_visium(tmp_path / "outs", library_id="my_slide")
    assert list(adata.uns["spatial"]) == ["my_slide"]
    assert "images" not in adata.uns["spatial"]["my_slide"]
    assert adata.uns["spatial"]["my_slide"]["scalefactors"] == SCALEFACTORS

    write_space_ranger(tmp_path / "other" / "outs")
    skipped = read_visium(tmp_path / "other" / "outs", load_images=False)
    assert set(skipped.uns["spatial"]["sample_1"]) == {"scalefactors", "metadata"}


def test_read_visium_library_id_defaults_to_the_sample_folder(tmp_path):
    write_space_ranger(tmp_path / "slide_A1" / "outs", library_ids=False)
    assert list(read_visium(tmp_path / "slide_A1" / "outs").uns["spatial"]) == ["slide_A1"]


def test_read_visium_rejects_barcodes_without_position(tmp_path):
    write_space_ranger(tmp_path / "outs")
    positions = tmp_path / "outs" / "spatial" / "tissue_positions.csv"
    table = pd.read_csv(positions)
    table[table["barcode"] != "AACT-1"].to_csv(positions, index=False)
    with pytest.raises(
        ValueError,
        match=r"1 barcodes of filtered_feature_bc_matrix\.h5 \(e\.g\. AACT-1\).*same Space Ranger run",
    ):
        read_visium(tmp_path / "outs")


def test_read_visium_reads_the_count_file_asked_for(tmp_path):
    write_space_ranger(tmp_path / "outs")
    expected = read_visium(tmp_path / "outs").X.toarray()
    filtered = tmp_path / "outs" / "filtered_feature_bc_matrix.h5"
    filtered.rename(tmp_path / "outs" / "raw_feature_bc_matrix.h5")  # only the other matrix is left
    raw = read_visium(tmp_path / "outs", count_file="raw_feature_bc_matrix.h5")
    np.testing.assert_array_equal(raw.X.toarray(), expected)


def test_read_visium_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No Space Ranger output folder.*outs/"):
        read_visium(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"filtered_feature_bc_matrix\.h5 not found.*Space Ranger"):
        read_visium(tmp_path)
    write_space_ranger(tmp_path / "outs")
    with pytest.raises(FileNotFoundError, match=r"raw_feature_bc_matrix\.h5 not found"):
        read_visium(tmp_path / "outs", count_file="raw_feature_bc_matrix.h5")

    (tmp_path / "outs" / "spatial" / "tissue_positions.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"tissue_positions\.csv nor .*tissue_positions_list\.csv"):
        read_visium(tmp_path / "outs")


def test_read_h5ad_missing_file_says_where_to_get_data(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"spatialLIBD.*10x Genomics.*shared/data"):
        read_h5ad(tmp_path / "dlpfc.h5ad")


def test_read_h5ad_validates_coordinates(tmp_path):
    adata = synthetic_tissue(100, n_genes=100)
    adata.obsm["three_d"] = np.c_[adata.obsm["spatial"], np.zeros(100)]
    adata.obsm["flat"] = adata.obsm["spatial"][:, :1]
    broken = adata.obsm["spatial"].copy()
    broken[3, 1] = np.nan
    adata.obsm["broken"] = broken
    adata.write_h5ad(tmp_path / "a.h5ad")

    assert read_h5ad(tmp_path / "a.h5ad", spatial_key="three_d").n_obs == 100
    with pytest.raises(KeyError, match=r"a\.h5ad: No spatial coordinates in `adata\.obsm\['coords'\]`"):
        read_h5ad(tmp_path / "a.h5ad", spatial_key="coords")
    with pytest.raises(ValueError, match=r"a\.h5ad: .*must have shape \(n_obs, 2\) or \(n_obs, 3\)"):
        read_h5ad(tmp_path / "a.h5ad", spatial_key="flat")
    with pytest.raises(ValueError, match=r"a\.h5ad: 1 spot\(s\) have NaN or infinite coordinates") as error:
        read_h5ad(tmp_path / "a.h5ad", spatial_key="broken")
    assert f"load it with `anndata.read_h5ad({str(tmp_path / 'a.h5ad')!r})` first" in str(error.value)


def test_read_h5ad_warns_on_normalised_data(tmp_path, scanpy_log):
    adata = synthetic_tissue(100, n_genes=100)
    adata.write_h5ad(tmp_path / "counts.h5ad")
    read_h5ad(tmp_path / "counts.h5ad")
    assert "raw counts" not in scanpy_log.getvalue()

    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    adata.write_h5ad(tmp_path / "normalised.h5ad")
    read_h5ad(tmp_path / "normalised.h5ad")
    assert "does not look like raw counts" in scanpy_log.getvalue()


def test_read_h5ad_real_dlpfc_section():
    adata = read_h5ad(shared_file("dlpfc_151673_5000genes.h5ad"))
    assert adata.n_obs == 3639
    assert adata.obsm["spatial"].shape == (3639, 2)
    assert {"array_row", "array_col", "ground_truth"} <= set(adata.obs)
