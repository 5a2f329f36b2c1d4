"""The shopper's own say over reorder shortcuts: pins, snoozes, "bought elsewhere".

`ShortcutState` is an immutable value and every function here is pure: it returns a new state, so
the caller (the Recommender, with the private store) decides when to persist it, with
`to_dict()` / `from_dict()` as its JSON form. Semantics, as `shortcuts()` applies them:

- `pin`: pinned items always show, first, in the order the shopper chose (`position` moves one);
- `snooze`: an item is left out of the due list until the given number of days have passed;
- `mark_bought_elsewhere`: restarts the item's clock today, as if bought, without learning an
  interval from it (the day is the shopper's recollection), and clears its snooze;
- `reorder` (in `shortcuts.py`) records a purchase and clears the item's marks;
- `forget_item`: the shopper erased an item; nothing of it is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any

from .purchases import check_item_id

__all__ = [
    "MAX_PINNED",
    "MAX_SNOOZE_DAYS",
    "ReorderPayload",
    "ShortcutState",
    "forget_item",
    "mark_bought_elsewhere",
    "pin",
    "prune",
    "snooze",
    "unpin",
]

MAX_PINNED = 100
MAX_SNOOZE_DAYS = 366
_MAX_MARKS = 100_000


@dataclass(frozen=True, slots=True)
class ReorderPayload:
    """What the host app orders when the shopper taps a shortcut."""

    item_id: str
    quantity: float


@dataclass(frozen=True)
class ShortcutState:
    """Pins (in the shopper's order), snoozes and "bought elsewhere" days."""

    pinned: tuple[str, ...] = ()
    snoozed_until: Mapping[str, date] = field(default_factory=dict)
    """item id -> the first day it shows again."""
    bought_elsewhere: Mapping[str, date] = field(default_factory=dict)
    """item id -> the day the shopper said they bought it elsewhere."""

    def __post_init__(self) -> None:
        pinned = tuple(check_item_id(item_id) for item_id in self.pinned)
        if len(set(pinned)) != len(pinned):
            raise ValueError("pinned lists an item more than once")
        if len(pinned) > MAX_PINNED:
            raise ValueError(f"at most {MAX_PINNED} pinned items, found {len(pinned)}")
        object.__setattr__(self, "pinned", pinned)
        for name in ("snoozed_until", "bought_elsewhere"):
            marks = dict(getattr(self, name))
            if len(marks) > _MAX_MARKS:
                raise ValueError(f"{name}: at most {_MAX_MARKS} items, found {len(marks)}")
            for item_id, day in marks.items():
                check_item_id(item_id)
                if not isinstance(day, date) or isinstance(day, datetime):
                    raise TypeError(f"{name}: expected date values, found {type(day).__name__}")
            object.__setattr__(self, name, MappingProxyType(marks))

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form (dates as ISO strings) for the private store."""
        return {
            "pinned": list(self.pinned),
            "snoozed_until": {k: v.isoformat() for k, v in self.snoozed_until.items()},
            "bought_elsewhere": {k: v.isoformat() for k, v in self.bought_elsewhere.items()},
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ShortcutState:
        """Read what `to_dict` wrote.

        Raises:
            ValueError: a field is missing or malformed (the message names the field only).
        """
        if not isinstance(raw, Mapping):
            raise ValueError(f"shortcut state: expected a mapping, found {type(raw).__name__}")
        name = "pinned"
        try:
            pinned = raw[name]
            if not isinstance(pinned, list):
                raise TypeError(name)
            marks: dict[str, dict[str, date]] = {}
            for name in ("snoozed_until", "bought_elsewhere"):
                value = raw[name]
                if not isinstance(value, dict):
                    raise TypeError(name)
                marks[name] = {k: date.fromisoformat(v) for k, v in value.items()}
            return cls(tuple(pinned), marks["snoozed_until"], marks["bought_elsewhere"])
        except KeyError:
            raise ValueError(f"shortcut state: missing field {name!r}") from None
        except (TypeError, ValueError):  # their messages may quote private values
            raise ValueError(f"shortcut state: field {name!r} is malformed") from None


def pin(state: ShortcutState, item_id: str, *, position: int | None = None) -> ShortcutState:
    """Pin `item_id` (at the end, or at `position`); pinning a pinned item moves it there.

    Raises:
        ValueError: the item id is invalid, or pinning would exceed MAX_PINNED.
    """
    check_item_id(item_id)
    others = [pinned for pinned in state.pinned if pinned != item_id]
    where = len(others) if position is None else max(0, min(position, len(others)))
    others.insert(where, item_id)
    return ShortcutState(tuple(others), state.snoozed_until, state.bought_elsewhere)


def unpin(state: ShortcutState, item_id: str) -> ShortcutState:
    """Unpin `item_id` (nothing changes if it was not pinned)."""
    pinned = tuple(pinned for pinned in state.pinned if pinned != item_id)
    return ShortcutState(pinned, state.snoozed_until, state.bought_elsewhere)


def snooze(
    state: ShortcutState, item_id: str, days: int, *, now: datetime | None = None
) -> ShortcutState:
    """Leave `item_id` out of the due list for `days` days from today (pins still show).

    Raises:
        ValueError: `days` is outside [1, MAX_SNOOZE_DAYS] or the item id is invalid.
    """
    check_item_id(item_id)
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_SNOOZE_DAYS:
        raise ValueError(f"days must be an int in [1, {MAX_SNOOZE_DAYS}], found {days!r}")
    until = _today(now) + timedelta(days=days)
    snoozed = {**state.snoozed_until, item_id: until}
    return ShortcutState(state.pinned, snoozed, state.bought_elsewhere)


def mark_bought_elsewhere(
    state: ShortcutState, item_id: str, *, now: datetime | None = None
) -> ShortcutState:
    """Record that the shopper bought `item_id` elsewhere today: its clock restarts.

    Raises:
        ValueError: the item id is invalid.
    """
    check_item_id(item_id)
    elsewhere = {**state.bought_elsewhere, item_id: _today(now)}
    snoozed = {k: v for k, v in state.snoozed_until.items() if k != item_id}
    return ShortcutState(state.pinned, snoozed, elsewhere)


def forget_item(state: ShortcutState, item_id: str) -> ShortcutState:
    """`state` without any pin, snooze or mark of `item_id` (the same object if it had none)."""
    if not (
        item_id in state.pinned
        or item_id in state.snoozed_until
        or item_id in state.bought_elsewhere
    ):
        return state
    return ShortcutState(
        tuple(pinned for pinned in state.pinned if pinned != item_id),
        {k: v for k, v in state.snoozed_until.items() if k != item_id},
        {k: v for k, v in state.bought_elsewhere.items() if k != item_id},
    )


def prune(
    state: ShortcutState, *, now: datetime | None = None, keep_elsewhere_days: int = 730
) -> ShortcutState:
    """Drop snoozes that have ended and "bought elsewhere" marks older than the given days."""
    today = _today(now)
    horizon = today - timedelta(days=keep_elsewhere_days)
    snoozed = {k: v for k, v in state.snoozed_until.items() if v > today}
    elsewhere = {k: v for k, v in state.bought_elsewhere.items() if v >= horizon}
    return ShortcutState(state.pinned, snoozed, elsewhere)


def _today(now: datetime | None) -> date:
    return (now or datetime.now(timezone.utc).astimezone()).date()
