"""Ranking metrics of EVALUATION.md: Recall@K and NDCG@K with binary gains."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def recall_at_k(ranked: npt.NDArray[np.int64], targets: npt.NDArray[np.int64], k: int) -> float:
    """hits in the top k / min(k, |targets|)."""
    if targets.size == 0:
        raise ValueError("targets is empty")
    hits = np.isin(ranked[:k], targets).sum()
    return float(hits) / min(k, targets.size)


def ndcg_at_k(ranked: npt.NDArray[np.int64], targets: npt.NDArray[np.int64], k: int) -> float:
    """DCG of the top k with binary gains over the ideal DCG of min(k, |targets|) hits."""
    if targets.size == 0:
        raise ValueError("targets is empty")
    gains = np.isin(ranked[:k], targets).astype(np.float64)
    discounts = 1.0 / np.log2(np.arange(2, gains.size + 2))
    ideal = float((1.0 / np.log2(np.arange(2, min(k, targets.size) + 2))).sum())
    return float((gains * discounts).sum()) / ideal
