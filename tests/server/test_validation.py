"""Validation scoring: the vectorised NDCG equals the reference metric (with and without the
shortlist shortcut), and the popularity prior counts recent users more."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from server import validation
from server.baselines import rank_top_k
from server.metrics import ndcg_at_k
from server.splits import Positives, strong_split
from server.validation import Validator, decayed_counts, popularity_prior


def _positives(users: int = 300, items: int = 60, seed: int = 0) -> Positives:
    rng = np.random.default_rng(seed)
    user, item = [], []
    for u in range(users):
        chosen = rng.choice(items, size=int(rng.integers(3, 12)), replace=False)
        user += [u] * chosen.size
        item += chosen.tolist()
    n = len(user)
    first = rng.integers(0, 10_000, size=n).astype(np.int64)
    seen = np.full((n, 3), -np.inf)
    seen[:, 2] = first
    order = np.lexsort((first, np.array(user)))
    return Positives(
        np.array(user, np.int64)[order],
        np.array(item, np.int64)[order],
        first[order],
        np.ones(n, np.float32),
        users,
        items,
        seen[order],
    )


def test_vectorised_ndcg_matches_the_metric() -> None:
    positives = _positives()
    split = strong_split(positives, held_out_fraction=0.3, seed=1, min_items=3)
    active = np.arange(positives.n_items, dtype=np.int64)
    rng = np.random.default_rng(3)
    weights = rng.random((positives.n_items, positives.n_items))
    validator = Validator(split, active, (0.0, 0.5), {"purchase": 1.0})
    weight, got = validator.best(lambda h: h @ weights)
    counts = np.bincount(split.train.item, minlength=positives.n_items).astype(np.float64)
    prior = popularity_prior(counts, weight).astype(np.float64)
    expected = []
    for user in split.held_out:
        x = sp.csr_matrix(
            (user.history_strength, (np.zeros(user.history.size, int), user.history)),
            shape=(1, positives.n_items),
        )
        scores = np.asarray(x @ weights).ravel() + prior
        expected.append(ndcg_at_k(rank_top_k(scores, user.history, 20), user.targets, 20))
    assert got == pytest.approx(float(np.mean(expected)), abs=1e-12)


def test_shortlist_ranking_equals_the_full_ranking(monkeypatch: pytest.MonkeyPatch) -> None:
    """The exact shortcut (each user's M best item scores plus the popular items, with a bound)
    gives the same NDCG as ranking the whole catalogue, and really skips the full ranking."""
    positives = _positives(users=400, items=300, seed=4)
    split = strong_split(positives, held_out_fraction=0.3, seed=2, min_items=3)
    active = np.arange(positives.n_items, dtype=np.int64)
    weights = np.random.default_rng(5).random((positives.n_items, positives.n_items)) ** 8
    grid = (0.0, 0.05, 0.5, 5.0)
    full_rows: list[int] = []
    original = validation.Validator._top_k_full

    def counting(self: Validator, scores: np.ndarray, *args: object) -> np.ndarray:
        full_rows.append(scores.shape[0])
        return original(self, scores, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(validation.Validator, "_top_k_full", counting)
    monkeypatch.setattr(validation, "_SHORTLIST", 10_000)  # no shortlist: full ranking
    full = Validator(split, active, grid, {"purchase": 1.0}).table(lambda h: h @ weights)
    assert sum(full_rows) == len(grid) * len(split.held_out)
    full_rows.clear()
    monkeypatch.setattr(validation, "_SHORTLIST", 24)
    short = Validator(split, active, grid, {"purchase": 1.0}).table(lambda h: h @ weights)
    np.testing.assert_allclose(short, full, atol=1e-12)
    assert sum(full_rows) < len(grid) * len(split.held_out) / 2


def test_decayed_counts_halve_per_half_life_before_the_log_end() -> None:
    day = 86_400
    seen = np.full((4, 3), -np.inf)
    seen[:, 2] = [100 * day, 70 * day, 70 * day, 40 * day]
    positives = Positives(
        np.array([0, 0, 1, 1], np.int64),
        np.array([0, 1, 1, 2], np.int64),
        np.array([100, 70, 70, 40], np.int64) * day,
        np.ones(4, np.float32),
        2,
        4,
        seen,
    )
    np.testing.assert_allclose(decayed_counts(positives, None), [1, 2, 1, 0])
    np.testing.assert_allclose(decayed_counts(positives, 30.0), [1, 1.0, 0.25, 0])
    prior = popularity_prior(np.array([1, 2, 1, 0.0]), 2.0, decayed_counts(positives, 30.0))
    # The weight scales recency-weighted popularity (max 1); the tie-breaker follows counts.
    np.testing.assert_allclose(prior, [2.0, 2.0, 0.5, 0.0], atol=2e-6)
    assert prior[1] > prior[0]


def test_recent_popularity_finds_what_new_users_buy() -> None:
    """Early shoppers started with three of items 0-4; lately shoppers end with item 5 or 6.
    The held-out targets are last items: popularity with a short half-life ranks 5 and 6
    first, all-time counts rank 0-4 above them."""
    rng = np.random.default_rng(0)
    day = 86_400
    user, item, first = [], [], []
    for u in range(300):
        old = u < 200
        start = (0 if old else 200) * day
        if old:
            basket = rng.choice(5, size=3, replace=False).tolist()
            basket += rng.choice(np.arange(10, 40), size=2, replace=False).tolist()
        else:
            basket = rng.choice(np.arange(10, 40), size=4, replace=False).tolist()
            basket.append(int(rng.integers(5, 7)))
        for t, i in enumerate(basket):
            user.append(u)
            item.append(i)
            first.append(start + t * day)
    n = len(user)
    seen = np.full((n, 3), -np.inf)
    seen[:, 2] = first
    positives = Positives(
        np.array(user, np.int64), np.array(item, np.int64), np.array(first, np.int64),
        np.ones(n, np.float32), 300, 40, seen,
    )  # fmt: skip
    split = strong_split(positives, held_out_fraction=0.3, seed=0, min_items=3)
    active = np.arange(40, dtype=np.int64)
    validator = Validator(split, active, (1.0,), {"purchase": 1.0}, (None, 10.0))
    plain = validator.table(lambda h: np.zeros(h.shape))[0]
    validator.set_popularity(10.0)
    recent = validator.table(lambda h: np.zeros(h.shape))[0]
    new_users = sum(u.targets[0] >= 5 for u in split.held_out)
    assert new_users > 0
    assert recent > plain + 0.1
