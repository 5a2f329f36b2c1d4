"""The vectorised validation NDCG equals the reference metric, user by user."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from server.baselines import rank_top_k
from server.metrics import ndcg_at_k
from server.splits import Positives, strong_split
from server.validation import Validator, popularity_prior


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
