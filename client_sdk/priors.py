"""Reorder priors: what the shop's aggregate purchase logs say about how items are rebought.

The server computes them (`server.reorder`) and ships them as `reorder_priors.json` in the signed
bundle; the device parses the verified bytes here and blends them with the shopper's own purchase
rhythm (`shortcuts.py`). This module owns the file format, reader and writer both, so the two
sides cannot drift. Version 2 (written now) keeps the item and category priors in columns, checked
with numpy and turned into `ItemPrior`s only when looked up (`_prior_columns.py`); version 1, one
object per prior, is still read.

Guarantees:

- `parse_priors` is pure and takes bytes that `read_bundle` already verified; anything malformed
  raises `FormatError` naming the field, with expected and found values;
- no prior describes a handful of people: an item- or category-level entry must count at least
  `min_buyers` distinct buyers, and its interval distribution at least `min_buyers` distinct
  shoppers who bought again (`repeaters`); the device refuses a file that breaks this;
- lookups fall back item -> category -> shop, so every item has a prior.

An interval distribution is log-logistic: log(days between purchases) is logistic with location
`log_median` and scale `log_scale`. It is fitted robustly from quantiles (median and interquartile
range), has a closed-form survival function, and its heavy tail keeps lapsed habits possible.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import partial
from types import MappingProxyType
from typing import Any

from ._formats import load_versioned_json
from ._prior_columns import (
    LEVELS,
    LOG_SCALE_RANGE,
    MAX_LOG_DAYS,
    MAX_USUAL_QUANTITY,
    QUANTILE_LEVELS,
    CategoryLinks,
    ColumnMapping,
    PriorColumns,
    count_entries,
    read_category_links,
    read_prior_columns,
    short_repr,
)
from .bundle import REORDER_PRIORS_FILE, VerifiedBundle
from .errors import FormatError

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "LEVELS",
    "QUANTILE_LEVELS",
    "DueParams",
    "IntervalPrior",
    "ItemPrior",
    "ReorderPriors",
    "bundle_priors",
    "default_interval",
    "default_priors",
    "encode_priors",
    "parse_priors",
    "usable_priors",
]

logger = logging.getLogger(__name__)

FORMAT_NAME = "facetwo-reorder-priors"
FORMAT_VERSION = 2
"""The version `encode_priors` writes; `parse_priors` reads 1 and 2."""
_READ_VERSIONS = (1, 2)
_FILE = REORDER_PRIORS_FILE
_MAX_ENTRIES = 5_000_000


@dataclass(frozen=True, slots=True)
class DueParams:
    """How the device blends a shopper's own rhythm with the prior (fitted on the server).

    Attributes:
        prior_strength: the prior counts as this many of the shopper's own intervals; the own
            median gets weight m / (m + prior_strength) after m own intervals.
        own_scale: logistic scale of one shopper's log intervals around their own median.
        spread_scale: multiplies the prior's scale (the spread across shoppers).
        continuation_strength: after n purchase days, the chance the shopper still buys the item
            is (n - 1 + c * p) / (n - 1 + c), with p the prior repeat probability.
        irregular_share: the share of rebuys that ignore the rhythm: a due probability never
            falls below this share of the chance the shopper still buys the item.
    """

    prior_strength: float = 2.0
    own_scale: float = 0.5
    spread_scale: float = 1.0
    continuation_strength: float = 10.0
    irregular_share: float = 0.05

    def __post_init__(self) -> None:
        _check_range("prior_strength", self.prior_strength, 0.0, 1000.0, low_open=True)
        _check_range("own_scale", self.own_scale, 0.01, 5.0)
        _check_range("spread_scale", self.spread_scale, 0.1, 10.0)
        _check_range("continuation_strength", self.continuation_strength, 0.0, 1e6)
        _check_range("irregular_share", self.irregular_share, 0.0, 1.0, high_open=True)


@dataclass(frozen=True, slots=True)
class IntervalPrior:
    """The distribution of days between two purchase days of one item by one shopper."""

    level: str
    repeaters: int
    """distinct shoppers whose intervals it summarises (0 for the default prior)."""
    log_median: float
    log_scale: float
    quantiles_days: tuple[float, ...]
    """days at `QUANTILE_LEVELS`, for explanations."""

    def __post_init__(self) -> None:
        _check_level("level", self.level)
        _check_range("log_median", self.log_median, 0.0, MAX_LOG_DAYS)
        _check_range("log_scale", self.log_scale, *LOG_SCALE_RANGE)
        if self.repeaters < 0:
            raise ValueError(f"repeaters must be >= 0, found {self.repeaters}")
        if len(self.quantiles_days) != len(QUANTILE_LEVELS) or any(
            not (math.isfinite(q) and q >= 1.0) for q in self.quantiles_days
        ):
            raise ValueError(
                f"quantiles_days must be {len(QUANTILE_LEVELS)} finite numbers >= 1, "
                f"found {short_repr(self.quantiles_days)}"
            )
        if list(self.quantiles_days) != sorted(self.quantiles_days):
            raise ValueError(f"quantiles_days must ascend, found {short_repr(self.quantiles_days)}")

    @property
    def median_days(self) -> float:
        """The median interval in days."""
        return math.exp(self.log_median)


@dataclass(frozen=True, slots=True)
class ItemPrior:
    """What the shop's logs say about rebuying one item (or its category, or anything)."""

    level: str
    buyers: int
    """distinct shoppers it summarises (0 for the default prior)."""
    repeat_probability: float
    """share of buyers who bought it on two or more days."""
    usual_quantity: float
    interval: IntervalPrior

    def __post_init__(self) -> None:
        _check_level("level", self.level)
        _check_range("repeat_probability", self.repeat_probability, 0.0, 1.0)
        _check_range("usual_quantity", self.usual_quantity, 0.0, MAX_USUAL_QUANTITY, low_open=True)
        if self.buyers < 0:
            raise ValueError(f"buyers must be >= 0, found {self.buyers}")


@dataclass(frozen=True)
class ReorderPriors:
    """Parsed priors: item -> category -> shop lookups and the fitted `DueParams`.

    The mappings are read-only: copies of the dicts given, or, from a version-2 file, mappings
    over its checked columns that make an `ItemPrior` when one is first looked up.
    """

    min_buyers: int
    params: DueParams
    shop: ItemPrior
    categories: Mapping[str, ItemPrior] = field(default_factory=dict)
    items: Mapping[str, ItemPrior] = field(default_factory=dict)
    item_categories: Mapping[str, str] = field(default_factory=dict)
    """item id -> category name, for items without an item-level prior."""

    def __post_init__(self) -> None:
        if self.min_buyers < 1:
            raise ValueError(f"min_buyers must be >= 1, found {self.min_buyers}")
        _check_anonymity("shop", self.shop, self.min_buyers, allow_default=True)
        for name in ("categories", "items"):
            priors: Mapping[str, ItemPrior] = getattr(self, name)
            if isinstance(priors, ColumnMapping) and priors.min_buyers >= self.min_buyers:
                continue  # checked column by column when read, against a floor as high
            for key, prior in priors.items():
                _check_anonymity(f"{name}[{key!r}]", prior, self.min_buyers)
            object.__setattr__(self, name, MappingProxyType(dict(priors)))
        links = self.item_categories
        if isinstance(links, CategoryLinks) and all(c in self.categories for c in links.names):
            return  # its indices were checked against these names when read
        for item_id, category in links.items():
            if category not in self.categories:
                raise ValueError(f"item_categories[{item_id!r}]: unknown category {category!r}")
        object.__setattr__(self, "item_categories", MappingProxyType(dict(links)))

    def prior_for(self, item_id: str) -> ItemPrior:
        """The most specific prior for `item_id`: its own, its category's, else the shop's."""
        if item_id in self.items:
            return self.items[item_id]
        if item_id in self.item_categories:
            return self.categories[self.item_categories[item_id]]
        return self.shop


def default_interval() -> IntervalPrior:
    """The fixed interval prior, from nobody: median 30 days, log scale 0.7."""
    median, scale = 30.0, 0.7
    quantiles = tuple(max(1.0, median * (p / (1.0 - p)) ** scale) for p in QUANTILE_LEVELS)
    return IntervalPrior("default", 0, math.log(median), scale, quantiles)


def default_priors(params: DueParams | None = None) -> ReorderPriors:
    """Priors for a bundle that ships none: the shopper's own rhythm against a fixed default."""
    shop = ItemPrior("default", 0, 0.5, 1.0, default_interval())
    return ReorderPriors(min_buyers=1, params=params or DueParams(), shop=shop)


def bundle_priors(bundle: VerifiedBundle) -> ReorderPriors | None:
    """The verified bundle's reorder priors, or None when it ships none.

    Raises:
        FormatError: the priors file is malformed (see `parse_priors`).
    """
    data = bundle.files.get(REORDER_PRIORS_FILE)
    return None if data is None else parse_priors(data)


def usable_priors(bundle: VerifiedBundle) -> ReorderPriors:
    """The verified bundle's reorder priors, else the default priors.

    The priors only refine shortcut timing, so a bundle that ships none, or a file this SDK
    cannot read (a newer format version, a broken file), costs the bundle nothing else: the
    device uses `default_priors()`, with a warning for an unreadable file.
    """
    try:
        priors = bundle_priors(bundle)
    except FormatError as exc:
        logger.warning(
            "bundle v%d: reorder priors unusable (%s); shortcuts use the default priors",
            bundle.manifest.model_version,
            exc,
        )
        priors = None
    return priors or default_priors()


def parse_priors(data: bytes) -> ReorderPriors:
    """Parse verified `reorder_priors.json` bytes, of version 1 or 2.

    Args:
        data: the file's bytes, already checked against the signed manifest.

    Returns:
        The priors, validated. From version 2 the item and category priors are read-only
        mappings over the file's checked columns, which make an `ItemPrior` when one is first
        looked up.

    Raises:
        FormatError: the bytes are not JSON, the format or version is unknown, or a field is
            missing, of the wrong type, out of range, or breaks the `min_buyers` rule.
    """
    raw = load_versioned_json(data, _FILE, FORMAT_NAME, _READ_VERSIONS)
    try:
        return _parse_rows(raw) if raw["version"] == 1 else _parse_columns(raw)
    except (ValueError, TypeError) as exc:
        raise FormatError(f"{_FILE}: {exc}") from exc


def encode_priors(priors: ReorderPriors, *, version: int = FORMAT_VERSION) -> bytes:
    """The `reorder_priors.json` bytes for `priors` (what `parse_priors` reads back).

    Args:
        priors: the priors to write.
        version: the file version: 2 (columns, the default), or 1 for devices whose SDK reads
            only version 1.

    Raises:
        ValueError: `version` is not 1 or 2.
    """
    if version not in _READ_VERSIONS:
        raise ValueError(f"version must be one of {_READ_VERSIONS}, found {version!r}")
    names = list(priors.categories)
    position = {name: i for i, name in enumerate(names)}
    document: dict[str, Any] = {
        "format": FORMAT_NAME,
        "version": version,
        "min_buyers": priors.min_buyers,
        "quantile_levels": list(QUANTILE_LEVELS),
        "params": asdict(priors.params),
        "shop": _encode_prior(priors.shop),
    }
    links = priors.item_categories
    if version == 1:
        document["categories"] = [
            {"name": name, **_encode_prior(priors.categories[name])} for name in names
        ]
        document["items"] = {item_id: _encode_prior(p) for item_id, p in priors.items.items()}
        document["item_categories"] = {item_id: position[c] for item_id, c in links.items()}
    else:
        document["categories"] = _encode_columns(priors.categories, "names")
        document["items"] = _encode_columns(priors.items, "ids")
        grouped: list[list[str]] = [[] for _ in names]
        for item_id, name in links.items():
            grouped[position[name]].append(item_id)
        document["item_categories"] = grouped
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.encode("utf-8")


def _parse_rows(raw: dict[str, Any]) -> ReorderPriors:
    """Version 1: one object per prior."""
    categories_raw = _get(raw, "categories", list, "")
    items_raw = _get(raw, "items", dict, "")
    links_raw = _get(raw, "item_categories", dict, "")
    if len(categories_raw) + len(items_raw) + len(links_raw) > _MAX_ENTRIES:
        raise FormatError(f"{_FILE}: more than {_MAX_ENTRIES} entries")
    categories: dict[str, ItemPrior] = {}
    names: list[str] = []
    for position, entry in enumerate(categories_raw):
        where = f"categories[{position}]."
        if not isinstance(entry, dict):
            raise FormatError(f"{_FILE}: field '{where[:-1]}': expected an object")
        name = _get(entry, "name", str, where)
        if name in categories:
            raise FormatError(f"{_FILE}: field '{where}name': duplicate {short_repr(name)}")
        categories[name] = _parse_prior(entry, where)
        names.append(name)
    links: dict[str, str] = {}
    for item_id, position in links_raw.items():
        if type(position) is not int or not 0 <= position < len(names):
            raise FormatError(
                f"{_FILE}: field 'item_categories.{item_id}': expected a category index in "
                f"[0, {len(names)}), found {short_repr(position)}"
            )
        links[item_id] = names[position]
    items = {
        item_id: _parse_prior(_get(items_raw, item_id, dict, "items."), f"items.{item_id}.")
        for item_id in items_raw
    }
    return ReorderPriors(
        min_buyers=_get(raw, "min_buyers", int, ""),
        params=DueParams(**_params(_get(raw, "params", dict, ""))),
        shop=_parse_prior(_get(raw, "shop", dict, ""), "shop."),
        categories=categories,
        items=items,
        item_categories=links,
    )


def _parse_columns(raw: dict[str, Any]) -> ReorderPriors:
    """Version 2: `categories`, `items` and `item_categories` as columns (`_prior_columns`)."""
    min_buyers = _get(raw, "min_buyers", int, "")
    if count_entries(raw) > _MAX_ENTRIES:
        raise FormatError(f"{_FILE}: more than {_MAX_ENTRIES} entries")
    categories = read_prior_columns(
        raw.get("categories"), "categories", "names", "category", min_buyers=min_buyers
    )
    items = read_prior_columns(raw.get("items"), "items", "ids", "item", min_buyers=min_buyers)
    links = read_category_links(raw.get("item_categories"), tuple(categories.row_of))
    return ReorderPriors(
        min_buyers=min_buyers,
        params=DueParams(**_params(_get(raw, "params", dict, ""))),
        shop=_parse_prior(_get(raw, "shop", dict, ""), "shop."),
        categories=ColumnMapping(
            categories.row_of, partial(_column_prior, categories), min_buyers=min_buyers
        ),
        items=ColumnMapping(items.row_of, partial(_column_prior, items), min_buyers=min_buyers),
        item_categories=links,
    )


def _column_prior(columns: PriorColumns, row: int) -> ItemPrior:
    """The prior in `row` of checked columns (numbers may be JSON integers: made floats)."""
    c, per_key = columns, len(QUANTILE_LEVELS)
    interval = IntervalPrior(
        c.interval_level[row],
        c.repeaters[row],
        float(c.log_median[row]),
        float(c.log_scale[row]),
        tuple(map(float, c.quantiles_days[row * per_key : (row + 1) * per_key])),
    )
    return ItemPrior(
        c.level[row],
        c.buyers[row],
        float(c.repeat_probability[row]),
        float(c.usual_quantity[row]),
        interval,
    )


def _encode_columns(priors: Mapping[str, ItemPrior], key: str) -> dict[str, list[Any]]:
    rows = list(priors.values())
    intervals = [prior.interval for prior in rows]
    return {
        key: list(priors),
        "level": [prior.level for prior in rows],
        "buyers": [prior.buyers for prior in rows],
        "repeat_probability": [prior.repeat_probability for prior in rows],
        "usual_quantity": [prior.usual_quantity for prior in rows],
        "interval_level": [interval.level for interval in intervals],
        "repeaters": [interval.repeaters for interval in intervals],
        "log_median": [interval.log_median for interval in intervals],
        "log_scale": [interval.log_scale for interval in intervals],
        "quantiles_days": [q for interval in intervals for q in interval.quantiles_days],
    }


def _encode_prior(prior: ItemPrior) -> dict[str, Any]:
    interval = prior.interval
    return {
        "level": prior.level,
        "buyers": prior.buyers,
        "repeat_probability": prior.repeat_probability,
        "usual_quantity": prior.usual_quantity,
        "interval": {
            "level": interval.level,
            "repeaters": interval.repeaters,
            "log_median": interval.log_median,
            "log_scale": interval.log_scale,
            "quantiles_days": list(interval.quantiles_days),
        },
    }


def _parse_prior(raw: Mapping[str, Any], where: str) -> ItemPrior:
    interval = _get(raw, "interval", dict, where)
    inner = f"{where}interval."
    quantiles = _get(interval, "quantiles_days", list, inner)
    try:
        return ItemPrior(
            level=_get(raw, "level", str, where),
            buyers=_get(raw, "buyers", int, where),
            repeat_probability=_number(raw, "repeat_probability", where),
            usual_quantity=_number(raw, "usual_quantity", where),
            interval=IntervalPrior(
                level=_get(interval, "level", str, inner),
                repeaters=_get(interval, "repeaters", int, inner),
                log_median=_number(interval, "log_median", inner),
                log_scale=_number(interval, "log_scale", inner),
                quantiles_days=tuple(_as_number(q, f"{inner}quantiles_days") for q in quantiles),
            ),
        )
    except ValueError as exc:
        raise FormatError(f"{_FILE}: field '{where[:-1]}': {exc}") from exc


def _params(raw: Mapping[str, Any]) -> dict[str, float]:
    known = DueParams.__dataclass_fields__
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise FormatError(f"{_FILE}: field 'params': unknown parameter(s) {short_repr(unknown)}")
    return {name: _number(raw, name, "params.") for name in raw}


def _get(raw: Mapping[str, Any], name: str, kind: type, where: str) -> Any:
    value = raw.get(name)
    if type(value) is not kind:  # exact: a bool is not an int here
        found = "nothing" if value is None else type(value).__name__
        raise FormatError(
            f"{_FILE}: field '{where}{name}': expected {kind.__name__}, found {found}"
        )
    return value


def _number(raw: Mapping[str, Any], name: str, where: str) -> float:
    return _as_number(raw.get(name), f"{where}{name}")


def _as_number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise FormatError(
            f"{_FILE}: field '{where}': expected a finite number, found {short_repr(value)}"
        )
    return float(value)


def _check_level(name: str, level: str) -> None:
    if level not in LEVELS:
        raise ValueError(f"{name} must be one of {', '.join(LEVELS)}, found {short_repr(level)}")


def _check_range(
    name: str,
    value: float,
    low: float,
    high: float,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    ok = math.isfinite(value) and (value > low if low_open else value >= low)
    ok = ok and (value < high if high_open else value <= high)
    if not ok:
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        raise ValueError(
            f"{name} must be in {left}{low:g}, {high:g}{right}, found {short_repr(value)}"
        )


def _check_anonymity(
    where: str, prior: ItemPrior, min_buyers: int, *, allow_default: bool = False
) -> None:
    """Enforce the k-anonymity promise: no prior summarises fewer than `min_buyers` people."""
    if prior.level == "default":
        if not allow_default or prior.buyers != 0:
            raise ValueError(f"{where}: only the shop prior may be the default, with 0 buyers")
    elif prior.buyers < min_buyers:
        raise ValueError(f"{where}: {prior.buyers} buyers, fewer than min_buyers={min_buyers}")
    interval = prior.interval
    if interval.level == "default":
        if interval.repeaters != 0:
            raise ValueError(f"{where}.interval: the default prior counts 0 repeaters")
    elif interval.repeaters < min_buyers:
        raise ValueError(
            f"{where}.interval: {interval.repeaters} repeaters, fewer than min_buyers={min_buyers}"
        )
