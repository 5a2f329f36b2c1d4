"""Step "features": the shopper's private events -> the history arrays the model scores.

Computed on the device only:

- a history item's weight is its strongest event after recency decay: event-kind weight (from the
  bundle, the same the server trained with) times 2^(-age / half-life of that kind). A one-off
  search or view fades within days; purchases last for months. Below `min_weight` an item no
  longer shapes the list (it is still never suggested back while its events are kept);
- events older than the retention of their kind are deleted by the caller (`EventLog.expired`);
- the local time and time zone are kept with every event and offered as context
  (`local_context`); the current model does not use them yet.

`EventLog` keeps, per item touched, the latest time of each event kind, so a request costs
O(items touched) numpy work, not a Python loop over events.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Protocol

import numpy as np
import numpy.typing as npt

EVENT_KINDS = ("view", "cart", "purchase", "search")
MAX_ITEM_ID_CHARS = 256
MAX_QUANTITY = 1_000_000
DEFAULT_EVENT_WEIGHTS: Mapping[str, float] = {
    "view": 0.25,
    "cart": 0.5,
    "purchase": 1.0,
    "search": 0.25,
}
_DAY_SECONDS = 86_400.0


class Clock(Protocol):
    """Where the SDK reads the time; inject a fixed one in tests."""

    def now(self) -> datetime:
        """The current time, timezone-aware (local, for local context)."""
        ...


class SystemClock:
    """The device's clock, in its local time zone."""

    def now(self) -> datetime:
        """The current local time, timezone-aware."""
        return datetime.now(timezone.utc).astimezone()


@dataclass(frozen=True, slots=True)
class InterestConfig:
    """How interest fades and how long events are kept. Validated; safe defaults."""

    search_half_life_days: float = 3.0
    view_half_life_days: float = 7.0
    cart_half_life_days: float = 14.0
    purchase_half_life_days: float = 120.0
    min_weight: float = 0.01
    """Below this decayed weight an item stops shaping the list."""
    browse_retention_days: float = 180.0
    """Views, searches and carts older than this are deleted."""
    purchase_retention_days: float = 1830.0
    """Purchases are kept longer (about five years): reorder timing learns from them."""

    def __post_init__(self) -> None:
        for name in (
            "search_half_life_days",
            "view_half_life_days",
            "cart_half_life_days",
            "purchase_half_life_days",
            "browse_retention_days",
            "purchase_retention_days",
        ):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be finite and > 0, found {value!r}")
        if not 0 <= self.min_weight < 1:
            raise ValueError(f"min_weight must be in [0, 1), found {self.min_weight!r}")

    def half_life_days(self, kind: str) -> float:
        """The half-life of one event kind's weight."""
        return float(getattr(self, f"{kind}_half_life_days"))

    def retention_days(self, kind: str) -> float:
        """How long events of one kind are kept."""
        return self.purchase_retention_days if kind == "purchase" else self.browse_retention_days


MAX_CLOCK_SKEW = timedelta(days=1)
"""How far in the future `record(..., at=)` may be (a device clock a little ahead is fine)."""
MAX_BROWSE_HALF_LIFE_DAYS = 30.0
"""However a model was tuned, a view or search loses half its weight within a month: a one-off
look (at weight 0.25 of a purchase) fades and never dominates for long."""
_NO_DECAY_DAYS = 1e6
"""The half-life standing for "does not fade" (a tuned value of null in the manifest)."""


def bundle_interest(model: Mapping[str, object]) -> InterestConfig:
    """The interest decay a bundle's training tuned, capped by the shopper's promises.

    The manifest's `model.history_half_life_days` maps event kinds to days (null: no decay). An
    unusable entry falls back to the default rather than failing the bundle. Views and searches
    never get a half-life over `MAX_BROWSE_HALF_LIFE_DAYS`.
    """
    tuned = model.get("history_half_life_days")
    defaults = InterestConfig()
    if not isinstance(tuned, dict):
        return defaults
    days: dict[str, float] = {}
    for kind in EVENT_KINDS:
        value = tuned.get(kind, defaults.half_life_days(kind))
        if value is None:
            value = _NO_DECAY_DAYS
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            value = defaults.half_life_days(kind)
        if kind in ("view", "search"):
            value = min(float(value), MAX_BROWSE_HALF_LIFE_DAYS)
        days[f"{kind}_half_life_days"] = float(min(value, _NO_DECAY_DAYS))
    return replace(defaults, **days)


@dataclass(frozen=True, slots=True)
class Event:
    """One private event, as recorded on the device."""

    kind: str
    item_id: str
    quantity: float
    at: datetime
    """In UTC."""
    utc_offset_minutes: int = 0
    """The shopper's local offset from UTC when it happened (the time-zone context)."""


def check_id_collection(ids: object, name: str) -> None:
    """Refuse a single string where a collection of item ids is meant (it would be read as
    characters).

    Raises:
        TypeError: `ids` is a str or bytes, or not a collection.
    """
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Collection):
        raise TypeError(f"{name} must be a collection of item ids, not {type(ids).__name__}")


def validate_event(
    kind: object, item_id: object, quantity: object, at: object, *, now: datetime
) -> Event:
    """Check every argument of `record()` and build the event.

    The local offset comes from `at` (or `now` when `at` is None): pass local, aware times.

    Raises:
        TypeError: an argument has the wrong type (named in the message).
        ValueError: an argument has a bad value (named in the message).
    """
    if not isinstance(kind, str):
        raise TypeError(f"kind must be str, not {type(kind).__name__}")
    if kind not in EVENT_KINDS:
        raise ValueError(f"kind must be one of {', '.join(EVENT_KINDS)}; found {kind[:40]!r}")
    check_item_id(item_id)
    if isinstance(quantity, bool) or not isinstance(quantity, (int, float)):
        raise TypeError(f"quantity must be a number, not {type(quantity).__name__}")
    if not math.isfinite(quantity) or not 0 < quantity <= MAX_QUANTITY:
        raise ValueError(f"quantity must be finite and in (0, {MAX_QUANTITY}], found {quantity!r}")
    if at is None:
        when = now
    elif isinstance(at, datetime):
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("at must be timezone-aware (for example datetime.now(timezone.utc))")
        if at > now + MAX_CLOCK_SKEW:
            # A future event would never fade nor expire, and would shape every list for years.
            raise ValueError(
                f"at is {at.isoformat()}, more than {MAX_CLOCK_SKEW} after now ({now.isoformat()})"
            )
        when = at
    else:
        raise TypeError(f"at must be a datetime or None, not {type(at).__name__}")
    assert isinstance(item_id, str)  # noqa: S101 - checked by check_item_id
    try:
        utc = when.astimezone(timezone.utc)
        utc.timestamp()
    except (OverflowError, OSError, ValueError) as exc:
        raise ValueError("at is outside the range of representable times") from exc
    return Event(
        kind=kind,
        item_id=item_id,
        quantity=float(quantity),
        at=utc,
        utc_offset_minutes=offset_minutes(when),
    )


def check_item_id(item_id: object, name: str = "item_id") -> None:
    """Raise TypeError/ValueError (naming `name`) unless `item_id` is a sane id string."""
    if not isinstance(item_id, str):
        raise TypeError(f"{name} must be str, not {type(item_id).__name__}")
    if not item_id or len(item_id) > MAX_ITEM_ID_CHARS:
        raise ValueError(
            f"{name} must have 1 to {MAX_ITEM_ID_CHARS} characters, found {len(item_id)}"
        )


def offset_minutes(when: datetime) -> int:
    """The UTC offset of an aware datetime, in whole minutes."""
    offset = when.utcoffset() or timedelta(0)
    return int(offset.total_seconds() // 60)


@dataclass(frozen=True, slots=True)
class LocalContext:
    """Where in the shopper's day and week a request happens (context features)."""

    local_time: datetime
    utc_offset_minutes: int
    time_zone: str
    hour: int
    weekday: int
    """Monday is 0."""


def local_context(now: datetime) -> LocalContext:
    """The context of an aware local time."""
    return LocalContext(
        local_time=now,
        utc_offset_minutes=offset_minutes(now),
        time_zone=now.tzname() or "UTC",
        hour=now.hour,
        weekday=now.weekday(),
    )


@dataclass(frozen=True, slots=True)
class HistoryVector:
    """Distinct history items in model indices, their weights, and their strongest event kind."""

    index: npt.NDArray[np.int64]
    weight: npt.NDArray[np.float32]
    kind: tuple[str, ...]
    faded: int = 0
    """Items touched whose interest decayed below `min_weight`: they no longer count."""


def resolve_event_weights(bundle_weights: Mapping[str, float]) -> dict[str, float]:
    """Weights of every event kind: the bundle's, then defaults (a search counts as a view)."""
    weights = {kind: float(w) for kind, w in bundle_weights.items() if kind in EVENT_KINDS}
    if "search" not in weights and "view" in weights:
        weights["search"] = weights["view"]
    return {kind: weights.get(kind, DEFAULT_EVENT_WEIGHTS[kind]) for kind in EVENT_KINDS}


class EventLog:
    """The live events with their store record ids, plus what scoring needs per item.

    Exponential decay makes only the latest event of each (item, kind) matter, so besides the
    events it keeps, for every known item touched, the latest time of each kind: a request
    costs O(items touched) vector work, however many events there are. Not thread-safe alone.
    """

    def __init__(self, index_of: Mapping[str, int], n_items: int) -> None:
        self._index_of = index_of
        self._rows: list[tuple[int, Event]] = []
        self._kind: npt.NDArray[np.int8] = np.zeros(64, np.int8)
        self._at: npt.NDArray[np.float64] = np.zeros(64, np.float64)
        self._touched = np.zeros(n_items, bool)
        self._slot_of: dict[int, int] = {}
        self._slot_item: npt.NDArray[np.int64] = np.zeros(64, np.int64)
        self._slot_last: npt.NDArray[np.float64] = np.full((len(EVENT_KINDS), 64), -np.inf)
        self._version = 0
        self._recency: tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]] | None = None
        self._decay: tuple[object, object, _Decay] | None = None

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def version(self) -> int:
        """Grows with every change: what callers key their caches of the log on."""
        return self._version

    def rows(self) -> list[tuple[int, Event]]:
        """(record id, event) pairs in the order recorded."""
        return list(self._rows)

    def append(self, record_id: int, event: Event) -> None:
        """Add one event."""
        n, kind, at = len(self._rows), EVENT_KINDS.index(event.kind), event.at.timestamp()
        if n == self._at.size:
            self._kind = np.concatenate([self._kind, np.zeros(n, np.int8)])
            self._at = np.concatenate([self._at, np.zeros(n, np.float64)])
        self._kind[n], self._at[n] = kind, at
        self._rows.append((record_id, event))
        self._version += 1
        self._recency = None
        index = self._index_of.get(event.item_id)
        if index is None:
            return
        slot = self._slot_of.get(index)
        if slot is None:
            slot = len(self._slot_of)
            if slot == self._slot_item.size:
                self._slot_item = np.concatenate([self._slot_item, np.zeros(slot, np.int64)])
                grown = np.full((len(EVENT_KINDS), slot), -np.inf)
                self._slot_last = np.concatenate([self._slot_last, grown], axis=1)
            self._slot_of[index] = slot
            self._slot_item[slot] = index
            self._touched[index] = True
        self._slot_last[kind, slot] = max(self._slot_last[kind, slot], at)

    def remove(self, record_ids: Collection[int]) -> None:
        """Drop events by record id."""
        drop = set(record_ids)
        kept = [row for row in self._rows if row[0] not in drop]
        self._version += 1
        self._recency = None
        self._rows = []
        self._touched[:] = False
        self._slot_of.clear()
        self._slot_last[:] = -np.inf
        for record_id, event in kept:
            self.append(record_id, event)

    def record_ids(self, item_id: str | None = None) -> list[int]:
        """Record ids of every event, or of one item's events."""
        return [rid for rid, e in self._rows if item_id is None or e.item_id == item_id]

    def expired(self, now: datetime, interest: InterestConfig) -> list[int]:
        """Record ids of events older than their kind's retention."""
        limit = np.array([interest.retention_days(k) * _DAY_SECONDS for k in EVENT_KINDS])
        n = len(self._rows)
        old = now.timestamp() - self._at[:n] > limit[self._kind[:n]]
        return [self._rows[i][0] for i in np.flatnonzero(old)]

    def purchased(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """Known items with a live purchase, and the time (Unix seconds) of the latest one."""
        slots = len(self._slot_of)
        at = self._slot_last[EVENT_KINDS.index("purchase"), :slots]
        bought = np.isfinite(at)
        return self._slot_item[:slots][bought], at[bought]

    def touched(self) -> npt.NDArray[np.bool_]:
        """A mask over the catalogue: items with any live event (never suggested back)."""
        return self._touched

    def history(
        self,
        event_weights: Mapping[str, float],
        *,
        max_items: int,
        now: datetime | None = None,
        interest: InterestConfig | None = None,
    ) -> HistoryVector:
        """One weight per known item: its strongest event after decay; most recent first.

        With `now=None` nothing decays (the rule the server trains with). What only changes
        with the log (the items in recency order) is kept between calls, so a request costs a
        few vector steps over the items touched.
        """
        if not self._slot_of:
            return HistoryVector(np.zeros(0, np.int64), np.zeros(0, np.float32), ())
        last, items = self._by_recency()
        decay = self._decay_for(event_weights, interest or InterestConfig())
        if now is None:
            weight = np.where(last > -np.inf, decay.kind_weight, 0.0)
            min_weight = 0.0
        else:
            # Kinds never seen have last = -inf: their exponent clips to -60 (weight ~1e-18,
            # below any min_weight). Clipping also keeps exp2 away from slow subnormals.
            exponent = (last - now.timestamp()) / decay.half_life_seconds
            weight = decay.kind_weight * np.exp2(np.clip(exponent, -60.0, 0.0))
            min_weight = decay.min_weight
        best = weight.max(axis=0)
        live = best >= min_weight
        faded = int(live.size - np.count_nonzero(live))
        if faded or live.size > max_items:
            keep = np.flatnonzero(live)[:max_items]  # the most recently touched live items
            weight, best, items = weight[:, keep], best[keep], items[keep]
        kinds = weight.argmax(axis=0).tolist()
        return HistoryVector(
            index=items,
            weight=best.astype(np.float32),
            kind=tuple(EVENT_KINDS[k] for k in kinds),
            faded=faded,
        )

    def _by_recency(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        """The latest time of each kind [kinds, m] and the item [m] of every slot, most recently
        touched first (ties in slot order); rebuilt only after the log changed."""
        if self._recency is None:
            m = len(self._slot_of)
            last = self._slot_last[:, :m]
            order = np.argsort(-last.max(axis=0), kind="stable")
            items = self._slot_item[order].astype(np.int64)
            items.setflags(write=False)  # handed out in every HistoryVector
            self._recency = (last[:, order], items)
        return self._recency

    def _decay_for(self, event_weights: Mapping[str, float], interest: InterestConfig) -> _Decay:
        """The decay constants of these weights and this interest (kept while both are the same
        objects: a Recommender passes the same ones on every request)."""
        cached = self._decay
        if cached is not None and cached[0] is event_weights and cached[1] is interest:
            return cached[2]
        decay = _Decay(
            kind_weight=np.array([[event_weights.get(k, 1.0)] for k in EVENT_KINDS], np.float64),
            half_life_seconds=np.array(
                [[interest.half_life_days(k) * _DAY_SECONDS] for k in EVENT_KINDS]
            ),
            min_weight=interest.min_weight,
        )
        self._decay = (event_weights, interest, decay)
        return decay


@dataclass(frozen=True, slots=True)
class _Decay:
    """Per event kind: its weight and its half-life in seconds ([kinds, 1] columns)."""

    kind_weight: npt.NDArray[np.float64]
    half_life_seconds: npt.NDArray[np.float64]
    min_weight: float


def build_history(
    events: list[Event],
    index_of: Mapping[str, int],
    event_weights: Mapping[str, float],
    *,
    max_items: int,
    now: datetime | None = None,
    interest: InterestConfig | None = None,
) -> HistoryVector:
    """Aggregate events into one weight per known item (unknown ids are kept but not scored).

    Only the `max_items` most recently touched items count, bounding the cost of a request.
    With `now`, weights decay with age as `interest` says; without, they do not.
    """
    log = EventLog(index_of, max(index_of.values(), default=-1) + 1)
    for position, event in enumerate(events):
        log.append(position, event)
    return log.history(event_weights, max_items=max_items, now=now, interest=interest)
