"""Fit the device's blending parameters (`DueParams`) on a validation cut, and build the priors.

Honest tuning: the parameters are chosen on a cut *inside* the purchases given (the history before
the evaluation's cutoff, or the whole log for a release), never on what is evaluated. The cut is
the protocol's own (`reorder_protocol.py`): the 80th-percentile day of the given purchases,
moved earlier if needed so that its window ends before the data does.

Two stages, each a small grid, each scored through `client_sdk.shortcuts` as on the device:

1. timing (`prior_strength`, `own_scale`, `spread_scale`): lowest next-date mean absolute error;
2. ranking (`continuation_strength`, `irregular_share`): highest due-list NDCG@5, then
   Precision@5.

Too little validation data (fewer than `min_users` users in a task) keeps the defaults of that
stage. `reorder_priors_file` is what a release ships: tune, then compute the priors on everything.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from client_sdk.priors import DueParams, ReorderPriors, encode_priors, parse_priors

from .data import Catalog, Interactions
from .reorder import (
    PriorConfig,
    PurchaseDays,
    categories_from_catalog,
    collapse_purchase_days,
    compute_priors,
)
from .reorder_protocol import (
    DUE_K,
    DueTask,
    NextDateTask,
    ReorderSplit,
    cutoff_day,
    device_histories,
    due_list_metrics,
    facetwo_due_list,
    facetwo_next_dates,
    make_split,
    next_date_metrics,
)

__all__ = [
    "TuningConfig",
    "TuningReport",
    "build_reorder_priors",
    "reorder_priors_file",
    "tune_due_params",
    "validation_cutoff",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TuningConfig:
    """The validation cut and the grids. Validated; safe defaults."""

    horizon_days: int = 30
    quantile: float = 0.8
    max_users: int = 3000
    """validation users are sampled down to this many (fixed seed) on big logs."""
    min_users: int = 20
    seed: int = 0
    prior_strengths: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
    own_scales: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)
    spread_scales: tuple[float, ...] = (0.15, 0.25, 0.5, 0.75, 1.0)
    continuation_strengths: tuple[float, ...] = (0.3, 1.0, 3.0, 10.0, 30.0)
    irregular_shares: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.3)
    file_version: int = 2
    """The `reorder_priors.json` version written: 1 for devices whose SDK reads only version 1
    (they would fall back to their default priors), 2 (columns) otherwise."""

    def __post_init__(self) -> None:
        if self.file_version not in (1, 2):
            raise ValueError(f"file_version must be 1 or 2, found {self.file_version!r}")
        if not 1 <= self.horizon_days <= 366:
            raise ValueError(f"horizon_days must be in [1, 366], found {self.horizon_days}")
        if not 0.0 < self.quantile < 1.0:
            raise ValueError(f"quantile must be in (0, 1), found {self.quantile}")
        if self.max_users < 1 or self.min_users < 1:
            raise ValueError(
                f"max_users and min_users must be >= 1, found {self.max_users}, {self.min_users}"
            )
        for name in (
            "prior_strengths",
            "own_scales",
            "spread_scales",
            "continuation_strengths",
            "irregular_shares",
        ):
            if not getattr(self, name):
                raise ValueError(f"{name} must not be empty")


@dataclass(frozen=True)
class TuningReport:
    """What the tuning chose and saw (counts only, no user)."""

    params: DueParams
    validation_cutoff: int | None
    """day number of the validation cut; None when the purchases span too little time."""
    due_users: int
    next_date_pairs: int
    validation: Mapping[str, float | None]
    seconds: float


def validation_cutoff(days: PurchaseDays, config: TuningConfig) -> int | None:
    """The validation cut inside `days`: its window must end before the data does."""
    if len(days) == 0:
        return None
    end = int(days.day.max()) + 1
    cut = min(cutoff_day(days, config.quantile), end - config.horizon_days)
    return cut if cut > int(days.day.min()) else None


def tune_due_params(
    days: PurchaseDays,
    *,
    categories: Mapping[str, str] | None = None,
    prior_config: PriorConfig | None = None,
    config: TuningConfig | None = None,
) -> TuningReport:
    """Choose `DueParams` on a validation cut of `days` (see the module docstring)."""
    config = config or TuningConfig()
    started = time.perf_counter()
    params = DueParams()
    cut = validation_cutoff(days, config)
    if cut is None:
        logger.info("reorder tuning: purchases span too little time; keeping defaults")
        return TuningReport(params, None, 0, 0, {}, time.perf_counter() - started)
    split = _sample(make_split(days, cut, config.horizon_days, end=int(days.day.max()) + 1), config)
    priors = parse_priors(
        encode_priors(compute_priors(split.history, categories=categories, config=prior_config))
    )
    users = np.union1d(split.due.users, split.next_date.user)
    histories = device_histories(split.history, users)
    validation: dict[str, float | None] = {}
    if np.unique(split.next_date.user).size >= config.min_users:
        timing = itertools.product(config.prior_strengths, config.own_scales, config.spread_scales)
        best = None
        for strength, own, spread in timing:
            trial = dataclasses.replace(
                params, prior_strength=strength, own_scale=own, spread_scale=spread
            )
            predicted = facetwo_next_dates(split, priors, histories, params=trial)
            scores = next_date_metrics(split.next_date.actual, predicted)
            mae = scores["mae_days"]
            if mae is not None and (best is None or mae < best):
                best, params, validation = mae, trial, dict(scores)
    if split.due.users.size >= config.min_users:
        ranking = itertools.product(config.continuation_strengths, config.irregular_shares)
        best_key: tuple[float, float] | None = None
        chosen, ranked = params, {}
        for strength, share in ranking:
            trial = dataclasses.replace(
                params, continuation_strength=strength, irregular_share=share
            )
            rankings = facetwo_due_list(split, priors, histories, params=trial)
            scores = due_list_metrics(split.due, rankings)
            key = (scores[f"ndcg@{DUE_K}"] or 0.0, scores[f"precision@{DUE_K}"] or 0.0)
            if best_key is None or key > best_key:
                best_key, chosen, ranked = key, trial, scores
        params = chosen
        validation.update(ranked)
    seconds = time.perf_counter() - started
    logger.info("reorder tuning: %s in %.1fs", params, seconds)
    return TuningReport(
        params=params,
        validation_cutoff=cut,
        due_users=int(split.due.users.size),
        next_date_pairs=int(split.next_date.user.size),
        validation=validation,
        seconds=seconds,
    )


def build_reorder_priors(
    days: PurchaseDays,
    *,
    categories: Mapping[str, str] | None = None,
    prior_config: PriorConfig | None = None,
    tuning: TuningConfig | None = None,
) -> tuple[ReorderPriors, TuningReport]:
    """Tune `DueParams` on a validation cut of `days`, then compute the priors on all of it."""
    report = tune_due_params(days, categories=categories, prior_config=prior_config, config=tuning)
    priors = compute_priors(days, categories=categories, config=prior_config, params=report.params)
    return priors, report


def reorder_priors_file(
    interactions: Interactions,
    catalog: Catalog | None = None,
    *,
    prior_config: PriorConfig | None = None,
    tuning: TuningConfig | None = None,
) -> bytes:
    """The `reorder_priors.json` bytes for a release, for `export_bundle(extra_files=...)`.

    Raises:
        DataError: the log holds no purchase.
    """
    categories = categories_from_catalog(catalog) if catalog is not None else None
    priors, _ = build_reorder_priors(
        collapse_purchase_days(interactions),
        categories=categories,
        prior_config=prior_config,
        tuning=tuning,
    )
    return encode_priors(priors, version=(tuning or TuningConfig()).file_version)


def _sample(split: ReorderSplit, config: TuningConfig) -> ReorderSplit:
    """Keep at most `max_users` users of each task (a fixed-seed sample) on big logs."""
    rng = np.random.default_rng(config.seed)
    due = split.due
    if due.users.size > config.max_users:
        keep = np.sort(rng.choice(due.users.size, config.max_users, replace=False))
        due = DueTask(due.users[keep], tuple(due.targets[i] for i in keep))
    pairs = split.next_date
    users = np.unique(pairs.user)
    if users.size > config.max_users:
        chosen = rng.choice(users, config.max_users, replace=False)
        mask = np.isin(pairs.user, chosen)
        pairs = NextDateTask(pairs.user[mask], pairs.item[mask], pairs.actual[mask])
    return dataclasses.replace(split, due=due, next_date=pairs)
