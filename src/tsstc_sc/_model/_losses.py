"""Losses of TSstc (paper Eq. 8-12, METHOD.md §4), each O(N·k).

* ``zinb_nll``: zero-inflated negative binomial negative log-likelihood, mean over entries.
* ``spatial_regularization`` (``L_R``): binary cross-entropy that pulls together the spatial
  neighbours a spot's gene embedding agrees with (cross-view refinement) and pushes apart sampled
  non-neighbours, with weights that keep the estimate unbiased for the all-pairs sum.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from ._graph_ops import EdgeIndex, edge_dot, pair_dot

RefineRule = Literal["mean", "top_ratio", "threshold", "none"]
Normalization = Literal["balanced", "scaffold"]
_EPS = 1e-10


def zinb_nll(x: torch.Tensor, pi: torch.Tensor, theta: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """Mean ZINB negative log-likelihood of ``x`` (dense).

    Every entry is scored as a zero first; the negative binomial terms (``lgamma`` and, backwards,
    ``digamma``) are then taken on the nonzero entries only (about 9% of a Visium slice's).
    """
    log_theta_mu = torch.log(theta + mu + _EPS)
    nb_log0 = theta * (torch.log(theta + _EPS) - log_theta_mu)  # log NB(0)
    log_lik = torch.log(pi + (1 - pi) * torch.exp(nb_log0) + _EPS)
    nonzero = (x >= 1e-8).nonzero(as_tuple=True)
    counts, theta_nz = x[nonzero], theta[nonzero]
    # log NB(x): lgamma(x+θ) - lgamma(θ) - lgamma(x+1) + θ log θ/(θ+μ) + x log μ/(θ+μ)
    nb_log = (
        torch.lgamma(counts + theta_nz)
        - torch.lgamma(theta_nz)
        - torch.lgamma(counts + 1)
        + nb_log0[nonzero]
        + counts * (torch.log(mu[nonzero] + _EPS) - log_theta_mu[nonzero])
    )
    log_lik = log_lik.index_put(nonzero, torch.log(1 - pi[nonzero] + _EPS) + nb_log)
    return -log_lik.mean()


@torch.no_grad()
def refine_neighbors(
    z_spatial: torch.Tensor, z_gene: torch.Tensor, edges: EdgeIndex, rule: RefineRule, value: float | None
) -> torch.Tensor:
    """Boolean mask of the spatial edges kept as positives (paper §3.5), scored on existing edges only.

    ``s_ij = cos(z_spa_i, z_gene_j)``; ``"mean"`` keeps ``s_ij >=`` the mean over ``i``'s candidates,
    ``"top_ratio"`` the top ``value`` fraction per spot, ``"threshold"`` ``s_ij >= value``, ``"none"``
    all. Spots with candidates always keep at least their best one.
    """
    if rule == "none":
        return torch.ones_like(edges.src, dtype=torch.bool)
    score = edge_dot(F.normalize(z_spatial, dim=1), F.normalize(z_gene, dim=1), edges.src, edges.dst)
    degree = edges.degree.clamp(min=1)
    best = torch.segment_reduce(score, "max", offsets=edges.indptr, axis=0, unsafe=True)
    keep = score >= best[edges.src]  # the best candidate always survives
    if rule == "mean":
        keep |= score >= (edges.segment_sum(score) / degree)[edges.src]
    elif rule == "threshold":
        keep |= score >= value
    elif rule == "top_ratio":
        # rank of each edge within its source's candidates (0 = best), by a stable sort on (src, -score)
        order = torch.argsort(score, descending=True, stable=True)
        order = order[torch.argsort(edges.src[order], stable=True)]
        rank = torch.empty_like(order)
        rank[order] = torch.arange(len(order), device=order.device) - edges.indptr[edges.src[order]]
        keep |= rank < torch.ceil(value * degree.float())[edges.src]
    else:
        msg = f'`refine_rule` must be "mean", "top_ratio", "threshold" or "none", got {rule!r}.'
        raise ValueError(msg)
    return keep


def sample_negatives(
    n_src: int, n_obs: int, n_negatives: int, generator: torch.Generator, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n_negatives`` uniform draws for each of the first ``n_src`` spots among the *other* ``n_obs``
    spots: ``(src, dst)`` (``n_src < n_obs`` in a mini-batch, where only core spots are sources).
    """
    src = torch.arange(n_src, device=device).repeat_interleave(n_negatives)
    offset = torch.randint(1, n_obs, (src.numel(),), generator=generator, device=device)
    return src, (src + offset) % n_obs  # never the spot itself


def _pair_logits(z: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, temperature: float) -> torch.Tensor:
    return pair_dot(F.normalize(z, dim=1), src, dst) / temperature  # cosine of each pair, scaled


def spatial_regularization(
    z_spatial: torch.Tensor,
    positives: tuple[torch.Tensor, torch.Tensor],
    negatives: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    *,
    n_negative_pairs: float,
    normalization: Normalization,
    temperature: float,
) -> torch.Tensor:
    """``L_R`` of one view from kept positive pairs and weighted negative pairs.

    ``negatives`` is ``(src, dst, weight)``: each weight is the number of all-pairs negatives a
    draw stands for (0 for a draw that hit a positive), so the weighted sum is an unbiased estimate
    of the sum over every non-neighbour. ``n_negative_pairs`` is that total count.
    ``"balanced"``: mean over positives + mean over negatives. ``"scaffold"``: both sums over
    ``2 N^2`` (half the sum of the two ``N x N`` means, as the scaffold).
    ``temperature`` divides the cosines (1 = the paper).
    """
    pos_src, pos_dst = positives
    neg_src, neg_dst, neg_weight = negatives
    # p_ij = sigmoid(cos / T); -log p = softplus(-cos / T), -log(1 - p) = softplus(cos / T)
    attract = F.softplus(-_pair_logits(z_spatial, pos_src, pos_dst, temperature)).sum()
    repel = (neg_weight * F.softplus(_pair_logits(z_spatial, neg_src, neg_dst, temperature))).sum()
    if normalization == "balanced":
        return attract / max(len(pos_src), 1) + repel / max(n_negative_pairs, 1.0)
    if normalization == "scaffold":
        n = z_spatial.shape[0]
        return (attract + repel) / (2 * n * n)
    msg = f'`lr_normalization` must be "balanced" or "scaffold", got {normalization!r}.'
    raise ValueError(msg)


def negative_weights(
    neg_src: torch.Tensor,
    neg_dst: torch.Tensor,
    keep: torch.Tensor,
    edges: EdgeIndex,
    n_negatives: int,
    n_src: int,
) -> tuple[torch.Tensor, float]:
    """Unbiased weights of the sampled negatives and the exact number of all-pairs negatives.

    A draw is uniform over the ``N - 1`` other spots, so weight ``(N - 1) / m`` makes its sum
    unbiased; draws that hit a kept neighbour (a positive) get weight 0. Only the first ``n_src``
    spots are sources.
    """
    n = edges.n_obs
    pos_keys = edges.src[keep] * n + edges.dst[keep]  # sorted: edges are in CSR order
    keys = neg_src * n + neg_dst
    where = torch.searchsorted(pos_keys, keys).clamp(max=max(len(pos_keys) - 1, 0))
    is_pos = (pos_keys[where] == keys) if len(pos_keys) else torch.zeros_like(keys, dtype=torch.bool)
    weight = torch.where(is_pos, 0.0, (n - 1) / n_negatives).to(torch.float32)
    n_pairs = float(n_src * (n - 1) - int(keep.sum()))
    return weight, n_pairs
