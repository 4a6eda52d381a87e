"""Agreement of domains with an annotation, on the annotated spots only (CLI and plot titles)."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import pandas as pd


class Agreement(NamedTuple):
    ari: float
    nmi: float
    n_annotated: int


def agreement(obs: pd.DataFrame, key: str, truth: str) -> Agreement | None:
    """ARI and NMI of ``obs[key]`` against ``obs[truth]`` where ``truth`` is set; ``None`` when no spot
    is annotated (sklearn would report a perfect 1.0 on no spots).
    """
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    known = obs[truth].notna().to_numpy()
    if not known.any():
        return None
    t, p = obs[truth][known].astype(str), obs[key][known].astype(str)
    return Agreement(adjusted_rand_score(t, p), normalized_mutual_info_score(t, p), int(known.sum()))
