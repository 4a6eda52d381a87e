"""Every result-changing hyperparameter of TSstc in one place, with the paper/scaffold choice noted.

Torch-free, so that ``import tsstc_sc`` (which exposes ``tl.TSstcConfig``) does not import torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from ._validation import check_bool, check_choice, check_integer, check_number

Preset = Literal["default", "paper"]

_CHECKS = {"int": check_integer, "float": check_number, "bool": check_bool}


def _typed(name: str, annotation: str, value: Any) -> Any:
    """``value`` as the plain Python type its field is annotated with, or an error naming the field.

    Integer fields refuse floats (``epochs=2.5``), boolean fields anything but a boolean
    (``use_sas="no"`` would be truthy); NumPy scalars are accepted and converted.
    """
    kind, _, optional = annotation.partition(" | ")
    return value if kind not in _CHECKS else _CHECKS[kind](value, name, optional=optional == "None")


#: Field values that differ from the defaults. ``"paper"``: the paper's training as written (150
#: epochs; the ZINB loss on every spot each epoch, on the scaled input as in the scaffold; the final
#: embedding alone is clustered; the gene graph on all genes); the scaffold clusters the embedding with k-means
#: (``cluster_method="kmeans", cluster_pcs=None, refine_labels=False`` in ``tl.tsstc``).
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "paper": {
        "epochs": 150,
        "zinb_batch_size": None,
        "zinb_target": "input",
        "snapshots": 1,
        "gene_graph_pcs": None,
    },
}


@dataclass(frozen=True)
class TSstcConfig:
    """Hyperparameters of the TSstc model; ``tl.tsstc(**kwargs)`` accepts any of these fields.

    Attributes
    ----------
    n_top_genes
        Highly variable genes (``seurat_v3`` on raw counts) used as features (paper: 3000).
    min_cells
        Drop genes detected in fewer spots first; ``None`` = ``min(100, max(3, 1% of spots))``.
    log1p
        Log-transform after total-count normalisation (the scaffold does not).
    max_value
        Clip the std-scaled matrix at this value (scaffold: 10).
    gene_neighbors
        ``k`` of the cosine k-NN gene graph.
    gene_graph_pcs
        The gene graph's cosines are taken on this many principal components of the input (50);
        ``None``: on all genes, as the scaffold (``preset="paper"``). Above 20,000 spots always on
        principal components (50 when ``None``). All-gene cosines lost the olfactory bulb's layers
        (docs/benchmarks.md).
    adj_norm
        GCN normalisation: ``"symmetric"`` ``D^-1/2 (A+I) D^-1/2`` (paper) or ``"row"`` (scaffold).
    use_sas
        Spatiality-aware sampling (mean over each spot's closed neighbourhood); ``False`` = "w/o SAS".
    hidden_dim, latent_dim
        GCN widths (128 and 64).
    alpha
        Weight of the ZINB reconstruction loss ``L_C`` (paper: 10); 0 = "w/o L_C".
    lambda_r
        Weight of the spatial regularisation ``L_R``; 0 = "w/o L_R".
    refine_rule, refine_value
        Which spatial neighbours stay positives: ``"mean"`` (cosine to the gene embedding at least the
        spot's mean), ``"top_ratio"`` (the top ``refine_value`` fraction), ``"threshold"``
        (cosine >= ``refine_value``) or ``"none"`` (all; the unrefined control).
    n_negatives
        Negative pairs sampled per spot, per view and epoch for ``L_R``.
    lr_normalization
        ``"balanced"``: mean over positives + mean over negatives; ``"scaffold"``: both sums over
        ``2 N^2`` (half the sum of the two ``N x N`` means, as the scaffold).
    lr_temperature
        Pair probability ``sigmoid(cos / lr_temperature)`` in ``L_R`` (paper: 1). Sharper (0.5) made
        the domains degrade sooner in training, softer (2) changed little (docs/benchmarks.md).
    zinb_target
        What the ZINB decoder reconstructs: ``"counts"`` the raw counts of the selected genes with
        the mean scaled by each spot's library size over the median (default: a count model on
        counts; equal or better on all five benchmark datasets, docs/benchmarks.md), or ``"input"`` the
        preprocessed matrix with size factor 1 (the scaffold; ``preset="paper"``).
    zinb_batch_size
        Spots whose expression the ZINB loss scores per epoch (an unbiased subsample; ``None`` = all).
        Over 2^25 entries (spots x genes) the loss runs in row chunks recomputed in the backward
        pass, so ``None`` on a large section costs time, not memory.
    epochs
        Training epochs (one optimiser step each); training may stop earlier by ``tol``. The paper
        trains "at least 150"; on the benchmark datasets the clusters degrade with longer training
        (docs/benchmarks.md), so the default is 20 for every dataset.
    snapshots
        Cluster the fused embedding at this many epochs, evenly spaced over the second half of
        training and ending with the last, and give each spot its majority domain, the snapshots'
        domains matched to the last one's (docs/benchmarks.md: steadier than any single epoch). A
        vote that would leave a domain with fewer than 0.5% of the spots (or 2) is dropped for the
        last epoch's domains. 1 clusters the last epoch only (the paper).
    restarts
        Train this many times, from initialisations ``random_state``, ``random_state + 1``, ..., and give
        each spot its majority domain over every training's snapshots, matched to the first training's
        domains; the first training is the model kept (embedding, weights, loss). Costs that many
        trainings and needs ``n_clusters``. With 3, over 18 seeds, the Visium slices gained
        0.007-0.047 ARI per six-seed set and 151674's seed SD narrowed (0.037-0.057 to 0.013-0.025),
        but the olfactory bulb lost 0.024 on one set: not the default (docs/benchmarks.md). Six
        votes of three separate trainings each (seeds 6-23) gave seed SDs of 0.013 and 0.011 on
        151673 and 151674, against 0.032 and 0.069 for single trainings.
    lr, weight_decay
        Adam settings (paper: 1e-3 and 5e-4).
    batch_size
        Mini-batch training: spots per tile (eight compact patches spread over the section, each with
        a halo of 3 hops of the largest scale), so memory is bounded by the tile instead of N; the
        tiles' gradients are summed into one step per epoch. ``None`` trains on the whole section at
        once. Under ``torch.distributed`` (e.g. ``torchrun``) the tiles are shared among the
        processes (DDP).
    tol, patience
        Label-free stopping: stop when the total loss has not improved by a relative ``tol`` for
        ``patience`` epochs (``tol=0`` trains all ``epochs``).

    Examples
    --------
    >>> from tsstc_sc.tl import TSstcConfig
    >>> config = TSstcConfig.from_kwargs(preset="paper", alpha=1.0)
    >>> config.epochs, config.alpha, config.zinb_target
    (150, 1.0, 'input')
    """

    n_top_genes: int = 3000
    min_cells: int | None = None
    log1p: bool = False
    max_value: float | None = 10.0
    gene_neighbors: int = 15
    gene_graph_pcs: int | None = 50
    adj_norm: Literal["symmetric", "row"] = "symmetric"
    use_sas: bool = True
    hidden_dim: int = 128
    latent_dim: int = 64
    alpha: float = 10.0
    lambda_r: float = 1.0
    refine_rule: Literal["mean", "top_ratio", "threshold", "none"] = "mean"
    refine_value: float | None = None
    n_negatives: int = 32
    lr_normalization: Literal["balanced", "scaffold"] = "balanced"
    lr_temperature: float = 1.0
    zinb_target: Literal["input", "counts"] = "counts"
    zinb_batch_size: int | None = 1024
    epochs: int = 20
    snapshots: int = 3
    restarts: int = 1
    batch_size: int | None = None
    lr: float = 1e-3
    weight_decay: float = 5e-4
    tol: float = 0.0
    patience: int = 10

    def __post_init__(self):
        for f in fields(self):
            object.__setattr__(self, f.name, _typed(f.name, f.type, getattr(self, f.name)))
        checks = {
            "n_top_genes": self.n_top_genes >= 1,
            "gene_neighbors": self.gene_neighbors >= 1,
            "hidden_dim": self.hidden_dim >= 1,
            "latent_dim": self.latent_dim >= 1,
            "alpha": self.alpha >= 0,
            "lambda_r": self.lambda_r >= 0,
            "n_negatives": self.n_negatives >= 1,
            "lr_temperature": self.lr_temperature > 0,
            "epochs": self.epochs >= 1,
            "snapshots": self.snapshots >= 1,
            "restarts": self.restarts >= 1,
            "lr": self.lr > 0,
            "weight_decay": self.weight_decay >= 0,
            "tol": self.tol >= 0,
            "patience": self.patience >= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            msg = f"Invalid value(s) for {bad}: " + ", ".join(f"{n}={getattr(self, n)!r}" for n in bad)
            raise ValueError(msg)
        if self.alpha == 0 and self.lambda_r == 0:
            msg = "`alpha=0` and `lambda_r=0` leave no loss to train: keep at least one above 0 (defaults 10 and 1)."
            raise ValueError(msg)
        options = {
            "adj_norm": ("symmetric", "row"),
            "refine_rule": ("mean", "top_ratio", "threshold", "none"),
            "lr_normalization": ("balanced", "scaffold"),
            "zinb_target": ("input", "counts"),
        }
        for name, allowed in options.items():
            check_choice(getattr(self, name), allowed, name)
        if self.refine_rule in ("top_ratio", "threshold") and self.refine_value is None:
            msg = f'`refine_rule="{self.refine_rule}"` needs `refine_value` (a ratio or a cosine threshold).'
            raise ValueError(msg)
        if self.refine_rule == "top_ratio" and not 0 < self.refine_value <= 1:
            msg = f"`refine_value` must be in (0, 1] for top_ratio, got {self.refine_value}."
            raise ValueError(msg)
        if self.zinb_batch_size is not None and self.zinb_batch_size < 2:
            msg = "`zinb_batch_size` must be >= 2 (batch normalisation) or None."
            raise ValueError(msg)
        if self.batch_size is not None and self.batch_size < 2:
            msg = "`batch_size` must be >= 2 spots per tile, or None for full-batch training."
            raise ValueError(msg)
        if self.min_cells is not None and self.min_cells < 0:
            msg = "`min_cells` must be >= 0 or None."
            raise ValueError(msg)
        if self.max_value is not None and self.max_value <= 0:
            msg = f"`max_value` must be > 0 (the clip of the scaled input), or None for no clip; got {self.max_value}."
            raise ValueError(msg)
        if self.gene_graph_pcs is not None and self.gene_graph_pcs < 1:
            msg = "`gene_graph_pcs` must be >= 1, or None for cosines on all genes."
            raise ValueError(msg)

    @classmethod
    def from_kwargs(cls, preset: Preset = "default", **kwargs: Any) -> TSstcConfig:
        """Build a config from a preset, ``kwargs`` overriding it; names any unknown keyword or preset."""
        if preset not in PRESETS:
            msg = f"`preset` must be one of {sorted(PRESETS)}, got {preset!r}."
            raise ValueError(msg)
        valid = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - valid)
        if unknown:
            msg = f"Unknown TSstc parameter(s) {unknown}. Valid: {sorted(valid)}."
            raise TypeError(msg)
        return cls(**{**PRESETS[preset], **kwargs})

    def snapshot_epochs(self) -> list[int]:
        """Epochs (1-based) whose embedding is clustered: ``snapshots`` from ``epochs / 2`` to ``epochs``."""
        if self.snapshots == 1:
            return [self.epochs]
        half = self.epochs / 2
        steps = (half + i * half / (self.snapshots - 1) for i in range(self.snapshots))
        return sorted({max(1, round(e)) for e in steps})

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (``None`` kept), e.g. for JSON."""
        return asdict(self)
