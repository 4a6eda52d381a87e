"""``tl.tsstc``: the functional entry point (validate -> graphs -> model -> clustering -> results)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import _logging as logg
from .._anndata_utils import target
from .._clustering import ClusterMethod, spatial_majority_vote
from .._config import Preset
from .._docs import inject_docs
from .._spatial_graphs import Unit
from .._validation import check_anndata, check_bool, check_copyable, check_key, check_n_clusters

if TYPE_CHECKING:
    from anndata import AnnData


def _show_progress(progress_bar: bool | None) -> bool:  # noqa: FBT001
    if progress_bar is not None:
        return check_bool(progress_bar, "progress_bar")
    import scanpy as sc

    return int(sc.settings.verbosity) > 0


def _h5ad_safe(params: dict[str, Any]) -> dict[str, Any]:
    """Turn sequences into arrays, and ``None`` (not storable in h5ad) into a name listed in ``unset``."""
    stored = {
        k: (np.asarray(v) if isinstance(v, list | tuple) else v) for k, v in params.items() if v is not None
    }
    return {**stored, "unset": np.asarray(sorted(k for k, v in params.items() if v is None), dtype=str)}


@inject_docs
def tsstc(
    adata: AnnData,
    radii: Sequence[float] | None = None,
    *,
    n_clusters: int | None = None,
    layer: str | None = None,
    unit: Unit = "auto",
    spatial_key: str = "spatial",
    library_key: str | None = None,
    key_added: str = "tsstc",
    cluster_method: ClusterMethod = "gmm",
    cluster_pcs: int | None = 20,
    extra_components: int = 1,
    refine_labels: bool = True,
    preset: Preset = "default",
    device: str = "auto",
    random_state: int = 0,
    progress_bar: bool | None = None,
    copy: bool = False,
    **kwargs: Any,
) -> AnnData | None:
    """Spatial domains with TSstc: multi-scale spatial graphs, spatiality-aware sampling, GCN encoders,
    per-spot attention fusion, cross-view-refined spatial regularisation and a ZINB decoder.

    Trains on raw counts (preprocessed internally; ``adata.X`` is never modified), then clusters
    the fused embedding of the last epoch and of earlier snapshots (``snapshots``, default 3: epochs
    10, 15 and 20) and gives each spot its majority domain. Every step is O(N·k): sparse graphs,
    scores on existing edges only, sampled negatives. Uses a CUDA GPU when one is available.

    Parameters
    ----------
    {adata}
        ``X`` (or ``layer``) must hold raw counts.
    {radii}
        When ``None`` and :func:`tsstc_sc.pp.spatial_scales` already ran with the same
        ``key_added``, its graphs are reused as they were built (a ``unit``, ``library_key`` or
        ``spatial_key`` that contradicts them is an error); otherwise they are built here.
    n_clusters
        Number of domains, honoured exactly. Required for ``"gmm"`` and ``"kmeans"``; without it
        (Leiden) only the last epoch is clustered.
    layer
        Layer holding the raw counts instead of ``X``.
    {unit}
    {spatial_key}
    {library_key}
    key_added
        Prefix of every output key (and of the spatial scales that are reused or written).
    cluster_method
        ``"gmm"``: Gaussian mixture with one shared covariance (mclust ``EEE`` without R),
        ``"kmeans"``, or ``"leiden"`` (resolution searched to hit ``n_clusters``).
    cluster_pcs
        Cluster the top principal components of the embedding; ``None`` clusters it directly.
    extra_components
        ``"gmm"`` only: fit the mixture with this many more components than ``n_clusters``, then join
        the two nearest (by centroid) until ``n_clusters`` remain, so that a thick domain split in two
        is joined again and a thin one keeps its own (docs/benchmarks.md: higher ARI on three of five
        datasets, the other two within 0.006). 0 fits ``n_clusters`` components, as mclust does.
    refine_labels
        Give a spot the domain that holds more than half of its closed neighbourhood at the smallest
        scale, where one does (a label-free smoothing that leaves domains one spot wide alone;
        docs/benchmarks.md: +0.04-0.06 ARI on osmFISH, neutral on Visium, -0.03 on the olfactory
        bulb). Skipped when it would shrink a
        domain below 0.5% of the spots.
    preset
        Starting values of the model hyperparameters, overridden by ``**kwargs``: ``"default"``
        (chosen on the benchmarks) or ``"paper"``, the paper's training as written (150 epochs,
        ZINB on every spot each epoch). The paper's scaffold clusters with k-means on the
        embedding: add ``cluster_method="kmeans", cluster_pcs=None, refine_labels=False``.
    device
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    random_state
        Seed of every random choice (an integer). The same seed and number of CPU threads give
        identical results; the thread count is recorded in ``params["torch_threads"]`` (scanpy's
        ``sc.pp.neighbors`` can change torch's count: pin it with ``torch.set_num_threads``).
    progress_bar
        Show a progress bar with the current loss; ``None`` follows ``sc.settings.verbosity``.
    {copy}
    **kwargs
        Model hyperparameters, any field of :class:`~tsstc_sc.tl.TSstcConfig` (e.g. ``epochs``,
        ``alpha``, ``lambda_r``, ``use_sas``, ``refine_rule``, ``adj_norm``, ``log1p``).
        ``restarts=3`` votes over three trainings (seeds ``random_state`` to ``random_state + 2``), for
        three times the training time: on the Visium benchmarks a little higher and, on 151674, steadier
        from seed to seed; not on the olfactory bulb (docs/benchmarks.md).

    Returns
    -------
    ``None``, or a copy of ``adata`` if ``copy=True``. Writes:

    ``adata.obs[key_added]``
        Domain labels (string categorical).
    ``adata.obsm[f"X_{{key_added}}"]``
        Fused embedding ``Z_f`` of the last epoch (float32, N x ``latent_dim``; of the first training
        with ``restarts``). Clustering it alone gives the domains of ``snapshots=1``.
    ``adata.obsm[f"{{key_added}}_scale_weights"]``
        Per-spot attention weight of each view (spatial scales, then the gene view); names in
        ``adata.uns[key_added]["scale_weight_names"]``. They vary with ``random_state`` (see
        :func:`tsstc_sc.pl.scale_weights`).
    ``adata.obsp[f"{{key_added}}_gene_connectivities"]``
        The cosine k-NN gene graph.
    ``adata.uns[key_added]``
        ``params`` (every result-changing argument, the resolved device, ``unit``, ``spatial_key``
        and ``library_key`` as the graphs were built, ``torch_threads`` and the package version;
        ``unset`` names those that were ``None``, which h5ad cannot store),
        ``loss`` (per-epoch ``total``, ``reconstruction``, ``regularization`` per scale, and
        ``kept_fraction`` of spatial edges kept as positives per scale), ``genes`` used and
        ``timings``: wall seconds of each stage (``graphs_and_preprocessing``, ``training``,
        ``clustering``, ``refinement``) and ``peak_rss_gb``: the process's peak resident memory at the
        end of each stage (GiB; absent on Windows).
    The spatial scales of :func:`tsstc_sc.pp.spatial_scales` when they were built here. An earlier
    ``adata.uns[f"{{key_added}}_colors"]`` is removed: its colours belonged to the earlier domains.

    Examples
    --------
    >>> import tsstc_sc
    >>> adata = tsstc_sc.datasets.synthetic_tissue(n_spots=400, n_genes=200)
    >>> tsstc_sc.tl.tsstc(adata, n_clusters=5, epochs=5, progress_bar=False)
    >>> adata.obs["tsstc"].nunique(), adata.obsm["X_tsstc"].shape
    (5, (400, 64))
    """
    from .. import __version__
    from .._model._estimator import TSstc

    check_anndata(adata)
    check_copyable(adata, copy=copy)
    check_key(key_added)
    refine_labels = check_bool(refine_labels, "refine_labels")
    if key_added == "spatial":
        msg = (
            "`key_added='spatial'` would overwrite `adata.uns['spatial']`, where Visium images and scale "
            "factors live; choose another key, e.g. `key_added='domain'`."
        )
        raise ValueError(msg)
    n_clusters = check_n_clusters(n_clusters, adata.n_obs)
    model = TSstc(
        n_clusters,
        cluster_method=cluster_method,
        cluster_pcs=cluster_pcs,
        extra_components=extra_components,
        device=device,
        random_state=random_state,
        progress_bar=_show_progress(progress_bar),
        preset=preset,
        **kwargs,
    )
    model.fit(
        adata,
        layer=layer,
        radii=radii,
        unit=unit,
        spatial_key=spatial_key,
        library_key=library_key,
        scales_key=key_added,
    )
    out = model._fit_outputs
    labels = out["labels"]
    timings = dict(model.timings)
    if refine_labels:
        start = time.perf_counter()
        labels = spatial_majority_vote(labels, out["spatial"][0])
        timings["refinement"] = time.perf_counter() - start
    radii_used = model._graph_params["radii"]
    view_names = [f"r{r:g}" for r in radii_used] + ["gene"]
    history = model.history
    params = {
        **model.config.to_dict(),
        "n_clusters": n_clusters,
        "cluster_method": cluster_method,
        "cluster_pcs": cluster_pcs,
        "extra_components": model.extra_components,
        "refine_labels": refine_labels,
        "preset": preset,
        "radii": radii_used,
        "unit": model._graph_params["unit"],  # as the graphs were built (stored ones are reused as built)
        "spatial_key": model._graph_params["spatial_key"],
        "library_key": model._graph_params["library_key"],
        "layer": layer,
        "device": model.device,
        "torch_threads": model.torch_threads,
        "random_state": random_state,
        "epochs_run": len(history.total),
        "version": __version__,
    }

    adata = target(adata, copy=copy)
    if out["scales"] is not None:
        out["scales"].write_to(adata)
    names = np.asarray([str(i) for i in range(int(labels.max()) + 1)])
    adata.obs[key_added] = pd.Categorical(names[labels], categories=names)
    adata.uns.pop(f"{key_added}_colors", None)
    adata.obsm[f"X_{key_added}"] = out["latent"]
    adata.obsm[f"{key_added}_scale_weights"] = out["scale_weights"]
    adata.obsp[f"{key_added}_gene_connectivities"] = out["gene_graph"]
    adata.uns[key_added] = {
        "params": _h5ad_safe(params),
        "loss": {
            "total": np.asarray(history.total),
            "reconstruction": np.asarray(history.reconstruction),
            "regularization": np.asarray(history.regularization),
            "kept_fraction": np.asarray(history.kept_fraction),
        },
        "scale_weight_names": np.asarray(view_names),
        "genes": np.asarray(model.expression.genes, dtype=str),
        "timings": timings,
        "peak_rss_gb": dict(model.peak_rss_gb),
    }
    logg.info(
        f"TSstc: {len(names)} domains in `adata.obs[{key_added!r}]`, embedding in `adata.obsm['X_{key_added}']`"
    )
    return adata if copy else None
