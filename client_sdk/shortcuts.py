"""Step "controls": Dash-style reorder shortcuts, computed on the device from private purchases.

For every item the shopper has bought, `estimate_due` says when it is due: the shopper's own
rhythm (median of their recent log intervals) blended with the shop's prior for the item
(`priors.py`) by Bayesian shrinkage: after m own intervals the own median weighs
m / (m + prior_strength), so the more they have bought it, the more their own habit counts. The
spread blends the same way, the shopper's own (shrunk towards `own_scale`) against the prior's.

The interval to the next purchase is log-logistic (see `priors.py`). Given that the shopper has not
bought the item for e days since the last time:

- still buying: after n purchase days the shopper keeps buying it with prior probability
  q = (n - 1 + c p) / (n - 1 + c) (p: the item's repeat probability); having waited e days,
  q' = q S(e) / (q S(e) + 1 - q), with S the survival function;
- due probability: the chance of a purchase in the next `window_days`:
  q' (eps + (1 - eps) (1 - S(e + window) / S(e))), eps the share of irregular rebuys;
- expected date: the last purchase plus the median interval given it exceeds e, the day by which
  the next purchase is as likely as not;
- confidence: q' times the chance that the purchase falls within a quarter-interval (at least two
  days) of that date.

`shortcuts()` puts the pinned items first, in the shopper's order, then the items most likely
bought within the window. Items bought on a single day whose repeat probability is below
`min_repeat_probability` (durable goods) never become shortcuts; snoozed and excluded items wait.
Pins, snoozes and "bought elsewhere" live in a `ShortcutState` (`shortcut_state.py`) that the
caller persists; every function here is pure and takes `now` (days are calendar days of the
datetimes as given: pass them in one time zone).

Wiring, as `Recommender.shortcuts()` does it (the store keeps the purchases and `to_dict()`):

    priors = usable_priors(bundle)                           # client_sdk.priors
    history = PurchaseHistory.from_purchases(purchases)      # once; then history.with_purchase
    for s in shortcuts(history, priors, state, k=5, now=clock.now()):
        print(s.item_id, s.reason, s.due.expected_date if s.due else "pinned")
    state = pin(state, "sku-2"); state = snooze(state, "sku-1", 7, now=clock.now())
    state = mark_bought_elsewhere(state, "sku-3", now=clock.now())
    payload, history, state = reorder(history, state, priors, "sku-1", now=clock.now())

Nothing here leaves the device, and no message or log line contains an item of the history.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import numpy as np
import numpy.typing as npt

from .priors import DueParams, ItemPrior, ReorderPriors
from .purchases import ItemPurchases, PurchaseHistory, check_item_id, day_number
from .shortcut_state import (
    ReorderPayload,
    ShortcutState,
    mark_bought_elsewhere,
    pin,
    prune,
    snooze,
    unpin,
)

__all__ = [
    "MAX_K",
    "DueEstimate",
    "ItemPurchases",
    "PurchaseHistory",
    "ReorderPayload",
    "Shortcut",
    "ShortcutConfig",
    "ShortcutState",
    "estimate_due",
    "mark_bought_elsewhere",
    "pin",
    "prune",
    "reorder",
    "shortcuts",
    "snooze",
    "unpin",
]

MAX_K = 10_000
_MAX_LOG_DAYS = math.log(36_500.0)
_FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class ShortcutConfig:
    """How shortcuts are chosen on this device. Validated; safe defaults.

    Attributes:
        window_days: "due" means likely bought within this many days.
        min_repeat_probability: an item bought on one day only is a durable good, never a
            shortcut, when its prior repeat probability is below this.
        min_due_probability: unpinned items less likely than this to be bought in the window are
            left out (0 keeps every candidate, ranked).
        params: override the blending parameters fitted on the server (tests, tuning).
    """

    window_days: int = 7
    min_repeat_probability: float = 0.02
    min_due_probability: float = 0.0
    params: DueParams | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.window_days <= 366:
            raise ValueError(f"window_days must be in [1, 366], found {self.window_days}")
        for name in ("min_repeat_probability", "min_due_probability"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], found {value!r}")


@dataclass(frozen=True, slots=True)
class DueEstimate:
    """When one item the shopper has bought is due again."""

    item_id: str
    due_probability: float
    """chance of buying it within the window (`ShortcutConfig.window_days`)."""
    expected_date: date
    """the day by which the next purchase is as likely as not, given none so far."""
    confidence: float
    """chance the next purchase comes within a quarter-interval (>= 2 days) of expected_date."""
    interval_days: float
    """typical days between purchases: the blend of the shopper's own and the prior."""
    last_bought: date
    purchase_days: int
    usual_quantity: float
    reason: str


@dataclass(frozen=True, slots=True)
class Shortcut:
    """One reorder shortcut; `due` is None only for a pinned item never bought on this device."""

    item_id: str
    pinned: bool
    reason: str
    usual_quantity: float
    due: DueEstimate | None
    title: str | None = None
    """the catalog title (filled in by `Recommender.shortcuts`; None for an unknown item)."""


@dataclass(frozen=True)
class _Scores:
    """Due-ness of a batch of items, as arrays in the batch's order."""

    item_ids: list[str]
    records: list[ItemPurchases]
    priors: list[ItemPrior]
    last: npt.NDArray[np.int64]
    elsewhere: list[bool]
    due: _FloatArray
    expected_days: _FloatArray
    confidence: _FloatArray
    interval: _FloatArray
    repeat: _FloatArray
    n: _FloatArray


def estimate_due(
    history: PurchaseHistory,
    priors: ReorderPriors,
    state: ShortcutState | None = None,
    *,
    now: datetime | None = None,
    config: ShortcutConfig | None = None,
) -> list[DueEstimate]:
    """Due estimates for every item in `history`, most likely bought within the window first.

    Snoozes, pins and durables are not applied here (see `shortcuts`); "bought elsewhere" resets
    an item's clock.

    Raises:
        ValueError: `now` is earlier than a purchase in the history.
    """
    config = config or ShortcutConfig()
    today = _today(now)
    scores = _score(list(history.items.items()), priors, state, today, config)
    order = np.argsort(-scores.due, kind="stable")
    return [_estimate(scores, int(i), today) for i in order]


def shortcuts(
    history: PurchaseHistory,
    priors: ReorderPriors,
    state: ShortcutState | None = None,
    *,
    k: int = 10,
    now: datetime | None = None,
    config: ShortcutConfig | None = None,
    exclude: Collection[str] = (),
) -> list[Shortcut]:
    """The shopper's reorder shortcuts: pinned items in their order, then the most due.

    All pinned items are returned even when there are more than `k`; the rest of the `k` places
    go to bought items by due probability, leaving out durables bought once, snoozed items,
    `exclude` (for example dismissed items) and those below `min_due_probability`.

    Raises:
        ValueError: `k` is outside [1, 10000], or `now` is earlier than a purchase.
    """
    if not 1 <= k <= MAX_K:
        raise ValueError(f"k must be in [1, {MAX_K}], found {k}")
    config = config or ShortcutConfig()
    state = state or ShortcutState()
    today = _today(now)
    result = [_pinned(item_id, history, priors, state, today, config) for item_id in state.pinned]
    room = k - len(result)
    if room <= 0:
        return result
    pinned = set(state.pinned)
    waiting = {item_id for item_id in state.snoozed_until if _snoozed(state, item_id, today)}
    left_out = pinned | waiting | set(exclude)
    candidates = [pair for pair in history.items.items() if pair[0] not in left_out]
    scores = _score(candidates, priors, state, today, config)
    keep = scores.due >= config.min_due_probability
    keep &= ~((scores.n == 1) & (scores.repeat < config.min_repeat_probability))  # durables
    index = np.flatnonzero(keep)
    if index.size > room:
        top = np.argpartition(-scores.due[index], room - 1)[:room]
        index = index[top]
    index = index[np.lexsort((index, -scores.due[index]))]
    for i in index:
        estimate = _estimate(scores, int(i), today)
        result.append(
            Shortcut(estimate.item_id, False, estimate.reason, estimate.usual_quantity, estimate)
        )
    return result


def reorder(
    history: PurchaseHistory,
    state: ShortcutState,
    priors: ReorderPriors,
    item_id: str,
    *,
    now: datetime | None = None,
) -> tuple[ReorderPayload, PurchaseHistory, ShortcutState]:
    """One-tap reorder: the payload for the host app, and the purchase recorded.

    The quantity is the shopper's usual one (the median of their recent purchase days), or the
    prior's for an item never bought here. The purchase is added to the history today, and any
    snooze or "bought elsewhere" mark of the item is cleared.

    Returns:
        (payload, the new history, the new state); the inputs are not changed.

    Raises:
        TypeError, ValueError: `item_id` is not a valid id.
    """
    check_item_id(item_id)
    today = _today(now)
    record = history.items.get(item_id)
    quantity = record.usual_quantity if record else _prior_quantity(priors.prior_for(item_id))
    payload = ReorderPayload(item_id=item_id, quantity=quantity)
    new_history = history.with_purchase(item_id, today, quantity)
    snoozed = {key: day for key, day in state.snoozed_until.items() if key != item_id}
    elsewhere = {key: day for key, day in state.bought_elsewhere.items() if key != item_id}
    return payload, new_history, ShortcutState(state.pinned, snoozed, elsewhere)


def _today(now: datetime | None) -> date:
    return (now or datetime.now(timezone.utc).astimezone()).date()


def _snoozed(state: ShortcutState, item_id: str, today: date) -> bool:
    until = state.snoozed_until.get(item_id)
    return until is not None and until > today


def _pinned(
    item_id: str,
    history: PurchaseHistory,
    priors: ReorderPriors,
    state: ShortcutState,
    today: date,
    config: ShortcutConfig,
) -> Shortcut:
    record = history.items.get(item_id)
    if record is None:
        quantity = _prior_quantity(priors.prior_for(item_id))
        return Shortcut(item_id, True, "pinned by you", quantity, None)
    scores = _score([(item_id, record)], priors, state, today, config)
    estimate = _estimate(scores, 0, today)
    return Shortcut(item_id, True, estimate.reason, estimate.usual_quantity, estimate)


def _prior_quantity(prior: ItemPrior) -> float:
    return float(max(1, round(prior.usual_quantity)))


def _score(
    batch: Sequence[tuple[str, ItemPurchases]],
    priors: ReorderPriors,
    state: ShortcutState | None,
    today: date,
    config: ShortcutConfig,
) -> _Scores:
    """The due-ness arithmetic of the module docstring, vectorised over the batch."""
    params = config.params or priors.params
    item_ids = [item_id for item_id, _ in batch]
    records = [record for _, record in batch]
    item_priors = [priors.prior_for(item_id) for item_id in item_ids]
    own_last = np.array([r.days[-1] for r in records], np.int64)
    last = own_last.copy()
    today_number = day_number(today)
    if state is not None and state.bought_elsewhere:
        position = {item_id: i for i, item_id in enumerate(item_ids)}
        for item_id, day in state.bought_elsewhere.items():
            i = position.get(item_id)
            if i is not None and day_number(day) <= today_number:  # later: not yet (clock)
                last[i] = max(last[i], day_number(day))
    if last.size and int(last.max()) > today_number:
        raise ValueError(f"now ({today.isoformat()}) is earlier than a recorded purchase")
    elapsed = (today_number - last).astype(np.float64)
    n = np.array([len(r.days) for r in records], np.float64)
    m = np.array([r.own_intervals for r in records], np.float64)
    own = np.array([r.own_log_median for r in records], np.float64)
    p = np.array([prior.repeat_probability for prior in item_priors], np.float64)
    mu0 = np.array([prior.interval.log_median for prior in item_priors], np.float64)
    s0 = np.array([prior.interval.log_scale for prior in item_priors], np.float64) * (
        params.spread_scale
    )
    own_spread = np.array([r.own_log_spread for r in records], np.float64)
    strength = params.prior_strength
    weight = m / (m + strength)
    mu = weight * own + (1.0 - weight) * mu0  # own is 0 where m == 0, so weight 0 drops it
    # the shopper's own spread, shrunk towards own_scale: m - 1 degrees of freedom
    free = np.maximum(m - 1.0, 0.0)
    own_var = (free * own_spread**2 + strength * params.own_scale**2) / (free + strength)
    scale = np.maximum(np.sqrt(weight * own_var + (1.0 - weight) * s0**2), 0.01)
    odds_e = _odds(elapsed, mu, scale)
    survive_e = 1.0 / (1.0 + odds_e)
    c = params.continuation_strength
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(n >= 2, (n - 1.0 + c * p) / (n - 1.0 + c), p)
    q = np.nan_to_num(q, nan=1.0)  # n >= 2 and c == 0: a proven repeater
    still = q * survive_e / (q * survive_e + 1.0 - q)
    window = float(config.window_days)
    in_window = 1.0 - (1.0 + odds_e) / (1.0 + _odds(elapsed + window, mu, scale))
    eps = params.irregular_share
    due = still * (eps + (1.0 - eps) * in_window)
    log_expected = mu + scale * np.log1p(2.0 * odds_e)  # the median given > elapsed
    expected = np.maximum(np.exp(np.minimum(log_expected, _MAX_LOG_DAYS)), elapsed)
    tolerance = np.maximum(2.0, 0.25 * expected)
    low = np.maximum(elapsed, expected - tolerance)
    inside = (1.0 + odds_e) * (
        1.0 / (1.0 + _odds(low, mu, scale)) - 1.0 / (1.0 + _odds(expected + tolerance, mu, scale))
    )
    return _Scores(
        item_ids=item_ids,
        records=records,
        priors=item_priors,
        last=last,
        elsewhere=(last > own_last).tolist(),
        n=n,
        due=due,
        expected_days=expected,
        confidence=still * np.clip(inside, 0.0, 1.0),
        interval=np.exp(mu),
        repeat=q,
    )


def _odds(days: _FloatArray, mu: _FloatArray, scale: _FloatArray) -> _FloatArray:
    """(days / median) ** (1 / scale): the log-logistic's F / S at `days` (0 at 0 days)."""
    with np.errstate(divide="ignore"):
        z = (np.log(days) - mu) / scale
    result: _FloatArray = np.exp(np.minimum(z, 700.0))
    return result


def _estimate(scores: _Scores, i: int, today: date) -> DueEstimate:
    record = scores.records[i]
    last = date.fromordinal(int(scores.last[i]))
    expected = round(float(scores.expected_days[i]))
    return DueEstimate(
        item_id=scores.item_ids[i],
        due_probability=float(scores.due[i]),
        expected_date=max(last + timedelta(days=expected), today),
        confidence=float(scores.confidence[i]),
        interval_days=float(scores.interval[i]),
        last_bought=last,
        purchase_days=record.purchase_days,
        usual_quantity=record.usual_quantity,
        reason=_reason(record, scores.priors[i], (today - last).days, scores.elsewhere[i]),
    )


def _reason(record: ItemPurchases, prior: ItemPrior, elapsed: int, elsewhere: bool) -> str:
    ago = "today" if elapsed == 0 else "yesterday" if elapsed == 1 else f"{elapsed} days ago"
    where = " elsewhere" if elsewhere else ""
    if record.own_intervals:
        days = max(1, round(math.exp(record.own_log_median)))
        every = "every day" if days == 1 else f"every {days} days"
        return f"you buy this about {every}; last bought{where} {ago}"
    days = max(1, round(prior.interval.median_days))
    who = {
        "item": "shoppers who buy it again usually do",
        "category": "items like this are usually bought again",
    }.get(prior.interval.level, "items are usually bought again")
    return f"you bought this{where} {ago}; {who} after about {days} days"
