"""`facetwo evaluate-reorder`: reorder-timing quality on EVALUATION.md §2, baselines in one run.

Any interactions CSV works: purchases only (`event` = purchase, or no event column), collapsed to
one per (user, item, day). On the history before the cutoff T, the server computes the priors and
tunes the device's parameters on a validation cut inside that history (`reorder_tuning.py`); the
"facetwo" model is then scored through `client_sdk.shortcuts` exactly as on a device. Baselines:

- due list: **recency** (last bought most recently first), **frequency** (most purchase days
  first), **item-interval** (due when the days since the last purchase reach the item's median
  interval across all users; the item whose due day is nearest T first);
- next date: the user's **last-interval**, the user's **mean-interval**, the **item-median**
  interval, each added to the last purchase day. A prediction before T is moved to T (by T the
  purchase has not happened yet); facetwo's own dates are never before T.

Ties break by recency, then by item code. Numbers quoted are from one run on one split.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from client_sdk.priors import encode_priors, parse_priors

from .data import load_catalog, load_interactions
from .reorder import (
    EPOCH_ORDINAL,
    PriorConfig,
    PurchaseDays,
    categories_from_catalog,
    collapse_purchase_days,
    compute_priors,
)
from .reorder_protocol import (
    DUE_K,
    PairTable,
    ReorderSplit,
    cutoff_day,
    device_histories,
    due_list_metrics,
    facetwo_due_list,
    facetwo_next_dates,
    make_split,
    next_date_metrics,
    pair_table,
)
from .reorder_tuning import TuningConfig, TuningReport, tune_due_params

__all__ = [
    "DUE_MODELS",
    "NEXT_DATE_MODELS",
    "ReorderReport",
    "evaluate_reorder",
    "format_report",
]

DUE_MODELS = ("facetwo", "recency", "frequency", "item-interval")
NEXT_DATE_MODELS = ("facetwo", "last-interval", "mean-interval", "item-median")
_Ints = npt.NDArray[np.int64]
_Floats = npt.NDArray[np.float64]
Metrics = dict[str, float | None]


@dataclass(frozen=True)
class ReorderReport:
    """One run of the protocol: metrics per model for both tasks, and the split's sizes."""

    source: str
    cutoff: date
    horizon_days: int
    due_list: dict[str, Metrics]
    next_date: dict[str, Metrics]
    sizes: dict[str, int]
    tuning: TuningReport
    seconds: float

    def to_json(self) -> dict[str, Any]:
        """The `--json` object: one entry per model under each task, metrics keyed by name."""
        cut = self.tuning.validation_cutoff
        return {
            "protocol": "reorder",
            "source": self.source,
            "cutoff": self.cutoff.isoformat(),
            "horizon_days": self.horizon_days,
            "due_list": self.due_list,
            "next_date": self.next_date,
            "sizes": self.sizes,
            "facetwo_params": asdict(self.tuning.params),
            "validation": {
                "cutoff": None if cut is None else _date(cut).isoformat(),
                "due_users": self.tuning.due_users,
                "next_date_pairs": self.tuning.next_date_pairs,
                "facetwo": dict(self.tuning.validation),
            },
            "seconds": round(self.seconds, 2),
        }


def evaluate_reorder(
    interactions_path: Path | str,
    *,
    catalog_path: Path | str | None = None,
    horizon_days: int = 30,
    prior_config: PriorConfig | None = None,
    tuning: TuningConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> ReorderReport:
    """Run EVALUATION.md §2 on an interactions CSV (categories from an optional catalog CSV).

    Raises:
        DataError: a file is malformed, or the log holds no purchase.
        ValueError: `horizon_days` is outside [1, 366].
    """
    started = time.perf_counter()
    say = progress or (lambda _message: None)
    tuning = tuning or TuningConfig(horizon_days=horizon_days)
    if tuning.horizon_days != horizon_days:
        raise ValueError(f"tuning horizon {tuning.horizon_days} != horizon_days {horizon_days}")
    interactions = load_interactions(interactions_path)
    categories = categories_from_catalog(load_catalog(catalog_path)) if catalog_path else None
    days = collapse_purchase_days(interactions)
    cutoff = cutoff_day(days)
    split = make_split(days, cutoff, horizon_days)
    say(
        f"{len(days)} purchase days; cutoff {_date(cutoff)}: {split.due.users.size} due-list "
        f"users, {split.next_date.user.size} next-date pairs"
    )
    report = tune_due_params(
        split.history, categories=categories, prior_config=prior_config, config=tuning
    )
    say(f"tuned on the validation cut in {report.seconds:.1f}s: {report.params}")
    priors = compute_priors(
        split.history, categories=categories, config=prior_config, params=report.params
    )
    priors_bytes = encode_priors(priors)
    device_priors = parse_priors(priors_bytes)  # what a device reads from the bundle
    users = np.union1d(split.due.users, split.next_date.user)
    histories = device_histories(split.history, users)
    pairs = pair_table(split.history)
    medians = _item_median_intervals(split.history)
    due_rankings = {
        "facetwo": facetwo_due_list(split, device_priors, histories),
        **_baseline_rankings(split, pairs, medians),
    }
    due = {name: due_list_metrics(split.due, due_rankings[name]) for name in DUE_MODELS}
    predictions = {
        "facetwo": facetwo_next_dates(split, device_priors, histories),
        **_baseline_dates(split, pairs, medians),
    }
    actual = split.next_date.actual
    next_date = {name: next_date_metrics(actual, predictions[name]) for name in NEXT_DATE_MODELS}
    sizes = {
        "purchase_days": len(days),
        "history_purchase_days": len(split.history),
        "users": len(np.unique(days.user)),
        "due_list_users": int(split.due.users.size),
        "due_list_users_with_rebuys": sum(1 for t in split.due.targets if t.size),
        "next_date_pairs": int(actual.size),
        "prior_items": len(priors.items),
        "prior_categories": len(priors.categories),
        "priors_bytes": len(priors_bytes),
    }
    return ReorderReport(
        source=interactions.source,
        cutoff=_date(cutoff),
        horizon_days=horizon_days,
        due_list=due,
        next_date=next_date,
        sizes=sizes,
        tuning=report,
        seconds=time.perf_counter() - started,
    )


def format_report(report: ReorderReport) -> str:
    """The human table printed on stdout."""
    sizes = report.sizes
    lines = [
        f"reorder timing on {report.source} (EVALUATION.md §2)",
        f"cutoff {report.cutoff}, horizon {report.horizon_days} days; "
        f"{sizes['history_purchase_days']} of {sizes['purchase_days']} purchase days before it",
        "",
        f"due list: {sizes['due_list_users']} users "
        f"({sizes['due_list_users_with_rebuys']} re-bought something in the window)",
        f"{'model':<15}{'precision@5':>13}{'recall@5':>10}{'ndcg@5':>9}",
    ]
    for name, metrics in report.due_list.items():
        values = (metrics[f"{key}@{DUE_K}"] for key in ("precision", "recall", "ndcg"))
        lines.append(
            f"{name:<15}"
            + "".join(f"{_cell(v):>{w}}" for v, w in zip(values, (13, 10, 9), strict=True))
        )
    lines += [
        "",
        f"next date: {sizes['next_date_pairs']} (user, item) pairs",
        f"{'model':<15}{'mae_days':>10}{'within_7_days':>15}",
    ]
    for name, metrics in report.next_date.items():
        lines.append(
            f"{name:<15}{_cell(metrics['mae_days'], 2):>10}{_cell(metrics['within_7_days']):>15}"
        )
    cut = report.tuning.validation_cutoff
    where = "defaults (too little data to tune)"
    if cut is not None and report.tuning.validation:
        where = f"validation cut {_date(cut)}"
    params = ", ".join(f"{k}={v:g}" for k, v in asdict(report.tuning.params).items())
    lines += [
        "",
        f"facetwo: {sizes['prior_items']} item and {sizes['prior_categories']} category priors "
        f"({sizes['priors_bytes']} bytes); parameters from {where}: {params}",
        f"{report.seconds:.1f}s",
    ]
    return "\n".join(lines)


def _cell(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _date(day: int) -> date:
    return date.fromordinal(EPOCH_ORDINAL + day)


def _item_median_intervals(history: PurchaseDays) -> _Floats:
    """Each item's median interval across all users (the global median where it has none)."""
    same = np.zeros(len(history), bool)
    same[1:] = (history.user[1:] == history.user[:-1]) & (history.item[1:] == history.item[:-1])
    interval = np.diff(history.day, prepend=0)[same].astype(np.float64)
    item = history.item[same]
    result = np.full(len(history.items), float(np.median(interval)) if interval.size else 30.0)
    order = np.lexsort((interval, item))
    item, interval = item[order], interval[order]
    starts = np.flatnonzero(np.diff(item, prepend=-1))
    ends = np.append(starts[1:], item.size)
    low, high = interval[starts + (ends - starts - 1) // 2], interval[starts + (ends - starts) // 2]
    result[item[starts]] = (low + high) / 2.0
    return result


def _top_k(pairs: PairTable, users: _Ints, keys: tuple[_Floats, ...]) -> list[_Ints]:
    """Each user's top-k items, ordered by `keys` (last key most significant, ascending)."""
    order = np.lexsort((pairs.item, -pairs.last_day.astype(np.float64), *keys, pairs.user))
    user, item = pairs.user[order], pairs.item[order]
    lows = np.searchsorted(user, users, side="left")
    highs = np.searchsorted(user, users, side="right")
    return [item[low : min(high, low + DUE_K)] for low, high in zip(lows, highs, strict=True)]


def _baseline_rankings(
    split: ReorderSplit, pairs: PairTable, medians: _Floats
) -> dict[str, list[_Ints]]:
    last = pairs.last_day.astype(np.float64)
    due_gap = np.abs(last + medians[pairs.item] - split.cutoff)
    users = split.due.users
    return {
        "recency": _top_k(pairs, users, (-pairs.n_days.astype(np.float64), -last)),
        "frequency": _top_k(pairs, users, (-last, -pairs.n_days.astype(np.float64))),
        "item-interval": _top_k(pairs, users, (due_gap,)),
    }


def _baseline_dates(split: ReorderSplit, pairs: PairTable, medians: _Floats) -> dict[str, _Floats]:
    n_items = max(len(split.history.items), 1)
    task = split.next_date
    rows = np.searchsorted(pairs.user * n_items + pairs.item, task.user * n_items + task.item)
    last = pairs.last_day[rows].astype(np.float64)
    span = (pairs.last_day[rows] - pairs.first_day[rows]).astype(np.float64)
    intervals = {
        "last-interval": pairs.last_interval[rows].astype(np.float64),
        "mean-interval": span / (pairs.n_days[rows] - 1),
        "item-median": medians[task.item],
    }
    return {name: np.maximum(last + gap, split.cutoff) for name, gap in intervals.items()}
