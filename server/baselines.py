"""Reference recommenders scored beside facetwo in `facetwo evaluate` (EVALUATION.md §1).

Each is trained on the same training positives (binary: every interaction is a positive) and
scores a held-out history given as item indices. They run in the server's numpy, never on a
device: they are the yardsticks, not the product.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from .metrics import ndcg_at_k
from .splits import HeldOutUser, Positives, strong_split


class Baseline(Protocol):
    """A trained reference model."""

    @property
    def name(self) -> str: ...

    @property
    def train_seconds(self) -> float: ...

    @property
    def model_bytes(self) -> int: ...

    def scores(self, history: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """Scores of every item for one history (higher is better)."""
        ...


def binary_matrix(positives: Positives) -> sp.csr_matrix:
    """The user x item 0/1 matrix of the positives."""
    data = np.ones(positives.user.size, np.float32)
    return sp.csr_matrix(
        (data, (positives.user, positives.item)), shape=(positives.n_users, positives.n_items)
    )


@dataclass
class Popularity:
    """Items ranked by how many training users have them."""

    counts: npt.NDArray[np.float32]
    train_seconds: float
    name: str = "popularity"

    @classmethod
    def fit(cls, positives: Positives) -> Popularity:
        started = time.perf_counter()
        counts = np.bincount(positives.item, minlength=positives.n_items).astype(np.float32)
        return cls(counts, time.perf_counter() - started)

    @property
    def model_bytes(self) -> int:
        return int(self.counts.nbytes)

    def scores(self, history: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        return np.array(self.counts, dtype=np.float32, copy=True)


@dataclass
class ItemItem:
    """A dense item x item matrix W; score = sum of W's rows for the history items."""

    weights: npt.NDArray[np.float32]
    train_seconds: float
    name: str

    @property
    def model_bytes(self) -> int:
        return int(self.weights.nbytes)

    def scores(self, history: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        return np.asarray(self.weights[history].sum(axis=0), dtype=np.float32)


def fit_item_knn(positives: Positives) -> ItemItem:
    """Item-kNN with cosine similarity over all items (zero diagonal)."""
    started = time.perf_counter()
    x = binary_matrix(positives)
    gram = np.asarray((x.T @ x).toarray(), dtype=np.float64)
    norms = np.sqrt(np.diag(gram))
    norms[norms == 0] = 1.0
    sim = gram / norms[:, None] / norms[None, :]
    np.fill_diagonal(sim, 0.0)
    return ItemItem(sim.astype(np.float32), time.perf_counter() - started, "item-knn")


def ease_weights(gram: npt.NDArray[np.float64], l2: float) -> npt.NDArray[np.float32]:
    """EASE's closed-form item-item matrix B = I - P / diag(P), P = (G + l2 I)^-1, diag(B) = 0."""
    g = gram.astype(np.float64, copy=True)
    g[np.diag_indices_from(g)] += l2
    p = np.linalg.inv(g)
    b = -p / np.diag(p)[None, :]
    b[np.diag_indices_from(b)] = 0.0
    return b.astype(np.float32)


def fit_ease(
    positives: Positives,
    *,
    grid: Sequence[float] = (0.3, 1.0, 3.0, 10.0, 30.0),
    seed: int = 0,
    max_dense_items: int = 5_000,
) -> tuple[_Embedded, float]:
    """EASE with l2 chosen on a validation split of the training users (grid x mean item count).

    Over `max_dense_items` items the dense inverse is restricted to items with at least two
    training users (an item seen once has no co-occurrence to learn from; it keeps score 0),
    so that large retail catalogues stay within minutes.
    """
    started = time.perf_counter()
    counts = np.bincount(positives.item, minlength=positives.n_items)
    active = np.arange(positives.n_items)
    if positives.n_items > max_dense_items:
        active = np.flatnonzero(counts >= 2)
    split = strong_split(positives, held_out_fraction=0.1, seed=seed + 1, min_items=3)
    gram_val = _gram(split.train, active)
    scale = float(np.mean(np.diag(gram_val))) or 1.0
    best_l2, best = grid[0] * scale, -1.0
    for factor in grid:
        l2 = factor * scale
        model = _embed(ease_weights(gram_val, l2), active, positives.n_items)
        quality = mean_ndcg(model.scores, split.held_out, 20)
        if quality > best:
            best_l2, best = l2, quality
    weights = ease_weights(_gram(positives, active), best_l2)
    model = _embed(weights, active, positives.n_items)
    model.train_seconds = time.perf_counter() - started
    return model, best_l2


def _gram(positives: Positives, active: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    x = binary_matrix(positives)[:, active]
    return np.asarray((x.T @ x).toarray(), dtype=np.float64)


@dataclass
class _Embedded:
    """An item-item matrix over a subset of items, scoring in the full catalogue."""

    weights: npt.NDArray[np.float32]
    active: npt.NDArray[np.int64]
    n_items: int
    train_seconds: float = 0.0
    name: str = "ease"

    @property
    def model_bytes(self) -> int:
        # What dense EASE costs on the full catalogue, the yardstick the size target uses.
        return 4 * self.n_items * self.n_items

    def scores(self, history: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        position = np.searchsorted(self.active, history)
        position = np.minimum(position, self.active.size - 1)
        known = position[self.active[position] == history]
        scores = np.zeros(self.n_items, np.float32)
        scores[self.active] = self.weights[known].sum(axis=0)
        return scores


def _embed(weights: npt.NDArray[np.float32], active: npt.NDArray[np.int64], n: int) -> _Embedded:
    return _Embedded(weights, active.astype(np.int64), n)


def rank_top_k(
    scores: npt.NDArray[np.floating], history: npt.NDArray[np.int64], k: int
) -> npt.NDArray[np.int64]:
    """The k best items, history excluded, best first (ties broken by lower index)."""
    s = np.asarray(scores, dtype=np.float64).copy()
    s[history] = -np.inf
    k = min(k, s.size - history.size)
    top = np.argpartition(-s, k - 1)[:k] if k > 0 else np.zeros(0, np.int64)
    return np.asarray(top[np.lexsort((top, -s[top]))], dtype=np.int64)


def mean_ndcg(score_fn: object, users: Sequence[HeldOutUser], k: int) -> float:
    """Mean NDCG@k of `score_fn(history) -> scores` over held-out users."""
    values = []
    for user in users:
        scores = score_fn(user.history)  # type: ignore[operator]
        values.append(ndcg_at_k(rank_top_k(scores, user.history, k), user.targets, k))
    return float(np.mean(values)) if values else 0.0
