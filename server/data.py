"""Step one of the flow (load): read and validate the interactions and catalog CSV files.

Guarantees:

- a bad row raises `DataError` naming the file, the 1-based physical line where the record starts
  (the header is line 1) and the field;
- nothing is half-imported: the loaders build everything locally and return only on full success;
- ids are stripped strings, coded by order of first appearance; timestamps are Unix seconds, UTC.

Files are UTF-8 (a BOM is accepted) with LF or CRLF line endings and a header row. Blank lines are
skipped and unknown columns ignored. A timestamp is tried as Unix seconds first, so a compact ISO
date such as `20250304` reads as seconds; write dates with dashes.

Opening the file, iterating its records and reading the header live in `server._csvio`; this
module owns the columns, the field rules and the result types.
"""

from __future__ import annotations

import logging
import math
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from ._csvio import Records, open_records, read_header, show, width_error
from .errors import DataError

__all__ = [
    "EVENT_KINDS",
    "Catalog",
    "CatalogItem",
    "Interactions",
    "load_catalog",
    "load_interactions",
]

logger = logging.getLogger(__name__)

EVENT_KINDS: tuple[str, ...] = ("view", "cart", "purchase")

_T = TypeVar("_T")
_Loaded = TypeVar("_Loaded", "Interactions", "Catalog")
_Scalar = TypeVar("_Scalar", bound=np.generic)
_INTERACTION_COLUMNS = (
    ("user_id", "item_id", "timestamp"),
    ("event", "quantity", "weight", "gift"),
)
_CATALOG_COLUMNS = (("item_id", "title"), ("category", "group", "consumable", "price", "kind"))
_MAX_ID_CHARS = 256
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_NAIVE_EPOCH = datetime(1970, 1, 1)
_SECOND = timedelta(seconds=1)
_CACHE_LIMIT = 1 << 16  # parsed-value caches are cleared when they reach this many entries
_MAX_SECONDS = 4_133_980_800  # 2101-01-01T00:00:00Z: years 1970..2100 are accepted
_EVENT_CODES = {kind: code for code, kind in enumerate(EVENT_KINDS)}
_PURCHASE = _EVENT_CODES["purchase"]
_BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
_INT64, _INT8, _FLOAT64 = np.dtype(np.int64), np.dtype(np.int8), np.dtype(np.float64)
_DTYPES = {"user": _INT64, "item": _INT64, "timestamp": _INT64, "event": _INT8}
_DTYPES |= {"quantity": _FLOAT64, "weight": _FLOAT64}


@dataclass(frozen=True, eq=False, repr=False)
class Interactions:
    """Validated interaction rows as parallel arrays; ids are coded by index in `users`/`items`.

    The arrays loaded from a file are read-only. Equality is identity (numpy arrays have no single
    truth value), and the repr gives counts only, so logging one never prints user ids.
    """

    users: tuple[str, ...]
    items: tuple[str, ...]
    user: npt.NDArray[np.int64]
    item: npt.NDArray[np.int64]
    timestamp: npt.NDArray[np.int64]
    event: npt.NDArray[np.int8]
    quantity: npt.NDArray[np.float64]
    weight: npt.NDArray[np.float64]
    source: str
    gift: npt.NDArray[np.bool_] | None = None
    """True where the row was bought as a gift; None when the log has no `gift` column."""

    def __post_init__(self) -> None:
        n = len(self.user)
        for name, dtype in _DTYPES.items():
            values = getattr(self, name)
            if values.shape != (n,) or values.dtype != dtype:
                raise ValueError(
                    f"Interactions.{name}: expected shape ({n},) {dtype}, "
                    f"found {values.shape} {values.dtype}"
                )
        if self.gift is not None and (self.gift.shape != (n,) or self.gift.dtype != np.bool_):
            raise ValueError(
                f"Interactions.gift: expected shape ({n},) bool, "
                f"found {self.gift.shape} {self.gift.dtype}"
            )

    def without_gifts(self) -> Interactions:
        """The rows that were not bought as gifts (the shoppers' own taste), same id coding.

        A gift says little about the buyer, so the personal model learns from these; the gifts
        themselves feed the gift prior. Returns `self` when there are no gift rows.
        """
        if self.gift is None or not self.gift.any():
            return self
        return replace(self.subset(~self.gift), gift=None)

    def subset(self, rows: npt.NDArray[np.bool_] | npt.NDArray[np.int64]) -> Interactions:
        """These rows (a mask or row numbers), read-only, with the same id coding."""
        columns = {name: _read_only(getattr(self, name)[rows]) for name in _DTYPES}
        gift = None if self.gift is None else _read_only(self.gift[rows])
        return Interactions(self.users, self.items, source=self.source, gift=gift, **columns)

    def __len__(self) -> int:
        return len(self.user)

    def __repr__(self) -> str:
        return (
            f"Interactions({len(self)} rows, {len(self.users)} users, {len(self.items)} items, "
            f"source={self.source!r})"
        )


@dataclass(frozen=True, slots=True)
class CatalogItem:
    """One catalog row; `group` is the item's own id when the file leaves it empty.

    `kind` says what the item is ("camera"): items of one kind replace each other, so after a
    durable one is bought the others are not suggested ('' when the file does not say).
    """

    item_id: str
    title: str
    category: str = ""
    group: str = ""
    consumable: bool = False
    price: float | None = None
    kind: str = ""


@dataclass(frozen=True)
class Catalog:
    """Catalog items in file order, with an O(1) lookup by item id."""

    items: tuple[CatalogItem, ...]
    source: str
    _index: dict[str, CatalogItem] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index = {item.item_id: item for item in self.items}
        if len(index) != len(self.items):
            raise ValueError("Catalog.items: an item_id appears more than once")
        object.__setattr__(self, "_index", index)

    def __len__(self) -> int:
        return len(self.items)

    def get(self, item_id: str) -> CatalogItem | None:
        """Return the item with this id, or None if the catalog has no such item."""
        return self._index.get(item_id)


class _FieldError(Exception):
    """A field failed validation; the row loop adds the file and line."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(reason)
        self.name = name
        self.reason = reason


class _Codes(dict[str, int]):
    """Raw id -> code: ids are validated and coded by order of first appearance on a miss."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.ids: list[str] = []
        self._by_id: dict[str, int] = {}

    def __missing__(self, raw: str) -> int:
        key = _check_id(raw, self.name)
        code = self._by_id.setdefault(key, len(self.ids))
        if code == len(self.ids):
            self.ids.append(key)
        self[raw] = code  # raw spellings are few: ids differ from them only by whitespace
        return code


class _Parsed(dict[str, _T]):
    """Raw field -> parsed value, parsed on a miss; cleared when full, so memory stays bounded."""

    def __init__(self, name: str, parse: Callable[[str], _T]) -> None:
        super().__init__()
        self.name = name
        self.parse = parse

    def __missing__(self, raw: str) -> _T:
        try:
            value = self.parse(raw)
        except ValueError as exc:
            raise _FieldError(self.name, str(exc)) from None
        if len(self) >= _CACHE_LIMIT:
            self.clear()
        self[raw] = value
        return value


class _Timestamps(_Parsed[int]):
    """Raw timestamp -> Unix seconds; whole seconds skip the cache, as int() beats a dict insert."""

    def __init__(self) -> None:
        super().__init__("timestamp", _parse_timestamp)

    def __missing__(self, raw: str) -> int:
        try:  # "YYYY-..." is ISO-8601: skip int(), which would fail slowly
            seconds = int(raw) if raw[4:5] != "-" else -1
        except ValueError:
            seconds = -1
        if _MAX_SECONDS > seconds >= 0 and "_" not in raw:
            return seconds
        return super().__missing__(raw)  # parses and caches other forms, or raises


def _check_id(raw: str, name: str) -> str:
    key = raw.strip()
    if not key:
        raise _FieldError(name, "empty id")
    if len(key) > _MAX_ID_CHARS:
        raise _FieldError(name, f"id has {len(key)} characters, more than {_MAX_ID_CHARS}")
    return key


def _parse_event(raw: str) -> int:
    kind = raw.strip().lower()
    code = _EVENT_CODES.get(kind, _PURCHASE if not kind else None)
    if code is None:
        raise ValueError(f"unknown event {show(raw)}; allowed: {', '.join(EVENT_KINDS)}")
    return code


def _number(raw: str, *, zero_ok: bool) -> float:
    """Parse a finite number > 0 (or >= 0); Python's extras (underscores, nan, inf) are refused."""
    try:
        value = float(raw) if "_" not in raw else math.nan
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and (value > 0 or (zero_ok and value == 0))):
        raise ValueError(
            f"expected a finite number {'>=' if zero_ok else '>'} 0, found {show(raw)}"
        )
    return value


def _parse_positive(raw: str) -> float:
    return _number(raw, zero_ok=False) if raw.strip() else 1.0


def _parse_price(raw: str) -> float | None:
    return _number(raw, zero_ok=True) if raw.strip() else None


def _parse_timestamp(raw: str) -> int:
    text = raw.strip()
    if not text:
        raise ValueError("empty timestamp")
    if "_" in text or (len(text) > 4 and text[4] == "-"):  # YYYY-...: skip a failing float()
        return _parse_iso(raw, text)
    try:
        seconds = float(text)  # exact for whole seconds below 2**53
    except ValueError:
        return _parse_iso(raw, text)
    if not math.isfinite(seconds):
        raise _unparseable(raw)
    if not _MAX_SECONDS > seconds >= 0:
        hint = " (Unix time must be in seconds)" if seconds >= _MAX_SECONDS else ""
        raise ValueError(f"{show(raw)} is not Unix seconds in years 1970..2100{hint}")
    return math.floor(seconds)


def _parse_iso(raw: str, text: str) -> int:
    if text[-1] in "Zz":  # Python 3.10's fromisoformat does not accept "Z"
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _unparseable(raw) from None
    epoch = _NAIVE_EPOCH if moment.tzinfo is None else _EPOCH  # naive means UTC
    seconds: int = (moment - epoch) // _SECOND
    if not _MAX_SECONDS > seconds >= 0:
        raise ValueError(f"{show(raw)} is outside years 1970..2100 (UTC)")
    return seconds


def _unparseable(raw: str) -> ValueError:
    return ValueError(
        f"cannot parse {show(raw)}; expected ISO-8601 (2025-03-04, 2025-03-04T10:00:00Z, "
        "2025-03-04T10:00:00+02:00) or Unix seconds"
    )


def _parse_bool(raw: str) -> bool:
    text = raw.strip().lower()
    value = _BOOLEANS.get(text, False if not text else None)
    if value is None:
        raise ValueError(f"expected true/false, yes/no or 1/0, found {show(raw)}")
    return value


def _parse(name: str, parse: Callable[[str], _T], raw: str) -> _T:
    try:
        return parse(raw)
    except ValueError as exc:
        raise _FieldError(name, str(exc)) from None


def _read_header(
    records: Records, source: str, columns: tuple[tuple[str, ...], ...]
) -> tuple[dict[str, int], int]:
    """Return column name -> position and the number of fields; log the ignored columns."""
    index, width, unknown = read_header(records, source, columns)
    if unknown:
        logger.debug("%s: ignoring unknown column(s) %s", source, unknown)
    return index, width


def _read_interactions(records: Records, source: str, max_rows: int) -> Interactions:
    col, width = _read_header(records, source, _INTERACTION_COLUMNS)
    iu, ii, it = col["user_id"], col["item_id"], col["timestamp"]
    ie, iq, iw = col.get("event", -1), col.get("quantity", -1), col.get("weight", -1)
    ig = col.get("gift", -1)
    gifts = _Parsed("gift", _parse_bool)
    users, items = _Codes("user_id"), _Codes("item_id")
    times = _Timestamps()
    events = _Parsed("event", _parse_event)
    quantities = _Parsed("quantity", _parse_positive)
    weights = _Parsed("weight", _parse_positive)
    user, item, stamp = array("q"), array("q"), array("q")
    event, quantity, weight, gift = array("b"), array("d"), array("d"), array("b")
    add_user, add_item, add_stamp = user.append, item.append, stamp.append
    add_event, add_quantity, add_weight = event.append, quantity.append, weight.append
    line = 0
    try:
        for count, (line, row) in enumerate(records, 1):
            if len(row) != width:
                raise width_error(source, line, width, row)
            if count > max_rows:
                raise DataError(f"{source}:{line}: more than max_rows={max_rows} rows")
            add_user(users[row[iu]])
            add_item(items[row[ii]])
            add_stamp(times[row[it]])
            if ie >= 0:
                add_event(events[row[ie]])
            if iq >= 0:
                add_quantity(quantities[row[iq]])
            if iw >= 0:
                add_weight(weights[row[iw]])
            if ig >= 0:
                gift.append(gifts[row[ig]])
    except _FieldError as exc:
        raise DataError(f"{source}:{line}: field {exc.name!r}: {exc.reason}") from None
    if not user:
        raise DataError(f"no interactions in {source}")
    n = len(user)
    return Interactions(
        users=tuple(users.ids),
        items=tuple(items.ids),
        user=_to_numpy(user, np.int64, n, 0),
        item=_to_numpy(item, np.int64, n, 0),
        timestamp=_to_numpy(stamp, np.int64, n, 0),
        event=_to_numpy(event, np.int8, n, _PURCHASE),
        quantity=_to_numpy(quantity, np.float64, n, 1.0),
        weight=_to_numpy(weight, np.float64, n, 1.0),
        source=source,
        gift=_read_only(np.frombuffer(gift, dtype=np.int8) != 0) if ig >= 0 else None,
    )


def _to_numpy(
    values: array[int] | array[float], dtype: type[_Scalar], n: int, default: float
) -> npt.NDArray[_Scalar]:
    """Wrap a filled buffer without copying, or fill an absent column with its default."""
    result = np.frombuffer(values, dtype=dtype) if values else np.full(n, default, dtype=dtype)
    result.flags.writeable = False
    return result


def _read_only(values: npt.NDArray[_Scalar]) -> npt.NDArray[_Scalar]:
    values.flags.writeable = False
    return values


def _read_catalog(records: Records, source: str, max_items: int) -> Catalog:
    col, width = _read_header(records, source, _CATALOG_COLUMNS)
    first_line: dict[str, int] = {}
    items: list[CatalogItem] = []
    line = 0
    try:
        for line, row in records:
            if len(row) != width:
                raise width_error(source, line, width, row)
            if len(items) >= max_items:
                raise DataError(f"{source}:{line}: more than max_items={max_items} items")
            item = _catalog_item(row, col)
            first = first_line.setdefault(item.item_id, line)
            if first != line:
                raise _FieldError(
                    "item_id", f"duplicate item id {show(item.item_id)}, first on line {first}"
                )
            items.append(item)
    except _FieldError as exc:
        raise DataError(f"{source}:{line}: field {exc.name!r}: {exc.reason}") from None
    if not items:
        raise DataError(f"no items in {source}")
    return Catalog(items=tuple(items), source=source)


def _catalog_item(row: list[str], col: dict[str, int]) -> CatalogItem:
    def optional(name: str) -> str:
        position = col.get(name)
        return "" if position is None else row[position]

    item_id = _check_id(row[col["item_id"]], "item_id")
    title = row[col["title"]].strip()
    if not title:
        raise _FieldError("title", "empty title")
    return CatalogItem(
        item_id=item_id,
        title=title,
        category=optional("category").strip(),
        group=optional("group").strip() or item_id,
        consumable=_parse("consumable", _parse_bool, optional("consumable")),
        price=_parse("price", _parse_price, optional("price")),
        kind=optional("kind").strip(),
    )


def _load(path: Path | str, read: Callable[[Records, str, int], _Loaded], limit: int) -> _Loaded:
    source = str(path)
    started = time.perf_counter()
    with open_records(Path(path), source) as records:
        result = read(records, source, limit)
    logger.info(
        "loaded %d rows from %s in %.2fs", len(result), source, time.perf_counter() - started
    )
    return result


def load_interactions(path: Path | str, *, max_rows: int = 50_000_000) -> Interactions:
    """Load and validate an interactions CSV.

    The header must name `user_id`, `item_id` and `timestamp`; `event` (view, cart, purchase;
    default purchase), `quantity` and `weight` (finite, > 0; default 1) and `gift` (true/false,
    yes/no, 1/0; empty means false: bought for someone else) are optional. A timestamp
    is Unix seconds (int or float, floored) or ISO-8601 (a date, or a date-time with an optional
    fraction and `Z` or offset; naive means UTC), in years 1970..2100.

    Args:
        path: the CSV file; as given, it names the file in messages and in `source`.
        max_rows: refuse files with more data rows than this.

    Returns:
        The rows as read-only parallel arrays, ids coded by order of first appearance.

    Raises:
        DataError: the file is missing, unreadable, not UTF-8 or malformed CSV; the header lacks a
            required column or repeats one; a row is invalid (the message names file:line and
            field); there are no rows or more than `max_rows`.
        ValueError: `max_rows` is less than 1.
    """
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, found {max_rows}")
    return _load(path, _read_interactions, max_rows)


def load_catalog(path: Path | str, *, max_items: int = 5_000_000) -> Catalog:
    """Load and validate a catalog CSV.

    The header must name `item_id` and `title`; `category`, `group` (empty means the item's own
    id), `consumable` (true/false, yes/no, 1/0, any case; empty means false) and `price` (finite,
    >= 0; empty means unknown) are optional.

    Args:
        path: the CSV file; as given, it names the file in messages and in `source`.
        max_items: refuse files with more items than this.

    Returns:
        The items in file order.

    Raises:
        DataError: the file is missing, unreadable, not UTF-8 or malformed CSV; the header lacks a
            required column or repeats one; a row is invalid or repeats an item id (the message
            names file:line and field); there are no items or more than `max_items`.
        ValueError: `max_items` is less than 1.
    """
    if max_items < 1:
        raise ValueError(f"max_items must be >= 1, found {max_items}")
    return _load(path, _read_catalog, max_items)
