"""Version 2 of `reorder_priors.json`: the item and category priors as columns, checked by numpy.

Step: fetch/verify -> store -> **score**. The device reads bytes `read_bundle` already verified
(`priors.parse_priors` dispatches here). Version 1 wrote one JSON object per prior; at 100k
items the decoder spent half its time building those small objects and the parser the other
half building and checking dataclasses. Version 2 writes one flat list per field, checks every
column in one pass over its element types and a few numpy comparisons, and makes an `ItemPrior`
only when one is looked up (`ColumnMapping`).

Guarantees (the same as version 1's, column by column):

- a column is a flat list of one JSON type: a boolean is not an integer, and a nested list or an
  object is refused; every column has one value per key (`quantiles_days`: one per quantile
  level per key, flat), and keys are distinct strings;
- `item_categories` is one list of item ids per category (no id in two lists): an item cannot
  name a category that does not exist;
- ranges as the dataclasses check them (`priors.ItemPrior`, `priors.IntervalPrior`), levels
  from `LEVELS`, quantiles finite, >= 1 and ascending;
- k-anonymity: an item or category prior counts at least `min_buyers` buyers and is never the
  default; an interval prior counts at least `min_buyers` repeaters (0 for the default one);
- a failure raises `ValueError` naming the column, the row and its key, with expected and found
  values: `field 'items.buyers[17]' (item 'i17'): expected at least min_buyers=10 buyers,
  found 9`.
"""

from __future__ import annotations

import math
import reprlib
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

__all__ = [
    "LEVELS",
    "LOG_SCALE_RANGE",
    "MAX_LOG_DAYS",
    "MAX_USUAL_QUANTITY",
    "QUANTILE_LEVELS",
    "CategoryLinks",
    "ColumnMapping",
    "PriorColumns",
    "read_category_links",
    "read_prior_columns",
    "short_repr",
]

LEVELS = ("item", "category", "shop", "default")
"""Where a prior comes from, most specific first; "default" is a fixed prior, from nobody."""
QUANTILE_LEVELS = (0.1, 0.25, 0.5, 0.75, 0.9)
MAX_LOG_DAYS = math.log(36_500.0)  # intervals are kept below a century
LOG_SCALE_RANGE = (0.01, 5.0)
MAX_USUAL_QUANTITY = 1e6

V = TypeVar("V")
_NUMBER = frozenset({int, float})
_INTEGER = frozenset({int})
_STRING = frozenset({str})
_PRIOR_LEVELS = frozenset(LEVELS) - {"default"}  # only the shop prior may be the default


@dataclass(frozen=True, slots=True, eq=False)
class PriorColumns:
    """One level's priors (items or categories), checked: the file's own lists, row by row.

    Number columns may hold JSON integers; `float()` them when building a prior.
    """

    row_of: dict[str, int]
    """key -> row, in file order."""
    level: list[str]
    buyers: list[int]
    repeat_probability: list[float]
    usual_quantity: list[float]
    interval_level: list[str]
    repeaters: list[int]
    log_median: list[float]
    log_scale: list[float]
    quantiles_days: list[float]
    """`len(QUANTILE_LEVELS)` values per row, flat."""


class ColumnMapping(Mapping[str, V]):
    """A read-only mapping over checked columns: a value is made from its row when first looked
    up, then kept. Lookups, `in`, `len` and iteration (file order) are O(1) per key."""

    __slots__ = ("_made", "_make", "_row_of", "min_buyers")

    def __init__(
        self, row_of: dict[str, int], make: Callable[[int], V], *, min_buyers: int
    ) -> None:
        """Wrap `row_of` (key -> row); `min_buyers`: the k-anonymity floor the rows passed."""
        self._row_of = row_of
        self._make = make
        self._made: dict[str, V] = {}
        self.min_buyers = min_buyers

    def __getitem__(self, key: str) -> V:
        made = self._made.get(key)
        if made is None:
            # setdefault: two threads looking up one key at once still share one value
            made = self._made.setdefault(key, self._make(self._row_of[key]))
        return made

    def __contains__(self, key: object) -> bool:
        return key in self._row_of

    def __iter__(self) -> Iterator[str]:
        return iter(self._row_of)

    def __len__(self) -> int:
        return len(self._row_of)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {len(self)} rows>"


class CategoryLinks(Mapping[str, str]):
    """A read-only mapping of item id -> category name over checked category indices."""

    __slots__ = ("_code_of", "names")

    def __init__(self, code_of: dict[str, int], names: tuple[str, ...]) -> None:
        """Wrap `code_of` (item id -> index into `names`, every index in range)."""
        self._code_of = code_of
        self.names = names

    def __getitem__(self, key: str) -> str:
        return self.names[self._code_of[key]]

    def __contains__(self, key: object) -> bool:
        return key in self._code_of

    def __iter__(self) -> Iterator[str]:
        return iter(self._code_of)

    def __len__(self) -> int:
        return len(self._code_of)

    def __repr__(self) -> str:
        return f"<CategoryLinks of {len(self)} items to {len(self.names)} categories>"


def count_entries(raw: Mapping[str, Any]) -> int:
    """Category names + item ids + linked item ids of a version-2 document, counting what is
    not yet checked as 0: lets a caller refuse a huge file before checking any column."""
    count = 0
    for name, key in (("categories", "names"), ("items", "ids")):
        table = raw.get(name)
        column = table.get(key) if type(table) is dict else None
        count += len(column) if type(column) is list else 0
    links = raw.get("item_categories")
    if type(links) is list:
        count += sum(len(ids) for ids in links if type(ids) is list)
    return count


def read_prior_columns(
    raw: object, where: str, key: str, label: str, *, min_buyers: int
) -> PriorColumns:
    """Check the columns of `where` (`{key: [...], "level": [...], ...}`).

    Args:
        raw: the decoded JSON value of the field.
        where: its name in the file ("items", "categories"), for messages.
        key: the name of its key column ("ids", "names").
        label: what one key is ("item", "category"), for messages.
        min_buyers: the file's k-anonymity floor.

    Raises:
        ValueError: a column is missing, malformed, out of range or breaks k-anonymity.
    """
    table = _Table(_object(raw, where), where, label)
    keys = table.keys = table.strings(key, keyed=False)
    row_of = _index(keys, f"{where}.{key}", label)
    level = table.strings("level")
    table.member("level", level, _PRIOR_LEVELS)
    buyers, buyer_counts = table.integers("buyers")
    enough = f"at least min_buyers={min_buyers}"
    table.check("buyers", buyers, buyer_counts >= min_buyers, f"{enough} buyers")
    repeat, repeat_array = table.numbers("repeat_probability")
    table.between("repeat_probability", repeat, repeat_array, 0.0, 1.0)
    quantity, quantity_array = table.numbers("usual_quantity")
    ok = (quantity_array > 0.0) & (quantity_array <= MAX_USUAL_QUANTITY)
    table.check("usual_quantity", quantity, ok, f"a number in (0, {MAX_USUAL_QUANTITY:g}]")
    interval_level = table.strings("interval_level")
    table.member("interval_level", interval_level, frozenset(LEVELS))
    repeaters, repeater_counts = table.integers("repeaters")
    by_default = np.zeros(len(keys), np.bool_)
    if "default" in set(interval_level):
        by_default[[i for i, name in enumerate(interval_level) if name == "default"]] = True
    ok = by_default | (repeater_counts >= min_buyers)
    table.check("repeaters", repeaters, ok, f"{enough} repeaters")
    ok = ~by_default | (repeater_counts == 0)
    table.check("repeaters", repeaters, ok, "0 repeaters for a default interval prior")
    log_median, median_array = table.numbers("log_median")
    table.between("log_median", log_median, median_array, 0.0, MAX_LOG_DAYS)
    log_scale, scale_array = table.numbers("log_scale")
    table.between("log_scale", log_scale, scale_array, *LOG_SCALE_RANGE)
    return PriorColumns(
        row_of,
        level,
        buyers,
        repeat,
        quantity,
        interval_level,
        repeaters,
        log_median,
        log_scale,
        _quantiles(table),
    )


def read_category_links(raw: object, names: tuple[str, ...]) -> CategoryLinks:
    """Check `item_categories`: one list of item ids per category, in the order of `names`.

    One list per category rather than an index per item: the file need not spell out (nor the
    decoder parse) 95,000 small integers at 100k items.

    Raises:
        ValueError: not one list of strings per category, or an item id is listed twice.
    """
    where = "item_categories"
    if type(raw) is not list:
        raise ValueError(f"field '{where}': expected a list of item id lists, found {_kind(raw)}")
    if len(raw) != len(names):
        raise ValueError(
            f"field '{where}': expected {len(names)} lists (one per category), found {len(raw)}"
        )
    code_of: dict[str, int] = {}
    total = 0
    for code, ids in enumerate(raw):
        owner = f"(category {names[code][:80]!r})"
        if type(ids) is not list:
            raise ValueError(
                f"field '{where}[{code}]' {owner}: expected a list of item ids, found {_kind(ids)}"
            )
        try:
            "".join(ids)  # refuses anything but strings, at memcpy speed (95k ids: 0.5 ms)
        except TypeError:
            position = next(i for i, v in enumerate(ids) if type(v) is not str)
            raise ValueError(
                f"field '{where}[{code}][{position}]' {owner}: expected a string, "
                f"found {_kind(ids[position])}"
            ) from None
        code_of.update(zip(ids, repeat(code)))
        total += len(ids)
    if len(code_of) != total:
        seen: set[str] = set()
        for code, ids in enumerate(raw):
            for position, item_id in enumerate(ids):
                if item_id in seen:
                    raise ValueError(
                        f"field '{where}[{code}][{position}]': item {item_id[:80]!r} is listed "
                        "more than once"
                    )
                seen.add(item_id)
    return CategoryLinks(code_of, names)


@dataclass(slots=True)
class _Table:
    """The columns of one field, and how to name a column or a cell in a message."""

    raw: Mapping[str, Any]
    where: str
    label: str
    keys: list[str] = field(default_factory=list)
    """the key column, once read."""

    def place(self, name: str, position: int | None = None, per_key: int = 1) -> str:
        if position is None:
            return f"field '{self.where}.{name}'"
        key = self.keys[position // per_key] if position // per_key < len(self.keys) else None
        owner = "" if key is None else f" ({self.label} {key[:80]!r})"
        return f"field '{self.where}.{name}[{position}]'{owner}"

    def column(
        self, name: str, kinds: frozenset[type], expected: str, per_key: int = 1, keyed: bool = True
    ) -> list[Any]:
        """`raw[name]`: a list of `per_key` values per key whose elements are of `kinds`."""
        value = self.raw.get(name)
        if type(value) is not list:
            raise ValueError(f"{self.place(name)}: expected a list, found {_kind(value)}")
        if keyed and len(value) != per_key * len(self.keys):
            raise ValueError(
                f"{self.place(name)}: expected {per_key * len(self.keys)} values "
                f"({per_key} per {self.label}), found {len(value)}"
            )
        # One pass over the types: booleans (ints to numpy), nested lists and objects are
        # refused before numpy sees them.
        if not set(map(type, value)) <= kinds:
            position = next(i for i, v in enumerate(value) if type(v) not in kinds)
            found = _kind(value[position])
            raise ValueError(
                f"{self.place(name, position, per_key)}: expected {expected}, found {found}"
            )
        return value

    def strings(self, name: str, *, keyed: bool = True) -> list[str]:
        return self.column(name, _STRING, "a string", keyed=keyed)

    def integers(self, name: str) -> tuple[list[int], npt.NDArray[np.int64]]:
        value = self.column(name, _INTEGER, "an integer")
        try:
            return value, np.fromiter(value, np.int64, len(value))
        except OverflowError:
            position = next(i for i, v in enumerate(value) if not -(2**63) <= v < 2**63)
        raise ValueError(
            f"{self.place(name, position)}: expected a 64-bit integer, found {value[position]}"
        )

    def numbers(self, name: str, per_key: int = 1) -> tuple[list[float], npt.NDArray[np.float64]]:
        value = self.column(name, _NUMBER, "a finite number", per_key)
        try:
            return value, np.fromiter(value, np.float64, len(value))
        except OverflowError:
            big = (i for i, v in enumerate(value) if type(v) is int and abs(v) > sys.float_info.max)
            position = next(big)
        raise ValueError(
            f"{self.place(name, position, per_key)}: expected a finite number, "
            "found an integer too large for a float"
        )

    def member(self, name: str, value: list[str], allowed: frozenset[str]) -> None:
        if set(value) <= allowed:
            return
        position = next(i for i, v in enumerate(value) if v not in allowed)
        found = value[position]
        if found in LEVELS:  # "default" where only the shop's prior may be the default
            raise ValueError(
                f"{self.place(name, position)}: only the shop prior may be the default"
            )
        expected = ", ".join(level for level in LEVELS if level in allowed)
        raise ValueError(
            f"{self.place(name, position)}: expected one of {expected}, found {short_repr(found)}"
        )

    def check(
        self,
        name: str,
        value: list[Any],
        ok: npt.NDArray[np.bool_],
        expected: str,
        per_key: int = 1,
    ) -> None:
        if ok.all():
            return
        position = int(np.argmin(ok))
        raise ValueError(
            f"{self.place(name, position, per_key)}: expected {expected}, "
            f"found {short_repr(value[position])}"
        )

    def between(
        self, name: str, value: list[float], array: npt.NDArray[np.float64], low: float, high: float
    ) -> None:
        ok = (array >= low) & (array <= high)  # NaN and infinities fail: the bounds are finite
        self.check(name, value, ok, f"a number in [{low:g}, {high:g}]")


def _quantiles(table: _Table) -> list[float]:
    per_key = len(QUANTILE_LEVELS)
    value, array = table.numbers("quantiles_days", per_key)
    table.check(
        "quantiles_days", value, np.isfinite(array) & (array >= 1.0), "a number >= 1", per_key
    )
    rises = np.diff(array.reshape(-1, per_key), axis=1) >= 0.0
    if not rises.all():
        row, step = divmod(int(np.argmin(rises)), per_key - 1)
        position = row * per_key + step + 1
        raise ValueError(
            f"{table.place('quantiles_days', position, per_key)}: expected days in ascending "
            f"order, found {short_repr(value[position])} after {short_repr(value[position - 1])}"
        )
    return value


def _index(keys: list[str], name: str, label: str) -> dict[str, int]:
    """key -> row, refusing a key listed twice."""
    index = dict(zip(keys, range(len(keys)), strict=True))
    if len(index) != len(keys):
        seen: set[str] = set()
        for position, key in enumerate(keys):
            if key in seen:
                raise ValueError(
                    f"field '{name}[{position}]': {label} {key[:80]!r} is listed more than once"
                )
            seen.add(key)
    return index


def _object(raw: object, where: str) -> Mapping[str, Any]:
    if type(raw) is not dict:
        raise ValueError(f"field '{where}': expected an object of columns, found {_kind(raw)}")
    return raw


_REPR = reprlib.Repr()  # keyword arguments only from Python 3.12
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlong = 2, 80, 80, 40
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = 6


def short_repr(value: object) -> str:
    """repr(value) cut short (strings to 80 characters, lists to 6 items), without building the
    whole text first: a hostile file cannot make a huge error message."""
    return _REPR.repr(value)


def _kind(value: object) -> str:
    return "nothing" if value is None else type(value).__name__
