"""Model-side variants screened before they touch the package: ``tsstc_slice.py`` with one patch applied.

usage: python benchmarks/model_variants.py VARIANT PATH.h5ad [tsstc_slice.py options]

Variants (each patches the installed package in this process only; ``defaults`` patches nothing and is
the pairing baseline, identical to ``tsstc_slice.py``):
* ``input_pcs50``: every view's GCN sees the top 50 centred principal components of the
  preprocessed input (the same components the gene graph is built on) instead of all 3,000 genes;
  the ZINB decoder still reconstructs the raw counts of every selected gene. The first layer is
  started as for the gene input (uniform, bound 1/sqrt(genes)), so the early training, where the
  domains are best, moves at a similar pace.
* ``input_pcs200``: the same with 200 components (as many as the section has, minus one, when fewer).
* ``input_pc_boost``: the GCN input keeps every gene, and the part of each spot's expression that lies
  in the top 50 principal axes is counted twice (``X + (X - mean) V V^T``): between the defaults
  (no boost) and ``input_pcs50`` (nothing else kept), so that the low-variance directions the
  olfactory bulb's one-spot layers live in stay while the principal ones dominate the first layer.
* ``input_pearson``: the GCN input is the analytic Pearson residuals of the selected genes' raw
  counts (``scanpy.experimental.pp.normalize_pearson_residuals``, theta 100, clipped at sqrt(N))
  instead of the scaled, unlogged expression; the gene graph and the ZINB target are unchanged.
* ``refine_by_expression``: ``L_R``'s positives are the spatial neighbours whose *input* expression
  is at least as similar to the spot's as its mean neighbour's (cosine on the gene graph's 50
  principal components, fixed for the whole training) instead of those the learned gene view agrees
  with (the gene view's own domains score ARI 0.13-0.15 on Visium, so its choice is close to random
  there). An edge-aware smoothing: neighbours across a layer boundary stop being pulled together.
* ``fusion_uniform_start``: the attention's output layer starts at zero, so every spot starts with
  equal weights on every view (1 / (V + 1)) and training moves them from there (against the seed
  spread of the weights: with the random start the mean weight of one scale ranged 0.09-0.24 over
  seeds on 151673 after 20 epochs). With a zero output layer the attention's first layer gets no
  gradient at first, so in 20 epochs the weights stay within 0.01 of uniform.
* ``fusion_uniform_lr10``: the uniform start, and the attention's parameters learn at ten times the
  rate of the rest (1e-2), so that the weights move from uniform within the 20 epochs.
* ``orthogonal_first_layer``: every view's first-layer weights are drawn with orthonormal rows
  (``torch.nn.init.orthogonal_``) scaled to the default draw's expected row norm (1/sqrt(3)), so the
  untrained first layer is an isometric random projection of the genes instead of a distorting one
  (the untrained network already gives ARI 0.42 with SD 0.08 on both DLPFC slices, and training
  lasts 20 epochs, so the initial projection carries much of the seed spread).
* ``genes_by_moran``: the ``n_top_genes`` genes (3,000) are the detected genes with the highest
  Moran's I (on ``log1p`` of total-count-normalised counts, over each spot's 6 nearest spots, rows
  weighted equally) instead of the ``seurat_v3`` most variable ones: genes that vary between
  neighbourhoods rather than between single spots, which is what a domain is. Sections with at most
  3,000 detected genes (151510, osmFISH) keep them all, as before.
* ``shared_first_layer``: one first-layer weight for every view (each keeps its bias and its second
  layer), so the views differ by their graphs from the first layer on. The views' embeddings of the
  defaults are unaligned (median cosine between two views of one spot -0.19 to 0.36;
  ``view_alignment.py``), so the attention sums coordinates that mean different things in each view.
* ``shared_encoder``: both layers shared by every view (one GCN applied on each view's graphs), so
  every view embeds in the same coordinates and the attention weighs scales of one representation.
* ``align_views``: the views keep their own encoders, and the loss gains ``mean_v mean_i (1 - cos(z_v(i),
  zbar(i)))`` (weight 1, as ``L_R``'s), with ``zbar`` the views' mean embedding of spot ``i``: a soft
  alignment, so that the fusion sums like with like without the encoders being one.
* ``decoder_depth``: the ZINB decoder sees each spot's log size factor beside its fused embedding (as
  scVI's decoder sees the library), so the embedding need not carry sequencing depth to explain the
  zeros. In the defaults' errors the two halves of a split layer differ in depth (151674 seed 0, Layer 6:
  mean log10 counts 2.94 against 3.17), while regressing depth out of the embedding removed layer
  signal with it (151510 -0.39).
* ``gene_dispersion``: the ZINB dispersion is one learned value per gene (as in scVI and DCA's
  gene-wise option) instead of a head on each spot's embedding, so spot-to-spot differences must be
  explained through the mean and the dropout, not through a spot's own overdispersion.
* ``input_sqrt``: the GCN input is the square root of the total-count-normalised counts, divided by
  each gene's standard deviation (clipped at 10, as the defaults), instead of the unlogged values: a
  variance-stabilising step for counts between the unlogged input (the default) and ``log1p`` (which
  lost 0.09-0.15 on the DLPFC slices); the gene graph and the ZINB target are unchanged.
* ``gene_graph_smoothed``: the gene view's k-NN graph is built on each spot's mean expression over
  its closed neighbourhood at the smallest scale (the SAS mean) instead of on its own expression (the
  gene view's own domains score ARI 0.13-0.15 on Visium: one spot's counts are too noisy for its
  nearest neighbours in expression to share its layer). The gene view still propagates the spot's own
  expression, and ``L_R``'s refinement keeps the spatial neighbours this view agrees with.
* ``input_row_l2``: each spot's row of the GCN input is rescaled to the mean row norm, so a spot
  whose scaled expression has many clipped outliers weighs no more in its neighbours' SAS means than
  any other (the split halves of 151674's deep layers differ in depth, and depth changes how many
  genes reach the clip).
* ``input_thinned``: every spot with more counts than the median is binomially thinned to the median
  (the run's seed) before the GCN input is made from it as the defaults make it, so spots above the
  median share one sampling noise; the gene graph and the ZINB target keep the raw counts.
* ``zinb_smoothed_target``: the ZINB decoder reconstructs each spot's mean counts over its closed
  neighbourhood at the smallest scale (the SAS mean of the raw counts, size factors from those means)
  instead of the spot's own counts: a domain-level target with about a ninth of one Visium spot's
  sampling variance (radius 2 takes 8 neighbours on the grid), so the embedding is asked to carry the
  neighbourhood's expression rather than the spot's; the GCN input, the graphs and ``L_R`` are
  unchanged.
* ``gcn_dropout``: dropout (p = 0.2, masks from a generator seeded with the run's seed) on every
  view's first-layer output during training (the embeddings that are clustered are taken without
  it), a regulariser against the fit leaning on a few of the first layer's random features, which
  carry most of the seed spread (``init_seed0`` below).
* ``init_seed0`` and ``draws_seed0`` (diagnostics, not candidates): where the seed spread comes
  from. ``init_seed0`` draws every training's initial weights from seed 0 while the negatives, the
  ZINB spots and the mixture keep the run's seed; ``draws_seed0`` keeps the run's seed for the
  initial weights and the mixture and takes the negatives and the ZINB spots from seed 0. At seed 0
  both are the defaults.

Labels are used only to score (in ``tsstc_slice.py``).
"""

from __future__ import annotations

import dataclasses
import math
import sys

import numpy as np
import scipy.sparse as sp
import torch
import tsstc_slice  # benchmarks/ is the script's folder, hence on sys.path

from tsstc_sc._gene_graph import principal_components
from tsstc_sc._model import _estimator
from tsstc_sc._model._module import GraphConvolution, TSstcModule, ZINBDecoder


def _replace_input(make_input) -> None:
    """The GCNs see ``make_input(model, prepared)`` instead of the preprocessed genes; the gene graph
    and the ZINB target (raw counts) stay as the package builds them.
    """
    prepare = _estimator.TSstc._prepare

    def _prepare(self, adata, *, fitting, **graph_params):
        prepared = prepare(self, adata, fitting=fitting, **graph_params)
        self._n_genes = prepared.x.shape[1]
        prepared.x = sp.csr_matrix(np.asarray(make_input(self, prepared), dtype=np.float32))
        return prepared

    _estimator.TSstc._prepare = _prepare


def _patch_input_pcs(n_pcs: int) -> None:
    _replace_input(
        lambda model, prepared: principal_components(prepared.x, n_pcs, random_state=model.random_state)
    )
    train_one = _estimator.TSstc._train

    def _train(self, prepared, inputs, n_clusters, seed):
        n_in, n_genes = prepared.x.shape[1], self._n_genes

        class PCModule(TSstcModule):
            def __init__(self, _n, n_scales, **kw):
                super().__init__(n_in, n_scales, **kw)
                self.decoder = ZINBDecoder(kw["latent_dim"], kw["hidden_dim"], n_genes)
                bound = 1 / math.sqrt(n_genes)
                with torch.no_grad():
                    for layer in self.first:
                        layer.linear.weight.uniform_(-bound, bound)
                        layer.linear.bias.uniform_(-bound, bound)

        _estimator.TSstcModule = PCModule
        try:
            return train_one(self, prepared, inputs, n_clusters, seed)
        finally:
            _estimator.TSstcModule = TSstcModule

    _estimator.TSstc._train = _train


def _patch_input_pc_boost(n_pcs: int) -> None:
    from sklearn.decomposition import PCA

    def boosted(model, prepared):
        x = prepared.x
        n_components = min(n_pcs, x.shape[1] - 1, x.shape[0] - 1)
        pca = PCA(n_components, svd_solver="arpack", random_state=model.random_state)
        return x.toarray() + pca.fit_transform(x) @ pca.components_  # N x genes: a benchmark slice only

    _replace_input(boosted)


def _patch_input_pearson() -> None:
    import anndata as ad
    import scanpy as sc

    def residuals(model, prepared):
        counts = ad.AnnData(model.expression.counts.astype(np.float32))
        return sc.experimental.pp.normalize_pearson_residuals(counts, theta=100, inplace=False)["X"]

    _replace_input(residuals)


def _patch_refine_by_expression() -> None:
    from tsstc_sc._model import _training

    prepare, refine = _estimator.TSstc._prepare, _training.refine_neighbors
    expression: dict[str, torch.Tensor] = {}

    def _prepare(self, adata, *, fitting, **graph_params):
        prepared = prepare(self, adata, fitting=fitting, **graph_params)
        pcs = principal_components(prepared.x, 50, random_state=self.random_state)
        expression["pcs"] = torch.from_numpy(pcs)
        return prepared

    def refine_by_expression(z_spatial, z_gene, edges, rule, value):
        pcs = expression["pcs"].to(z_spatial.device)
        return refine(pcs, pcs, edges, rule, value)  # cos(pc_i, pc_j) on the candidate edges

    _estimator.TSstc._prepare, _training.refine_neighbors = _prepare, refine_by_expression


def _patch_fusion_uniform_start() -> None:
    class UniformStart(TSstcModule):
        def __init__(self, *args, **kw):
            super().__init__(*args, **kw)  # same draws as the package: only the output layer is reset
            with torch.no_grad():
                self.fusion.score[-1].weight.zero_()
                self.fusion.score[-1].bias.zero_()

    _estimator.TSstcModule = UniformStart


def _patch_orthogonal_first_layer() -> None:
    class Orthogonal(TSstcModule):
        def __init__(self, *args, **kw):
            super().__init__(*args, **kw)  # the package's draws first; then the first layers are redrawn
            with torch.no_grad():
                for layer in self.first:
                    torch.nn.init.orthogonal_(layer.linear.weight, gain=1 / math.sqrt(3))

    _estimator.TSstcModule = Orthogonal


def _patch_genes_by_moran(n_neighbors: int = 6) -> None:
    from sklearn.neighbors import NearestNeighbors

    from tsstc_sc import _preprocessing

    prepare, select = _estimator.TSstc._prepare, _preprocessing.select_genes
    section: dict[str, np.ndarray] = {}

    def _prepare(self, adata, *, fitting, **graph_params):
        xy = adata.obsm[graph_params.get("spatial_key", "spatial")]
        section["xy"] = np.asarray(xy, dtype=np.float64)[:, :2]
        return prepare(self, adata, fitting=fitting, **graph_params)

    def by_moran(counts, var_names, *, min_cells, n_top_genes):
        detected = select(counts, var_names, min_cells=min_cells, n_top_genes=counts.shape[1])
        if detected.size <= n_top_genes:
            return detected
        xy = section["xy"]
        _, index = NearestNeighbors(n_neighbors=n_neighbors + 1).fit(xy).kneighbors(xy)
        rows = np.repeat(np.arange(len(xy)), n_neighbors)
        weights = sp.csr_matrix(
            (np.full(rows.size, 1 / n_neighbors), (rows, index[:, 1:].ravel())), shape=(len(xy), len(xy))
        )
        sub = counts[:, detected].astype(np.float64)
        total = np.asarray(sub.sum(axis=1)).ravel()
        x = np.log1p(sp.diags(np.median(total) / np.maximum(total, 1)) @ sub).toarray()
        x -= x.mean(axis=0)
        moran = (x * (weights @ x)).sum(axis=0) / np.maximum((x * x).sum(axis=0), 1e-12)
        return np.sort(detected[np.argsort(-moran, kind="stable")[:n_top_genes]])

    _estimator.TSstc._prepare, _preprocessing.select_genes = _prepare, by_moran


def _patch_shared_layers(*, second: bool) -> None:
    class Shared(TSstcModule):
        def __init__(self, *args, **kw):
            super().__init__(*args, **kw)
            for layer in self.first[1:]:  # one weight, each view keeps its bias
                layer.linear.weight = self.first[0].linear.weight
            if second:
                for v in range(1, self.n_views):
                    self.second[v] = self.second[0]

    _estimator.TSstcModule = Shared


def _patch_align_views(weight: float = 1.0) -> None:
    from tsstc_sc._model import _training

    forward = _training.TileLoss.forward

    def with_alignment(self, inputs, generator, zinb_batch_size):
        encode, seen = self.module.encode, []

        def recording(*args):  # the views the package's loss computes, kept for the alignment term
            seen.append(encode(*args))
            return seen[-1]

        self.module.encode = recording
        try:
            loss, rec, reg, kept = forward(self, inputs, generator, zinb_batch_size)
        finally:
            del self.module.encode
        views = seen[-1]
        mean = torch.stack(views).mean(0)
        misalignment = torch.stack(
            [1 - torch.nn.functional.cosine_similarity(z, mean, dim=1).mean() for z in views]
        ).mean()
        return loss + weight * misalignment, rec, reg, kept

    _training.TileLoss.forward = with_alignment


def _patch_fusion_lr(factor: float) -> None:
    """The attention's parameters get ``factor`` times the learning rate (and the uniform start)."""
    _patch_fusion_uniform_start()
    started, adam = _estimator.TSstcModule, torch.optim.Adam
    fusion_ids: set[int] = set()

    class Registered(started):
        def __init__(self, *args, **kw):
            super().__init__(*args, **kw)
            fusion_ids.update(id(p) for p in self.fusion.parameters())

    def grouped_adam(params, lr, **kw):
        params = list(params)
        groups = [
            {"params": [p for p in params if id(p) not in fusion_ids]},
            {"params": [p for p in params if id(p) in fusion_ids], "lr": lr * factor},
        ]
        return adam(groups, lr=lr, **kw)

    _estimator.TSstcModule, torch.optim.Adam = Registered, grouped_adam


def _patch_decoder_depth() -> None:
    from tsstc_sc._model import _training

    class DepthAware(TSstcModule):
        def __init__(self, n_genes, n_scales, *, hidden_dim, latent_dim, use_sas):
            super().__init__(n_genes, n_scales, hidden_dim=hidden_dim, latent_dim=latent_dim, use_sas=use_sas)
            self.decoder = ZINBDecoder(latent_dim + 1, hidden_dim, n_genes)

    loss = _training.reconstruction_loss

    def with_depth(module, fused, inputs, batch_size, generator):
        log_depth = torch.log(inputs.target.size_factors.clamp(min=1e-2))[: len(fused), None]
        return loss(module, torch.cat([fused, log_depth], dim=1), inputs, batch_size, generator)

    _estimator.TSstcModule, _training.reconstruction_loss = DepthAware, with_depth


def _patch_gene_dispersion() -> None:
    class GeneDispersion(ZINBDecoder):
        def __init__(self, latent_dim, hidden_dim, n_genes):
            super().__init__(latent_dim, hidden_dim, n_genes)
            self.log_theta = torch.nn.Parameter(torch.zeros(n_genes))  # softplus(0) ~ 0.69 at the start

        def heads(self, h):
            pi, _, mu = super().heads(h)
            theta = torch.clamp(torch.nn.functional.softplus(self.log_theta), 1e-4, 1e4).expand_as(mu)
            return pi, theta, mu

    from tsstc_sc._model import _module

    _module.ZINBDecoder = GeneDispersion


def _patch_input_sqrt() -> None:
    from tsstc_sc import _preprocessing

    def sqrt_input(model, prepared):
        x = _preprocessing.normalize(model.expression.counts, log1p=False)
        np.sqrt(x.data, out=x.data)
        return _preprocessing._scale(x, _preprocessing._column_std(x), model.config.max_value).toarray()

    _replace_input(sqrt_input)


def _patch_input_row_l2() -> None:
    def row_l2(model, prepared):
        x = prepared.x.tocsr()
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
        factors = np.divide(norms[norms > 0].mean(), norms, out=np.zeros_like(norms), where=norms > 0)
        return (sp.diags(factors) @ x).toarray()

    _replace_input(row_l2)


def _patch_input_thinned() -> None:
    from tsstc_sc import _preprocessing

    def thinned(model, prepared):
        counts = model.expression.counts.tocsr().astype(np.int64)
        totals = np.asarray(counts.sum(axis=1)).ravel()
        median = np.median(totals[totals > 0])
        keep = np.repeat(np.minimum(1.0, median / np.maximum(totals, 1)), np.diff(counts.indptr))
        rng = np.random.default_rng(model.random_state)
        thin = counts.copy()
        thin.data = rng.binomial(counts.data, keep).astype(np.float32)
        thin.eliminate_zeros()
        x = _preprocessing.normalize(thin, log1p=False)
        return _preprocessing._scale(x, _preprocessing._column_std(x), model.config.max_value).toarray()

    _replace_input(thinned)


def _patch_gene_graph_smoothed() -> None:
    from tsstc_sc._gene_graph import gene_knn_graph
    from tsstc_sc._model._graph_ops import mean_aggregation

    prepare = _estimator.TSstc._prepare

    def _prepare(self, adata, *, fitting, **graph_params):
        prepared = prepare(self, adata, fitting=fitting, **graph_params)
        smoothed = sp.csr_matrix(mean_aggregation(prepared.spatial[0]) @ prepared.x)
        k = min(self.config.gene_neighbors, smoothed.shape[0] - 1)
        n_pcs, seed = self.config.gene_graph_pcs, self.random_state
        prepared.gene_graph = gene_knn_graph(smoothed, k, n_pcs=n_pcs, random_state=seed)
        return prepared

    _estimator.TSstc._prepare = _prepare


def _patch_zinb_smoothed_target() -> None:
    from tsstc_sc._model._graph_ops import mean_aggregation

    inputs = _estimator.TSstc._inputs

    def _inputs(self, prepared, *, training=False):
        if not training:
            return inputs(self, prepared, training=training)
        own = self.expression
        smoothed = sp.csr_matrix(mean_aggregation(prepared.spatial[0]) @ own.counts, dtype=np.float32)
        self.expression = dataclasses.replace(own, counts=smoothed)
        try:
            return inputs(self, prepared, training=training)
        finally:
            self.expression = own

    _estimator.TSstc._inputs = _inputs


def _patch_gcn_dropout(p: float = 0.2) -> None:
    """Dropout masks from their own generator, seeded with the run's seed (reproducible runs)."""
    train = _estimator.TSstc._train
    masks = {}

    class DropoutInput(GraphConvolution):
        def forward(self, h, adj):
            if self.training and torch.is_grad_enabled():  # not in the snapshots or the final embedding
                keep = torch.rand(h.shape, generator=masks["generator"], device=h.device) >= p
                h = h * keep / (1 - p)
            return super().forward(h, adj)

    class Dropout(TSstcModule):
        def __init__(self, *args, **kw):
            super().__init__(*args, **kw)
            for layer in self.second:  # same initial weights as the defaults: only the forward changes
                layer.__class__ = DropoutInput

    def _train(self, prepared, inputs, n_clusters, seed):
        masks["generator"] = torch.Generator().manual_seed(seed)
        return train(self, prepared, inputs, n_clusters, seed)

    _estimator.TSstcModule, _estimator.TSstc._train = Dropout, _train


def _patch_seed_source(*, init: int | None, draws: int | None) -> None:
    """Initial weights from seed ``init`` and the training's draws from seed ``draws`` (``None``: the run's)."""
    train = _estimator.TSstc._train
    init_seed = {}

    class SeededInit(TSstcModule):
        def __init__(self, *args, **kw):
            torch.manual_seed(init_seed["value"])  # inside fork_rng: the caller's state is restored
            super().__init__(*args, **kw)

    def _train(self, prepared, inputs, n_clusters, seed):
        init_seed["value"] = seed if init is None else init
        return train(self, prepared, inputs, n_clusters, seed if draws is None else draws)

    _estimator.TSstcModule, _estimator.TSstc._train = SeededInit, _train


VARIANTS = {
    "defaults": lambda: None,
    "input_pcs50": lambda: _patch_input_pcs(50),
    "input_pcs200": lambda: _patch_input_pcs(200),
    "input_pc_boost": lambda: _patch_input_pc_boost(50),
    "input_pearson": _patch_input_pearson,
    "refine_by_expression": _patch_refine_by_expression,
    "fusion_uniform_start": _patch_fusion_uniform_start,
    "fusion_uniform_lr10": lambda: _patch_fusion_lr(10.0),
    "orthogonal_first_layer": _patch_orthogonal_first_layer,
    "genes_by_moran": _patch_genes_by_moran,
    "shared_first_layer": lambda: _patch_shared_layers(second=False),
    "shared_encoder": lambda: _patch_shared_layers(second=True),
    "align_views": _patch_align_views,
    "decoder_depth": _patch_decoder_depth,
    "gene_dispersion": _patch_gene_dispersion,
    "input_sqrt": _patch_input_sqrt,
    "gene_graph_smoothed": _patch_gene_graph_smoothed,
    "input_row_l2": _patch_input_row_l2,
    "input_thinned": _patch_input_thinned,
    "zinb_smoothed_target": _patch_zinb_smoothed_target,
    "gcn_dropout": _patch_gcn_dropout,
    "init_seed0": lambda: _patch_seed_source(init=0, draws=None),
    "draws_seed0": lambda: _patch_seed_source(init=None, draws=0),
}


def main() -> None:
    variant = sys.argv.pop(1)
    VARIANTS[variant]()
    tsstc_slice.main()  # reads the remaining arguments


if __name__ == "__main__":
    main()
