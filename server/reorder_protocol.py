"""The reorder-timing protocol of EVALUATION.md §2: the cut, the two tasks, the device model.

Shared by `facetwo evaluate-reorder` (`evaluation_reorder.py`) and by the tuning of the device's
blending parameters on a validation cut (`reorder_tuning.py`), so both measure the same thing.

- Cutoff T: the day at the 80th percentile of all purchase days (one per user, item and day).
  History = purchases before T; the window is [T, T + horizon) and, for a validation cut, the
  future stops at `end` (the real cutoff), so nothing after it is ever read.
- Due list: users with an item bought on 2+ days before T and a purchase in the window; the
  candidates are the items they bought before T, a hit is one bought again in the window.
- Next date: every (user, item) bought on 2+ days before T and again in [T, end); the answer is
  the first such day.

The "facetwo" model is scored through `client_sdk.shortcuts`, the code the device runs, with the
shopper's history before T as the private history and `now` = T.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timezone

import numpy as np
import numpy.typing as npt

from client_sdk.priors import DueParams, ReorderPriors
from client_sdk.shortcuts import PurchaseHistory, ShortcutConfig, estimate_due, shortcuts

from .metrics import ndcg_at_k
from .reorder import EPOCH_ORDINAL, PurchaseDays

__all__ = [
    "DUE_K",
    "DueTask",
    "NextDateTask",
    "ReorderSplit",
    "cutoff_day",
    "device_histories",
    "due_list_metrics",
    "facetwo_due_list",
    "facetwo_next_dates",
    "make_split",
    "next_date_metrics",
    "pair_table",
]

DUE_K = 5
_Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class DueTask:
    """Evaluated users (ascending codes) and, for each, the items re-bought in the window."""

    users: _Ints
    targets: tuple[_Ints, ...]


@dataclass(frozen=True)
class NextDateTask:
    """(user, item) pairs to date, in (user, item) order, and the day each was bought next."""

    user: _Ints
    item: _Ints
    actual: _Ints


@dataclass(frozen=True)
class ReorderSplit:
    """One cut of a purchase log into the history and the two tasks."""

    cutoff: int
    horizon_days: int
    history: PurchaseDays
    due: DueTask
    next_date: NextDateTask


@dataclass(frozen=True)
class PairTable:
    """One row per (user, item) of a history: purchase days, first and last day, mean interval."""

    user: _Ints
    item: _Ints
    n_days: _Ints
    first_day: _Ints
    last_day: _Ints
    last_interval: _Ints  # 0 when bought on one day


def cutoff_day(days: PurchaseDays, quantile: float = 0.8) -> int:
    """The day at `quantile` of all purchase days (an actual day of the log)."""
    if len(days) == 0:
        raise ValueError("no purchases to cut")
    return int(np.quantile(days.day, quantile, method="lower"))


def pair_table(history: PurchaseDays) -> PairTable:
    """Summarise a history (sorted by user, item, day) per (user, item) pair."""
    if len(history) == 0:  # nothing before the cutoff (a log of one purchase day)
        empty = np.zeros(0, np.int64)
        return PairTable(empty, empty, empty, empty, empty, empty)
    first = np.ones(len(history), bool)
    first[1:] = (history.user[1:] != history.user[:-1]) | (history.item[1:] != history.item[:-1])
    starts = np.flatnonzero(first)
    ends = np.append(starts[1:], len(history)) - 1
    n_days = ends - starts + 1
    previous = np.where(n_days >= 2, history.day[np.maximum(ends - 1, 0)], history.day[ends])
    return PairTable(
        user=history.user[starts],
        item=history.item[starts],
        n_days=n_days.astype(np.int64),
        first_day=history.day[starts],
        last_day=history.day[ends],
        last_interval=(history.day[ends] - previous).astype(np.int64),
    )


def make_split(
    days: PurchaseDays, cutoff: int, horizon_days: int, *, end: int | None = None
) -> ReorderSplit:
    """Cut `days` at `cutoff` into the history and the two tasks (see the module docstring).

    Raises:
        ValueError: `horizon_days` < 1, or `end` is not after `cutoff`.
    """
    if horizon_days < 1:
        raise ValueError(f"horizon_days must be >= 1, found {horizon_days}")
    if end is not None and end <= cutoff:
        raise ValueError(f"end ({end}) must be after cutoff ({cutoff})")
    history = days.select(days.day < cutoff)
    future_mask = days.day >= cutoff
    if end is not None:
        future_mask &= days.day < end
    future = days.select(future_mask)
    n_items = max(len(days.items), 1)
    pairs = pair_table(history)
    pair_key = pairs.user * n_items + pairs.item
    repeat_users = np.unique(pairs.user[pairs.n_days >= 2])
    in_window = future.day < cutoff + horizon_days
    window_users = np.unique(future.user[in_window])
    users = np.intersect1d(repeat_users, window_users)
    window_keys = np.unique(future.user[in_window] * n_items + future.item[in_window])
    hit = np.isin(pair_key, window_keys)
    hit_users, hit_items = pairs.user[hit], pairs.item[hit]
    lows = np.searchsorted(hit_users, users, side="left")
    highs = np.searchsorted(hit_users, users, side="right")
    targets = tuple(hit_items[low:high] for low, high in zip(lows, highs, strict=True))
    future_keys, first_row = np.unique(future.user * n_items + future.item, return_index=True)
    repeat_keys = pair_key[pairs.n_days >= 2]
    keys, _, in_future = np.intersect1d(
        repeat_keys, future_keys, assume_unique=True, return_indices=True
    )
    return ReorderSplit(
        cutoff=cutoff,
        horizon_days=horizon_days,
        history=history,
        due=DueTask(users=users, targets=targets),
        next_date=NextDateTask(
            user=keys // n_items, item=keys % n_items, actual=future.day[first_row[in_future]]
        ),
    )


def due_list_metrics(
    task: DueTask, rankings: Sequence[_Ints], k: int = DUE_K
) -> dict[str, float | None]:
    """Precision@k over every evaluated user; Recall@k (hits / items re-bought in the window)
    and NDCG@k over the users who re-bought something (they are undefined for the others).
    None when no user qualifies."""
    if len(rankings) != task.users.size:
        raise ValueError(f"expected {task.users.size} rankings, found {len(rankings)}")
    precision, recall, ndcg = [], [], []
    for ranked, targets in zip(rankings, task.targets, strict=True):
        hits = int(np.isin(ranked[:k], targets).sum())
        precision.append(hits / k)
        if targets.size:
            recall.append(hits / targets.size)
            ndcg.append(ndcg_at_k(ranked, targets, k))
    return {
        f"precision@{k}": _mean(precision),
        f"recall@{k}": _mean(recall),
        f"ndcg@{k}": _mean(ndcg),
    }


def next_date_metrics(actual: _Ints, predicted: npt.NDArray[np.float64]) -> dict[str, float | None]:
    """Mean absolute error in days and the share of predictions within 7 days."""
    if actual.size == 0:
        return {"mae_days": None, "within_7_days": None}
    error = np.abs(predicted - actual)
    return {"mae_days": float(error.mean()), "within_7_days": float((error <= 7).mean())}


def device_histories(history: PurchaseDays, users: _Ints) -> dict[int, PurchaseHistory]:
    """Each user's purchases before the cut as the device holds them (`PurchaseHistory`)."""
    bounds = np.searchsorted(history.user, np.stack([users, users + 1]))
    result = {}
    for column, user in enumerate(users.tolist()):
        start, stop = int(bounds[0, column]), int(bounds[1, column])
        result[user] = PurchaseHistory.from_purchases(
            (history.items[item], date.fromordinal(EPOCH_ORDINAL + day), quantity)
            for item, day, quantity in zip(
                history.item[start:stop].tolist(),
                history.day[start:stop].tolist(),
                history.quantity[start:stop].tolist(),
                strict=True,
            )
        )
    return result


def facetwo_due_list(
    split: ReorderSplit,
    priors: ReorderPriors,
    histories: dict[int, PurchaseHistory],
    *,
    params: DueParams | None = None,
    k: int = DUE_K,
) -> list[_Ints]:
    """The device's top-k shortcuts for every due-list user, as item codes."""
    config = ShortcutConfig(window_days=split.horizon_days, params=params)
    now = _as_datetime(split.cutoff)
    code = {item_id: i for i, item_id in enumerate(split.history.items)}
    rankings = []
    for user in split.due.users.tolist():
        found = shortcuts(histories[user], priors, k=k, now=now, config=config)
        rankings.append(np.array([code[s.item_id] for s in found], np.int64))
    return rankings


def facetwo_next_dates(
    split: ReorderSplit,
    priors: ReorderPriors,
    histories: dict[int, PurchaseHistory],
    *,
    params: DueParams | None = None,
) -> npt.NDArray[np.float64]:
    """The device's expected date (as a day number) for every next-date pair."""
    config = ShortcutConfig(window_days=split.horizon_days, params=params)
    now = _as_datetime(split.cutoff)
    task = split.next_date
    predicted = np.empty(task.user.size, np.float64)
    cache: dict[int, dict[str, date]] = {}
    for row, (user, item) in enumerate(zip(task.user.tolist(), task.item.tolist(), strict=True)):
        expected = cache.get(user)
        if expected is None:
            estimates = estimate_due(histories[user], priors, now=now, config=config)
            expected = cache[user] = {e.item_id: e.expected_date for e in estimates}
        predicted[row] = expected[split.history.items[item]].toordinal() - EPOCH_ORDINAL
    return predicted


def _as_datetime(day: int) -> datetime:
    return datetime.combine(date.fromordinal(EPOCH_ORDINAL + day), time(), tzinfo=timezone.utc)


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None
