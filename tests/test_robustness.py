"""Bad input gets a clear error and leaves ``adata`` exactly as it was; odd but valid input works.

``CASES`` is also the source of the table in ``docs/robustness.md`` (``benchmarks/robustness_table.py``).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
from anndata.tests.helpers import assert_equal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tsstc_sc

FAST = {"epochs": 2, "progress_bar": False}


def base() -> ad.AnnData:
    return tsstc_sc.datasets.synthetic_tissue(n_spots=300, n_genes=150, n_domains=4, random_state=3)


@dataclass(frozen=True)
class Case:
    """One bad input: how to make it, what to call, and the error a user must get."""

    name: str
    make: Callable[[ad.AnnData], object]
    call: Callable[[object], object]
    error: type[Exception]
    match: str


def _set(attr_path: str, value_fn):
    def make(a):
        target, key = attr_path.split(":")
        getattr(a, target)[key] = value_fn(a)
        return a

    return make


def _x(fn):
    def make(a):
        x = a.X.toarray()
        a.X = sp.csr_matrix(fn(x))
        return a

    return make


def pp(**kw):
    return lambda a: tsstc_sc.pp.spatial_scales(a, **kw)


def tl(**kw):
    return lambda a: tsstc_sc.tl.tsstc(a, **{"n_clusters": 4, **FAST, **kw})


def _nan_coord(a):
    a.obsm["spatial"][5, 1] = np.nan
    return a


def _inf_coord(a):
    a.obsm["spatial"][7, 0] = np.inf
    return a


def _no_array(a):
    del a.obs["array_row"]
    return a


def _nan_array(a):
    a.obs["array_row"] = a.obs["array_row"].astype(float)
    a.obs.iloc[3, a.obs.columns.get_loc("array_row")] = np.nan
    return a


def _nan_library(a):
    a.obs["slide"] = ["A"] * (a.n_obs - 1) + [None]
    return a


def _dup_names(a):
    a.obs_names = ["s0", *a.obs_names[1:-1], "s0"]
    return a


def _same_place(a):
    a.obsm["spatial"] = np.zeros((a.n_obs, 2))
    return a


def _zero_spot(a):
    x = a.X.tolil()
    x[4, :] = 0
    a.X = x.tocsr()
    return a


def _one_gene_per_spot(a):
    """Every spot has counts, but each gene only in 2 of 300 spots (``min_cells`` is 3 here)."""
    x = np.zeros(a.shape)
    x[np.arange(a.n_obs), np.arange(a.n_obs) % a.n_vars] = 5
    a.X = sp.csr_matrix(x)
    return a


def _no_x(a):
    return ad.AnnData(obs=a.obs, obsm={"spatial": a.obsm["spatial"]})


def _dup_genes(a):
    a.var_names = ["g0", *a.var_names[1:-1], "g0"]
    return a


def _scales_without_graphs(a):
    """Stored scales whose graphs are gone, as after ``anndata.concat`` (which drops ``obsp``)."""
    tsstc_sc.pp.spatial_scales(a)
    for key in list(a.obsp):
        del a.obsp[key]
    return a


def _stored_scales(**kw):
    def make(a):
        a.obs["slide"] = np.where(np.arange(a.n_obs) < a.n_obs // 2, "A", "B")
        tsstc_sc.pp.spatial_scales(a, **kw)
        return a

    return make


def _huge(a):
    rng = np.random.default_rng(0)
    big = ad.AnnData(obs={"i": np.arange(50_000)})
    big.obsm["spatial"] = rng.uniform(0, 1, (50_000, 2))
    return big


CASES = [
    Case("spatial_key missing", lambda a: a, pp(spatial_key="xy", unit="nn"), KeyError, "obsm"),
    Case("coordinates with 4 columns", _set("obsm:spatial", lambda a: np.zeros((a.n_obs, 4))), pp(unit="nn"), ValueError, "shape"),
    Case("coordinates with 1 column", _set("obsm:spatial", lambda a: np.zeros((a.n_obs, 1))), pp(unit="nn"), ValueError, "shape"),
    Case("NaN coordinate", _nan_coord, pp(unit="nn"), ValueError, "NaN or infinite"),
    Case("infinite coordinate", _inf_coord, pp(unit="nn"), ValueError, "NaN or infinite"),
    Case("non-numeric coordinates", _set("obsm:spatial", lambda a: np.full((a.n_obs, 2), "x")), pp(unit="nn"), TypeError, "numeric"),
    Case('unit="array" without array columns', _no_array, pp(unit="array"), KeyError, "array_row"),
    Case("array column with NaN", _nan_array, pp(unit="array"), ValueError, "NaN"),
    Case("non-positive radius", lambda a: a, pp(radii=[0, 2]), ValueError, "positive"),
    Case("unsorted radii", lambda a: a, pp(radii=[3, 2]), ValueError, "increasing"),
    Case("duplicate radii", lambda a: a, pp(radii=[2, 2, 3]), ValueError, "duplicates"),
    Case("NaN radius", lambda a: a, pp(radii=[np.nan]), ValueError, "finite"),
    Case("radius too large for memory", _huge, pp(radii=[1e6], unit="coords"), MemoryError, "smaller radii"),
    Case("unknown unit", lambda a: a, pp(unit="pixel"), ValueError, "unit"),
    Case('unit="coords" without radii', lambda a: a, pp(unit="coords"), ValueError, "radii="),
    Case("library_key not in obs", lambda a: a, pp(library_key="slide"), KeyError, "library_key"),
    Case("library_key with NaN", _nan_library, pp(library_key="slide"), ValueError, "missing value"),
    Case("key_added with '/'", lambda a: a, pp(key_added="a/b"), ValueError, "key_added"),
    Case("not an AnnData", lambda a: a.X, pp(), TypeError, "AnnData"),
    Case("no spots", lambda a: a[:0].copy(), pp(), ValueError, "no observations"),
    Case("duplicate obs_names", _dup_names, pp(), ValueError, "obs_names_make_unique"),
    Case("all spots at one place, nn unit", _same_place, pp(unit="nn"), ValueError, "median nearest"),
    Case("log-normalised X", _x(lambda x: np.log1p(x / x.sum(1, keepdims=True) * 1e4)), tl(), ValueError, "raw counts"),
    Case("negative values in X", _x(lambda x: x - 1), tl(), ValueError, "negative"),
    Case("NaN in X", _x(lambda x: np.where(x > 5, np.nan, x)), tl(), ValueError, "NaN or infinite"),
    Case("inf in X", _x(lambda x: np.where(x > 5, np.inf, x)), tl(), ValueError, "NaN or infinite"),
    Case("no X", _no_x, tl(), ValueError, "empty"),
    Case("layer missing", lambda a: a, tl(layer="counts"), KeyError, "layers"),
    Case("spot without counts", _zero_spot, tl(), ValueError, "filter_cells"),
    Case("all counts zero", _x(lambda x: x * 0), tl(), ValueError, "no counts at all"),
    Case("no gene detected in min_cells spots", _one_gene_per_spot, tl(), ValueError, "No gene is detected in at least"),
    Case("n_clusters = 1", lambda a: a, tl(n_clusters=1), ValueError, "between 2"),
    Case("n_clusters not an integer", lambda a: a, tl(n_clusters=3.5), TypeError, "integer"),
    Case("more clusters than spots", lambda a: a, tl(n_clusters=10_000), ValueError, "between 2"),
    Case("gmm without n_clusters", lambda a: a, tl(n_clusters=None), ValueError, "needs `n_clusters`"),
    Case("unknown cluster_method", lambda a: a, tl(cluster_method="dbscan"), ValueError, "cluster_method"),
    Case("cluster_pcs = 0", lambda a: a, tl(cluster_pcs=0), ValueError, "cluster_pcs"),
    Case("duplicate var_names", _dup_genes, tl(), ValueError, "var_names_make_unique"),
    Case("stored scales without their graphs", _scales_without_graphs, tl(), ValueError, "pp.spatial_scales"),
    Case("stored scales built with another unit", _stored_scales(unit="array"), tl(unit="nn"), ValueError, "built with"),
    Case("unknown unit beside stored scales", _stored_scales(unit="array"), tl(unit="pixel"), ValueError, "`unit` must be one of"),
    Case("stored scales built without library_key", _stored_scales(), tl(library_key="slide"), ValueError, "built with"),
    Case("stored scales built from other coordinates", _stored_scales(unit="nn"), tl(spatial_key="xy"), ValueError, "built with"),
    Case("key_added='spatial' (Visium images live there)", lambda a: a, tl(key_added="spatial"), ValueError, "uns\\['spatial'\\]"),
    Case("random_state=None", lambda a: a, tl(random_state=None), TypeError, "random_state"),
    Case("negative random_state", lambda a: a, tl(random_state=-1), ValueError, "`random_state` must be between 0 and"),
    Case("random_state = 2**32", lambda a: a, tl(random_state=2**32), ValueError, "`random_state` must be between 0 and"),
    Case("no loss to train (alpha = 0, lambda_r = 0)", lambda a: a, tl(alpha=0, lambda_r=0), ValueError, "leave no loss to train"),
    Case("radii as a string", lambda a: a, pp(radii="2,3"), TypeError, "list of numbers"),
    Case("unknown hyperparameter", lambda a: a, tl(learning_rate=0.1), TypeError, "Unknown TSstc parameter"),
    Case("epochs = 0", lambda a: a, tl(epochs=0), ValueError, "epochs"),
    Case("epochs not an integer", lambda a: a, tl(epochs=2.5), TypeError, "`epochs` must be an integer"),
    Case("use_sas as a string", lambda a: a, tl(use_sas="no"), TypeError, "`use_sas` must be True or False"),
    Case("refine_labels as a string", lambda a: a, tl(refine_labels="no"), TypeError, "`refine_labels` must be True or False"),
    Case("copy as a string", lambda a: a, tl(copy="no"), TypeError, "`copy` must be True or False"),
    Case("copy as a number (spatial_scales)", lambda a: a, pp(copy=0), TypeError, "`copy` must be True or False"),
    Case("progress_bar as a string", lambda a: a, tl(progress_bar="no"), TypeError, "`progress_bar` must be True or False"),
    Case("max_value = 0", lambda a: a, tl(max_value=0), ValueError, "max_value"),
    Case("alpha = inf", lambda a: a, tl(alpha=float("inf")), ValueError, "`alpha` must be finite"),
    Case("restarts = 0", lambda a: a, tl(restarts=0), ValueError, "restarts"),
    Case("restarts without n_clusters", lambda a: a, tl(n_clusters=None, cluster_method="leiden", restarts=2), ValueError, "give `n_clusters`"),
    Case("gene_graph_pcs = 0", lambda a: a, tl(gene_graph_pcs=0), ValueError, "gene_graph_pcs"),
    Case("unknown preset", lambda a: a, tl(preset="fast"), ValueError, "preset"),
    Case("mini-batch tile of one spot", lambda a: a, tl(batch_size=1), ValueError, "batch_size"),
    Case("top_ratio without a ratio", lambda a: a, tl(refine_rule="top_ratio"), ValueError, "refine_value"),
    Case("unknown device", lambda a: a, tl(device="tpu"), ValueError, "device"),
    Case("training diverges (lr = 1e30)", lambda a: a, tl(lr=1e30, epochs=20), FloatingPointError, "lower `lr`"),
    Case("plot before tl.tsstc", lambda a: a, lambda a: tsstc_sc.pl.domains(a, show=False), KeyError, "tl.tsstc"),
    Case("plot with unknown groundtruth", lambda a: a, lambda a: tsstc_sc.pl.domains(a, "domain", groundtruth="gt", show=False), KeyError, "gt"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_raises_a_clear_error_and_changes_nothing(case):
    with warnings.catch_warnings():  # anndata warns when copying duplicated names (two of the cases)
        warnings.filterwarnings("ignore", "(Observation|Variable) names are not unique", UserWarning)
        adata = case.make(base())
        before = adata.copy() if isinstance(adata, ad.AnnData) else None
    with pytest.raises(case.error, match=case.match):
        case.call(adata)
    if before is not None:
        assert_equal(adata, before)


def test_absent_gpu_is_refused():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    adata = base()
    before = adata.copy()
    with pytest.raises(ValueError, match="no CUDA GPU"):
        tsstc_sc.tl.tsstc(adata, device="cuda", n_clusters=4, **FAST)
    assert_equal(adata, before)


# -- odd but valid input ------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference():
    adata = base()
    tsstc_sc.tl.tsstc(adata, n_clusters=4, epochs=3, progress_bar=False)
    return adata


@pytest.mark.parametrize(
    "convert",
    [
        pytest.param(lambda x: x.toarray(), id="dense"),
        pytest.param(lambda x: x.tocsc(), id="csc"),
        pytest.param(lambda x: x.astype(np.float64), id="float64"),
        pytest.param(lambda x: x.astype(np.int64), id="int64"),
        pytest.param(lambda x: x.astype(np.uint16), id="uint16"),
    ],
)
def test_matrix_format_and_dtype_do_not_change_the_result(reference, convert):
    adata = base()
    adata.X = convert(adata.X)
    tsstc_sc.tl.tsstc(adata, n_clusters=4, epochs=3, progress_bar=False)
    np.testing.assert_array_equal(adata.obsm["X_tsstc"], reference.obsm["X_tsstc"])
    np.testing.assert_array_equal(adata.obs["tsstc"], reference.obs["tsstc"])


def test_counts_in_a_layer_and_X_untouched(reference):
    adata = base()
    adata.layers["counts"] = adata.X.copy()
    adata.X = sp.csr_matrix(np.log1p(adata.X.toarray()))
    x_before = adata.X.copy()
    tsstc_sc.tl.tsstc(adata, layer="counts", n_clusters=4, epochs=3, progress_bar=False)
    np.testing.assert_array_equal(adata.obs["tsstc"], reference.obs["tsstc"])
    assert (x_before != adata.X).nnz == 0


def test_view_is_made_actual_and_its_parent_is_untouched():
    parent = base()
    before = parent.copy()
    view = parent[:200]
    tsstc_sc.tl.tsstc(view, n_clusters=3, **FAST)
    assert not view.is_view and view.obs["tsstc"].nunique() == 3
    assert_equal(parent, before)


def test_backed_anndata(tmp_path, reference):
    base().write_h5ad(tmp_path / "b.h5ad")
    backed = ad.read_h5ad(tmp_path / "b.h5ad", backed="r")
    tsstc_sc.tl.tsstc(backed, n_clusters=4, epochs=3, progress_bar=False)
    np.testing.assert_array_equal(backed.obs["tsstc"], reference.obs["tsstc"])


def test_copy_of_a_backed_anndata_is_refused_before_any_work(tmp_path):
    base().write_h5ad(tmp_path / "b.h5ad")
    backed = ad.read_h5ad(tmp_path / "b.h5ad", backed="r")
    for call in (
        lambda: tsstc_sc.tl.tsstc(backed, n_clusters=4, copy=True, **FAST),
        lambda: tsstc_sc.pp.spatial_scales(backed, copy=True),
    ):
        with pytest.raises(ValueError, match="to_memory"):
            call()
    assert "tsstc" not in backed.obs and set(backed.uns) == {"synthetic"} and not backed.obsp


def test_array_unit_without_pixel_coordinates():
    """Visium data need only the array grid: graphs and mini-batch tiles both come from it."""
    adata = base()
    del adata.obsm["spatial"]
    tsstc_sc.tl.tsstc(adata, n_clusters=4, **FAST)
    tsstc_sc.tl.tsstc(adata, n_clusters=4, batch_size=100, key_added="tiled", radii=[2, 3], **FAST)
    assert adata.uns["tsstc"]["params"]["unit"] == "array" and adata.obs["tiled"].nunique() == 4


def test_stored_scales_are_reused_and_recorded_as_they_were_built():
    adata = base()
    adata.obs["slide"] = np.where(np.arange(adata.n_obs) < 150, "A", "B")
    tsstc_sc.pp.spatial_scales(adata, unit="nn", library_key="slide")
    tsstc_sc.tl.tsstc(adata, n_clusters=4, **FAST)  # the defaults take the stored scales as they are
    params = adata.uns["tsstc"]["params"]
    assert (params["unit"], params["library_key"]) == ("nn", "slide")


@pytest.mark.parametrize("n_spots", [12, 30])
def test_tiny_sections_train_and_keep_every_domain(n_spots):
    """Fewer spots than negatives per spot (32) or than principal components (20) still work."""
    adata = base()[:n_spots].copy()
    tsstc_sc.tl.tsstc(adata, n_clusters=3, **FAST)
    assert adata.obs["tsstc"].cat.categories.tolist() == ["0", "1", "2"]
    assert adata.obs["tsstc"].value_counts().min() > 0  # every category holds spots
    assert np.isfinite(adata.obsm["X_tsstc"]).all()


def test_the_package_leaves_torch_threads_as_it_found_them():
    """scanpy's neighbours (numba) reset the OpenMP thread count torch shares; Leiden must not leak it."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        adata = base()
        tsstc_sc.tl.tsstc(adata, n_clusters=4, cluster_method="leiden", **FAST)
        assert torch.get_num_threads() == 1
        assert adata.uns["tsstc"]["params"]["torch_threads"] == 1
    finally:
        torch.set_num_threads(threads)


def test_single_library_key_and_isolated_and_coincident_spots():
    adata = base()
    adata.obs["slide"] = "A"
    adata.obsm["spatial"][1] = adata.obsm["spatial"][0]  # two spots at one place
    adata.obsm["spatial"][2] = [1e6, 1e6]  # a spot far from everything
    tsstc_sc.tl.tsstc(adata, unit="nn", library_key="slide", n_clusters=4, **FAST)
    idx = adata.uns["tsstc_scales"]
    assert idx["n_isolated"][0] >= 1 and np.isfinite(adata.obsm["X_tsstc"]).all()
    conn = adata.obsp[f"{idx['scale_keys'][-1]}_connectivities"]
    assert conn[0, 1] == 0 and conn[2].nnz == 0


# -- properties of the graphs and of the validation ----------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    points=st.lists(
        st.tuples(st.integers(0, 12), st.integers(0, 12), st.sampled_from(["A", "B"])),
        min_size=2,
        max_size=40,
    ),
    radii=st.lists(st.one_of(st.floats(-1, 8), st.just(float("nan"))), min_size=1, max_size=4),
)
def test_spatial_scales_property(points, radii):
    xy = np.array([(x, y) for x, y, _ in points], dtype=float)
    lib = [lib for *_, lib in points]
    adata = ad.AnnData(obs={"lib": lib}, obsm={"spatial": xy})
    adata.obs_names = [f"c{i}" for i in range(len(points))]
    arr = np.asarray(radii)
    if not (np.isfinite(arr).all() and (arr > 0).all() and (np.diff(arr) > 0).all()):
        with pytest.raises(ValueError, match="radii"):
            tsstc_sc.pp.spatial_scales(adata, radii, unit="coords", library_key="lib")
        return
    tsstc_sc.pp.spatial_scales(adata, radii, unit="coords", library_key="lib")
    valid = radii
    graphs = [adata.obsp[f"{k}_connectivities"] for k in adata.uns["tsstc_scales"]["scale_keys"]]
    dist = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    same_lib = np.equal.outer(np.array(lib), np.array(lib))
    previous = None
    for r, g in zip(valid, graphs, strict=True):
        assert (g != g.T).nnz == 0 and g.diagonal().sum() == 0
        expected = (dist > 0) & (dist <= r * (1 + 1e-9)) & same_lib
        np.testing.assert_array_equal(g.toarray() > 0, expected)
        if previous is not None:
            assert previous.multiply(g).nnz == previous.nnz  # nested
        previous = g


@settings(max_examples=60, deadline=None)
@given(
    value=st.one_of(
        st.integers(-3, 12), st.floats(allow_nan=True), st.text(max_size=3), st.none(), st.booleans()
    )
)
def test_n_clusters_validation_property(value):
    """None and the integers 2..N pass unchanged; other integers are a ValueError, anything else a TypeError."""
    from tsstc_sc._validation import check_n_clusters

    if value is None or (type(value) is int and 2 <= value <= 10):
        assert check_n_clusters(value, 10) == value
    elif type(value) is int:
        with pytest.raises(ValueError, match="between 2"):
            check_n_clusters(value, 10)
    else:
        with pytest.raises(TypeError, match="integer"):
            check_n_clusters(value, 10)


# -- reproducibility across processes ------------------------------------------------------

_RUN = """
import hashlib, tsstc_sc
a = tsstc_sc.datasets.synthetic_tissue(n_spots=300, n_genes=150, n_domains=4, random_state=3)
tsstc_sc.tl.tsstc(a, n_clusters=4, epochs=5, progress_bar=False)
print(hashlib.sha256(a.obsm["X_tsstc"].tobytes() + a.obs["tsstc"].to_numpy().astype(str).tobytes()).hexdigest())
"""


def test_same_seed_gives_identical_results_across_processes():
    env = {**os.environ, "OMP_NUM_THREADS": "2"}  # results are bit-identical for a fixed thread count
    digests = {
        subprocess.run(
            [sys.executable, "-c", _RUN], env=env, capture_output=True, text=True, check=True
        ).stdout
        for _ in range(2)
    }
    assert len(digests) == 1
    assert len(hashlib.sha256().hexdigest()) == len(digests.pop().strip())
