"""Domains from an embedding without R (METHOD.md §5): tied Gaussian mixture (= mclust EEE), optionally
with extra components joined back to ``n_clusters``, k-means, or Leiden with a resolution search that
returns exactly ``n_clusters``.

Every method is seeded; none looks at labels. The domains of several embeddings (snapshots of one
training) can be combined by a matched majority vote, and a spatial majority vote smooths labels.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from typing import Literal, get_args

import numpy as np
import scipy.sparse as sp

from . import _logging as logg
from ._validation import check_choice

ClusterMethod = Literal["gmm", "kmeans", "leiden"]
_LEIDEN_STEPS = 30
_GMM_STARTS = 5  # the mixture keeps the best of this many seeded starts by likelihood
_KMEANS_STARTS = 10  # k-means keeps the best of this many seeded starts by inertia
#: Above this many spots, the mixture (or k-means) is fitted on a seeded subsample of this size and
#: every spot is assigned by its posterior (nearest centroid for k-means): linear in N.
FIT_MAX_OBS = 200_000
#: A domain with fewer spots than this fraction of the section (or than 2) counts as lost: a joined
#: mixture, a snapshot vote or a spatial vote that leaves one is not used (``n_clusters`` stays real).
MIN_DOMAIN_FRACTION = 0.005


def keeps_every_domain(labels: np.ndarray, n_domains: int) -> bool:
    """Whether each of the ``n_domains`` domains holds at least ``max(2, MIN_DOMAIN_FRACTION * N)`` spots."""
    return np.bincount(labels, minlength=n_domains).min() >= max(2, MIN_DOMAIN_FRACTION * len(labels))


def _membership(labels: np.ndarray, n_domains: int) -> sp.csr_matrix:
    """Sparse K x N indicator: entry (d, i) is 1 when spot ``i`` is in domain ``d``."""
    return sp.csr_matrix(
        (np.ones(len(labels)), (labels, np.arange(len(labels)))), shape=(n_domains, len(labels))
    )


def _domain_means(x: np.ndarray, labels: np.ndarray, n_domains: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean row of each domain (K x d) and the domains' sizes; every domain must have a spot."""
    counts = np.bincount(labels, minlength=n_domains).astype(np.float64)
    return np.asarray(_membership(labels, n_domains) @ x) / counts[:, None], counts


@dataclass(frozen=True)
class DomainAssigner:
    """Assigns new embeddings to fitted domains: tied-GMM posterior, else the nearest centroid."""

    means: np.ndarray  # K x p, in the clustering space
    covariance: np.ndarray | None = None  # shared p x p (tied GMM only)
    weights: np.ndarray | None = None  # K mixture weights (tied GMM only)
    center: np.ndarray | None = None  # PCA before clustering: mean (d,) ...
    components: np.ndarray | None = None  # ... and loadings (p x d)
    domain_of: np.ndarray | None = None  # the domain of each mixture component, when some were joined

    @classmethod
    def from_labels(cls, embedding: np.ndarray, labels: np.ndarray) -> DomainAssigner:
        """Centroids of labelled embeddings (k-means, Leiden)."""
        return cls(_domain_means(embedding, labels, int(labels.max()) + 1)[0])

    def refit(self, embedding: np.ndarray, labels: np.ndarray) -> DomainAssigner:
        """The same space and kind of assigner, re-estimated from given domains (e.g. a consensus):
        their means and, for the tied GMM, their proportions and pooled covariance.
        """
        x = self._project(embedding)
        n_domains = len(self.means) if self.domain_of is None else int(self.domain_of.max()) + 1
        means, counts = _domain_means(x, labels, n_domains)
        if self.covariance is None:
            return replace(self, means=means)
        residual = x - means[labels]
        covariance = residual.T @ residual / len(x) + 1e-6 * np.eye(x.shape[1])  # sklearn's reg_covar
        return replace(self, means=means, covariance=covariance, weights=counts / len(x), domain_of=None)

    def _project(self, embedding: np.ndarray) -> np.ndarray:
        x = embedding.astype(np.float64)
        return x if self.components is None else (x - self.center) @ self.components.T

    def predict(self, embedding: np.ndarray) -> np.ndarray:
        """Domain index of each row of ``embedding``."""
        x, means = self._project(embedding), self.means
        if self.covariance is not None:  # whiten: Mahalanobis distance becomes Euclidean
            inv_chol = np.linalg.inv(np.linalg.cholesky(self.covariance))
            x, means = x @ inv_chol.T, means @ inv_chol.T
        sq_dist = (x**2).sum(1)[:, None] - 2 * x @ means.T + (means**2).sum(1)[None]  # N x K, no N x K x d
        if self.covariance is None:
            return sq_dist.argmin(1)
        component = (np.log(self.weights)[None] - 0.5 * sq_dist).argmax(1)
        return component if self.domain_of is None else self.domain_of[component]

    def state(self) -> dict[str, np.ndarray]:
        """Arrays to save (``None`` fields omitted)."""
        return {k: v for k, v in vars(self).items() if v is not None}


def join_nearest_centroids(centroids: np.ndarray, n_clusters: int) -> np.ndarray:
    """The group (``0 .. n_clusters-1``) of each centroid: Ward linkage on the centroids alone, each one
    point whatever its cluster's size. So the two halves of a split domain are joined before a small,
    distinct domain is absorbed, which a merge weighted by size would do first.
    """
    from sklearn.cluster import AgglomerativeClustering

    return AgglomerativeClustering(n_clusters, linkage="ward").fit_predict(centroids)


def gmm(
    embedding: np.ndarray, n_clusters: int, *, random_state: int, extra_components: int = 0
) -> tuple[np.ndarray, DomainAssigner]:
    """Tied-covariance Gaussian mixture (mclust ``EEE``); the best of five starts by likelihood.

    With ``extra_components``, the mixture has that many more components than ``n_clusters`` and
    the components' centroids (mean of their spots) are joined (:func:`join_nearest_centroids`) until
    ``n_clusters`` domains remain; the assigner keeps the components and their domains. When the
    join loses a domain (:func:`keeps_every_domain`: an outlier component kept while two real domains
    were joined), the plain ``n_clusters``-component mixture is returned instead.
    """
    from sklearn.mixture import GaussianMixture

    x = embedding.astype(np.float64)
    extra_components = min(extra_components, len(x) - n_clusters)  # no more components than spots
    model = GaussianMixture(
        n_clusters + extra_components, covariance_type="tied", n_init=_GMM_STARTS, random_state=random_state
    )
    labels = model.fit_predict(x)
    if not extra_components:
        return labels, DomainAssigner(model.means_, model.covariances_, model.weights_)
    used, labels = np.unique(labels, return_inverse=True)  # a component no spot chose is dropped
    if len(used) <= n_clusters:
        domain_of = np.arange(len(used))
    else:
        domain_of = join_nearest_centroids(_domain_means(x, labels, len(used))[0], n_clusters)
    labels = domain_of[labels]
    if not keeps_every_domain(labels, n_clusters):
        return gmm(embedding, n_clusters, random_state=random_state)
    weights = model.weights_[used] / model.weights_[used].sum()
    return labels, DomainAssigner(model.means_[used], model.covariances_, weights, domain_of=domain_of)


def kmeans(embedding: np.ndarray, n_clusters: int, *, random_state: int) -> tuple[np.ndarray, DomainAssigner]:
    """k-means, the best of ten starts by inertia."""
    from sklearn.cluster import KMeans

    model = KMeans(n_clusters, n_init=_KMEANS_STARTS, random_state=random_state).fit(embedding)
    return model.labels_, DomainAssigner(model.cluster_centers_.astype(np.float64))


def _knn_connectivities(embedding: np.ndarray, random_state: int) -> sp.csr_matrix:
    import anndata as ad
    import scanpy as sc

    tmp = ad.AnnData(np.zeros((len(embedding), 0), dtype=np.float32), obsm={"X": embedding})
    sc.pp.neighbors(tmp, use_rep="X", n_neighbors=15, random_state=random_state)
    return tmp.obsp["connectivities"]


def _leiden_partition(graph: sp.csr_matrix, resolution: float, random_state: int) -> np.ndarray:
    import igraph as ig
    import leidenalg

    coo = sp.triu(graph, k=1).tocoo()
    g = ig.Graph(n=graph.shape[0], edges=list(zip(coo.row.tolist(), coo.col.tolist(), strict=True)))
    part = leidenalg.find_partition(
        g, leidenalg.RBConfigurationVertexPartition, weights=coo.data.tolist(),
        resolution_parameter=resolution, seed=random_state, n_iterations=-1,
    )  # fmt: skip
    return np.asarray(part.membership)


def merge_to(labels: np.ndarray, embedding: np.ndarray, n_clusters: int) -> np.ndarray:
    """Merge the smallest cluster into the one with the nearest centroid until ``n_clusters`` remain."""
    labels = np.unique(labels, return_inverse=True)[1]
    while (n_found := int(labels.max()) + 1) > n_clusters:
        centroids, sizes = _domain_means(embedding, labels, n_found)
        small = int(np.argmin(sizes))
        dist = np.linalg.norm(centroids - centroids[small], axis=1)
        dist[small] = np.inf
        labels[labels == small] = int(np.argmin(dist))
        labels = np.unique(labels, return_inverse=True)[1]
    return labels


def leiden(embedding: np.ndarray, n_clusters: int | None, *, random_state: int) -> np.ndarray:
    """Leiden on a k-NN graph of the embedding (resolution 1, or bisected to hit ``n_clusters``)."""
    graph = _knn_connectivities(embedding, random_state)
    if n_clusters is None:
        return _leiden_partition(graph, 1.0, random_state)
    low, high = 0.0, 5.0
    closest = None
    for _ in range(_LEIDEN_STEPS):
        resolution = (low + high) / 2
        labels = _leiden_partition(graph, resolution, random_state)
        found = len(np.unique(labels))
        if found == n_clusters:
            return labels
        if found > n_clusters:
            high = resolution
            if closest is None or found < len(np.unique(closest)):
                closest = labels
        else:
            low = resolution
    if closest is None:
        msg = f"Leiden found fewer than {n_clusters} clusters at every resolution up to 5; use `cluster_method='gmm'`."
        raise RuntimeError(msg)
    logg.info(f"leiden: no resolution gave exactly {n_clusters} clusters; merging the smallest ones")
    return merge_to(closest, embedding, n_clusters)


def cluster(
    embedding: np.ndarray,
    n_clusters: int | None,
    method: ClusterMethod,
    *,
    random_state: int,
    n_pcs: int | None = None,
    extra_components: int = 0,
) -> tuple[np.ndarray, DomainAssigner]:
    """Integer labels ``0 .. K-1`` and their assigner; ``n_clusters`` is honoured exactly when given.

    With ``n_pcs``, the embedding is first reduced to its top principal components (as GraphST and
    STAGATE users do before mclust), which steadies the Gaussian mixture. ``extra_components``: see
    :func:`gmm` (the Gaussian mixture only).

    BLAS runs on one thread here: the mixture's products are tall and thin (spots x ``n_pcs``), and
    threads only add synchronisation (docs/benchmarks.md: on 2 cores the mixture of a Visium slice is
    4x faster, with the same domains).
    """
    from threadpoolctl import threadpool_limits

    check_choice(method, get_args(ClusterMethod), "cluster_method")
    with threadpool_limits(limits=1, user_api="blas"):
        return _cluster(
            embedding,
            n_clusters,
            method,
            random_state=random_state,
            n_pcs=n_pcs,
            extra_components=extra_components,
        )


def _cluster(
    embedding: np.ndarray,
    n_clusters: int | None,
    method: ClusterMethod,
    *,
    random_state: int,
    n_pcs: int | None,
    extra_components: int,
) -> tuple[np.ndarray, DomainAssigner]:
    n_pcs = None if n_pcs is None else min(n_pcs, len(embedding))  # PCA needs no more axes than spots
    if n_pcs is not None and n_pcs < embedding.shape[1]:
        from sklearn.decomposition import PCA

        pca = PCA(n_pcs, svd_solver="full").fit(embedding.astype(np.float64))
        labels, assigner = _cluster(
            pca.transform(embedding),
            n_clusters,
            method,
            random_state=random_state,
            n_pcs=None,
            extra_components=extra_components,
        )
        return labels, replace(assigner, center=pca.mean_, components=pca.components_)
    if method in ("gmm", "kmeans"):  # n_clusters is required: the estimator checks it up front
        fit = partial(gmm, extra_components=extra_components) if method == "gmm" else kmeans
        if len(embedding) <= FIT_MAX_OBS:
            return fit(embedding, n_clusters, random_state=random_state)
        logg.info(f"{method}: {len(embedding)} spots > {FIT_MAX_OBS}, fitting on a subsample, assigning all")
        subsample = np.sort(
            np.random.default_rng(random_state).choice(len(embedding), FIT_MAX_OBS, replace=False)
        )
        _, assigner = fit(embedding[subsample], n_clusters, random_state=random_state)
        return assigner.predict(embedding), assigner
    labels = leiden(embedding, n_clusters, random_state=random_state)  # the last method
    return labels, DomainAssigner.from_labels(embedding, labels)


def neighbourhood_votes(labels: np.ndarray, adjacency: sp.csr_matrix) -> np.ndarray:
    """``n x K`` tally of the labels in each spot's closed spatial neighbourhood (sparse product).

    Dense only as ``n x K``, with K the number of domains (small): O(N·K) memory.
    """
    closed = adjacency + sp.identity(len(labels), dtype=np.float32, format="csr")
    return (closed @ _membership(labels, int(labels.max()) + 1).T).toarray()


def spatial_majority_vote(labels: np.ndarray, adjacency: sp.csr_matrix) -> np.ndarray:
    """Relabel each spot with the label held by more than half of its closed spatial neighbourhood.

    A spot without such a majority keeps its own label: a domain one spot wide, whose spots have as
    many neighbours outside it as inside, is not voted away (a plurality vote erased the olfactory
    bulb's thin layers; docs/benchmarks.md). A vote that would lose a domain the labels had
    (:func:`keeps_every_domain`), or empty one however small, returns them unchanged.
    """
    votes = neighbourhood_votes(labels, adjacency)
    top = votes.argmax(axis=1)
    voted = np.where(votes[np.arange(len(labels)), top] > 0.5 * votes.sum(axis=1), top, labels)
    k = votes.shape[1]
    lost = keeps_every_domain(labels, k) and not keeps_every_domain(voted, k)
    emptied = len(np.unique(voted)) < len(np.unique(labels))
    return labels if lost or emptied else voted


def match_labels(reference: np.ndarray, labels: np.ndarray, n_clusters: int) -> np.ndarray:
    """``labels`` renamed to the ``reference`` domains they overlap most (one-to-one, Hungarian)."""
    from scipy.optimize import linear_sum_assignment

    overlap = np.zeros((n_clusters, n_clusters))
    np.add.at(overlap, (labels, reference), 1)
    rows, cols = linear_sum_assignment(-overlap)
    rename = np.empty(n_clusters, dtype=np.int64)
    rename[rows] = cols
    return rename[labels]


def consensus(runs: list[np.ndarray], n_clusters: int, weights: list[float] | None = None) -> np.ndarray:
    """Majority domain of every spot over ``runs``, each matched to the first; ties keep the first's.

    ``weights`` (one per run, >= 0; default all 1) weigh each run's vote.
    """
    reference = runs[0]
    weights = [1.0] * len(runs) if weights is None else weights
    votes = np.zeros((len(reference), n_clusters))
    rows = np.arange(len(reference))
    matched = [reference, *(match_labels(reference, r, n_clusters) for r in runs[1:])]
    for weight, labels in zip(weights, matched, strict=True):
        votes[rows, labels] += weight
    votes[rows, reference] += 0.5 * min(weights)  # less than any one vote: it only breaks ties
    return votes.argmax(axis=1)


def consensus_keeping_k(runs: list[np.ndarray], n_clusters: int) -> np.ndarray | None:
    """:func:`consensus`, or ``None`` when the vote would lose a domain (:func:`keeps_every_domain`)."""
    voted = consensus(runs, n_clusters)
    return voted if keeps_every_domain(voted, n_clusters) else None
