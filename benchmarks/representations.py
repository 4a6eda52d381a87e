"""What to cluster, and when: save what the network holds at several epochs, then score clusterings offline.

usage:
  python benchmarks/representations.py dump OUT_DIR DATA.h5ad [...] --seeds 0 1 2 --at 10 15 20
         [--param key=value ...] [--pca-init] [--jobs 2] [--threads 1]
  python benchmarks/representations.py score OUT_DIR VARIANTS.json OUT.csv [--jobs 2] [--data-dir DIR]

``dump`` trains once per (dataset, seed) as a whole process, with ``tl.tsstc``'s defaults unless
``--param`` overrides them, and saves after each epoch in ``--at`` (0 = the untrained network):
the fused embedding, every view's embedding, and the top 50 principal components of the decoder's
denoised expression ``log1p(mu)`` (``mu`` is the ZINB mean at the median library size). Training is
identical to ``tl.tsstc``'s (the snapshots draw no random numbers), so the fused embedding at 10, 15
and 20 epochs is what the default snapshot consensus clusters. ``--pca-init`` starts every view's
first layer from the top principal axes of the input instead of a random draw.

``score`` clusters every saved run as each variant of VARIANTS.json says, with the packaged
clusterer (tied GMM on PCA 20 unless ``pcs`` says otherwise, seeded by the run's seed) and vote
(``consensus``), then the spatial majority vote on the smallest scale, as ``tl.tsstc`` does:
  {"name": {"parts": [["fused", 20], ["fused", 15], ["fused", 10]],   # reference first
            "pcs": 20, "n_init": 5, "ward_init": false, "l2": false, "restarts": 1, "mixture_seed": null,
            "mixture_votes": 1, "pick": null, "covariance": "tied", "vote_neighbors": null,
            "extra_components": 0}}
A part is ``[what, epoch]``; ``what`` is ``fused``, ``denoised``, ``view0`` .. (spatial views, gene
view last), ``gene`` (the gene view), ``spatial_mean``, ``views`` (every view side by side) or
``fused_mean_weights`` (the views summed with each view's mean attention weight over the section,
the same for every spot), ``views_mean_weighted`` (the views side by side, each times that weight) or
names joined by ``+`` (e.g. ``fused+denoised``: the blocks side by side, each scaled to the same
total variance). ``restarts`` > 1 votes over the parts of that many runs (seeds s,
s+1, ... of the same dataset, cyclically). ``mixture_seed`` seeds the mixture with that number instead
of the run's seed (training and mixture seeds apart); ``mixture_votes`` clusters every part with
that many mixture seeds (the run's seed, +1, ...) and votes over all of them. ``pick`` replaces the
vote by a label-free choice of one partition: ``"medoid"`` (highest summed ARI to the others),
``"stable_epoch"`` (the part whose ``mixture_votes`` fits agree most) or ``"coherent"`` (the part
whose domains agree most across the smallest scale's edges); ``vote_neighbors`` k runs the spatial
vote over each spot and its k nearest spots (coordinates from ``--data-dir``) instead of the
smallest scale; ``ward_init`` starts the mixture once from Ward's
agglomeration (as mclust starts EEE), so that no seed enters the clustering; ``covariance``
``"full"`` or ``"diag"`` fits the mixture with one covariance per domain instead of the shared one;
``extra_components`` m fits K + m components and joins the nearest centroids back to K (as
``tl.tsstc(extra_components=m)``; 0 here unless given, the clusterer of the earlier rows);
``smooth`` n replaces each part's embedding by n steps of the mean over each spot's closed
neighbourhood on the smallest scale before it is clustered; ``concat_restarts`` (with ``restarts``)
clusters each part once on the side-by-side embeddings of every restart's run instead of once per run.
``icm`` beta replaces the spatial vote by a Potts prior on the smallest scale, solved by iterated
conditional modes: each spot takes the domain that maximises its tied-Gaussian log-likelihood (means,
proportions and pooled covariance of the voted domains in the first part's PCA space) plus beta for
each neighbour in that domain; ``icm_refit`` re-estimates the Gaussians after each sweep (hard
HMRF-EM); ``icm_vote`` runs the spatial vote after it. ``regress_depth`` replaces each part's
embedding by its residual after a least-squares fit on the log of each spot's total counts (read from
``--data-dir``), so that sequencing depth cannot split a domain. ``ensemble`` replaces the matched vote over the
parts by a consensus of their co-association (the fraction of parts that put two spots together):
``"kmeans"`` clusters the parts' one-hot memberships side by side (10 starts, the run's seed),
``"average"`` cuts the average-linkage tree of the co-association distances of the distinct
membership rows (evidence accumulation) at K. ``weigh`` weights each part's vote, label-free:
``"agreement"`` by its ARI to the first part (which weighs 1), ``"agreement_squared"`` by that ARI
squared, ``"centrality"`` by its mean ARI to the other parts.
Labels (``obs['ground_truth']``) are used only to score.
"""

from __future__ import annotations

import argparse
import ast
import functools
import itertools
import json
import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
from ablation_table import pivot  # benchmarks/ is the script's folder, hence on sys.path


def dump_one(path: str, seed: int, at: list[int], params: dict, out: str, *, pca_init: bool) -> None:
    """Train once and save the network's representations after the epochs ``at`` (worker process)."""
    import anndata as ad
    import scipy.sparse as sp
    import torch
    from sklearn.decomposition import PCA

    from tsstc_sc._model import _estimator

    saved: dict[str, np.ndarray] = {}

    class Taker:
        """The epoch callback: representations after the chosen epochs, training left untouched."""

        def __init__(self, module, inputs):
            self.module, self.inputs = module, inputs

        def before(self, last):  # the estimator's consensus gets nothing to vote over
            return []

        @torch.no_grad()
        def take(self, done):
            if done not in at:
                return
            module, data = self.module, self.inputs
            module.eval()  # the decoder's BatchNorm uses its running statistics, as after training
            views = module.encode(data.x, data.propagation, data.aggregation)
            fused, _ = module.fusion(views)
            denoised = torch.log1p(module.decoder(fused)[2]).numpy()
            module.train()
            saved[f"fused_{done}"] = fused.numpy()
            for v, z in enumerate(views):
                saved[f"view{v}_{done}"] = z.numpy()
            pcs = min(50, denoised.shape[1] - 1)
            saved[f"denoised_{done}"] = PCA(pcs, random_state=0).fit_transform(denoised).astype(np.float32)

    class Dumper(_estimator.TSstc):
        def _snapshot_taker(self, module, inputs, n_clusters):
            if pca_init:
                x = inputs.x.numpy()
                n = min(self.config.hidden_dim, *x.shape)
                axes = PCA(n, svd_solver="full").fit(x).components_  # unit rows
                with torch.no_grad():
                    for layer in module.first:
                        # rows of norm 1/sqrt(3), the expected norm of the default draw's rows
                        layer.linear.weight.zero_()[:n] = torch.from_numpy(axes / np.sqrt(3)).float()
            self._taker = Taker(module, inputs)
            self._taker.take(0)
            return self._taker

        def _cluster(self, embedding, n_clusters):  # clustering is scored offline
            return np.zeros(len(embedding), dtype=int), None

    adata = ad.read_h5ad(path)
    k = adata.obs["ground_truth"].nunique()
    model = Dumper(k, random_state=seed, progress_bar=False, device="cpu", **params).fit(adata)
    np.savez_compressed(
        out,
        truth=adata.obs["ground_truth"].astype(str).to_numpy(),
        k=k,
        loss=np.asarray(model.history.total),
        **saved,
    )
    sp.save_npz(out.replace(".npz", "_adjacency.npz"), model._fit_outputs["spatial"][0].tocsr())


def dump(args: argparse.Namespace) -> None:
    params = {k: ast.literal_eval(v) for k, v in (item.split("=", 1) for item in args.param)}
    Path(args.out).mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    here = str(Path(__file__).resolve().parent)

    def run(task):
        path, seed = task
        out = str(Path(args.out) / f"{Path(path).stem}__{seed}.npz")
        code = (
            f"import sys; sys.path.insert(0, {here!r}); import representations; "
            f"representations.dump_one({path!r}, {seed}, {args.at!r}, {params!r}, {out!r}, pca_init={args.pca_init})"
        )
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
        )
        print(out if proc.returncode == 0 else f"{out} FAILED\n{proc.stderr[-2000:]}", flush=True)

    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(run, itertools.product(args.data, args.seeds)))


#: How a part is clustered, and each setting's value when a variant does not give it.
CLUSTERING_DEFAULTS = {
    "l2": False,
    "pcs": 20,
    "n_init": 5,
    "ward_init": False,
    "covariance": "tied",
    "extra_components": 0,  # the mixture of the rows before 2026-11-26's over-clustering; tl.tsstc: 1
}


def _attention_weights(views: np.ndarray, fused: np.ndarray) -> np.ndarray:
    """Each spot's view weights (N x V+1), recovered exactly from ``fused = sum_v w_v z_v`` (``views``:
    N x d x V+1) by least squares: every spot's normal equations solved at once.
    """
    gram = np.einsum("ndv,ndw->nvw", views, views)
    return np.linalg.solve(gram, np.einsum("ndv,nd->nv", views, fused)[..., None])[..., 0]


def _features(run: np.lib.npyio.NpzFile, what: str, epoch: int, *, l2: bool) -> np.ndarray:
    n_views = sum(name.startswith("view") and name.endswith(f"_{epoch}") for name in run.files)
    if what == "spatial_mean":
        z = np.mean([run[f"view{v}_{epoch}"] for v in range(n_views - 1)], axis=0)
    elif what == "views":
        z = np.hstack([run[f"view{v}_{epoch}"] for v in range(n_views)])
    elif what == "gene":
        z = run[f"view{n_views - 1}_{epoch}"]
    elif what in ("fused_mean_weights", "views_mean_weighted"):
        views = np.stack([run[f"view{v}_{epoch}"] for v in range(n_views)], axis=2).astype(np.float64)
        weights = _attention_weights(views, run[f"fused_{epoch}"]).mean(axis=0)  # one weight per view
        if what == "fused_mean_weights":
            z = views @ weights
        else:
            z = np.hstack([weights[v] * views[:, :, v] for v in range(n_views)])
    elif "+" in what:  # blocks side by side, each scaled to the same total variance
        blocks = [run[f"{name}_{epoch}"].astype(np.float64) for name in what.split("+")]
        z = np.hstack([b / np.sqrt(((b - b.mean(0)) ** 2).sum(1).mean()) for b in blocks])
    else:
        z = run[f"{what}_{epoch}"]
    return z / np.linalg.norm(z, axis=1, keepdims=True).clip(1e-12) if l2 else z


def _mixture(z: np.ndarray, k: int, variant: dict, seed: int) -> np.ndarray:
    """Domains of one part: the packaged clusterer, or a GMM with more starts, a Ward start or another covariance."""
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

    from tsstc_sc._clustering import DomainAssigner, cluster

    settings = {**CLUSTERING_DEFAULTS, **variant}
    pcs, n_init, ward, covariance, extra = (
        settings[key] for key in ("pcs", "n_init", "ward_init", "covariance", "extra_components")
    )
    if n_init == 5 and not ward and covariance == "tied":
        return cluster(z, k, "gmm", random_state=seed, n_pcs=pcs, extra_components=extra)[0]
    if extra:
        msg = "extra_components goes with the packaged mixture only (n_init 5, no Ward start, tied)"
        raise ValueError(msg)
    x = (
        z.astype(np.float64)
        if pcs is None
        else PCA(pcs, svd_solver="full").fit_transform(z.astype(np.float64))
    )
    if not ward:  # more starts, or another covariance, than the package uses
        return GaussianMixture(k, covariance_type=covariance, n_init=n_init, random_state=seed).fit_predict(x)
    # one start from Ward's agglomeration, as mclust starts EEE: no seed enters the domains
    from sklearn.cluster import AgglomerativeClustering

    start = AgglomerativeClustering(k, linkage="ward").fit_predict(x)
    # the start's means, proportions and pooled covariance, as the package re-estimates a mixture
    fit = DomainAssigner(np.zeros((k, x.shape[1])), np.eye(x.shape[1]), np.full(k, 1 / k)).refit(x, start)
    mixture = GaussianMixture(
        k,
        covariance_type="tied",
        weights_init=fit.weights,
        means_init=fit.means,
        precisions_init=np.linalg.inv(fit.covariance),  # all three given: the seeded start is overridden
        random_state=seed,
    )
    return mixture.fit_predict(x)


def _groups(parts: list[np.ndarray], size: int) -> list[list[np.ndarray]]:
    return [parts[i : i + size] for i in range(0, len(parts), size)]


def _agreement(fits: list[np.ndarray]) -> float:
    """Mean ARI between every two mixture fits of one part: a label-free stability score."""
    from sklearn.metrics import adjusted_rand_score

    return float(np.mean([adjusted_rand_score(a, b) for a, b in itertools.combinations(fits, 2)]))


def _coherence(labels: np.ndarray, adjacency) -> float:
    """Fraction of spatial edges (self-loops aside) whose two spots share a domain: label-free."""
    edges = adjacency.tocoo()
    off = edges.row != edges.col
    return float(np.mean(labels[edges.row[off]] == labels[edges.col[off]]))


@functools.lru_cache(maxsize=8)  # one read per dataset and k in each worker, not one per variant and run
def _nearest_spots(path: Path, k: int):
    """Each spot and its ``k`` nearest spots (by ``obsm['spatial']``) as a sparse adjacency."""
    import anndata as ad
    import scipy.sparse as sp
    from sklearn.neighbors import NearestNeighbors

    xy = np.asarray(ad.read_h5ad(path, backed="r").obsm["spatial"], dtype=np.float64)[:, :2]
    _, index = NearestNeighbors(n_neighbors=k + 1).fit(xy).kneighbors(xy)  # the spot itself first
    rows = np.repeat(np.arange(len(xy)), k + 1)
    return sp.csr_matrix((np.ones(index.size), (rows, index.ravel())), shape=(len(xy), len(xy)))


def _potts_icm(
    z: np.ndarray, labels: np.ndarray, adjacency, beta: float, k: int, *, pcs: int, refit: bool
) -> np.ndarray:
    """Iterated conditional modes for a tied-Gaussian data term plus a Potts prior (beta per neighbour)."""
    import scipy.sparse as sp
    from sklearn.decomposition import PCA

    from tsstc_sc._clustering import DomainAssigner, _membership, keeps_every_domain

    x = PCA(pcs, svd_solver="full").fit_transform(z.astype(np.float64))
    neighbours = (adjacency != 0).astype(np.float64)
    neighbours.setdiag(0)
    neighbours.eliminate_zeros()
    neighbours = sp.csr_matrix(neighbours)
    start = DomainAssigner(np.zeros((k, x.shape[1])), np.eye(x.shape[1]), np.full(k, 1 / k))
    fit = start.refit(x, labels)
    current = labels
    for _ in range(20):
        inv_chol = np.linalg.inv(np.linalg.cholesky(fit.covariance))
        w, m = x @ inv_chol.T, fit.means @ inv_chol.T
        sq = (w**2).sum(1)[:, None] - 2 * w @ m.T + (m**2).sum(1)[None]
        data = np.log(fit.weights)[None] - 0.5 * sq
        prior = (neighbours @ _membership(current, k).T).toarray()
        new = (data + beta * prior).argmax(1)
        if not keeps_every_domain(new, k) or np.array_equal(new, current):
            break
        current = new
        if refit:
            fit = start.refit(x, current)
    return current


@functools.lru_cache(maxsize=8)
def _log_depth(path: Path) -> np.ndarray:
    """log1p of each spot's total counts."""
    import anndata as ad

    return np.log1p(np.asarray(ad.read_h5ad(path).X.sum(axis=1), dtype=np.float64).ravel())


def _without_depth(z: np.ndarray, log_depth: np.ndarray) -> np.ndarray:
    """Residual of ``z`` after a least-squares fit on an intercept and ``log_depth``."""
    design = np.column_stack([np.ones_like(log_depth), log_depth])
    coef, *_ = np.linalg.lstsq(design, z.astype(np.float64), rcond=None)
    return z - design @ coef


def _ensemble(parts: list[np.ndarray], k: int, how: str, seed: int) -> np.ndarray:
    """Consensus of ``parts`` through their co-association, as ``ensemble`` says (module docstring)."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import pdist
    from sklearn.cluster import KMeans

    table = np.column_stack(parts)
    rows, spot_row, counts = np.unique(table, axis=0, return_inverse=True, return_counts=True)
    if how == "kmeans":
        onehot = np.hstack([np.eye(int(p.max()) + 1)[rows[:, i]] for i, p in enumerate(parts)])
        model = KMeans(k, n_init=10, random_state=seed).fit(onehot, sample_weight=counts)
        return model.labels_[spot_row.ravel()]
    distance = pdist(rows, metric="hamming")  # 1 - co-association of two distinct membership rows
    tree = linkage(distance, method="average")  # each distinct row once, whatever its count
    return fcluster(tree, k, criterion="maxclust")[spot_row.ravel()] - 1


def _vote_weights(parts: list[np.ndarray], how: str | None) -> list[float] | None:
    """Each part's weight in the vote, as ``weigh`` says (module docstring); ``None``: all equal."""
    from sklearn.metrics import adjusted_rand_score

    if how is None:
        return None
    if how == "centrality":
        return [np.mean([adjusted_rand_score(p, q) for q in parts if q is not p]) for p in parts]
    power = {"agreement": 1, "agreement_squared": 2}[how]
    return [max(adjusted_rand_score(parts[0], p), 0.0) ** power for p in parts]


def score_one(
    folder: str, stem: str, seeds: list[int], seed: int, variants: dict, data_dir: str
) -> list[dict]:
    """Every variant on the run of ``stem`` with ``seed`` (restarts: the next seeds' runs too)."""
    import scipy.sparse as sp
    from sklearn.metrics import adjusted_rand_score

    from tsstc_sc import _clustering

    @functools.cache
    def load(s):
        return np.load(Path(folder) / f"{stem}__{s}.npz", allow_pickle=True)

    fits: dict[tuple, np.ndarray] = {}  # variants that share a part's clustering reuse its fit

    def fit(runs: tuple[int, ...], what: str, epoch: int, v: dict, m: int) -> np.ndarray:
        """One part clustered: the runs' embeddings side by side (one run: its own), smoothed if asked."""
        steps = v.get("smooth", 0)
        settings = (v.get(name, default) for name, default in CLUSTERING_DEFAULTS.items())
        key = (runs, what, epoch, m, steps, v.get("regress_depth", False), *settings)
        if key not in fits:
            l2 = v.get("l2", CLUSTERING_DEFAULTS["l2"])
            z = np.hstack([_features(load(s), what, epoch, l2=l2) for s in runs])
            for _ in range(steps):
                z = mean_around @ z
            if v.get("regress_depth"):
                z = _without_depth(z, _log_depth(Path(data_dir) / f"{stem}.h5ad"))
            fits[key] = _mixture(z, k, v, m)
        return fits[key]

    run = load(seed)
    adjacency = sp.load_npz(Path(folder) / f"{stem}__{seed}_adjacency.npz")
    closed = (adjacency != 0).astype(np.float64) + sp.eye(adjacency.shape[0])
    closed.data[:] = 1.0  # the spot and its neighbours, once each
    mean_around = sp.diags(1 / np.asarray(closed.sum(axis=1)).ravel()) @ closed
    truth, k = run["truth"], int(run["k"])
    known = truth != "nan"
    rows = []
    position = seeds.index(seed)
    for name, v in variants.items():
        others = [seeds[(position + i) % len(seeds)] for i in range(v.get("restarts", 1))]
        mixture_seed = seed if v.get("mixture_seed") is None else v["mixture_seed"]
        mixture_seeds = [mixture_seed + i for i in range(v.get("mixture_votes", 1))]
        runs = [tuple(others)] if v.get("concat_restarts") else [(s,) for s in others]
        parts = [fit(r, what, epoch, v, m) for r in runs for what, epoch in v["parts"] for m in mixture_seeds]
        if v.get("pick") == "stable_epoch":  # the part whose mixture seeds agree most, first seed's fit
            parts = [max(_groups(parts, len(mixture_seeds)), key=_agreement)[0]]
        elif v.get("pick") == "coherent":  # the most spatially coherent partition
            parts = [max(parts, key=lambda p: _coherence(p, adjacency))]
        elif v.get("pick") == "medoid":  # the partition closest to all others
            parts = [max(parts, key=lambda p: sum(adjusted_rand_score(p, q) for q in parts))]
        if v.get("ensemble"):
            voted = _ensemble(parts, k, v["ensemble"], seed)
        else:
            voted = _clustering.consensus(parts, k, _vote_weights(parts, v.get("weigh")))
        if not _clustering.keeps_every_domain(voted, k):
            voted = None  # the vote would empty a domain
        k_near = v.get("vote_neighbors")
        around = adjacency if k_near is None else _nearest_spots(Path(data_dir) / f"{stem}.h5ad", k_near)
        labels = parts[0] if voted is None else voted
        if v.get("icm") is not None:
            first = np.hstack([_features(load(s), *v["parts"][0], l2=v.get("l2", False)) for s in runs[0]])
            labels = _potts_icm(
                first, labels, adjacency, v["icm"], k, pcs=v.get("pcs", 20), refit=v.get("icm_refit", False)
            )
        if v.get("icm") is None or v.get("icm_vote"):
            labels = _clustering.spatial_majority_vote(labels, around)
        ari = adjusted_rand_score(truth[known], labels[known])
        rows.append({"data": stem, "seed": seed, "variant": name, "ari": round(float(ari), 4)})
    return rows


def score(args: argparse.Namespace) -> None:
    import pandas as pd

    variants = json.loads(Path(args.variants).read_text())
    runs = sorted(p for p in Path(args.folder).glob("*__*.npz") if not p.stem.endswith("_adjacency"))
    by_data: dict[str, list[int]] = {}
    for p in runs:
        stem, seed = p.stem.rsplit("__", 1)
        by_data.setdefault(stem, []).append(int(seed))
    tasks = [
        (args.folder, stem, sorted(seeds), seed, variants, args.data_dir)
        for stem, seeds in by_data.items()
        for seed in seeds
    ]
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = [row for result in pool.map(score_one, *zip(*tasks, strict=True)) for row in result]
    table = pd.DataFrame(rows)
    table.to_csv(args.out, index=False)
    print("\n".join(pivot(table.assign(data=table["data"] + ".h5ad"), "variant", list(variants))))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump")
    d.add_argument("out")
    d.add_argument("data", nargs="+")
    d.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    d.add_argument("--at", type=int, nargs="+", default=[10, 15, 20])
    d.add_argument("--param", nargs="*", default=[], help="tl.tsstc keyword overrides, key=value")
    d.add_argument("--pca-init", action="store_true")
    d.add_argument("--jobs", type=int, default=2)
    d.add_argument("--threads", type=int, default=1)
    s = sub.add_parser("score")
    s.add_argument("folder")
    s.add_argument("variants")
    s.add_argument("out")
    s.add_argument("--jobs", type=int, default=2)
    s.add_argument("--data-dir", default="../shared/data", help="the .h5ad files (for vote_neighbors)")
    args = p.parse_args()
    dump(args) if args.command == "dump" else score(args)


if __name__ == "__main__":
    main()
