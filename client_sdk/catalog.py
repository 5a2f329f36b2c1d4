"""The bundle's catalogue: the items the model scores, in model-index order, held as columns.

`catalog.json` of bundle format 2 is one JSON object of columns (see docs/FORMATS.md):

    {"format": "facetwo-catalog", "version": 2,
     "item_ids": [...], "titles": [...],
     "category_names": [distinct names], "category_code": [one index into them per item],
     "group_names": [distinct names], "group_items": [[model indices of each group's items]],
     "consumable": [model indices of the consumable items, ascending],
     "kind_names": [distinct kinds], "kind_items": [[model indices of each kind's items]]}

`kind_names` / `kind_items` are optional, but only together (items of one kind replace each
other: "camera").

Only variant groups are listed: an item in none is a group of its own, named after itself (a
catalogue without variants lists no group at all).

Opening it costs one JSON decode, one id -> index dict and a few numpy arrays, not one object per
item: the controls read the columns (`group_code`, `consumable`), and a `CatalogEntry` is made
only when one is asked for (`catalog.entry(i)`, `catalog.entries[i]`), for the few items a list
shows. Format 1's catalogue (one object per item) is still read, more slowly.

Guarantees: every column has one value per item, index and code lists are flat lists of
integers (booleans refused), codes are in range, ids and the names of the groups and categories
are distinct; anything else (JSON nested too deeply included) is a `FormatError` naming
`catalog.json` and the field. The bytes parsed here were verified against the signed manifest
first (`bundle.py`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, overload

import numpy as np
import numpy.typing as npt

from ._formats import load_versioned_json
from .errors import FormatError

CATALOG_FILE = "catalog.json"
CATALOG_FORMAT = "facetwo-catalog"
CATALOG_VERSION = 2
"""The columnar layout of bundle format 2 (format 1's catalogue is an untagged list of rows)."""


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """One item the model scores; its position in the catalog is its model index."""

    item_id: str
    title: str
    category: str = ""
    group: str = ""
    consumable: bool = False
    kind: str = ""
    """what the item is ("camera"); items of one kind replace each other ('' : unknown)."""


@dataclass(frozen=True, eq=False, repr=False)
class BundleCatalog:
    """The bundle's items in model-index order, as columns, with an id -> index lookup.

    Validated on construction (ValueError naming the field); the arrays are read-only.
    """

    item_ids: tuple[str, ...]
    titles: tuple[str, ...]
    category_names: tuple[str, ...]
    category_code: npt.NDArray[np.int64]
    """[n]: each item's category, an index into `category_names`."""
    group_names: tuple[str, ...]
    """The variant groups that are not just one item named after itself."""
    group_of: npt.NDArray[np.int64]
    """[n]: each item's group, an index into `group_names`, or -1: a group of its own, named
    after the item."""
    consumable: npt.NDArray[np.bool_]
    """[n]: bought again and again."""
    kind_names: tuple[str, ...] = ()
    """What items are ("camera"): items of one kind replace each other."""
    kind_of: npt.NDArray[np.int64] | None = None
    """[n]: each item's kind, an index into `kind_names`, or -1 (None: no item has one)."""
    group_code: npt.NDArray[np.int64] = field(init=False)
    """[n]: one code per variant group (variants share it; any other item has its own)."""
    index: Mapping[str, int] = field(init=False)
    """item_id -> model index."""

    def __post_init__(self) -> None:
        for name in ("item_ids", "titles", "category_names", "group_names", "kind_names"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        n = len(self.item_ids)
        if len(self.titles) != n:
            raise ValueError(f"field 'titles': expected {n} values, found {len(self.titles)}")
        index = dict(zip(self.item_ids, range(n), strict=True))
        if len(index) != n:
            _check_distinct(self.item_ids, "item_ids")
        _check_distinct(self.category_names, "category_names")
        _check_distinct(self.group_names, "group_names")
        _check_distinct(self.kind_names, "kind_names")
        kinds = np.full(n, -1, np.int64) if self.kind_of is None else self.kind_of
        kind_of = _frozen_codes(kinds, "kind_of", n, -1, len(self.kind_names))
        category = _frozen_codes(
            self.category_code, "category_code", n, 0, len(self.category_names)
        )
        group_of = _frozen_codes(self.group_of, "group_of", n, -1, len(self.group_names))
        consumable = np.array(self.consumable, dtype=np.bool_)
        if consumable.shape != (n,):
            raise ValueError(f"field 'consumable': expected shape ({n},), found {consumable.shape}")
        consumable.setflags(write=False)
        alone = len(self.group_names) + np.arange(n, dtype=np.int64)
        group_code = np.where(group_of >= 0, group_of, alone)
        group_code.setflags(write=False)
        for name, value in (
            ("category_code", category),
            ("group_of", group_of),
            ("consumable", consumable),
            ("group_code", group_code),
            ("kind_of", kind_of),
            ("index", MappingProxyType(index)),
        ):
            object.__setattr__(self, name, value)

    @classmethod
    def from_entries(cls, entries: Iterable[CatalogEntry]) -> BundleCatalog:
        """Columns from entries in model-index order; an empty group is the item's own id.

        Raises:
            ValueError: an item id is listed twice.
        """
        rows = list(entries)
        categories: dict[str, int] = {}
        members: dict[str, list[int]] = {}
        for position, entry in enumerate(rows):
            members.setdefault(entry.group or entry.item_id, []).append(position)
        group_of = np.full(len(rows), -1, np.int64)
        names: list[str] = []
        for name, items in members.items():
            if len(items) > 1 or rows[items[0]].item_id != name:
                group_of[items] = len(names)
                names.append(name)
        category_code = [categories.setdefault(e.category, len(categories)) for e in rows]
        kinds: dict[str, int] = {}
        kind_of = [kinds.setdefault(e.kind, len(kinds)) if e.kind else -1 for e in rows]
        return cls(
            item_ids=tuple(e.item_id for e in rows),
            titles=tuple(e.title for e in rows),
            category_names=tuple(categories),
            category_code=np.array(category_code, np.int64),
            group_names=tuple(names),
            group_of=group_of,
            consumable=np.array([e.consumable for e in rows], np.bool_),
            kind_names=tuple(kinds),
            kind_of=np.array(kind_of, np.int64),
        )

    def __len__(self) -> int:
        return len(self.item_ids)

    @property
    def entries(self) -> Sequence[CatalogEntry]:
        """The items as `CatalogEntry` values, each made when it is read (`entry`)."""
        return _Entries(self)

    def __repr__(self) -> str:
        return f"BundleCatalog({len(self)} items, {len(self.group_names)} variant groups)"

    def entry(self, item_index: int) -> CatalogEntry:
        """The item at a model index, as a value.

        Raises:
            IndexError: no such index.
        """
        item_id = self.item_ids[item_index]
        group = int(self.group_of[item_index])
        kind = int(self.kind_of[item_index]) if self.kind_of is not None else -1
        return CatalogEntry(
            item_id=item_id,
            title=self.titles[item_index],
            category=self.category_names[self.category_code[item_index]],
            group=self.group_names[group] if group >= 0 else item_id,
            consumable=bool(self.consumable[item_index]),
            kind=self.kind_names[kind] if kind >= 0 else "",
        )


class _Entries(Sequence[CatalogEntry]):
    """`BundleCatalog.entries`: a read-only sequence that makes each entry when it is read."""

    __slots__ = ("_catalog",)

    def __init__(self, catalog: BundleCatalog) -> None:
        self._catalog = catalog

    def __len__(self) -> int:
        return len(self._catalog)

    @overload
    def __getitem__(self, position: int) -> CatalogEntry: ...

    @overload
    def __getitem__(self, position: slice) -> tuple[CatalogEntry, ...]: ...

    def __getitem__(self, position: int | slice) -> CatalogEntry | tuple[CatalogEntry, ...]:
        if isinstance(position, slice):
            return tuple(self._catalog.entry(i) for i in range(len(self))[position])
        return self._catalog.entry(position)

    def __iter__(self) -> Iterator[CatalogEntry]:
        entry = self._catalog.entry
        return (entry(i) for i in range(len(self)))


def parse_catalog(data: bytes, format_version: int) -> BundleCatalog:
    """Parse verified `catalog.json` bytes of a bundle format.

    Raises:
        FormatError: malformed; the message names the file and the field.
    """
    if format_version == 1:
        return _parse_rows(data)
    raw = load_versioned_json(data, CATALOG_FILE, CATALOG_FORMAT, CATALOG_VERSION)
    try:
        ids = _strings(raw, "item_ids")
        group_names = _strings(raw, "group_names")
        for name, other in (("kind_names", "kind_items"), ("kind_items", "kind_names")):
            if name in raw and other not in raw:
                raise ValueError(f"field '{name}': present without '{other}'")
        kinded = "kind_names" in raw
        kind_names = _strings(raw, "kind_names") if kinded else ()
        consumable = np.zeros(len(ids), np.bool_)
        consumable[_integers(raw, "consumable", len(ids))] = True
        return BundleCatalog(
            item_ids=ids,
            titles=_strings(raw, "titles"),
            category_names=_strings(raw, "category_names"),
            category_code=_integers(raw, "category_code", None),
            group_names=group_names,
            group_of=_group_of(raw, len(ids), len(group_names)),
            consumable=consumable,
            kind_names=kind_names,
            kind_of=_group_of(raw, len(ids), len(kind_names), "kind_items") if kinded else None,
        )
    except ValueError as exc:
        raise FormatError(f"{CATALOG_FILE}: {exc}") from exc


def encode_catalog(catalog: BundleCatalog) -> bytes:
    """The `catalog.json` bytes of bundle format 2 (what `parse_catalog` reads back)."""
    document: dict[str, Any] = {
        "format": CATALOG_FORMAT,
        "version": CATALOG_VERSION,
        "item_ids": list(catalog.item_ids),
        "titles": list(catalog.titles),
        "category_names": list(catalog.category_names),
        "category_code": catalog.category_code.tolist(),
        "group_names": list(catalog.group_names),
        "group_items": _members(catalog.group_of, len(catalog.group_names)),
        "consumable": np.flatnonzero(catalog.consumable).tolist(),
    }
    if catalog.kind_names and catalog.kind_of is not None:
        document["kind_names"] = list(catalog.kind_names)
        document["kind_items"] = _members(catalog.kind_of, len(catalog.kind_names))
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _members(codes: npt.NDArray[np.int64], count: int) -> list[list[int]]:
    """For each of `count` codes, the items that have it (an item with -1 has none)."""
    coded = np.flatnonzero(codes >= 0)
    order = coded[np.argsort(codes[coded], kind="stable")]
    sizes = np.bincount(codes[coded], minlength=count)
    return [part.tolist() for part in np.split(order, np.cumsum(sizes)[:-1])] if count else []


def _parse_rows(data: bytes) -> BundleCatalog:
    """Format 1: `{"items": [{"id", "title", "category", "group", "consumable"}]}`."""
    try:
        rows = json.loads(data.decode("utf-8"))["items"]
        entries = [
            CatalogEntry(
                item_id=str(row["id"]),
                title=str(row.get("title", row["id"])),
                category=str(row.get("category", "")),
                group=str(row.get("group", "") or row["id"]),
                consumable=bool(row.get("consumable", False)),
            )
            for row in rows
        ]
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        # UnicodeDecodeError is a ValueError; RecursionError: JSON nested too deeply
        raise FormatError(f"{CATALOG_FILE} is malformed") from exc
    try:
        return BundleCatalog.from_entries(entries)
    except ValueError as exc:
        raise FormatError(f"{CATALOG_FILE}: {exc}") from exc


def _strings(raw: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = raw.get(name)
    if not isinstance(value, list):
        raise ValueError(f"field '{name}': expected a list, found {type(value).__name__}")
    kinds = set(map(type, value))
    if kinds - {str}:
        found = sorted(k.__name__ for k in kinds - {str})
        raise ValueError(f"field '{name}': expected strings, found {', '.join(found)}")
    return tuple(value)


def _integers(raw: Mapping[str, Any], name: str, limit: int | None) -> npt.NDArray[np.int64]:
    """A flat list of integers (in [0, limit) when a limit is given) as an array."""
    value = raw.get(name)
    if not isinstance(value, list):
        raise ValueError(f"field '{name}': expected a list, found {type(value).__name__}")
    # One pass over the types (~20 ms at 1M items): nested lists, floats, strings and booleans
    # (a bool is an int to numpy) are refused before numpy sees them.
    kinds = set(map(type, value))
    if not kinds <= {int}:
        found = ", ".join(sorted(k.__name__ for k in kinds - {int}))
        raise ValueError(f"field '{name}': expected a flat list of integers, found {found}")
    expected = f"indices in [0, {limit})" if limit is not None else "64-bit integers"
    try:
        array = np.fromiter(value, np.int64, len(value))
    except OverflowError:
        raise ValueError(f"field '{name}': expected {expected}") from None
    if limit is not None and array.size and (array.min() < 0 or array.max() >= limit):
        raise ValueError(f"field '{name}': expected {expected}")
    return array


def _group_of(
    raw: Mapping[str, Any], n: int, groups: int, name: str = "group_items"
) -> npt.NDArray[np.int64]:
    """Per-item group indices (-1: none) from `name`, one list of items per group."""
    value = raw.get(name)
    if not isinstance(value, list) or len(value) != groups:
        found = len(value) if isinstance(value, list) else type(value).__name__
        raise ValueError(f"field '{name}': expected {groups} lists, found {found}")
    for g, items in enumerate(value):
        if not isinstance(items, list) or not items:
            raise ValueError(f"field '{name}[{g}]': expected a non-empty list of items")
    flat = _integers({name: [i for items in value for i in items]}, name, n)
    group_of = np.full(n, -1, np.int64)
    group_of[flat] = np.repeat(np.arange(groups), [len(items) for items in value])
    if np.count_nonzero(group_of >= 0) != flat.size:
        raise ValueError(f"field '{name}': an item is listed in more than one group")
    return group_of


def _frozen_codes(codes: object, name: str, n: int, low: int, limit: int) -> npt.NDArray[np.int64]:
    """Per-item codes in [low, limit), checked, as a read-only int64 copy."""
    array = np.asarray(codes)
    if array.shape != (n,):
        raise ValueError(f"field '{name}': expected shape ({n},), found {array.shape}")
    if n and array.dtype.kind not in "iu":
        raise ValueError(f"field '{name}': expected integers, found {array.dtype} values")
    if n and (array.min() < low or array.max() >= limit):
        raise ValueError(f"field '{name}': expected codes in [{low}, {limit})")
    frozen = np.array(array, dtype=np.int64)
    frozen.setflags(write=False)
    return frozen


def _check_distinct(values: tuple[str, ...], name: str) -> None:
    """Raise ValueError naming the first value listed twice, if any."""
    if len(set(values)) == len(values):
        return
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"field '{name}': {value[:80]!r} is listed more than once")
        seen.add(value)
