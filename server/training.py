"""Step "train": a compact linear autoencoder that scores from a history vector alone.

Two compact forms of EASE (Steck, WWW 2019) are trained and the validation split chooses:

- **sparse** — every item keeps its m strongest outgoing weights. Each item's column of EASE is a
  ridge regression on the other items; here it is solved on the item's C most co-occurring
  candidates only (feature-selected, as fsSLIM does), which keeps EASE's quality at a fraction
  of its cost and scales to catalogues where a dense inverse does not fit;
- **low-rank** — the ridge solution restricted to the top d eigenvectors of X^T X:
  A = V_d sqrt(L_d / (L_d + l2)), score = x A A^T (strong on dense catalogues).

Both add a popularity prior of tuned weight (the wisdom of the crowd; on thin retail logs it is
most of the signal). There are no per-user parameters: the model serves shoppers the server
never saw. Every hyper-parameter is chosen on a validation split of the training users, and the
model's size stays within `max_bytes_ratio` of EASE's dense float32 matrix.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from client_sdk.features import InterestConfig, bundle_interest
from model_export.export import LowRankModel, SparseItemModel, TrainedModel

from .data import Interactions
from .errors import TrainingError
from .gram import Gram, local_ridge, local_ridges, prune_rows, top_eigen
from .splits import DEFAULT_EVENT_WEIGHTS, Positives, collapse_positives, strong_split
from .validation import ItemScorer, Validator, popularity_prior

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]
HalfLives = dict[str, "float | None"]
DEFAULT_HALF_LIVES: HalfLives = {"purchase": 120.0, "cart": 14.0, "view": 7.0, "search": 3.0}
FORMS = ("sparse", "low-rank")
_SOLVE_BATCH = 256
_DENSE_EIGH_MAX = 3000


@dataclass(frozen=True, slots=True)
class TrainingConfig:
    """How to train and what to search. Single-valued grids fix a hyper-parameter."""

    forms: tuple[str, ...] = FORMS
    neighbors: tuple[int, ...] = (16, 32, 64)
    ranks: tuple[int, ...] = (32, 64, 128)
    l2_grid: tuple[float, ...] = (1.0, 3.0, 10.0, 30.0)
    """Regularisation as multiples of the mean item count (diagonal of X^T X)."""
    popularity_grid: tuple[float, ...] = (0.0, 0.03, 0.1, 0.3, 1.0)
    candidates: int = 64
    min_item_users: int = 2
    max_bytes_ratio: float = 0.02
    """Largest model size as a share of EASE's dense float32 n x n matrix (1/50)."""
    purchase_half_lives: tuple[float | None, ...] = (None, 365.0, 90.0, 30.0)
    """Interest decay of purchases and carts tried on validation (None: no decay)."""
    view_half_lives: tuple[float, ...] = (30.0, 7.0, 3.0)
    """Interest decay of views and searches tried (the device caps them at 30 days)."""
    max_items: int = 200_000
    event_weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS))
    validation_fraction: float = 0.15
    max_validation_users: int = 1_000
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.forms or any(form not in FORMS for form in self.forms):
            raise ValueError(f"forms must be a non-empty subset of {FORMS}, found {self.forms}")
        for name in ("neighbors", "ranks", "l2_grid", "popularity_grid"):
            values = getattr(self, name)
            floor = 0 if name == "popularity_grid" else 1e-12
            if not values or any(not (np.isfinite(v) and v >= floor) for v in values):
                raise ValueError(f"{name} must hold positive numbers, found {values}")
        if self.candidates < 1:
            raise ValueError(f"candidates must be >= 1, found {self.candidates}")
        if self.min_item_users < 1:
            raise ValueError(f"min_item_users must be >= 1, found {self.min_item_users}")
        if not 0 < self.max_bytes_ratio <= 1:
            raise ValueError(f"max_bytes_ratio must be in (0, 1], found {self.max_bytes_ratio}")
        if self.max_validation_users < 1:
            raise ValueError(
                f"max_validation_users must be >= 1, found {self.max_validation_users}"
            )
        if not 0 < self.validation_fraction < 1:
            raise ValueError(
                f"validation_fraction must be in (0, 1), found {self.validation_fraction}"
            )
        for kind, weight in self.event_weights.items():
            if not (np.isfinite(weight) and weight > 0):
                raise ValueError(f"event_weights[{kind!r}] must be finite and > 0, found {weight}")


@dataclass(frozen=True)
class Choice:
    """One point of the search and its validation NDCG@20."""

    form: str
    size: int
    """m (sparse) or d (low-rank)."""
    l2_factor: float
    popularity: float
    ndcg: float


@dataclass(frozen=True)
class TrainingResult:
    """The trained model and what choosing it measured."""

    model: TrainedModel
    choice: Choice
    searched: tuple[Choice, ...]
    seconds: float

    @property
    def l2(self) -> float:
        """The chosen regularisation, as a multiple of the mean item count."""
        return self.choice.l2_factor


def train_model(
    interactions: Interactions,
    config: TrainingConfig | None = None,
    *,
    progress: Progress | None = None,
) -> TrainingResult:
    """Search the forms and hyper-parameters on a validation split, then train on everything.

    Raises:
        TrainingError: too few items, or more than `config.max_items` active items.
    """
    config = config or TrainingConfig()
    say = progress or (lambda _message: None)
    started = time.perf_counter()
    positives = collapse_positives(interactions, config.event_weights)
    n = positives.n_items
    say(
        f"{len(interactions)} interactions -> {len(positives)} positives, "
        f"{positives.n_users} users x {n} items"
    )
    searched, best, half_lives = _search(positives, config, say)
    say(
        f"chose {best.form} ({'m' if best.form == 'sparse' else 'd'}={best.size}, "
        f"l2={best.l2_factor:g}x, popularity {best.popularity:g}): validation NDCG@20 "
        f"{best.ndcg:.4f}; training on all users"
    )
    model = _fit(positives, best, config, tuple(interactions.items), half_lives)
    seconds = time.perf_counter() - started
    logger.info("trained %s on %d items in %.2fs", best.form, n, seconds)
    return TrainingResult(model=model, choice=best, searched=tuple(searched), seconds=seconds)


def _search(
    positives: Positives, config: TrainingConfig, say: Progress
) -> tuple[list[Choice], Choice, HalfLives]:
    """Grid-search form, size, l2 and popularity; then tune interest decay for the best model.

    Returns every grid point, the chosen point (its NDCG measured with the chosen decay) and the
    chosen half-lives.
    """
    eligible = int((np.bincount(positives.user, minlength=positives.n_users) >= 3).sum())
    fraction = min(config.validation_fraction, config.max_validation_users / max(eligible, 1))
    split = strong_split(positives, held_out_fraction=fraction, seed=config.seed, min_items=3)
    active = _active_items(split.train, config)
    sizes = _sizes(positives.n_items, config)
    if len(split.held_out) < 5 or active.size < 3:
        say(f"too few validation users ({len(split.held_out)}); using the first grid values")
        form = config.forms[0]
        choice = Choice(form, sizes[form][0], config.l2_grid[0], config.popularity_grid[0], 0.0)
        return [choice], choice, DEFAULT_HALF_LIVES
    validator = Validator(split, active, config.popularity_grid, config.event_weights)
    validator.set_decay(interest_of(DEFAULT_HALF_LIVES))
    gram = Gram.build(split.train, active)
    scale = gram.mean_diag
    say(f"validation: {len(split.held_out)} users, {active.size} active items")
    scorers: dict[tuple[str, int, float], ItemScorer] = {}
    if "sparse" in config.forms:
        ridges = local_ridges(gram, [f * scale for f in config.l2_grid], config.candidates)
        for factor, weights in zip(config.l2_grid, ridges, strict=True):
            for m in sizes["sparse"]:
                idx, w = prune_rows(weights, m)
                scorers["sparse", m, factor] = _SparseScorer(_sparse_rows(idx, w))
    if "low-rank" in config.forms:
        values, vectors = top_eigen(gram, max(sizes["low-rank"]))
        for factor, d in itertools.product(config.l2_grid, sizes["low-rank"]):
            factors = _shrunk_factors(values[:d], vectors[:, :d], factor * scale)
            scorers["low-rank", d, factor] = _LowRankScorer(factors)
    results: list[Choice] = []
    for (form, size, factor), scorer in scorers.items():
        popularity, ndcg = validator.best(scorer)
        results.append(Choice(form, size, factor, popularity, ndcg))
        say(f"  {form:<8} size={size:<4} l2={factor:<5g}x  NDCG@20={ndcg:.4f} (pop {popularity:g})")
    if not results:
        raise TrainingError("no model form fits the size budget; raise max_bytes_ratio")
    best = max(results, key=lambda c: c.ndcg)
    best_scorer = scorers[best.form, best.size, best.l2_factor]
    tuned: list[tuple[float, float, HalfLives]] = []
    for purchase, view in itertools.product(config.purchase_half_lives, config.view_half_lives):
        half_lives: HalfLives = {"purchase": purchase, "cart": purchase, "view": view}
        half_lives["search"] = view
        validator.set_decay(interest_of(half_lives))
        popularity, ndcg = validator.best(best_scorer)
        tuned.append((ndcg, popularity, half_lives))
    ndcg, popularity, half_lives = max(tuned, key=lambda t: t[0])
    say(f"  interest decay {_show(half_lives)}: NDCG@20={ndcg:.4f}")
    return results, replace(best, popularity=popularity, ndcg=ndcg), half_lives


def interest_of(half_lives: HalfLives) -> InterestConfig:
    """The device's interest config for tuned half-lives (None: does not fade)."""
    return bundle_interest({"history_half_life_days": dict(half_lives)})


def _show(half_lives: HalfLives) -> str:
    return ", ".join(
        f"{kind} {'none' if days is None else f'{days:g}d'}" for kind, days in half_lives.items()
    )


def _fit(
    positives: Positives,
    choice: Choice,
    config: TrainingConfig,
    item_ids: tuple[str, ...],
    half_lives: HalfLives,
) -> TrainedModel:
    n = positives.n_items
    active = _active_items(positives, config)
    counts = np.bincount(positives.item, minlength=n).astype(np.float64)
    base = popularity_prior(counts, choice.popularity)
    info: dict[str, Any] = {
        "trainer": f"{choice.form}-linear-autoencoder",
        "l2_factor": choice.l2_factor,
        "popularity_weight": choice.popularity,
        "validation_ndcg@20": round(choice.ndcg, 5),
        "active_items": int(active.size),
        "history_half_life_days": dict(half_lives),
    }
    events = dict(config.event_weights)
    if active.size < 2:
        idx = np.repeat(np.arange(n)[:, None], 1, axis=1)
        return SparseItemModel(item_ids, idx, np.zeros((n, 1), np.float32), base, events, info)
    gram = Gram.build(positives, active)
    l2 = choice.l2_factor * gram.mean_diag
    if choice.form == "low-rank":
        d = min(choice.size, active.size - 1)
        values, vectors = top_eigen(gram, d)
        factors = np.zeros((n, d), np.float32)
        factors[active] = _shrunk_factors(values, vectors, l2)
        return LowRankModel(item_ids, factors, base, events, {**info, "rank": d})
    idx_a, w_a = prune_rows(local_ridge(gram, l2, config.candidates), choice.size)
    idx = np.repeat(np.arange(n)[:, None], idx_a.shape[1], axis=1)
    w = np.zeros((n, idx_a.shape[1]), np.float32)
    idx[active], w[active] = active[idx_a], w_a
    return SparseItemModel(item_ids, idx.astype(np.int64), w, base, events, info)


def _active_items(positives: Positives, config: TrainingConfig) -> npt.NDArray[np.int64]:
    counts = np.bincount(positives.item, minlength=positives.n_items)
    active = np.flatnonzero(counts >= config.min_item_users).astype(np.int64)
    if active.size > config.max_items:
        raise TrainingError(
            f"{active.size} items with >= {config.min_item_users} users, over max_items "
            f"{config.max_items}"
        )
    return active


def _sizes(n: int, config: TrainingConfig) -> dict[str, list[int]]:
    """The m and d values whose model fits the byte budget (at least the smallest of each)."""
    budget = config.max_bytes_ratio * 4.0 * n * n
    index_bytes = 2 if n <= 65_535 else 4
    sparse = [m for m in config.neighbors if n * m * (index_bytes + 1) + 8 * n <= budget]
    low = [d for d in config.ranks if n * (d + 8) <= budget]
    return {
        "sparse": sparse or [min(config.neighbors)],
        "low-rank": low or [min(config.ranks)],
    }


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


def _shrunk_factors(
    values: npt.NDArray[np.float64], vectors: npt.NDArray[np.float64], l2: float
) -> npt.NDArray[np.float32]:
    factors: npt.NDArray[np.float32] = (vectors * np.sqrt(values / (values + l2))).astype(
        np.float32
    )
    return factors
