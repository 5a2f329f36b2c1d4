"""Step "train": a compact linear autoencoder that scores from a history vector alone.

Three compact forms of EASE (Steck, WWW 2019) are trained and the validation split chooses:

- **sparse** — every item keeps its m strongest outgoing weights. Each item's column is a
  ridge regression on the other items, solved on the item's C most co-occurring candidates only
  (feature-selected, as fsSLIM does), which keeps EASE's quality at a fraction of its cost and
  scales to catalogues where a dense inverse does not fit. The columns are DLAE's (Steck,
  NeurIPS 2020): the item itself takes part and every candidate k pays l2 + dropout * G[k, k],
  which keeps popular items from dominating the weights;
- **low-rank** — the ridge solution restricted to the top d eigenvectors of X^T X:
  A = V_d sqrt(L_d / (L_d + l2)), score = x A A^T (strong on dense catalogues);
- **low-rank+sparse** — the low-rank form plus, per item, the m strongest weights (either sign)
  of a sparse DLAE fitted to what x A A^T leaves unexplained: the pairs a rank-d model smooths
  away (issue 7's "low-rank plus a sparse residual").

All add a popularity prior of tuned weight (the wisdom of the crowd; on thin retail logs it is
most of the signal), counted with a tuned recency half-life: what is popular lately, at the end
of the log. There are no per-user parameters: the model serves shoppers the server never saw.
Every hyper-parameter is chosen on validation splits of the training users (several, pooled,
when the log is small), and the model's size stays within `max_bytes_ratio` of EASE's dense
float32 matrix.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import threadpoolctl
from threadpoolctl import threadpool_limits

from model_export.export import LowRankModel, LowRankSparseModel, SparseItemModel, TrainedModel

from .data import Interactions
from .gram import (
    DENSE_MAX_ITEMS,
    Gram,
    RidgeProblem,
    local_ridges,
    prune_rows,
    shrunk_factors,
    top_eigen,
)
from .search import FORMS, Choice, HalfLives, Search, active_items, interest_of, run_search
from .splits import DEFAULT_EVENT_WEIGHTS, Positives, collapse_positives
from .validation import decayed_counts, popularity_prior

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_HALF_LIVES",
    "FORMS",
    "Choice",
    "Progress",
    "TrainingConfig",
    "TrainingResult",
    "describe",
    "interest_of",
    "train_model",
]

Progress = Callable[[str], None]
DEFAULT_HALF_LIVES: HalfLives = {"purchase": 120.0, "cart": 14.0, "view": 7.0, "search": 3.0}


@dataclass(frozen=True, slots=True)
class TrainingConfig:
    """How to train and what to search. Single-valued grids fix a hyper-parameter."""

    forms: tuple[str, ...] = FORMS
    neighbors: tuple[int, ...] = (16, 32, 64)
    ranks: tuple[int, ...] = (32, 64, 128)
    l2_grid: tuple[float, ...] = (1.0, 3.0, 10.0, 30.0)
    """Regularisation as multiples of the mean item count (diagonal of X^T X)."""
    dropout: float | None = 0.25
    """DLAE's penalty on a candidate's own count in the sparse columns (None: EASE's columns)."""
    popularity_grid: tuple[float, ...] = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
    popularity_half_lives: tuple[float | None, ...] = (None, 240.0, 120.0, 60.0, 30.0)
    """Recency half-lives (days) of the popularity prior tried on validation (None: none)."""
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
    validation_folds: int = 3
    """Validation splits pooled while they hold at most `max_validation_users` users in all."""
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
        half_lives = self.popularity_half_lives
        if not half_lives or any(
            h is not None and not (np.isfinite(h) and h > 0) for h in half_lives
        ):
            raise ValueError(
                f"popularity_half_lives must hold None or days > 0, found {half_lives}"
            )
        if self.dropout is not None and not (np.isfinite(self.dropout) and self.dropout >= 0):
            raise ValueError(f"dropout must be None or >= 0, found {self.dropout}")
        for name in ("candidates", "min_item_users", "validation_folds", "max_validation_users"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, found {getattr(self, name)}")
        if not 0 < self.max_bytes_ratio <= 1:
            raise ValueError(f"max_bytes_ratio must be in (0, 1], found {self.max_bytes_ratio}")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(
                f"validation_fraction must be in (0, 1), found {self.validation_fraction}"
            )
        for kind, weight in self.event_weights.items():
            if not (np.isfinite(weight) and weight > 0):
                raise ValueError(f"event_weights[{kind!r}] must be finite and > 0, found {weight}")


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
    """Search the forms and hyper-parameters on validation splits, then train on everything.

    Raises:
        TrainingError: too few items, more than `config.max_items` active items, or no form
            fits the size budget.
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
    with _blas_threads(positives, config):
        search = run_search(positives, config, say, DEFAULT_HALF_LIVES)
        best = search.best
        say(f"chose {describe(best)}: validation NDCG@20 {best.ndcg:.4f}; training on all users")
        model = _fit(positives, best, config, tuple(interactions.items), search)
    seconds = time.perf_counter() - started
    logger.info("trained %s on %d items in %.2fs", best.form, n, seconds)
    return TrainingResult(
        model=model, choice=best, searched=tuple(search.searched), seconds=seconds
    )


def _blas_threads(
    positives: Positives, config: TrainingConfig
) -> contextlib.AbstractContextManager[object]:
    """One BLAS thread while training a catalogue whose Gram matrix is dense.

    Such a search makes thousands of small BLAS calls, and on a shared machine OpenBLAS's extra
    threads spin against other processes: ml-100k trained in 8 s alone, 18 s beside a second
    training, and 8 s beside it with one thread each (one thread costs ~10% on a quiet
    machine). Larger catalogues keep every thread for their large products.

    The limit is the process's: while any dense training runs, every BLAS call in the process
    (another training's included) uses one thread; the last one to finish restores the rest.
    """
    counts = np.bincount(positives.item, minlength=positives.n_items)
    if int((counts >= config.min_item_users).sum()) > DENSE_MAX_ITEMS:
        return contextlib.nullcontext()
    return _ONE_BLAS_THREAD.held()


class _SharedBlasLimit:
    """A process-wide limit of one BLAS thread, held by any number of trainings at once
    (threads of a `JobRunner`): the first in sets it, the last out restores the original.

    threadpoolctl lets one "controlling" thread change a pthreads OpenBLAS and silently ignores
    the others until that thread exits its `with` block or dies; a JobRunner's threads outlive
    their jobs. The limit is the process's by design, so whichever thread sets or restores it
    first clears that control (under the lock, so two of ours never race).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders = 0
        self._limiter: threadpool_limits | None = None

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        holding = False
        try:
            with self._lock:
                if self._holders == 0:
                    _release_blas_control()
                    self._limiter = threadpool_limits(limits=1, user_api="blas")
                    _release_blas_control()
                self._holders += 1
                holding = True
            yield
        finally:
            if holding:
                self._release()

    def _release(self) -> None:
        with self._lock:
            self._holders -= 1
            if self._holders > 0 or self._limiter is None:
                return
            limiter, self._limiter = self._limiter, None
            _release_blas_control()
            try:
                limiter.restore_original_limits()
            finally:
                _release_blas_control()


def _release_blas_control() -> None:
    """Let the next thread that sets BLAS limits have its way (see `_SharedBlasLimit`)."""
    controller = getattr(threadpoolctl, "OpenBLASController", None)
    clear = getattr(controller, "clear_controlling_thread", None)
    if clear is not None:
        clear(force=True)


_ONE_BLAS_THREAD = _SharedBlasLimit()


def describe(choice: Choice) -> str:
    """A one-line account of a search point, for progress messages."""
    size = f"m={choice.size}" if choice.form == "sparse" else f"d={choice.size}"
    if choice.form == "low-rank+sparse":
        size += f" + m={choice.neighbors} (l2={choice.residual_l2_factor:g}x)"
    days = choice.popularity_half_life
    recency = "all time" if days is None else f"half-life {days:g}d"
    return (
        f"{choice.form} ({size}, l2={choice.l2_factor:g}x, popularity {choice.popularity:g}, "
        f"{recency})"
    )


def _fit(
    positives: Positives,
    choice: Choice,
    config: TrainingConfig,
    item_ids: tuple[str, ...],
    search: Search,
) -> TrainedModel:
    n = positives.n_items
    active = active_items(positives, config)
    counts = np.bincount(positives.item, minlength=n).astype(np.float64)
    recent = decayed_counts(positives, choice.popularity_half_life)
    base = popularity_prior(counts, choice.popularity, recent)
    info: dict[str, Any] = {
        "trainer": f"{choice.form}-linear-autoencoder",
        "l2_factor": choice.l2_factor,
        "popularity_weight": choice.popularity,
        "popularity_half_life_days": choice.popularity_half_life,
        "validation_ndcg@20": round(choice.ndcg, 5),
        "validation_users": search.users,
        "active_items": int(active.size),
        "history_half_life_days": dict(search.half_lives),
    }
    events = dict(config.event_weights)
    if active.size < 2:
        idx = np.repeat(np.arange(n)[:, None], 1, axis=1)
        return SparseItemModel(item_ids, idx, np.zeros((n, 1), np.float32), base, events, info)
    gram = Gram.build(positives, active)
    l2 = choice.l2_factor * gram.mean_diag
    if choice.form == "sparse":
        weights = local_ridges(gram, [l2], config.candidates, dropout=config.dropout)[0]
        idx, w = _embed_rows(active, n, *prune_rows(weights, choice.size))
        return SparseItemModel(item_ids, idx, w, base, events, info)
    d = min(choice.size, active.size - 1)
    values, vectors = top_eigen(gram, d)
    factors_a = shrunk_factors(values, vectors, l2)
    factors = np.zeros((n, d), np.float32)
    factors[active] = factors_a
    if choice.form == "low-rank":
        return LowRankModel(item_ids, factors, base, events, {**info, "rank": d})
    problem = RidgeProblem(choice.residual_l2_factor * gram.mean_diag, factors_a.astype(np.float64))
    residual = local_ridges(gram, [problem], config.candidates, dropout=config.dropout)[0]
    idx, w = _embed_rows(active, n, *prune_rows(residual, choice.neighbors, signed=True))
    info = {**info, "rank": d, "residual_l2_factor": choice.residual_l2_factor}
    return LowRankSparseModel(item_ids, factors, idx, w, base, events, info)


def _embed_rows(
    active: npt.NDArray[np.int64],
    n: int,
    idx_a: npt.NDArray[np.int64],
    w_a: npt.NDArray[np.float32],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Rows over the active items -> rows over the catalogue (others point at themselves, 0)."""
    idx = np.repeat(np.arange(n, dtype=np.int64)[:, None], idx_a.shape[1], axis=1)
    w = np.zeros((n, idx_a.shape[1]), np.float32)
    idx[active], w[active] = active[idx_a], w_a
    return idx, w
