"""The shopper's purchase days per item: the private input of reorder shortcuts (`shortcuts.py`).

A `PurchaseHistory` is an immutable value: one `ItemPurchases` per item, holding the distinct
calendar days it was bought (as `date.toordinal()` numbers) and the units bought each day. Each
`ItemPurchases` keeps the summary the due-ness arithmetic needs (the median of the most recent
log intervals and the usual quantity), computed once when it is built, so `shortcuts()` costs
O(items), not O(purchases). Build one with `from_purchases` when the store opens, then keep it
current with `with_purchase`, which copies only the changed item.

Guarantees: days are distinct and ascending; quantities are finite and > 0 (the units of one
day add up, capped at 1,000,000); messages never contain item ids, days or quantities.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import pairwise
from types import MappingProxyType

__all__ = [
    "MAX_ITEM_ID_CHARS",
    "RECENT_INTERVALS",
    "RECENT_QUANTITIES",
    "ItemPurchases",
    "PurchaseHistory",
    "check_item_id",
    "day_number",
]

MAX_ITEM_ID_CHARS = 256
RECENT_INTERVALS = 24
"""the shopper's own rhythm is read from this many most recent intervals (habits change)."""
RECENT_QUANTITIES = 8
_MAX_QUANTITY = 1_000_000.0
_LOGISTIC_MAD = 2.0 * math.log(2.0)  # mean absolute deviation of a unit logistic


def day_number(when: date | datetime) -> int:
    """The calendar day of `when` as `date.toordinal()` (a datetime's own date, as given)."""
    day = when.date() if isinstance(when, datetime) else when
    return day.toordinal()


def check_item_id(item_id: object) -> str:
    """Return `item_id` if it is a usable item id.

    Raises:
        TypeError: it is not a str.
        ValueError: it is empty or longer than 256 characters.
    """
    if not isinstance(item_id, str):
        raise TypeError(f"item_id must be a str, found {type(item_id).__name__}")
    if not 1 <= len(item_id) <= MAX_ITEM_ID_CHARS:
        raise ValueError(
            f"item_id must have 1 to {MAX_ITEM_ID_CHARS} characters, found {len(item_id)}"
        )
    return item_id


def _check_quantity(quantity: float) -> float:
    value = float(quantity)
    if not (math.isfinite(value) and 0.0 < value <= _MAX_QUANTITY):
        raise ValueError(f"quantity must be a finite number in (0, {_MAX_QUANTITY:g}]")
    return value


@dataclass(frozen=True, slots=True)
class ItemPurchases:
    """The distinct days one item was bought, ascending, with the units bought each day."""

    days: tuple[int, ...]
    """date ordinals (`date.toordinal()`), distinct and ascending."""
    quantities: tuple[float, ...]
    own_intervals: int = field(init=False)
    """how many of the most recent intervals the own rhythm uses (at most RECENT_INTERVALS)."""
    own_log_median: float = field(init=False)
    """median log interval of those (0.0 when there is none)."""
    own_log_spread: float = field(init=False)
    """their logistic scale around that median (mean absolute deviation / 2 ln 2; 0.0 below 2)."""
    usual_quantity: float = field(init=False)
    """median units of the most recent purchase days (whole units when all are whole)."""

    def __post_init__(self) -> None:
        if not self.days or len(self.days) != len(self.quantities):
            raise ValueError(
                f"days and quantities must be non-empty and of one length, "
                f"found {len(self.days)} and {len(self.quantities)}"
            )
        if any(later <= earlier for earlier, later in pairwise(self.days)):
            raise ValueError("days must be distinct and ascending")
        for quantity in self.quantities:
            _check_quantity(quantity)
        recent = self.days[-RECENT_INTERVALS - 1 :]
        logs = [math.log(b - a) for a, b in pairwise(recent)]
        quantities = self.quantities[-RECENT_QUANTITIES:]
        usual = statistics.median(quantities)
        if all(float(q).is_integer() for q in quantities):
            usual = float(max(1, round(usual)))
        object.__setattr__(self, "own_intervals", len(logs))
        median = statistics.median(logs) if logs else 0.0
        spread = sum(abs(x - median) for x in logs) / len(logs) / _LOGISTIC_MAD if logs else 0.0
        object.__setattr__(self, "own_log_median", median)
        object.__setattr__(self, "own_log_spread", spread)
        object.__setattr__(self, "usual_quantity", round(float(usual), 3))

    @property
    def purchase_days(self) -> int:
        """On how many distinct days the item was bought."""
        return len(self.days)

    @property
    def last_bought(self) -> date:
        """The last day it was bought."""
        return date.fromordinal(self.days[-1])

    def with_purchase(self, day: int, quantity: float) -> ItemPurchases:
        """This item with `quantity` more units bought on `day` (a date ordinal)."""
        days, quantities = list(self.days), list(self.quantities)
        if day > days[-1]:
            days.append(day)
            quantities.append(quantity)
        elif day in days:
            position = days.index(day)
            quantities[position] = min(_MAX_QUANTITY, quantities[position] + quantity)
        else:  # an out-of-order purchase (a late sync): insert it in place
            position = sum(1 for d in days if d < day)
            days.insert(position, day)
            quantities.insert(position, quantity)
        return ItemPurchases(tuple(days), tuple(quantities))


@dataclass(frozen=True)
class PurchaseHistory:
    """item id -> its purchases on this device. Immutable: updates return a new history."""

    items: Mapping[str, ItemPurchases] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for item_id in self.items:
            check_item_id(item_id)
        object.__setattr__(self, "items", MappingProxyType(dict(self.items)))

    def __len__(self) -> int:
        return len(self.items)

    @classmethod
    def from_purchases(
        cls, purchases: Iterable[tuple[str, date | datetime, float]]
    ) -> PurchaseHistory:
        """Build a history from (item_id, when, quantity) purchases, in any order.

        Purchases of one item on one calendar day add up to one purchase day.

        Raises:
            TypeError, ValueError: an item id or quantity is invalid.
        """
        by_item: dict[str, dict[int, float]] = {}
        for item_id, when, quantity in purchases:
            days = by_item.get(item_id)
            if days is None:
                days = by_item[check_item_id(item_id)] = {}
            day = day_number(when)
            days[day] = min(_MAX_QUANTITY, days.get(day, 0.0) + _check_quantity(quantity))
        items = {}
        for item_id, days in by_item.items():
            ordered = sorted(days)
            items[item_id] = ItemPurchases(tuple(ordered), tuple(days[d] for d in ordered))
        return cls(items)

    def with_purchase(
        self, item_id: str, when: date | datetime, quantity: float = 1.0
    ) -> PurchaseHistory:
        """This history plus one purchase (only the changed item is rebuilt).

        Raises:
            TypeError, ValueError: the item id or quantity is invalid.
        """
        check_item_id(item_id)
        value = _check_quantity(quantity)
        day = day_number(when)
        record = self.items.get(item_id)
        updated = (
            ItemPurchases((day,), (value,)) if record is None else record.with_purchase(day, value)
        )
        items = dict(self.items)
        items[item_id] = updated
        return PurchaseHistory(items)
