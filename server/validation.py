"""Validation scoring for the hyper-parameter search: many candidate models, one split.

Scores every validation user at once (a sparse history matrix times the candidate's weights)
and tries each popularity weight on the same item scores, so a search over forms, sizes and
regularisation costs a few matrix products per point.

Ranking is exact but cheap: each user's M best item scores are found once per candidate model;
for each popularity weight the top 20 is taken among those and the catalogue's most popular
items, and it is provably the top 20 of the whole catalogue when its last score beats the best
any other item could reach (the user's (M+1)-th item score plus the popularity that follows the
popular list). The few users where that bound does not settle it are ranked in full.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from client_sdk.features import InterestConfig

from .data import EVENT_KINDS
from .splits import Positives, Split

K = 20
_TIE_BREAK = 1e-6
_DAY = 86_400.0
_SHORTLIST = 256
"""M: how many of its best item scores each user keeps for the exact top-20 shortcut."""

ItemScorer = Callable[[sp.csr_matrix], object]
"""(validation histories, users x active items) -> item-item scores, users x active items."""


def popularity_prior(
    counts: npt.NDArray[np.float64],
    weight: float,
    popularity: npt.NDArray[np.float64] | None = None,
) -> npt.NDArray[np.float32]:
    """The model's base score: `weight` x popularity / its max, plus a tiny log-count
    tie-breaker (so that, where no history speaks, the more popular item ranks first).

    `popularity` defaults to `counts`; pass recency-weighted counts (`decayed_counts`) to favour
    what is popular lately.
    """
    top = max(float(counts.max(initial=0.0)), 1.0)
    tie = np.log1p(counts) / max(np.log1p(top), 1.0) * _TIE_BREAK
    pop = counts if popularity is None else popularity
    peak = float(pop.max(initial=0.0))
    share = pop / peak if peak > 0 else np.zeros_like(pop)
    prior: npt.NDArray[np.float32] = (weight * share + tie).astype(np.float32)
    return prior


def decayed_counts(positives: Positives, half_life_days: float | None) -> npt.NDArray[np.float64]:
    """Users per item, each weighted 2^(-age / half-life) by the age of their first interaction
    with it at the log's last event (None: plain counts)."""
    if half_life_days is None or len(positives) == 0:
        return np.bincount(positives.item, minlength=positives.n_items).astype(np.float64)
    seen = positives.last_seen[np.isfinite(positives.last_seen)]
    end = float(seen.max()) if seen.size else float(positives.first_time.max())
    age = np.maximum(end - positives.first_time.astype(np.float64), 0.0)
    weight = np.exp2(-age / (half_life_days * _DAY))
    counts = np.bincount(positives.item, weights=weight, minlength=positives.n_items)
    return counts.astype(np.float64)


class Validator:
    """Mean NDCG@20 of candidate models on a split's held-out users."""

    def __init__(
        self,
        split: Split,
        active: npt.NDArray[np.int64],
        popularity_grid: Sequence[float],
        event_weights: Mapping[str, float],
        popularity_half_lives: Sequence[float | None] = (None,),
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
        self._longest = max(u.history.size for u in self._users)
        counts = np.bincount(split.train.item, minlength=n).astype(np.float64)
        self._tie = popularity_prior(counts, 0.0).astype(np.float64)
        self._shares = {
            half_life: popularity_prior(counts, 1.0, decayed_counts(split.train, half_life))
            - self._tie
            for half_life in popularity_half_lives
        }
        self._popularity = self._shares[popularity_half_lives[0]]

    @property
    def users(self) -> int:
        """How many validation users are scored."""
        return len(self._users)

    @property
    def grid(self) -> tuple[float, ...]:
        """The popularity weights tried."""
        return self._grid

    def set_decay(self, interest: InterestConfig | None) -> None:
        """Weigh validation histories as a device with this interest decay would (None: none).

        The device's clock stands just after each user's last history event; an item weighs its
        strongest event kind after decay, and items under `min_weight` drop out.
        """
        self._histories = self._history_matrix(interest)

    def set_popularity(self, half_life_days: float | None) -> None:
        """Use the popularity decayed with this half-life (one given when constructed).

        Raises:
            KeyError: the half-life was not among `popularity_half_lives`.
        """
        self._popularity = self._shares[half_life_days]

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
        table = self.table(score)
        at = int(np.argmax(table))
        return self._grid[at], float(table[at])

    def table(self, score: ItemScorer) -> npt.NDArray[np.float64]:
        """Mean NDCG@20 of one candidate model at each popularity weight of the grid."""
        item_scores = score(self._histories)
        if sp.issparse(item_scores):
            item_scores = item_scores.toarray()  # type: ignore[attr-defined]
        dense = np.array(item_scores, dtype=np.float64)
        # History items never rank: they sit below everything in the item scores.
        position = self._position[self._history_cols]
        at = position >= 0
        dense[self._history_rows[at], position[at]] = -np.inf
        shortlist = self._shortlist(dense)
        return np.array([self._ndcg(self._top_k(dense, shortlist, w)) for w in self._grid])

    def _ndcg(self, ranked: npt.NDArray[np.int64]) -> float:
        """Mean NDCG@20 over users, vectorised (the same values as `metrics.ndcg_at_k`)."""
        users, n = ranked.shape[0], self._popularity.size
        keys = np.arange(users)[:, None] * n + ranked
        hits = np.isin(keys, self._target_keys)
        dcg = (hits / np.log2(np.arange(2, ranked.shape[1] + 2))[None, :]).sum(axis=1)
        return float(np.mean(dcg / self._ideal))

    def _shortlist(
        self, item_scores: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]] | None:
        """Each user's M best items (catalogue indices) and the best item score off that list;
        None when the catalogue is too small for a shortlist to save anything."""
        m = min(_SHORTLIST, self._active.size - 1)
        if m < K or m + self._longest >= self._popularity.size - 1:
            return None
        part = np.argpartition(-item_scores, m, axis=1)
        beyond = item_scores[np.arange(item_scores.shape[0]), part[:, m]]
        return self._active[part[:, :m]], beyond

    def _top_k(
        self,
        item_scores: npt.NDArray[np.float64],
        shortlist: tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]] | None,
        weight: float,
    ) -> npt.NDArray[np.int64]:
        """Each user's top-K items (history excluded), best first: on the shortlist and the
        popular items where the bound proves that exact, else over the whole catalogue."""
        base = weight * self._popularity + self._tie
        users, n = item_scores.shape[0], base.size
        k = min(K, n - 1)
        if shortlist is None:
            return self._top_k_full(item_scores, base, np.arange(users), k)
        short, beyond = shortlist
        m = short.shape[1]
        popular_count = m + self._longest
        popular_order = np.argpartition(-base, popular_count)
        popular = popular_order[:popular_count]
        below_popular = base[popular_order[popular_count]]
        candidates = np.concatenate([short, np.broadcast_to(popular, (users, popular.size))], 1)
        rows = np.broadcast_to(np.arange(users)[:, None], candidates.shape)
        values = base[candidates]
        position = self._position[candidates]
        known = position >= 0
        values[known] += item_scores[rows[known], position[known]]
        # An item on both lists counts once; history items never rank.
        taken = np.zeros((users, n), bool)
        taken[self._history_rows, self._history_cols] = True
        taken[rows[:, :m], short] = True
        values[:, m:][taken[:, popular]] = -np.inf
        top = np.argpartition(-values, k - 1, axis=1)[:, :k]
        top_values = np.take_along_axis(values, top, axis=1)
        order = np.argsort(-top_values, axis=1, kind="stable")
        ranked = np.take_along_axis(np.take_along_axis(candidates, top, axis=1), order, axis=1)
        kth = np.take_along_axis(top_values, order, axis=1)[:, -1]
        # Off both lists an item scores at most the best item score off the shortlist (0 for
        # an item outside the model) plus the popularity below the popular list.
        off = np.maximum(beyond, 0.0) if self._active.size < n else beyond
        unsure = np.flatnonzero(~(kth > off + below_popular))
        if unsure.size:
            ranked[unsure] = self._top_k_full(item_scores[unsure], base, unsure, k)
        return np.asarray(ranked, dtype=np.int64)

    def _top_k_full(
        self,
        item_scores: npt.NDArray[np.float64],
        base: npt.NDArray[np.float64],
        users: npt.NDArray[np.int64],
        k: int,
    ) -> npt.NDArray[np.int64]:
        full = np.empty((users.size, base.size), np.float64)
        full[:] = base
        full[:, self._active] += item_scores
        local = np.full(len(self._users), -1, np.int64)
        local[users] = np.arange(users.size)
        rows = local[self._history_rows]
        at = rows >= 0
        full[rows[at], self._history_cols[at]] = -np.inf
        top = np.argpartition(-full, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(full, top, axis=1), axis=1, kind="stable")
        ranked: npt.NDArray[np.int64] = np.take_along_axis(top, order, axis=1)
        return ranked
