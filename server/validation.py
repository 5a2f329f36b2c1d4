"""Validation scoring for the hyper-parameter search: many candidate models, one split.

Scores every validation user at once (a sparse history matrix times the candidate's weights)
and tries each popularity weight on the same item scores, so a search over forms, sizes and
regularisation costs a few matrix products per point.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from .metrics import ndcg_at_k
from .splits import Split

K = 20
_TIE_BREAK = 1e-6

ItemScorer = Callable[[sp.csr_matrix], object]
"""(validation histories, users x active items) -> item-item scores, users x active items."""


def popularity_prior(counts: npt.NDArray[np.float64], weight: float) -> npt.NDArray[np.float32]:
    """The model's base score: `weight` x count / max count, plus a tiny log-count tie-breaker
    (so that, where no history speaks, the more popular item ranks first)."""
    top = max(float(counts.max(initial=0.0)), 1.0)
    tie = np.log1p(counts) / max(np.log1p(top), 1.0) * _TIE_BREAK
    prior: npt.NDArray[np.float32] = (weight * counts / top + tie).astype(np.float32)
    return prior


class Validator:
    """Mean NDCG@20 of candidate models on a split's held-out users."""

    def __init__(
        self, split: Split, active: npt.NDArray[np.int64], popularity_grid: Sequence[float]
    ) -> None:
        n = split.train.n_items
        self._active = active
        self._grid = tuple(popularity_grid)
        position = np.full(n, -1, np.int64)
        position[active] = np.arange(active.size)
        rows, cols, vals = [], [], []
        for u, user in enumerate(split.held_out):
            keep = position[user.history] >= 0
            rows.append(np.full(int(keep.sum()), u))
            cols.append(position[user.history[keep]])
            vals.append(user.history_strength[keep])
        self._histories = sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(len(split.held_out), active.size),
        )
        counts = np.bincount(split.train.item, minlength=n).astype(np.float64)
        self._tie = popularity_prior(counts, 0.0).astype(np.float64)
        self._popularity = popularity_prior(counts, 1.0) - self._tie
        self._users = split.held_out

    def best(self, score: ItemScorer) -> tuple[float, float]:
        """(best popularity weight, its mean NDCG@20) for one candidate model."""
        item_scores = score(self._histories)
        if sp.issparse(item_scores):
            item_scores = item_scores.toarray()  # type: ignore[attr-defined]
        dense = np.asarray(item_scores, dtype=np.float64)
        results = [(weight, self._ndcg(dense, weight)) for weight in self._grid]
        return max(results, key=lambda pair: pair[1])

    def _ndcg(self, item_scores: npt.NDArray[np.floating], weight: float) -> float:
        full = np.tile(weight * self._popularity + self._tie, (len(self._users), 1))
        full[:, self._active] += item_scores
        for u, user in enumerate(self._users):
            full[u, user.history] = -np.inf
        k = min(K, full.shape[1] - 1)
        top = np.argpartition(-full, k - 1, axis=1)[:, :k]
        values = []
        for u, user in enumerate(self._users):
            ranked = top[u][np.argsort(-full[u, top[u]], kind="stable")]
            values.append(ndcg_at_k(ranked, user.targets, K))
        return float(np.mean(values))
