"""The public estimator behind ``tl.tsstc``: fit / latent / predict / save / load."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

import numpy as np
import scipy.sparse as sp
import torch

from .. import _logging as logg
from .._clustering import ClusterMethod, DomainAssigner, cluster, consensus_keeping_k
from .._config import Preset, TSstcConfig
from .._gene_graph import gene_knn_graph
from .._preprocessing import Expression, preprocess_as_configured, transform
from .._spatial_graphs import Unit
from .._validation import (
    check_anndata,
    check_bool,
    check_choice,
    check_counts,
    check_integer,
    check_library,
    check_n_clusters,
    check_random_state,
    check_unique_names,
    resolve_device,
)
from ..pp._spatial_scales import ScalesResult, compute_spatial_scales, graph_coordinates, stored_graphs
from ._minibatch import Batch, make_batches, spatial_tiles
from ._module import TSstcModule
from ._training import GraphInputs, TrainingHistory, embed, normalized_operators, train

if TYPE_CHECKING:
    from anndata import AnnData

_WEIGHTS, _CONFIG = "model.pt", "config.json"


@dataclass
class Prepared:
    """Everything derived from one AnnData before the network sees it."""

    x: sp.csr_matrix
    spatial: list[sp.csr_matrix]
    gene_graph: sp.csr_matrix
    scales: ScalesResult | None  # graphs computed here (None when reused from ``adata``)
    radii: np.ndarray
    built: dict[str, Any]  # how the graphs were built: unit, spatial_key, library_key
    coords: np.ndarray  # spot positions of the graphs, for spatial tiles in mini-batch training
    libraries: np.ndarray  # integer library code of each spot


def reuse_or_build_scales(
    adata: AnnData,
    radii: Sequence[float] | None,
    *,
    unit: Unit,
    spatial_key: str,
    library_key: str | None,
    key: str,
) -> tuple[list[sp.csr_matrix], ScalesResult | None, np.ndarray, dict[str, Any]]:
    """Graphs from ``pp.spatial_scales`` when present and ``radii`` is not given, else built now; and
    how they were built (``unit``, ``spatial_key``, ``library_key``).

    Stored graphs are taken as they were built: a ``unit`` (other than ``"auto"``), ``library_key`` or
    ``spatial_key`` (other than the default, for coordinate graphs) that contradicts them is an error.
    """
    check_choice(unit, get_args(Unit), "unit")
    index = adata.uns.get(f"{key}_scales")
    if radii is None and index is not None:
        built = {
            "unit": str(index["unit"]),
            "spatial_key": str(index.get("spatial_key", "spatial")),
            "library_key": index.get("library_key"),
        }
        asked = {
            "unit": None if unit == "auto" else unit,
            "spatial_key": None if spatial_key == "spatial" or built["unit"] == "array" else spatial_key,
            "library_key": library_key,
        }
        clash = {name: value for name, value in asked.items() if value is not None and value != built[name]}
        if clash:
            wanted = ", ".join(f"{name}={value!r}" for name, value in clash.items())
            had = ", ".join(f"{name}={built[name]!r}" for name in clash)
            msg = (
                f"The spatial scales in `adata.uns['{key}_scales']` were built with {had}, but {wanted} was "
                f"given. Rebuild them with `tsstc_sc.pp.spatial_scales(adata, {wanted})`, or pass `radii=` "
                "to build them here."
            )
            raise ValueError(msg)
        graphs = stored_graphs(adata, key)
        logg.info(f"reusing the spatial scales in `adata.uns['{key}_scales']`: radii {list(index['radii'])}")
        return graphs, None, np.asarray(index["radii"]), built
    result = compute_spatial_scales(
        adata, radii, unit=unit, spatial_key=spatial_key, library_key=library_key, key_added=key
    )
    built = {"unit": result.unit, "spatial_key": spatial_key, "library_key": library_key}
    return result.connectivities, result, result.radii, built


@contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    """Run with torch's CPU thread count (OpenMP and MKL) set to ``threads``, and leave it so.

    numba (scanpy's highly variable genes and neighbours, pynndescent) resets the OpenMP count that
    torch shares, and torch's results then depended on whether its pools had started before or after
    that. Setting the count explicitly makes a result depend only on the seed and ``threads``.
    """
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class _StageClock:
    """Wall seconds per named stage (``with clock("training"): ...``) and the process's peak resident
    memory at the end of each stage (GiB; Linux/macOS only), to see which stage raised it.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.peak_rss_gb: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start
            peak = _peak_rss_gb()
            if peak is not None:
                self.peak_rss_gb[stage] = peak


@dataclass
class _Snapshots:
    """Fused embeddings taken after the given epochs of training (``take`` is the epoch callback)."""

    module: TSstcModule
    inputs: GraphInputs | list[Batch]
    epochs: list[int]
    embeddings: dict[int, np.ndarray] = field(default_factory=dict)

    def take(self, done: int) -> None:
        if done in self.epochs:
            self.embeddings[done] = embed(self.module, self.inputs)[0]

    def before(self, last: int) -> list[np.ndarray]:
        """The snapshots taken before epoch ``last`` (training may stop early), latest first."""
        return [self.embeddings[e] for e in sorted(self.embeddings, reverse=True) if e < last]


def _peak_rss_gb() -> float | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**30 if sys.platform == "darwin" else peak / 2**20  # bytes on macOS, KiB on Linux


class TSstc:
    """TSstc model (IJCAI 2025) for spatial domains; :func:`tsstc_sc.tl.tsstc` is the usual entry.

    Parameters
    ----------
    n_clusters
        Number of domains (honoured exactly); ``None`` only with ``cluster_method="leiden"``.
    cluster_method
        ``"gmm"`` (tied covariance, mclust EEE), ``"kmeans"`` or ``"leiden"``.
    cluster_pcs
        Cluster the top principal components of the embedding (``None``: the embedding itself).
    extra_components
        ``"gmm"`` only: fit this many more mixture components than ``n_clusters``, then join the
        nearest ones until ``n_clusters`` remain (0: a plain ``n_clusters``-component mixture).
    device
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    random_state
        Seed of every random choice (initialisation, negatives, subsampling, clustering).
    progress_bar
        Show a progress bar with the current loss.
    preset
        ``"default"`` or ``"paper"`` (the paper's training: 150 epochs, the ZINB loss on all spots).
    **kwargs
        Any field of :class:`~tsstc_sc.tl.TSstcConfig`; overrides the preset.

    Examples
    --------
    >>> import tsstc_sc
    >>> adata = tsstc_sc.datasets.synthetic_tissue(n_spots=400, n_genes=200)
    >>> model = tsstc_sc.tl.TSstc(n_clusters=3, epochs=5, progress_bar=False).fit(adata)
    >>> model.latent().shape
    (400, 64)
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     model.save(folder, overwrite=True)
    ...     again = tsstc_sc.tl.TSstc.load(folder)
    >>> (again.predict(adata) == model.predict()).mean() > 0.95
    np.True_
    """

    def __init__(
        self,
        n_clusters: int | None = None,
        *,
        cluster_method: ClusterMethod = "gmm",
        cluster_pcs: int | None = 20,
        extra_components: int = 1,
        device: str = "auto",
        random_state: int = 0,
        progress_bar: bool = True,
        preset: Preset = "default",
        **kwargs: Any,
    ):
        self.config = TSstcConfig.from_kwargs(preset, **kwargs)
        n_clusters = check_integer(n_clusters, "n_clusters")
        cluster_pcs = check_integer(cluster_pcs, "cluster_pcs")
        check_choice(cluster_method, get_args(ClusterMethod), "cluster_method")
        if n_clusters is None and cluster_method != "leiden":
            msg = (
                f"`cluster_method='{cluster_method}'` needs `n_clusters`; use `cluster_method='leiden'` to "
                "let the resolution decide."
            )
            raise ValueError(msg)
        if n_clusters is None and self.config.restarts > 1:
            msg = "`restarts` > 1 votes over trainings with a fixed number of domains: give `n_clusters`."
            raise ValueError(msg)
        if cluster_pcs is not None and cluster_pcs < 1:
            msg = f"`cluster_pcs` must be a positive integer or None, got {cluster_pcs!r}."
            raise ValueError(msg)
        extra_components = check_integer(extra_components, "extra_components")
        if extra_components is None or extra_components < 0:
            msg = f"`extra_components` must be a non-negative integer (0 turns it off), got {extra_components!r}."
            raise ValueError(msg)
        self.n_clusters, self.cluster_method, self.cluster_pcs = n_clusters, cluster_method, cluster_pcs
        self.extra_components = extra_components
        self.device = resolve_device(device)
        self.random_state = check_random_state(random_state)
        self.progress_bar = check_bool(progress_bar, "progress_bar")
        self.module: TSstcModule | None = None
        self.expression: Expression | None = None
        self.history: TrainingHistory | None = None
        self.assigner: DomainAssigner | None = None
        self.torch_threads: int | None = None  # CPU threads of the last fit
        self.timings: dict[str, float] = {}  # wall seconds per stage of the last fit
        self.peak_rss_gb: dict[str, float] = {}  # process peak memory at the end of each stage
        self._fit_outputs: dict[str, Any] = {}
        self._graph_params: dict[str, Any] = {}

    # -- preparation ----------------------------------------------------------------------
    def _prepare(self, adata: AnnData, *, fitting: bool, **graph_params: Any) -> Prepared:
        if adata.n_obs < 2:
            msg = (
                f"TSstc needs at least 2 spots (it builds graphs between them), got {adata.n_obs}; embed or "
                "predict single spots together with the rest of their section."
            )
            raise ValueError(msg)
        check_unique_names(adata, "var", "genes are matched by name")
        counts = check_counts(adata, graph_params.pop("layer"))
        if fitting:
            self.expression = preprocess_as_configured(counts, np.asarray(adata.var_names), self.config)
            x = self.expression.x
        else:
            x = transform(
                counts[:, self._gene_positions(adata)],
                self.expression,
                log1p=self.config.log1p,
                max_value=self.config.max_value,
            )
        spatial, scales, radii, built = reuse_or_build_scales(adata, **graph_params)
        gene_graph = gene_knn_graph(
            x,
            min(self.config.gene_neighbors, x.shape[0] - 1),
            n_pcs=self.config.gene_graph_pcs,
            random_state=self.random_state,
        )
        coords = graph_coordinates(adata, built["unit"], built["spatial_key"])[:, :2]
        libraries = check_library(adata, built["library_key"])
        return Prepared(x, spatial, gene_graph, scales, radii, built, coords, libraries)

    def _gene_positions(self, adata: AnnData) -> np.ndarray:
        index = {g: i for i, g in enumerate(adata.var_names)}
        missing = [g for g in self.expression.genes if g not in index]
        if missing:
            msg = (
                f"{len(missing)} of the model's {len(self.expression.genes)} genes are missing from `adata` "
                f"(e.g. {missing[:5]}); a trained model needs the same genes."
            )
            raise ValueError(msg)
        return np.array([index[g] for g in self.expression.genes])

    def _inputs(self, prepared: Prepared, *, training: bool = False) -> GraphInputs | list[Batch]:
        """The whole section on the device, or its spatial tiles (``batch_size`` smaller than N)."""
        counts = self.expression.counts if training and self.config.zinb_target == "counts" else None
        size_factors = self.expression.size_factors() if counts is not None else None
        batch_size = self.config.batch_size
        if batch_size is None or prepared.x.shape[0] <= batch_size:
            return GraphInputs.build(
                prepared.x,
                prepared.spatial,
                prepared.gene_graph,
                self.config,
                torch.device(self.device),
                counts=counts,
                size_factors=size_factors,
            )
        propagation, aggregation = normalized_operators(prepared.spatial, prepared.gene_graph, self.config)
        tiles = spatial_tiles(prepared.coords, prepared.libraries, batch_size)
        batches = make_batches(
            tiles,
            prepared.x,
            propagation,
            aggregation,
            prepared.spatial,
            counts=counts,
            size_factors=size_factors,
        )
        largest = max(len(b.nodes) for b in batches)
        logg.info(
            f"mini-batch training: {len(tiles)} tiles of <= {batch_size} spots (patches spread over the "
            f"section), <= {largest} with their halos"
        )
        return batches

    # -- public API -----------------------------------------------------------------------
    def fit(
        self,
        adata: AnnData,
        *,
        layer: str | None = None,
        radii: Sequence[float] | None = None,
        unit: Unit = "auto",
        spatial_key: str = "spatial",
        library_key: str | None = None,
        scales_key: str = "tsstc",
    ) -> TSstc:
        """Train on ``adata`` (raw counts; never modified) and cluster its embedding snapshots."""
        check_anndata(adata)
        n_clusters = check_n_clusters(self.n_clusters, adata.n_obs)
        self._graph_params = {
            "unit": unit,
            "spatial_key": spatial_key,
            "library_key": library_key,
            "key": scales_key,
        }
        self.torch_threads = torch.get_num_threads()  # results are bit-identical for a seed and this count
        clock = _StageClock()
        with clock("graphs_and_preprocessing"):
            prepared = self._prepare(adata, fitting=True, layer=layer, radii=radii, **self._graph_params)
            self._graph_params.update(radii=prepared.radii.tolist(), **prepared.built)
            inputs = self._inputs(prepared, training=True)
        runs: list[np.ndarray] = []  # every training's domains: its last epoch, then its earlier snapshots
        for restart in range(self.config.restarts):  # the first training is the one kept
            with clock("training"), _torch_threads(self.torch_threads):
                module, history, snapshots = self._train(
                    prepared, inputs, n_clusters, self.random_state + restart
                )
                fused, weights = embed(module, inputs)
            with clock("clustering"), _torch_threads(self.torch_threads):  # Leiden calls numba
                labels, assigner = self._cluster(fused, n_clusters)
                runs += [
                    labels,
                    *(self._cluster(z, n_clusters)[0] for z in snapshots.before(len(history.total))),
                ]
            if restart == 0:
                self.module, self.history, self.assigner, kept = module, history, assigner, (fused, weights)
        fused, weights = kept
        labels = runs[0]
        with clock("clustering"):
            # the vote keeps the first training's domain names; new data go to the voted domains
            voted = consensus_keeping_k(runs, n_clusters) if len(runs) > 1 else None
            if voted is not None:
                labels, self.assigner = voted, self.assigner.refit(fused, voted)
        self.timings, self.peak_rss_gb = clock.seconds, clock.peak_rss_gb
        self._fit_outputs = {
            "latent": fused,
            "scale_weights": weights,
            "labels": labels,
            "scales": prepared.scales,
            "gene_graph": prepared.gene_graph,
            "spatial": prepared.spatial,
        }
        return self

    def _train(
        self, prepared: Prepared, inputs: GraphInputs | list[Batch], n_clusters: int | None, seed: int
    ) -> tuple[TSstcModule, TrainingHistory, _Snapshots]:
        """One training from initialisation ``seed`` (which also draws its negatives and ZINB spots)."""
        device = torch.device(self.device)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            module = TSstcModule(
                prepared.x.shape[1],
                len(prepared.spatial),
                hidden_dim=self.config.hidden_dim,
                latent_dim=self.config.latent_dim,
                use_sas=self.config.use_sas,
            ).to(device)
        generator = torch.Generator(device=device).manual_seed(seed)
        snapshots = self._snapshot_taker(module, inputs, n_clusters)
        history = train(
            module,
            inputs,
            self.config,
            generator,
            random_state=seed,
            progress_bar=self.progress_bar,
            on_epoch_end=snapshots.take,
        )
        return module, history, snapshots

    def _snapshot_taker(
        self, module: TSstcModule, inputs: GraphInputs | list[Batch], n_clusters: int | None
    ) -> _Snapshots:
        """Embeddings to keep during training for the snapshot consensus (none without a fixed K)."""
        epochs = self.config.snapshot_epochs()[:-1] if n_clusters is not None else []
        return _Snapshots(module, inputs, epochs)

    def _cluster(self, embedding: np.ndarray, n_clusters: int | None) -> tuple[np.ndarray, DomainAssigner]:
        return cluster(
            embedding,
            n_clusters,
            self.cluster_method,
            random_state=self.random_state,
            n_pcs=self.cluster_pcs,
            extra_components=self.extra_components,
        )

    def _require_fit(self) -> None:
        if self.module is None:
            msg = "This TSstc model is not trained yet: call `.fit(adata)` first (or load a saved one)."
            raise RuntimeError(msg)

    def latent(self, adata: AnnData | None = None, *, layer: str | None = None) -> np.ndarray:
        """Fused embedding ``Z_f`` (N x latent_dim) of the training data, or of new data with the same genes."""
        self._require_fit()
        if adata is None:
            if "latent" not in self._fit_outputs:
                msg = "A loaded model keeps no training embedding: pass `adata`."
                raise ValueError(msg)
            return self._fit_outputs["latent"]
        return self._embed_new(adata, layer=layer)[0]

    def _embed_new(self, adata: AnnData, *, layer: str | None) -> tuple[np.ndarray, np.ndarray]:
        check_anndata(adata)
        params = {k: v for k, v in self._graph_params.items() if k != "radii"}
        threads = torch.get_num_threads()
        prepared = self._prepare(
            adata, fitting=False, layer=layer, radii=self._graph_params["radii"], **params
        )
        with _torch_threads(threads):
            return embed(self.module, self._inputs(prepared))

    def predict(self, adata: AnnData | None = None, *, layer: str | None = None) -> np.ndarray:
        """Domain index of each spot: the fitted labels, or new data assigned to the fitted domains (the
        snapshots' consensus, re-estimated in the last epoch's embedding).
        """
        self._require_fit()
        if adata is None and "labels" in self._fit_outputs:
            return self._fit_outputs["labels"]
        return self.assigner.predict(self.latent(adata, layer=layer))

    def save(self, path: str | Path, *, overwrite: bool = False) -> None:
        """Save weights and preprocessing (``model.pt``, loadable with ``weights_only=True``) and ``config.json``."""
        self._require_fit()
        path = Path(path)
        if path.exists() and not overwrite:
            msg = f"{path} exists; pass `overwrite=True` to replace it."
            raise FileExistsError(msg)
        state = {
            "module": self.module.state_dict(),
            "gene_scale": torch.from_numpy(self.expression.gene_scale.astype(np.float64)),
            "assigner": {k: torch.from_numpy(np.asarray(v)) for k, v in self.assigner.state().items()},
        }
        meta = {
            "config": self.config.to_dict(),
            "genes": self.expression.genes.tolist(),
            "n_scales": len(self._graph_params["radii"]),
            "graph_params": self._graph_params,
            "n_clusters": self.n_clusters,
            "cluster_method": self.cluster_method,
            "cluster_pcs": self.cluster_pcs,
            "extra_components": self.extra_components,
            "random_state": self.random_state,
        }
        # serialised before any file is written: a value JSON cannot store fails here, leaving nothing behind
        config = json.dumps(meta, indent=1)
        path.mkdir(parents=True, exist_ok=True)
        torch.save(state, path / _WEIGHTS)
        (path / _CONFIG).write_text(config)

    @classmethod
    def load(cls, path: str | Path, *, device: str = "auto") -> TSstc:
        """Load a model saved with :meth:`save` (tensors only: ``torch.load(weights_only=True)``)."""
        path = Path(path)
        for name in (_WEIGHTS, _CONFIG):
            if not (path / name).exists():
                msg = f"{path / name} not found: is {path} a folder written by `TSstc.save`?"
                raise FileNotFoundError(msg)
        meta = json.loads((path / _CONFIG).read_text())
        model = cls(
            meta["n_clusters"],
            cluster_method=meta["cluster_method"],
            cluster_pcs=meta["cluster_pcs"],
            extra_components=meta.get("extra_components", 0),  # saved before the option existed: plain
            device=device,
            random_state=meta["random_state"],
            progress_bar=False,
            **meta["config"],
        )
        state = torch.load(path / _WEIGHTS, map_location=model.device, weights_only=True)
        genes = np.asarray(meta["genes"], dtype=object)
        model.module = TSstcModule(
            len(genes),
            meta["n_scales"],
            hidden_dim=model.config.hidden_dim,
            latent_dim=model.config.latent_dim,
            use_sas=model.config.use_sas,
        ).to(model.device)
        model.module.load_state_dict(state["module"])
        model.module.eval()
        model.expression = Expression(sp.csr_matrix((0, len(genes))), genes, state["gene_scale"].numpy())
        model.assigner = DomainAssigner(**{k: v.numpy() for k, v in state["assigner"].items()})
        model._graph_params = meta["graph_params"]
        return model
