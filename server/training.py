"""Step "train": a sparse item-item linear autoencoder that scores from a history vector alone.

EASE (Steck, WWW 2019) in closed form — B = I - P / diag(P) with P = (X^T X + l2 I)^-1 and a
zero diagonal — then every item keeps only its `neighbors` strongest outgoing weights. There are
no per-user parameters: the model serves shoppers the server never saw. The regularisation is
chosen on a validation split carved from the training users (never on evaluation targets).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from model_export.export import SparseItemModel

from .data import Interactions
from .errors import TrainingError
from .metrics import ndcg_at_k
from .splits import (
    DEFAULT_EVENT_WEIGHTS,
    HeldOutUser,
    Positives,
    collapse_positives,
    strong_split,
)

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]
_BASE_SCORE_SCALE = 1e-4
"""The popularity prior only breaks ties and serves empty histories; it never outranks a
history's evidence."""


@dataclass(frozen=True, slots=True)
class TrainingConfig:
    """How to train. Every field is validated; defaults suit catalogues up to ~20k items."""

    neighbors: int = 32
    l2: float | None = None
    """Regularisation; None chooses from `l2_grid` (multiples of the mean item count)."""
    l2_grid: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0)
    event_weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS))
    max_items: int = 20_000
    validation_fraction: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.neighbors < 1:
            raise ValueError(f"neighbors must be >= 1, found {self.neighbors}")
        if self.l2 is not None and not self.l2 > 0:
            raise ValueError(f"l2 must be > 0, found {self.l2}")
        if not self.l2_grid or any(not g > 0 for g in self.l2_grid):
            raise ValueError(f"l2_grid must hold positive numbers, found {self.l2_grid}")
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

    model: SparseItemModel
    l2: float
    validation_ndcg: Mapping[float, float]
    seconds: float


def train_sparse_model(
    interactions: Interactions,
    config: TrainingConfig | None = None,
    *,
    progress: Progress | None = None,
) -> TrainingResult:
    """Train on every interaction; choose l2 on a validation split when it is not given.

    Raises:
        TrainingError: too few items, or more than `config.max_items` distinct items.
    """
    config = config or TrainingConfig()
    say = progress or (lambda _message: None)
    started = time.perf_counter()
    positives = collapse_positives(interactions, config.event_weights)
    n_items = positives.n_items
    if n_items < 2:
        raise TrainingError(
            f"{interactions.source}: need at least 2 distinct items, found {n_items}"
        )
    if n_items > config.max_items:
        raise TrainingError(
            f"{interactions.source}: {n_items} distinct items, over max_items {config.max_items} "
            "for the dense solver"
        )
    say(
        f"{len(interactions)} interactions -> {len(positives)} positives, "
        f"{positives.n_users} users x {n_items} items"
    )
    scores: dict[float, float] = {}
    if config.l2 is not None:
        l2 = config.l2
    else:
        l2, scores = _choose_l2(positives, config, say)
    say(f"training on all users with l2={l2:.4g}")
    gram = _gram(positives)
    weights = ease_weights(gram, l2)
    neighbor_index, neighbor_weight = prune_top_m(weights, config.neighbors)
    counts = np.bincount(positives.item, minlength=n_items)
    model = SparseItemModel(
        item_ids=tuple(interactions.items),
        neighbor_index=neighbor_index,
        neighbor_weight=neighbor_weight,
        base_score=popularity_prior(counts),
        event_weights=dict(config.event_weights),
        info={"trainer": "pruned-ease", "l2": l2, "users": positives.n_users},
    )
    seconds = time.perf_counter() - started
    logger.info("trained %d items x %d neighbours in %.2fs", n_items, config.neighbors, seconds)
    return TrainingResult(model=model, l2=l2, validation_ndcg=scores, seconds=seconds)


def ease_weights(gram: npt.NDArray[np.float64], l2: float) -> npt.NDArray[np.float32]:
    """EASE's closed-form item-item matrix B (zero diagonal) from the Gram matrix X^T X."""
    g = gram.astype(np.float64, copy=True)
    g[np.diag_indices_from(g)] += l2
    p = np.linalg.inv(g)
    b = -p / np.diag(p)[None, :]
    b[np.diag_indices_from(b)] = 0.0
    return b.astype(np.float32)


def prune_top_m(
    weights: npt.NDArray[np.float32], m: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Keep each row's `m` largest weights (fewer than m items: keep all; pad with zeros)."""
    n = weights.shape[0]
    m_eff = min(m, n - 1)
    w = weights.copy()
    w[np.diag_indices_from(w)] = -np.inf
    idx = np.argpartition(-w, m_eff - 1, axis=1)[:, :m_eff]
    vals = np.take_along_axis(weights, idx, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    idx, vals = np.take_along_axis(idx, order, axis=1), np.take_along_axis(vals, order, axis=1)
    vals = np.maximum(vals, 0.0)  # a pruned list keeps evidence for items, not against them
    if m_eff < m:
        pad = m - m_eff
        idx = np.hstack([idx, np.repeat(np.arange(n)[:, None], pad, axis=1)])
        vals = np.hstack([vals, np.zeros((n, pad), np.float32)])
    return idx.astype(np.int64), vals.astype(np.float32)


def popularity_prior(counts: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
    """A tiny score that ranks items by popularity where no history speaks for them."""
    top = max(float(np.log1p(counts.max(initial=0))), 1.0)
    return (np.log1p(counts) / top * _BASE_SCORE_SCALE).astype(np.float32)


def _gram(positives: Positives) -> npt.NDArray[np.float64]:
    x = sp.csr_matrix(
        (positives.strength.astype(np.float64), (positives.user, positives.item)),
        shape=(positives.n_users, positives.n_items),
    )
    return np.asarray((x.T @ x).toarray(), dtype=np.float64)


def _choose_l2(
    positives: Positives, config: TrainingConfig, say: Progress
) -> tuple[float, dict[float, float]]:
    # Validation users need only 3 items (2 of history, 1 target): small logs still get a choice.
    split = strong_split(
        positives, held_out_fraction=config.validation_fraction, seed=config.seed, min_items=3
    )
    if len(split.held_out) < 5:
        fallback = float(np.mean(np.bincount(positives.item))) * 0.3 + 1.0
        say(f"too few validation users ({len(split.held_out)}); l2={fallback:.4g}")
        return fallback, {}
    gram = _gram(split.train)
    scale = float(np.mean(np.diag(gram))) or 1.0
    results: dict[float, float] = {}
    for factor in config.l2_grid:
        l2 = factor * scale
        idx, w = prune_top_m(ease_weights(gram, l2), config.neighbors)
        results[l2] = _validation_ndcg(idx, w, split.held_out)
        say(f"  l2={l2:10.4g}  validation NDCG@20={results[l2]:.4f}")
    best = max(results, key=lambda value: results[value])
    return best, results


def _validation_ndcg(
    idx: npt.NDArray[np.int64], w: npt.NDArray[np.float32], users: Sequence[HeldOutUser]
) -> float:
    n = idx.shape[0]
    k = min(20, n - 1)
    values = []
    for user in users:
        scores = np.zeros(n, np.float32)
        rows = w[user.history] * user.history_strength[:, None]
        np.add.at(scores, idx[user.history].ravel(), rows.ravel())
        scores[user.history] = -np.inf
        top = np.argpartition(-scores, k - 1)[:k]
        ranked = top[np.argsort(-scores[top], kind="stable")]
        values.append(ndcg_at_k(ranked, user.targets, 20))
    return float(np.mean(values))
