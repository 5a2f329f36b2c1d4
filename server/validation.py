"""Validation scoring for the hyper-parameter search: many candidate models, one split.

Scores every validation user at once (a sparse history matrix times the candidate's weights)
and tries each popularity weight on the same item scores, so a search over forms, sizes and
regularisation costs a few matrix products per point.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from client_sdk.features import InterestConfig

from .data import EVENT_KINDS
from .splits import Split

K = 20
_TIE_BREAK = 1e-6
_DAY = 86_400.0

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
        self,
        split: Split,
        active: npt.NDArray[np.int64],
        popularity_grid: Sequence[float],
        event_weights: Mapping[str, float],
    ) -> None:
        n = split.train.n_items
        self._active = active
        self._grid = tuple(popularity_grid)
        self._position = np.full(n, -1, np.int64)
        self._position[active] = np.arange(active.size)
        self._kind_weight = np.array([event_weights.get(k, 1.0) for k in EVENT_KINDS])
        self._users = split.held_out
        self._histories = self._history_matrix(None)
        self._history_rows = np.concatenate(
            [np.full(u.history.size, i) for i, u in enumerate(self._users)]
        )
        self._history_cols = np.concatenate([u.history for u in self._users])
        self._target_keys = np.concatenate([i * n + u.targets for i, u in enumerate(self._users)])
        discounts = np.cumsum(1.0 / np.log2(np.arange(2, K + 2)))
        self._ideal = np.array([discounts[min(K, u.targets.size) - 1] for u in self._users])
        counts = np.bincount(split.train.item, minlength=n).astype(np.float64)
        self._tie = popularity_prior(counts, 0.0).astype(np.float64)
        self._popularity = popularity_prior(counts, 1.0) - self._tie

    def set_decay(self, interest: InterestConfig | None) -> None:
        """Weigh validation histories as a device with this interest decay would (None: none).

        The device's clock stands just after each user's last history event; an item weighs its
        strongest event kind after decay, and items under `min_weight` drop out.
        """
        self._histories = self._history_matrix(interest)

    def _history_matrix(self, interest: InterestConfig | None) -> sp.csr_matrix:
        rows, cols, vals = [], [], []
        for u, user in enumerate(self._users):
            weight = self._weights(user.history_last_seen, interest)
            keep = (self._position[user.history] >= 0) & (weight > 0)
            rows.append(np.full(int(keep.sum()), u))
            cols.append(self._position[user.history[keep]])
            vals.append(weight[keep])
        return sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(len(self._users), self._active.size),
        )

    def _weights(
        self, last_seen: npt.NDArray[np.float64], interest: InterestConfig | None
    ) -> npt.NDArray[np.float64]:
        seen = np.isfinite(last_seen)
        if interest is None:
            plain: npt.NDArray[np.float64] = np.where(seen, self._kind_weight, 0.0).max(axis=1)
            return plain
        now = last_seen[seen].max() + 1.0
        half_life = np.array([interest.half_life_days(k) for k in EVENT_KINDS]) * _DAY
        age = np.where(seen, now - last_seen, np.inf)
        retention = np.array([interest.retention_days(k) for k in EVENT_KINDS]) * _DAY
        age = np.where(age > retention[None, :], np.inf, age)  # the device deleted those
        weight = self._kind_weight[None, :] * np.exp2(-age / half_life[None, :])
        best = weight.max(axis=1)
        decayed: npt.NDArray[np.float64] = np.where(best >= interest.min_weight, best, 0.0)
        return decayed

    def best(self, score: ItemScorer) -> tuple[float, float]:
        """(best popularity weight, its mean NDCG@20) for one candidate model."""
        item_scores = score(self._histories)
        if sp.issparse(item_scores):
            item_scores = item_scores.toarray()  # type: ignore[attr-defined]
        dense = np.asarray(item_scores, dtype=np.float64)
        results = [(weight, self._ndcg(dense, weight)) for weight in self._grid]
        return max(results, key=lambda pair: pair[1])

    def _ndcg(self, item_scores: npt.NDArray[np.floating], weight: float) -> float:
        """Mean NDCG@20 over users, vectorised (the same values as `metrics.ndcg_at_k`)."""
        users = len(self._users)
        full = np.empty((users, self._popularity.size), np.float64)
        full[:] = weight * self._popularity + self._tie
        full[:, self._active] += item_scores
        full[self._history_rows, self._history_cols] = -np.inf
        k = min(K, full.shape[1] - 1)
        top = np.argpartition(-full, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(full, top, axis=1), axis=1, kind="stable")
        ranked = np.take_along_axis(top, order, axis=1)
        keys = np.arange(users)[:, None] * full.shape[1] + ranked
        hits = np.isin(keys, self._target_keys)
        dcg = (hits / np.log2(np.arange(2, k + 2))[None, :]).sum(axis=1)
        return float(np.mean(dcg / self._ideal))
