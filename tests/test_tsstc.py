"""Contract, determinism, ablation and accuracy tests of ``tl.tsstc`` (CPU, small synthetic tissue)."""

from __future__ import annotations

import time

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
from sklearn.metrics import adjusted_rand_score

import tsstc_sc

FAST = {"epochs": 15, "progress_bar": False}


@pytest.fixture(scope="module")
def tissue() -> ad.AnnData:
    return tsstc_sc.datasets.synthetic_tissue(n_spots=500, n_genes=300, n_domains=4, random_state=1)


@pytest.fixture(scope="module")
def fitted(tissue) -> ad.AnnData:
    return tsstc_sc.tl.tsstc(tissue, n_clusters=4, copy=True, **FAST)


def test_outputs_keys_and_dtypes(fitted, tissue):
    key = "tsstc"
    assert isinstance(fitted.obs[key].dtype, pd.CategoricalDtype)
    assert list(fitted.obs[key].cat.categories) == ["0", "1", "2", "3"]
    emb = fitted.obsm[f"X_{key}"]
    assert emb.dtype == np.float32 and emb.shape == (tissue.n_obs, 64) and np.isfinite(emb).all()
    weights = fitted.obsm[f"{key}_scale_weights"]
    names = list(fitted.uns[key]["scale_weight_names"])
    assert names == ["r2", "r3", "r4", "r5", "gene"] and weights.shape == (tissue.n_obs, 5)
    np.testing.assert_allclose(weights.sum(1), 1, rtol=1e-5)
    params = fitted.uns[key]["params"]
    assert (
        params["device"] == "cpu" and params["n_clusters"] == 4 and params["version"] == tsstc_sc.__version__
    )
    assert (
        params["alpha"] == 10 and params["epochs_run"] == FAST["epochs"] and params["extra_components"] == 1
    )
    loss = fitted.uns[key]["loss"]
    assert loss["total"].shape == (15,) and loss["regularization"].shape == (15, 4)
    assert loss["total"][-1] < loss["total"][0]
    assert ((loss["kept_fraction"] > 0) & (loss["kept_fraction"] < 1)).all()
    gene = fitted.obsp[f"{key}_gene_connectivities"]
    assert (gene != gene.T).nnz == 0 and gene.diagonal().sum() == 0
    assert "tsstc_r2_connectivities" in fitted.obsp  # scales built here are stored too
    timings = fitted.uns[key]["timings"]
    stages = ["graphs_and_preprocessing", "training", "clustering", "refinement"]
    assert list(timings) == stages and all(0 < timings[s] < 60 for s in stages)
    peaks = [fitted.uns[key]["peak_rss_gb"][s] for s in stages[:-1]]
    assert 0.1 < peaks[0] <= peaks[1] <= peaks[2] < 8  # a process-wide peak only grows


def test_input_is_not_modified(tissue, fitted):
    from anndata.tests.helpers import assert_equal

    assert fitted is not tissue and "tsstc" in fitted.obs
    # X, obs, var, obsm, obsp and uns exactly as simulated
    assert_equal(
        tissue, tsstc_sc.datasets.synthetic_tissue(n_spots=500, n_genes=300, n_domains=4, random_state=1)
    )


def test_in_place_returns_none_and_round_trips_h5ad(tissue, tmp_path):
    adata = tissue.copy()
    adata.uns["tsstc_colors"] = ["#000000"]  # stale colours are dropped
    assert tsstc_sc.tl.tsstc(adata, n_clusters=4, **FAST) is None
    assert "tsstc_colors" not in adata.uns
    adata.write_h5ad(tmp_path / "r.h5ad")
    back = ad.read_h5ad(tmp_path / "r.h5ad")
    np.testing.assert_array_equal(back.obsm["X_tsstc"], adata.obsm["X_tsstc"])
    assert back.obs["tsstc"].equals(adata.obs["tsstc"])
    np.testing.assert_array_equal(back.uns["tsstc"]["loss"]["total"], adata.uns["tsstc"]["loss"]["total"])


def test_same_seed_is_bit_identical_and_another_seed_differs(tissue, fitted):
    again = tsstc_sc.tl.tsstc(tissue, n_clusters=4, copy=True, **FAST)
    np.testing.assert_array_equal(again.obsm["X_tsstc"], fitted.obsm["X_tsstc"])
    np.testing.assert_array_equal(again.obs["tsstc"], fitted.obs["tsstc"])
    other = tsstc_sc.tl.tsstc(tissue, n_clusters=4, copy=True, random_state=1, **FAST)
    assert not np.array_equal(other.obsm["X_tsstc"], fitted.obsm["X_tsstc"])


@pytest.mark.parametrize(
    ("zinb_target", "why_sparse"),
    [("counts", "size"), ("input", "size"), ("counts", "density")],
)
def test_sparse_input_trains_the_same_model(tissue, zinb_target, why_sparse, monkeypatch):
    """X stays sparse above ``DENSE_X_BYTES`` (ZINB rows then come from the host), or on the CPU at
    most ``SPARSE_X_DENSITY`` nonzero: the same model as with a dense X, rounding aside."""
    from tsstc_sc._model import _training

    split = []  # the sparse path builds a ColumnSplitOperator; the dense one does not
    build = _training.ColumnSplitOperator.from_scipy
    monkeypatch.setattr(
        _training.ColumnSplitOperator,
        "from_scipy",
        lambda *a, **kw: split.append(a[0].shape) or build(*a, **kw),
    )
    monkeypatch.setattr(_training, "SPARSE_X_DENSITY", 0.0)  # the tissue's X as a dense tensor
    dense = tsstc_sc.tl.tsstc(tissue, n_clusters=4, copy=True, zinb_target=zinb_target, **FAST)
    assert split == []
    if why_sparse == "size":
        monkeypatch.setattr(_training, "DENSE_X_BYTES", 0)
    else:
        monkeypatch.setattr(_training, "SPARSE_X_DENSITY", 1.0)
    sparse = tsstc_sc.tl.tsstc(tissue, n_clusters=4, copy=True, zinb_target=zinb_target, **FAST)
    assert split and split[0][0] == tissue.n_obs
    # the same training up to rounding: losses agree to ~5e-5 relative, embeddings to ~5e-3. Labels
    # are not compared: on this barely trained 500-spot tissue the mixture itself moves many spots
    # under a 1e-3 perturbation of the embedding.
    losses = [a.uns["tsstc"]["loss"]["total"] for a in (sparse, dense)]
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-3)
    np.testing.assert_allclose(sparse.obsm["X_tsstc"], dense.obsm["X_tsstc"], atol=1e-2)


@pytest.mark.parametrize("method", ["gmm", "kmeans", "leiden"])
@pytest.mark.parametrize("k", [3, 6])
def test_n_clusters_is_honoured(tissue, method, k):
    out = tsstc_sc.tl.tsstc(
        tissue, n_clusters=k, cluster_method=method, copy=True, epochs=3, progress_bar=False
    )
    assert out.obs["tsstc"].nunique() == k


def test_refine_labels_smooths_domains(tissue):
    noisy = {"epochs": 2, "progress_bar": False}  # barely trained: labels with speckle to smooth
    raw = tsstc_sc.tl.tsstc(tissue, n_clusters=4, copy=True, refine_labels=False, **noisy)
    smooth = tsstc_sc.tl.tsstc(tissue, n_clusters=4, copy=True, **noisy)  # refinement is the default
    conn = raw.obsp["tsstc_r2_connectivities"].tocoo()

    def disagreement(a):
        lab = a.obs["tsstc"].to_numpy()
        return np.mean(lab[conn.row] != lab[conn.col])

    assert disagreement(smooth) < disagreement(raw)
    assert smooth.uns["tsstc"]["params"]["refine_labels"]


def test_paper_preset_sets_the_papers_training_and_kwargs_override_it():
    from tsstc_sc.tl import TSstcConfig

    paper = TSstcConfig.from_kwargs("paper")
    assert (paper.epochs, paper.zinb_batch_size, paper.zinb_target) == (150, None, "input")
    assert paper.snapshots == 1 and paper.gene_graph_pcs is None
    assert TSstcConfig.from_kwargs().gene_graph_pcs == 50
    assert (TSstcConfig.from_kwargs().epochs, TSstcConfig.from_kwargs().snapshots) == (20, 3)
    override = TSstcConfig.from_kwargs("paper", epochs=3)
    assert (override.epochs, override.zinb_batch_size) == (3, None)


@pytest.mark.parametrize(
    ("epochs", "snapshots", "expected"),
    [
        (20, 3, [10, 15, 20]),
        (30, 3, [15, 22, 30]),
        (20, 5, [10, 12, 15, 18, 20]),
        (2, 3, [1, 2]),
        (150, 1, [150]),
    ],
)
def test_snapshots_span_the_second_half_of_training(epochs, snapshots, expected):
    from tsstc_sc.tl import TSstcConfig

    assert TSstcConfig(epochs=epochs, snapshots=snapshots).snapshot_epochs() == expected


def test_stopping_rule_counts_epochs_without_a_relative_improvement_of_tol():
    from tsstc_sc._model._training import TrainingHistory
    from tsstc_sc.tl import TSstcConfig

    config = TSstcConfig(tol=0.01, patience=2)
    history, stops = TrainingHistory(), []
    # 10 -> 9 (10% better), then 8.95 and 8.92 (under 1% below the best, 9): two stale epochs -> stop
    for total in (10.0, 9.0, 8.95, 8.92, 1.0):
        history.record([total, total], [])
        stops.append(history.stalled(config))
    assert stops == [False, False, False, True, False]
    assert not any(TrainingHistory().stalled(TSstcConfig()) for _ in range(3))  # tol=0: never stops


def test_training_with_tol_runs_while_the_loss_improves(tissue):
    short = {"snapshots": 1, "progress_bar": False, "refine_labels": False}
    full = tsstc_sc.tl.tsstc(tissue, n_clusters=4, copy=True, epochs=12, **short)
    total = full.uns["tsstc"]["loss"]["total"]
    assert (np.diff(total) < -1e-3 * np.abs(total[:-1])).all()  # improves by more than tol every epoch
    stopped = tsstc_sc.tl.tsstc(tissue, n_clusters=4, copy=True, epochs=12, tol=1e-3, patience=3, **short)
    np.testing.assert_array_equal(stopped.uns["tsstc"]["loss"]["total"], total)
    # a tol no epoch meets stops after `patience` epochs, before the snapshots of epochs 6 and 9: the
    # domains are then the last epoch's alone, as with one snapshot
    early = {"n_clusters": 4, "copy": True, "epochs": 12, "tol": 0.9, "patience": 2, "refine_labels": False}
    voted = tsstc_sc.tl.tsstc(tissue, snapshots=3, progress_bar=False, **early)
    single = tsstc_sc.tl.tsstc(tissue, snapshots=1, progress_bar=False, **early)
    assert len(voted.uns["tsstc"]["loss"]["total"]) == 3  # the first epoch sets the best, then 2 stale
    np.testing.assert_array_equal(voted.obs["tsstc"], single.obs["tsstc"])


def test_snapshot_consensus_votes_over_the_domains_of_shorter_trainings(tissue):
    from tsstc_sc._clustering import cluster, consensus

    # training is deterministic, so a 2-epoch run is the 2-epoch snapshot of a 4-epoch run
    short = {"progress_bar": False, "refine_labels": False, "snapshots": 1}
    domains = {}
    for epochs in (4, 3, 2):
        out = tsstc_sc.tl.tsstc(tissue, n_clusters=4, copy=True, epochs=epochs, **short)
        domains[epochs] = cluster(
            out.obsm["X_tsstc"], 4, "gmm", random_state=0, n_pcs=20, extra_components=1
        )[0]
        np.testing.assert_array_equal(out.obs["tsstc"].cat.codes, domains[epochs])
    voted = tsstc_sc.tl.tsstc(tissue, n_clusters=4, copy=True, epochs=4, **{**short, "snapshots": 3})
    expected = consensus([domains[4], domains[3], domains[2]], 4)
    np.testing.assert_array_equal(voted.obs["tsstc"].cat.codes, expected)
    assert not np.array_equal(expected, domains[4])  # the vote changed some spots: the test has teeth


def test_restarts_vote_over_every_trainings_domains_and_keep_the_first_training(tissue, monkeypatch):
    from tsstc_sc._clustering import consensus

    short = {"epochs": 4, "snapshots": 1, "progress_bar": False}
    single = tsstc_sc.tl.TSstc(4, **short).fit(tissue)
    model = tsstc_sc.tl.TSstc(4, restarts=3, **short)
    seeds, partitions = [], []
    train, cluster = model._train, model._cluster

    def spy_train(prepared, inputs, n_clusters, seed):
        seeds.append(seed)
        return train(prepared, inputs, n_clusters, seed)

    def spy_cluster(embedding, n_clusters):
        labels, assigner = cluster(embedding, n_clusters)
        partitions.append(labels)
        return labels, assigner

    monkeypatch.setattr(model, "_train", spy_train)
    monkeypatch.setattr(model, "_cluster", spy_cluster)
    model.fit(tissue)
    assert seeds == [0, 1, 2] and len(partitions) == 3
    np.testing.assert_array_equal(model.latent(), single.latent())  # the first training is kept
    np.testing.assert_array_equal(model.history.total, single.history.total)
    np.testing.assert_array_equal(partitions[0], single.predict())
    np.testing.assert_array_equal(model.predict(), consensus(partitions, 4))
    assert not np.array_equal(model.predict(), single.predict())  # the vote changed spots: the test has teeth
    assert adjusted_rand_score(model.predict(), model.predict(tissue)) > 0.9  # new data: the voted domains


def test_paper_preset_reaches_the_model_and_is_recorded(tissue, monkeypatch):
    from tsstc_sc._model import _training

    scored = []  # the ZINB batch size each epoch's loss was given
    loss = _training.reconstruction_loss
    monkeypatch.setattr(_training, "reconstruction_loss", lambda *a: scored.append(a[3]) or loss(*a))
    out = tsstc_sc.tl.tsstc(tissue, n_clusters=4, copy=True, preset="paper", epochs=2, progress_bar=False)
    params = out.uns["tsstc"]["params"]
    assert params["preset"] == "paper" and params["zinb_target"] == "input" and params["snapshots"] == 1
    assert "zinb_batch_size" in params["unset"] and scored == [None, None]  # every spot, each epoch
    assert len(out.uns["tsstc"]["loss"]["total"]) == 2


def test_ablation_switches_change_the_loss_terms(tissue):
    def loss(**kw):
        return tsstc_sc.tl.tsstc(tissue, n_clusters=4, copy=True, epochs=3, progress_bar=False, **kw).uns[
            "tsstc"
        ]["loss"]

    full = loss()
    no_lr = loss(lambda_r=0)
    assert (no_lr["regularization"] == 0).all() and np.isnan(no_lr["kept_fraction"]).all()
    np.testing.assert_allclose(no_lr["total"], 10 * no_lr["reconstruction"], rtol=1e-6)
    no_lc = loss(alpha=0)
    assert (no_lc["reconstruction"] == 0).all()
    np.testing.assert_allclose(no_lc["total"], no_lc["regularization"].sum(1), rtol=1e-5)
    assert (loss(refine_rule="none")["kept_fraction"] == 1).all()
    scaled = loss(zinb_target="input")  # the scaffold's target: the scaled input, a different likelihood
    assert np.isfinite(scaled["total"]).all() and scaled["reconstruction"][0] != full["reconstruction"][0]
    no_sas = loss(use_sas=False)
    assert no_sas["total"][0] != full["total"][0]
    model = tsstc_sc.tl.TSstc(4, use_sas=False, epochs=1, snapshots=1, progress_bar=False).fit(tissue)
    assert not model.module.use_sas  # the switch reaches the network, whose encode skips the SAS mean
    one_radius = tsstc_sc.tl.tsstc(tissue, [3], n_clusters=4, copy=True, epochs=3, progress_bar=False)
    assert list(one_radius.uns["tsstc"]["scale_weight_names"]) == ["r3", "gene"]


def test_reuses_scales_from_pp_and_chains_into_scanpy(tissue):
    adata = tissue.copy()
    tsstc_sc.pp.spatial_scales(adata, radii=[2, 4])
    tsstc_sc.tl.tsstc(adata, n_clusters=4, **FAST)
    assert list(adata.uns["tsstc"]["params"]["radii"]) == [2, 4]
    assert adata.obs["tsstc"].value_counts().min() >= 3  # 0.5% of 500 spots: no domain erased by a vote
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    sc.tl.rank_genes_groups(adata, "tsstc", method="wilcoxon")
    top = adata.uns["rank_genes_groups"]["names"][0]
    assert len(top) == 4


def test_estimator_save_load_predicts_identically(tissue, tmp_path):
    model = tsstc_sc.tl.TSstc(4, epochs=5, snapshots=1, extra_components=2, progress_bar=False).fit(tissue)
    model.save(tmp_path / "m")
    with pytest.raises(FileExistsError):
        model.save(tmp_path / "m")
    loaded = tsstc_sc.tl.TSstc.load(tmp_path / "m", device="cpu")
    assert loaded.extra_components == 2
    np.testing.assert_allclose(loaded.latent(tissue), model.latent(tissue), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(loaded.predict(tissue), model.predict(tissue))
    np.testing.assert_array_equal(model.predict(tissue), model.predict())
    with pytest.raises(ValueError, match="genes are missing"):
        loaded.latent(tissue[:, 10:].copy())


def test_estimator_saves_numpy_integer_settings_and_writes_nothing_when_it_cannot(tissue, tmp_path):
    settings = {"cluster_pcs": np.int64(10), "epochs": 3, "snapshots": 1, "progress_bar": False}
    model = tsstc_sc.tl.TSstc(np.int64(4), **settings)
    model.fit(tissue).save(tmp_path / "m")
    loaded = tsstc_sc.tl.TSstc.load(tmp_path / "m", device="cpu")
    assert (loaded.n_clusters, loaded.cluster_pcs) == (4, 10)
    np.testing.assert_array_equal(loaded.predict(tissue), model.predict(tissue))
    model.random_state = object()  # not storable: the save must fail before writing anything
    with pytest.raises(TypeError):
        model.save(tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_estimator_says_what_is_missing_before_fit_and_after_load(tissue, tmp_path):
    untrained = tsstc_sc.tl.TSstc(4, epochs=2, snapshots=1, progress_bar=False)
    for use in (untrained.predict, untrained.latent, lambda: untrained.save(tmp_path / "u")):
        with pytest.raises(RuntimeError, match="not trained yet"):
            use()
    with pytest.raises(FileNotFoundError, match=r"written by `TSstc\.save`"):
        tsstc_sc.tl.TSstc.load(tmp_path)  # an empty folder
    first = tsstc_sc.tl.TSstc(4, epochs=2, snapshots=1, extra_components=2, progress_bar=False).fit(tissue)
    first.save(tmp_path / "m")
    second = tsstc_sc.tl.TSstc(3, epochs=2, snapshots=1, progress_bar=False).fit(tissue)
    second.save(tmp_path / "m", overwrite=True)
    loaded = tsstc_sc.tl.TSstc.load(tmp_path / "m", device="cpu")
    assert (loaded.n_clusters, loaded.extra_components) == (
        3,
        1,
    )  # the second model replaced the first (4, 2)
    np.testing.assert_array_equal(loaded.predict(tissue), second.predict(tissue))
    with pytest.raises(ValueError, match="keeps no training embedding"):
        loaded.latent()


def test_leiden_without_n_clusters_clusters_the_last_epoch(tissue):
    from sklearn.metrics import homogeneity_score

    from tsstc_sc._clustering import cluster

    model = tsstc_sc.tl.TSstc(None, cluster_method="leiden", epochs=5, progress_bar=False).fit(tissue)
    labels = model.predict()
    # no snapshot vote without a fixed K: the domains are Leiden's on the last epoch's embedding
    expected = cluster(model.latent(), None, "leiden", random_state=0, n_pcs=model.cluster_pcs)[0]
    np.testing.assert_array_equal(labels, expected)
    # resolution 1 splits the 4 layers (12 domains here), but each domain lies mostly in one layer
    # (homogeneity 0.58 measured; random labels give about 0.01)
    assert len(np.unique(labels)) >= 4
    assert homogeneity_score(tissue.obs["domain"], labels) > 0.4


def test_estimator_rejects_non_integer_domain_and_component_counts():
    with pytest.raises(TypeError, match="n_clusters"):
        tsstc_sc.tl.TSstc(3.5)
    with pytest.raises(TypeError, match="cluster_pcs"):
        tsstc_sc.tl.TSstc(3, cluster_pcs=2.5)


def test_new_data_of_one_spot_get_a_clear_error(tissue):
    model = tsstc_sc.tl.TSstc(4, epochs=2, snapshots=1, progress_bar=False).fit(tissue)
    with pytest.raises(ValueError, match="at least 2 spots"):
        model.predict(tissue[:1].copy())


def test_params_name_the_arguments_that_were_none(tissue):
    adata = tissue.copy()
    tsstc_sc.tl.tsstc(adata, n_clusters=4, epochs=2, cluster_pcs=None, max_value=None, progress_bar=False)
    params = adata.uns["tsstc"]["params"]
    assert {"cluster_pcs", "max_value", "layer"} <= set(params["unset"])
    assert "cluster_pcs" not in params and params["gene_graph_pcs"] == 50


def test_new_data_go_to_the_consensus_domains(tissue):
    voted = tsstc_sc.tl.TSstc(4, epochs=4, progress_bar=False).fit(tissue)  # snapshots at epochs 2, 3, 4
    last = tsstc_sc.tl.TSstc(4, epochs=4, snapshots=1, progress_bar=False).fit(tissue)
    assert adjusted_rand_score(voted.predict(), last.predict()) < 0.9  # barely trained: the vote matters
    assert adjusted_rand_score(voted.predict(), voted.predict(tissue)) > 0.9


def test_a_vote_that_empties_a_domain_keeps_the_last_epochs_domains(tissue, monkeypatch):
    import tsstc_sc._clustering as clustering

    last = tsstc_sc.tl.TSstc(4, epochs=4, snapshots=1, progress_bar=False).fit(tissue).predict()
    monkeypatch.setattr(clustering, "consensus", lambda runs, k: np.minimum(runs[0], k - 2))  # drops a domain
    voted = tsstc_sc.tl.TSstc(4, epochs=4, progress_bar=False).fit(tissue).predict()
    np.testing.assert_array_equal(voted, last)


def test_join_nearest_centroids_joins_the_closest_pair():
    from tsstc_sc._clustering import join_nearest_centroids

    groups = join_nearest_centroids(np.array([[20.0], [1.0], [10.0], [0.0], [30.0]]), 4)
    assert groups[1] == groups[3] and len({groups[0], groups[1], groups[2], groups[4]}) == 4


def _slab_thin_and_far_domains() -> tuple[np.ndarray, np.ndarray]:
    """A wide domain, a thin one beside it and a far one: 3 Gaussians split the wide one instead."""
    rng = np.random.default_rng(0)
    wide = np.column_stack([rng.uniform(0, 6, 1500), rng.normal(0, 0.4, 1500)])
    thin = rng.normal(0, 0.4, (100, 2)) + np.array([8, 0])
    far = rng.normal(0, 0.4, (800, 2)) + np.array([14, 0])
    return np.vstack([wide, thin, far]), np.repeat([0, 1, 2], [1500, 100, 800])


def test_an_extra_mixture_component_keeps_a_thin_domain_that_a_plain_mixture_merges():
    from tsstc_sc._clustering import cluster

    embedding, domains = _slab_thin_and_far_domains()
    plain, _ = cluster(embedding, 3, "gmm", random_state=0)
    joined, assigner = cluster(embedding, 3, "gmm", random_state=0, extra_components=1)
    assert adjusted_rand_score(domains, plain) < 0.7  # the wide domain split, the thin one absorbed
    assert adjusted_rand_score(domains, joined) > 0.99
    # the assigner keeps the 4 components and their domains: it reproduces the domains exactly
    assert len(assigner.means) == 4 and sorted(np.bincount(assigner.domain_of)) == [1, 1, 2]
    np.testing.assert_array_equal(assigner.predict(embedding), joined)


@pytest.mark.parametrize("n_pcs", [None, 1])
def test_the_mixture_runs_on_one_blas_thread_and_leaves_the_callers_threads(n_pcs, monkeypatch):
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_info, threadpool_limits

    from tsstc_sc._clustering import cluster

    seen = []
    fit_predict = GaussianMixture.fit_predict

    def recording(self, x):
        seen.append({pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"})
        return fit_predict(self, x)

    monkeypatch.setattr(GaussianMixture, "fit_predict", recording)
    embedding, _ = _slab_thin_and_far_domains()
    with threadpool_limits(limits=2, user_api="blas"):
        cluster(embedding, 3, "gmm", random_state=0, n_pcs=n_pcs)
        after = {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}
    assert seen == [{1}]
    assert after == {2}


def test_an_outlier_component_falls_back_to_the_plain_mixture(monkeypatch):
    import tsstc_sc._clustering as clustering

    rng = np.random.default_rng(1)
    # three domains and three outlying spots: the extra component takes the outliers
    centres = ([0, 0], [3, 0], [6, 0])
    embedding = np.vstack(
        [rng.normal(c, 0.2, (300, 2)) for c in centres] + [rng.normal([3, 5], 0.05, (3, 2))]
    )
    plain, _ = clustering.cluster(embedding, 3, "gmm", random_state=0)
    joined, _ = clustering.cluster(embedding, 3, "gmm", random_state=0, extra_components=1)
    np.testing.assert_array_equal(joined, plain)
    assert sorted(np.bincount(joined)) == [300, 300, 303]
    monkeypatch.setattr(clustering, "MIN_DOMAIN_FRACTION", 0)  # without the guard: teeth
    unguarded, _ = clustering.cluster(embedding, 3, "gmm", random_state=0, extra_components=1)
    assert sorted(np.bincount(unguarded)) == [3, 300, 600]


def test_a_domain_under_half_a_percent_of_the_spots_counts_as_lost():
    from tsstc_sc._clustering import consensus_keeping_k, keeps_every_domain

    assert keeps_every_domain(np.repeat([0, 1, 2], [300, 297, 3]), 3)  # 3 spots >= 0.5% of 600
    assert not keeps_every_domain(np.repeat([0, 1, 2], [300, 298, 2]), 3)
    assert not keeps_every_domain(np.repeat([0, 1], [300, 300]), 3)  # an empty domain
    first = np.repeat([0, 1, 2], [300, 290, 10])
    second = np.repeat([0, 1, 2], [300, 299, 1])
    third = second.copy()
    assert consensus_keeping_k([first, second, third], 3) is None  # the vote would leave 1 spot


def test_the_spatial_vote_never_erases_a_domain():
    import scipy.sparse as sp

    from tsstc_sc._clustering import spatial_majority_vote

    n = 600  # a chain of spots, each touching the next
    chain = sp.diags([np.ones(n - 1), np.ones(n - 1)], [-1, 1], format="csr", dtype=np.float32)
    labels = np.repeat([0, 1], [300, 300])
    labels[[10, 50, 90, 130]] = 2  # a small domain of scattered spots: the vote alone would erase it
    np.testing.assert_array_equal(spatial_majority_vote(labels, chain), labels)
    speckled = np.repeat([0, 1, 2], [200, 200, 200])
    speckled[[10, 50]] = 1  # speckle of a large domain inside another: smoothed as before
    smoothed = spatial_majority_vote(speckled, chain)
    assert smoothed[10] == 0 and smoothed[50] == 0


def test_the_spatial_vote_never_empties_a_domain_even_a_small_one():
    """A domain already below the size that counts as kept (here 2 of 600 spots) is not voted away either."""
    import scipy.sparse as sp

    from tsstc_sc._clustering import spatial_majority_vote

    n = 600
    chain = sp.diags([np.ones(n - 1), np.ones(n - 1)], [-1, 1], format="csr", dtype=np.float32)
    labels = np.repeat([0, 1], [300, 300])
    labels[[10, 50]] = 2
    assert set(spatial_majority_vote(labels, chain)) == {0, 1, 2}


def test_the_spatial_vote_needs_a_strict_majority():
    """A spot whose neighbours are split keeps its label; a plurality vote would take the largest share."""
    import scipy.sparse as sp

    from tsstc_sc._clustering import spatial_majority_vote

    star = sp.csr_matrix(([1.0] * 8, ([0] * 8, range(1, 9))), shape=(12, 12), dtype=np.float32)
    star = (star + star.T).tocsr()  # spot 0 touches spots 1-8; spots 9-11 only pad the domains
    split = np.array([1, 1, 1, 0, 0, 0, 0, 2, 2, 1, 0, 2])  # around spot 0: 3 of its own, 4 of 0, 2 of 2
    assert spatial_majority_vote(split, star)[0] == 1
    outvoted = split.copy()
    outvoted[2] = 0  # now 5 of 9 are 0
    assert spatial_majority_vote(outvoted, star)[0] == 0


def test_refit_assigner_recovers_the_domains_it_is_given():
    from tsstc_sc._clustering import cluster

    rng = np.random.default_rng(0)
    embedding = np.vstack([rng.normal(c, 0.3, (100, 5)) for c in (0, 2, 4)])
    domains = np.repeat([2, 0, 1], 100)  # other names than the mixture's
    for method in ("gmm", "kmeans"):
        _, assigner = cluster(embedding, 3, method, random_state=0, n_pcs=3)
        np.testing.assert_array_equal(assigner.refit(embedding, domains).predict(embedding), domains)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_clusters": 1}, ValueError, "between 2"),
        ({"n_clusters": 2.5}, TypeError, "integer"),
        ({"n_clusters": 4, "epochs": 0}, ValueError, "epochs"),
        ({"n_clusters": 4, "lr_temperature": 0}, ValueError, "lr_temperature"),
        ({"n_clusters": 4, "not_a_param": 1}, TypeError, "Unknown TSstc parameter"),
        ({"n_clusters": 4, "layer": "counts"}, KeyError, "layer"),
        ({"n_clusters": 4, "device": "cuda:7"}, ValueError, "device"),
        ({"cluster_method": "gmm"}, ValueError, "needs `n_clusters`"),
        ({"n_clusters": 4, "preset": "fast"}, ValueError, "preset"),
        ({"n_clusters": 4, "extra_components": -1}, ValueError, "extra_components"),
        ({"n_clusters": 4, "extra_components": 1.5}, TypeError, "extra_components"),
    ],
)
def test_bad_arguments_raise_before_touching_adata(tissue, kwargs, error, match):
    adata = tissue.copy()
    with pytest.raises(error, match=match):
        tsstc_sc.tl.tsstc(adata, **{"progress_bar": False, "epochs": 2, **kwargs})
    assert "tsstc" not in adata.obs and not adata.obsp and set(adata.uns) == set(tissue.uns)


def test_refuses_normalised_data(tissue):
    adata = tissue.copy()
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    with pytest.raises(ValueError, match="raw counts"):
        tsstc_sc.tl.tsstc(adata, n_clusters=4, **FAST)


@pytest.fixture(scope="module")
def layered_run() -> tuple[float, float]:
    """ARI and seconds of the defaults on the default layered synthetic tissue (3,000 spots)."""
    adata = tsstc_sc.datasets.synthetic_tissue(random_state=0)
    start = time.perf_counter()
    tsstc_sc.tl.tsstc(adata, n_clusters=adata.obs["domain"].nunique(), progress_bar=False)
    return adjusted_rand_score(adata.obs["domain"], adata.obs["tsstc"]), time.perf_counter() - start


def test_layered_synthetic_tissue_within_a_minute(layered_run):
    assert layered_run[1] < 60, layered_run


def test_layered_synthetic_tissue_accuracy(layered_run):
    assert layered_run[0] >= 0.8, layered_run  # 0.920 since the gene graph on 50 PCs (0.757 before)


@pytest.mark.gpu
@pytest.mark.skipif("not __import__('torch').cuda.is_available()", reason="needs a CUDA GPU")
def test_cuda_matches_cpu_domains(tissue):
    gpu = tsstc_sc.tl.tsstc(tissue, n_clusters=4, device="cuda", copy=True, **FAST)
    cpu = tsstc_sc.tl.tsstc(tissue, n_clusters=4, device="cpu", copy=True, **FAST)
    assert gpu.uns["tsstc"]["params"]["device"].startswith("cuda")
    assert adjusted_rand_score(gpu.obs["tsstc"], cpu.obs["tsstc"]) > 0.9
