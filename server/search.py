"""The validation search behind `train_model`: form, size, regularisation, popularity weight and
recency, and the device's interest decay, chosen on validation splits of the training users.

Stages, each measured as mean NDCG@20 pooled over the validation splits (weighted by users):

1. the popularity prior's recency half-life, by popularity alone;
2. every sparse (m, l2) and low-rank (d, l2) point, each at its best popularity weight;
3. the best low-rank point plus a sparse residual, for every residual m that fits the size budget
   and every residual l2;
4. for the best point: the interest decay of the histories, then the popularity recency again.

Small logs pool several splits (up to `validation_folds`, while they hold at most
`max_validation_users` users in all): one split of a few hundred users cannot tell apart
differences of a few percent, and the search would chase its noise.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from client_sdk.features import InterestConfig, bundle_interest

from .data import EVENT_KINDS
from .errors import TrainingError
from .gram import Gram, RidgeProblem, local_ridges, prune_rows, shrunk_factors, top_eigen
from .splits import Positives, Split, strong_split
from .validation import ItemScorer, Validator

if TYPE_CHECKING:
    from .training import TrainingConfig

logger = logging.getLogger(__name__)

FORMS = ("sparse", "low-rank", "low-rank+sparse")
HalfLives = dict[str, "float | None"]
Point = tuple[str, int, float, int, float]
"""(form, m or d, l2 factor, residual m, residual l2 factor)."""
_MIN_VALIDATION_USERS = 5


@dataclass(frozen=True)
class Choice:
    """One point of the search and its validation NDCG@20."""

    form: str
    size: int
    """m (sparse) or d (low-rank, low-rank+sparse)."""
    l2_factor: float
    popularity: float
    ndcg: float
    neighbors: int = 0
    """m of the sparse residual (low-rank+sparse)."""
    residual_l2_factor: float = 0.0
    """l2 of the sparse residual (low-rank+sparse), as a multiple of the mean item count."""
    popularity_half_life: float | None = None
    """Recency half-life of the popularity prior, in days (None: plain counts)."""


@dataclass(frozen=True)
class Search:
    """What the search chose and measured."""

    best: Choice
    searched: tuple[Choice, ...]
    half_lives: HalfLives
    """The interest decay of the device's histories, by event kind (None: no decay)."""
    users: int
    """Validation users, over all splits."""


def interest_of(half_lives: HalfLives) -> InterestConfig:
    """The device's interest config for tuned half-lives (None: does not fade)."""
    return bundle_interest({"history_half_life_days": dict(half_lives)})


def active_items(positives: Positives, config: TrainingConfig) -> npt.NDArray[np.int64]:
    """Items with at least `min_item_users` users: the ones the model learns weights for.

    Raises:
        TrainingError: more than `config.max_items` of them.
    """
    counts = np.bincount(positives.item, minlength=positives.n_items)
    active = np.flatnonzero(counts >= config.min_item_users).astype(np.int64)
    if active.size > config.max_items:
        raise TrainingError(
            f"{active.size} items with >= {config.min_item_users} users, over max_items "
            f"{config.max_items}"
        )
    return active


def run_search(
    positives: Positives,
    config: TrainingConfig,
    say: Callable[[str], None],
    default_half_lives: HalfLives,
) -> Search:
    """Run the four stages and return the best point with its interest decay.

    Raises:
        TrainingError: more than `config.max_items` active items, or no form fits the budget.
    """
    folds = _folds(positives, config)
    budget = _Budget(positives.n_items, config)
    if not folds:
        form = config.forms[0]
        size = budget.sparse[0] if form == "sparse" else budget.ranks[0]
        neighbors = budget.residual(size)[:1] or [min(config.neighbors)]
        choice = Choice(
            form, size, config.l2_grid[0], config.popularity_grid[0], 0.0, neighbors[0],
            config.l2_grid[0], config.popularity_half_lives[0],
        )  # fmt: skip
        say("too few validation users; using the first grid values")
        return Search(choice, (choice,), dict(default_half_lives), 0)
    users = sum(f.validator.users for f in folds)
    say(f"validation: {users} users in {len(folds)} split(s), {folds[0].active.size} active items")
    for fold in folds:
        fold.validator.set_decay(interest_of(default_half_lives))
    recency = _best_recency(folds, config)
    tables: dict[Point, npt.NDArray[np.float64]] = {}
    for number, fold in enumerate(folds):
        started = time.perf_counter()
        _add(tables, fold.grid(config, budget, keep_gram=len(folds) == 1), fold)
        seconds = time.perf_counter() - started
        say(f"  split {number + 1}: {len(fold.scorers)} points in {seconds:.1f}s")
    low_rank = [p for p in tables if p[0] == "low-rank" and budget.residual(p[1])]
    if "low-rank+sparse" in config.forms and low_rank:
        _, d, l2, _, _ = max(low_rank, key=lambda p: tables[p].max())
        for fold in folds:
            _add(tables, fold.hybrid(config, budget, d, l2), fold)
    offered = {p: table for p, table in tables.items() if p[0] in config.forms}
    if not offered:
        raise TrainingError("no model form fits the size budget; raise max_bytes_ratio")
    searched = [_choice(p, table / users, config, recency) for p, table in offered.items()]
    for choice in searched:
        say(f"  {_line(choice)}")
    best = max(searched, key=lambda c: c.ndcg)
    point = _point(best)
    present = np.flatnonzero(np.isfinite(positives.last_seen).any(axis=0))
    kinds = {EVENT_KINDS[i] for i in present}
    half_lives, popularity, ndcg = _best_decay(folds, point, config, kinds)
    say(f"  interest decay {_show(half_lives)}: NDCG@20={ndcg:.4f}")
    recency, popularity, ndcg = _retune_recency(folds, point, config, recency)
    say(f"  popularity {popularity:g}, {_recency(recency)}: NDCG@20={ndcg:.4f}")
    best = replace(best, popularity=popularity, ndcg=ndcg, popularity_half_life=recency)
    return Search(best, tuple(searched), half_lives, users)


def _line(choice: Choice) -> str:
    size = f"size={choice.size:<4}"
    if choice.form == "low-rank+sparse":
        size += f" m={choice.neighbors:<3} rl2={choice.residual_l2_factor:<4g}"
    return (
        f"{choice.form:<15} {size} l2={choice.l2_factor:<5g}x  NDCG@20={choice.ndcg:.4f} "
        f"(pop {choice.popularity:g})"
    )


def _show(half_lives: HalfLives) -> str:
    return ", ".join(
        f"{kind} {'none' if days is None else f'{days:g}d'}" for kind, days in half_lives.items()
    )


def _recency(days: float | None) -> str:
    return "counted over all time" if days is None else f"recency half-life {days:g}d"


@dataclass
class _Fold:
    """One validation split: its training items, validator and the candidate models on it."""

    split: Split
    active: npt.NDArray[np.int64]
    validator: Validator
    scorers: dict[Point, ItemScorer] = field(default_factory=dict)
    eigen: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None = None
    kept_gram: Gram | None = None

    def gram(self, keep: bool) -> Gram:
        gram = self.kept_gram or Gram.build(self.split.train, self.active)
        self.kept_gram = gram if keep else None
        return gram

    def grid(self, config: TrainingConfig, budget: _Budget, *, keep_gram: bool) -> Iterator[Point]:
        """Train every sparse and low-rank point of the grid on this split (`keep_gram`: keep the
        Gram matrix for `hybrid`, else it is built again)."""
        gram = self.gram(keep=keep_gram and "low-rank+sparse" in config.forms)
        scale = gram.mean_diag
        if "sparse" in config.forms:
            l2s = [f * scale for f in config.l2_grid]
            ridges = local_ridges(gram, l2s, config.candidates, dropout=config.dropout)
            for factor, weights in zip(config.l2_grid, ridges, strict=True):
                for m in budget.sparse:
                    self.scorers["sparse", m, factor, 0, 0.0] = _SparseScorer(
                        _sparse_rows(*prune_rows(weights, m))
                    )
                    yield "sparse", m, factor, 0, 0.0
        if "low-rank" not in config.forms and "low-rank+sparse" not in config.forms:
            return
        # Low-rank points are measured for the hybrid's sake even when not offered alone.
        values, vectors = self.eigen = top_eigen(gram, max(budget.ranks))
        for factor, d in itertools.product(config.l2_grid, budget.ranks):
            factors = shrunk_factors(values[:d], vectors[:, :d], factor * scale)
            self.scorers["low-rank", d, factor, 0, 0.0] = _LowRankScorer(factors)
            yield "low-rank", d, factor, 0, 0.0

    def hybrid(self, config: TrainingConfig, budget: _Budget, d: int, l2: float) -> Iterator[Point]:
        """Train the low-rank point (d, l2) plus every sparse residual that fits the budget."""
        neighbors = budget.residual(d)
        if not neighbors or self.eigen is None:
            return
        gram = self.gram(keep=False)
        values, vectors = self.eigen
        factors = shrunk_factors(values[:d], vectors[:, :d], l2 * gram.mean_diag)
        problems = [
            RidgeProblem(f * gram.mean_diag, factors.astype(np.float64)) for f in config.l2_grid
        ]
        residuals = local_ridges(gram, problems, config.candidates, dropout=config.dropout)
        for factor, weights in zip(config.l2_grid, residuals, strict=True):
            for m in neighbors:
                matrix = _sparse_rows(*prune_rows(weights, m, signed=True))
                point = ("low-rank+sparse", d, l2, m, factor)
                self.scorers[point] = _HybridScorer(factors, matrix)
                yield point


def _add(
    tables: dict[Point, npt.NDArray[np.float64]], points: Iterator[Point], fold: _Fold
) -> None:
    """Add each point's NDCG table on this fold, weighted by its users."""
    for point in points:
        table = fold.validator.table(fold.scorers[point]) * fold.validator.users
        tables[point] = tables.get(point, 0.0) + table


def _folds(positives: Positives, config: TrainingConfig) -> list[_Fold]:
    eligible = int((np.bincount(positives.user, minlength=positives.n_users) >= 3).sum())
    fraction = min(config.validation_fraction, config.max_validation_users / max(eligible, 1))
    per_fold = max(1, round(eligible * fraction))
    count = max(1, min(config.validation_folds, config.max_validation_users // per_fold))
    folds = []
    for number in range(count):
        split = strong_split(
            positives, held_out_fraction=fraction, seed=config.seed + number, min_items=3
        )
        active = active_items(split.train, config)
        if len(split.held_out) < _MIN_VALIDATION_USERS or active.size < 3:
            continue
        validator = Validator(
            split, active, config.popularity_grid, config.event_weights,
            config.popularity_half_lives,
        )  # fmt: skip
        folds.append(_Fold(split, active, validator))
    return folds


def _pooled(folds: Sequence[_Fold], point: Point) -> npt.NDArray[np.float64]:
    total = sum(f.validator.table(f.scorers[point]) * f.validator.users for f in folds)
    return np.asarray(total, np.float64) / sum(f.validator.users for f in folds)


def _best_recency(folds: Sequence[_Fold], config: TrainingConfig) -> float | None:
    """The popularity half-life whose popularity alone ranks the validation targets best."""
    results = []
    for days in config.popularity_half_lives:
        quality = 0.0
        for fold in folds:
            fold.validator.set_popularity(days)
            table = fold.validator.table(_no_history)
            quality += float(table.max()) * fold.validator.users
        results.append((quality, days))
    best = max(results, key=lambda r: r[0])[1]
    for fold in folds:
        fold.validator.set_popularity(best)
    return best


def _best_decay(
    folds: Sequence[_Fold], point: Point, config: TrainingConfig, kinds: set[str]
) -> tuple[HalfLives, float, float]:
    """(interest half-lives, popularity weight, NDCG@20) of the best decay for one point.

    A half-life of event kinds the log does not hold cannot change any history: only the first
    of its grid is tried (it is what a device would apply to such events).
    """
    tried = []
    purchases = config.purchase_half_lives
    if not kinds & {"purchase", "cart"}:
        purchases = purchases[:1]
    views = config.view_half_lives if kinds & {"view", "search"} else config.view_half_lives[:1]
    for purchase, view in itertools.product(purchases, views):
        half_lives: HalfLives = {"purchase": purchase, "cart": purchase, "view": view}
        half_lives["search"] = view
        for fold in folds:
            fold.validator.set_decay(interest_of(half_lives))
        table = _pooled(folds, point)
        at = int(np.argmax(table))
        tried.append((float(table[at]), config.popularity_grid[at], half_lives))
    ndcg, popularity, half_lives = max(tried, key=lambda t: t[0])
    for fold in folds:
        fold.validator.set_decay(interest_of(half_lives))
    return half_lives, popularity, ndcg


def _retune_recency(
    folds: Sequence[_Fold], point: Point, config: TrainingConfig, current: float | None
) -> tuple[float | None, float, float]:
    """(popularity half-life, weight, NDCG@20) for the chosen model; ties keep `current`."""
    tried = []
    for days in (current, *(d for d in config.popularity_half_lives if d != current)):
        for fold in folds:
            fold.validator.set_popularity(days)
        table = _pooled(folds, point)
        at = int(np.argmax(table))
        tried.append((float(table[at]), days, config.popularity_grid[at]))
    ndcg, days, popularity = max(tried, key=lambda t: t[0])
    return days, popularity, ndcg


def _choice(
    point: Point, table: npt.NDArray[np.float64], config: TrainingConfig, recency: float | None
) -> Choice:
    """The point at its best popularity weight; `table` holds mean NDCG@20 per weight."""
    form, size, l2, neighbors, residual_l2 = point
    at = int(np.argmax(table))
    return Choice(
        form, size, l2, config.popularity_grid[at], float(table[at]), neighbors, residual_l2,
        recency,
    )  # fmt: skip


def _point(choice: Choice) -> Point:
    return (
        choice.form, choice.size, choice.l2_factor, choice.neighbors, choice.residual_l2_factor,
    )  # fmt: skip


class _Budget:
    """The m and d values whose model fits the byte budget (at least the smallest of each)."""

    def __init__(self, n: int, config: TrainingConfig) -> None:
        self._n = n
        self._bytes = config.max_bytes_ratio * 4.0 * n * n
        self._per_neighbor = (2 if n <= 65_535 else 4) + 1
        self._neighbors = config.neighbors
        fits_sparse = [m for m in config.neighbors if self._sparse_bytes(m) <= self._bytes]
        fits_rank = [d for d in config.ranks if n * (d + 8) <= self._bytes]
        self.sparse = fits_sparse or [min(config.neighbors)]
        self.ranks = fits_rank or [min(config.ranks)]

    def _sparse_bytes(self, m: int) -> float:
        return float(self._n * m * self._per_neighbor + 8 * self._n)

    def residual(self, d: int) -> list[int]:
        """Residual m values that fit beside rank d (factors, scales, base and the sparse part)."""
        room = self._bytes - self._n * (d + 8)
        return [
            m for m in self._neighbors if self._n * m * self._per_neighbor + 4 * self._n <= room
        ]


def _no_history(histories: sp.csr_matrix) -> npt.NDArray[np.float64]:
    return np.zeros(histories.shape, np.float64)


@dataclass(frozen=True)
class _SparseScorer:
    matrix: sp.csr_matrix

    def __call__(self, histories: sp.csr_matrix) -> object:
        return histories @ self.matrix


def _sparse_rows(idx: npt.NDArray[np.int64], w: npt.NDArray[np.float32]) -> sp.csr_matrix:
    n, m = idx.shape
    return sp.csr_matrix((w.ravel(), (np.repeat(np.arange(n), m), idx.ravel())), shape=(n, n))


@dataclass(frozen=True)
class _LowRankScorer:
    factors: npt.NDArray[np.float32]

    def __call__(self, histories: sp.csr_matrix) -> object:
        return np.asarray(histories @ self.factors) @ self.factors.T


@dataclass(frozen=True)
class _HybridScorer:
    factors: npt.NDArray[np.float32]
    matrix: sp.csr_matrix

    def __call__(self, histories: sp.csr_matrix) -> object:
        low_rank = np.asarray(histories @ self.factors) @ self.factors.T
        return low_rank + np.asarray((histories @ self.matrix).toarray())
