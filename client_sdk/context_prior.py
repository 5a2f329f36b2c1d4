"""Contextual popularity: what the crowd buys in this month and at this time of day.

Step "score" for an empty session. The server counts, from aggregate logs, how many distinct
shoppers bought each item in each month of the year and each part of the day
(`server.context_prior`) and ships the counts as `context_prior.json` in the signed bundle. With
no history and no item in view, the device ranks by them instead of the model's one global
popularity prior: garden tools in May, toys in December, coffee in the morning. This module owns
the file format, reader and writer both, so the two sides cannot drift.

Guarantees:

- `parse_context_prior` is pure and takes bytes that `read_bundle` already verified; anything
  malformed raises `FormatError` naming the field, with expected and found values;
- no cell describes a handful of people: an item is listed only with at least `min_users`
  distinct buyers, and each of its month / part-of-day counts is either 0 (fewer than
  `min_users`: not published) or at least `min_users`; the device refuses a file that breaks
  this;
- scoring is smoothed: a context lifts an item by (count + a) / (expected + a), where the
  expected count is the item's share of that context's volume and a = `smoothing`, so a thin
  cell barely moves an item, and an unpublished cell counts as what it could at most have been.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from ._formats import load_versioned_json
from .bundle import CONTEXT_PRIOR_FILE, GIFT_PRIOR_FILE, BundleCatalog, VerifiedBundle
from .errors import FormatError

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MONTH_NAMES",
    "PARTS_OF_DAY",
    "ContextPopularity",
    "ContextPrior",
    "ContextRanking",
    "bundle_context_popularity",
    "bundle_gift_popularity",
    "encode_context_prior",
    "parse_context_prior",
    "part_of_day",
]

FORMAT_NAME = "facetwo-context-prior"
FORMAT_VERSION = 1
MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
PARTS_OF_DAY = (("morning", 5, 12), ("afternoon", 12, 17), ("evening", 17, 22), ("night", 22, 5))
"""(name, first hour, end hour) in local time; night wraps past midnight."""
_PART_TEXT = ("in the morning", "in the afternoon", "in the evening", "at night")
_POPULAR = ("popular with other shoppers", "popular this {month}", "popular {part}")
_GIFTS = ("a popular gift", "a popular gift this {month}", "a popular gift {part}")
_CELLS = 1 + len(MONTH_NAMES) + len(PARTS_OF_DAY)
_MAX_ITEMS = 5_000_000
logger = logging.getLogger(__name__)
REASON_LIFT = 1.25
"""A context is named in the reason only when it lifts the item by at least this factor ..."""
REASON_Z = 3.0
"""... and its count stands out from the expected one by this many Poisson standard deviations,
so chance does not write "popular in the morning"."""


def part_of_day(hour: int) -> int:
    """The index in `PARTS_OF_DAY` of a local hour (0-23)."""
    for position, (_name, start, end) in enumerate(PARTS_OF_DAY):
        if (start <= hour < end) if start < end else (hour >= start or hour < end):
            return position
    raise ValueError(f"hour must be in [0, 23], found {hour}")  # pragma: no cover


@dataclass(frozen=True)
class ContextPrior:
    """Distinct-buyer counts per item: in all, per month of the year, per part of the day.

    Attributes:
        min_users: the k of k-anonymity: every published count is 0 or at least this.
        smoothing: pseudo-count a of the lift (count + a) / (expected + a).
        utc_offset_minutes: the shop's local offset the server binned timestamps in.
        month_totals: buyers per month summed over all items (the context's volume).
        part_totals: the same per part of the day.
        items: item id -> (all, 12 months, 4 parts of the day).
    """

    min_users: int
    smoothing: float
    utc_offset_minutes: int
    month_totals: tuple[int, ...]
    part_totals: tuple[int, ...]
    items: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 2 <= self.min_users <= 1_000_000:
            raise ValueError(f"min_users must be in [2, 1000000], found {self.min_users}")
        if not (math.isfinite(self.smoothing) and 0.0 < self.smoothing <= 1e6):
            raise ValueError(f"smoothing must be in (0, 1e6], found {self.smoothing!r}")
        if not -1440 < self.utc_offset_minutes < 1440:
            raise ValueError(
                f"utc_offset_minutes must be in (-1440, 1440), found {self.utc_offset_minutes}"
            )
        for name, totals, size in (
            ("month_totals", self.month_totals, len(MONTH_NAMES)),
            ("part_totals", self.part_totals, len(PARTS_OF_DAY)),
        ):
            if len(totals) != size or any(type(t) is not int or t < 0 for t in totals):
                raise ValueError(f"{name} must be {size} counts >= 0, found {list(totals)!r}")
        for item_id, cells in self.items.items():
            _check_cells(item_id, cells, self.min_users)
        object.__setattr__(self, "items", MappingProxyType(dict(self.items)))


def _check_cells(item_id: str, cells: Sequence[int], min_users: int) -> None:
    where = f"items.{item_id}"
    if len(cells) != _CELLS or any(type(c) is not int for c in cells):
        raise ValueError(f"{where}: expected {_CELLS} integer counts, found {list(cells)!r}")
    total = cells[0]
    if total < min_users:
        raise ValueError(f"{where}: {total} buyers in all is under min_users ({min_users})")
    for position, count in enumerate(cells[1:], start=1):
        if count != 0 and not min_users <= count <= total:
            raise ValueError(
                f"{where}[{position}]: expected 0 or a count in [{min_users}, {total}], "
                f"found {count}"
            )


def parse_context_prior(data: bytes, *, file_name: str = CONTEXT_PRIOR_FILE) -> ContextPrior:
    """Parse verified `context_prior.json` bytes (or `gift_prior.json`: same format).

    `file_name` names the file in error messages.

    Raises:
        FormatError: not JSON, an unknown format or version, or a field missing, of the wrong
            type, out of range, or breaking the `min_users` rule.
    """
    raw = load_versioned_json(data, file_name, FORMAT_NAME, FORMAT_VERSION)
    parts = raw.get("parts_of_day")
    if parts != [list(p) for p in PARTS_OF_DAY]:
        raise FormatError(
            f"{file_name}: field 'parts_of_day': expected {PARTS_OF_DAY}, found {parts}"
        )
    try:
        items = raw["items"]
        if not isinstance(items, dict) or len(items) > _MAX_ITEMS:
            raise ValueError(f"field 'items': expected an object of at most {_MAX_ITEMS} entries")
        smoothing = raw["smoothing"]
        if isinstance(smoothing, bool) or not isinstance(smoothing, (int, float)):
            raise ValueError(f"field 'smoothing': expected a number, found {smoothing!r}")
        return ContextPrior(
            min_users=_int(raw, "min_users"),
            smoothing=float(smoothing),
            utc_offset_minutes=_int(raw, "utc_offset_minutes"),
            month_totals=tuple(_list(raw, "month_totals")),
            part_totals=tuple(_list(raw, "part_totals")),
            items={str(k): tuple(_list(items, k, prefix="items.")) for k in items},
        )
    except KeyError as exc:
        raise FormatError(f"{file_name}: field {exc.args[0]!r} is missing") from exc
    except (ValueError, TypeError) as exc:
        raise FormatError(f"{file_name}: {exc}") from exc


def bundle_context_popularity(
    bundle: VerifiedBundle, catalog: BundleCatalog
) -> ContextPopularity | None:
    """The verified bundle's context prior bound to its catalog; None when it ships none, or
    none this SDK can read: the prior only orders an empty session's list, so a file of a newer
    format (or a broken one) costs the bundle nothing else (the model's global prior is used,
    with a warning)."""
    return _bundle_popularity(bundle, catalog, CONTEXT_PRIOR_FILE, _POPULAR)


def bundle_gift_popularity(
    bundle: VerifiedBundle, catalog: BundleCatalog
) -> ContextPopularity | None:
    """The verified bundle's gift prior (what is bought as a gift, in context) bound to its
    catalog; None when it ships none or none this SDK can read (gift mode then falls back to
    the context prior and says so)."""
    return _bundle_popularity(bundle, catalog, GIFT_PRIOR_FILE, _GIFTS)


def _bundle_popularity(
    bundle: VerifiedBundle, catalog: BundleCatalog, name: str, texts: tuple[str, str, str]
) -> ContextPopularity | None:
    data = bundle.files.get(name)
    if data is None:
        return None
    try:
        return ContextPopularity(parse_context_prior(data, file_name=name), catalog.index, texts)
    except FormatError as exc:
        logger.warning(
            "bundle v%d: %s unusable (%s); it is not used",
            bundle.manifest.model_version,
            name,
            exc,
        )
        return None


def _int(raw: Mapping[str, Any], name: str) -> int:
    value = raw[name]
    if type(value) is not int:
        raise ValueError(f"field {name!r}: expected an integer, found {value!r}")
    return value


def _list(raw: Mapping[str, Any], name: str, *, prefix: str = "") -> list[Any]:
    value = raw[name]
    if not isinstance(value, list):
        raise ValueError(f"field '{prefix}{name}': expected a list, found {type(value).__name__}")
    return value


def encode_context_prior(prior: ContextPrior) -> bytes:
    """The `context_prior.json` bytes for `prior` (what `parse_context_prior` reads back)."""
    document = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "min_users": prior.min_users,
        "smoothing": prior.smoothing,
        "utc_offset_minutes": prior.utc_offset_minutes,
        "parts_of_day": [list(p) for p in PARTS_OF_DAY],
        "month_totals": list(prior.month_totals),
        "part_totals": list(prior.part_totals),
        "items": {item_id: list(cells) for item_id, cells in sorted(prior.items.items())},
    }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True, slots=True)
class ContextRanking:
    """Every published item of the catalog in one context, best first."""

    index: npt.NDArray[np.int64]
    """model indices, best first."""
    score: npt.NDArray[np.float32]
    """estimated share of the context's buyers (global share times the context lifts)."""
    reason: tuple[str, ...]
    """one text per distinct reason code; `code` indexes it."""
    code: npt.NDArray[np.int8]


class ContextPopularity:
    """A context prior bound to a catalog: rankings per (month, part of day), cached."""

    def __init__(
        self,
        prior: ContextPrior,
        index_of: Mapping[str, int],
        texts: tuple[str, str, str] = _POPULAR,
    ) -> None:
        """Keep the catalog's published items (ids the model does not know are ignored).

        `texts` are the reasons: in general, in this month (``{month}``), in this part of the
        day (``{part}``).
        """
        self._texts = texts
        known = [(index_of[i], cells) for i, cells in prior.items.items() if i in index_of]
        known.sort()
        self.prior = prior
        self._index = np.array([i for i, _ in known], np.int64)
        counts = np.array([c for _, c in known], np.float64).reshape(-1, _CELLS)
        self._all = counts[:, 0]
        months, parts = np.array(prior.month_totals, float), np.array(prior.part_totals, float)
        self._log_share = np.log(np.maximum(self._all, 1.0) / max(self._all.sum(), 1.0))
        self._log_lift_month, self._named_month = self._log_lifts(counts[:, 1:13], months)
        self._log_lift_part, self._named_part = self._log_lifts(counts[:, 13:], parts)
        self._cache: dict[tuple[int, int, bool, bool], ContextRanking] = {}

    def __len__(self) -> int:
        return int(self._index.size)

    def _log_lifts(
        self, cells: npt.NDArray[np.float64], totals: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """log((count + a) / (expected + a)) per item and context, and whether a reason may
        name the context (a lift of `REASON_LIFT` or more, `REASON_Z` deviations above).

        A shopper who buys an item again counts in every context they bought it in, so an
        item's cells add up to more than its buyers; the expected count of a context is its
        share of the volume times the item's own cells summed. An unpublished cell (0) counts as
        at most min_users - 1, or its share of the item's buyers when that is smaller.
        """
        volume = totals.sum()
        if volume <= 0:
            return np.zeros_like(cells), np.zeros(cells.shape, bool)
        share = totals[None, :] / volume
        hidden = np.minimum(self._all[:, None] * share, self.prior.min_users - 1)
        count = np.where(cells > 0, cells, hidden)
        expected = count.sum(axis=1, keepdims=True) * share
        a = self.prior.smoothing
        lifts: npt.NDArray[np.float64] = np.log((count + a) / (expected + a))
        standing_out = (count - expected) >= REASON_Z * np.sqrt(expected + 1.0)
        return lifts, standing_out & (lifts >= math.log(REASON_LIFT))

    def rank(self, when: datetime, *, month: bool = True, part: bool = True) -> ContextRanking:
        """Published items ranked for the local time `when`, with the context that lifts each.

        `month` / `part` switch the two contexts (both off: global popularity by buyers).
        """
        m, p = when.month - 1, part_of_day(when.hour)
        key = (m, p, month, part)
        found = self._cache.get(key)
        if found is not None:
            return found
        zeros = np.zeros(self._index.size)
        lift_m = self._log_lift_month[:, m] if month else zeros
        lift_p = self._log_lift_part[:, p] if part else zeros
        score = self._log_share + lift_m + lift_p
        order = np.argsort(-score, kind="stable")
        named_m = self._named_month[:, m] if month else zeros.astype(bool)
        named_p = self._named_part[:, p] if part else zeros.astype(bool)
        code = np.zeros(self._index.size, np.int8)
        code[named_p & ~(named_m & (lift_m >= lift_p))] = 2
        code[named_m & ~(named_p & (lift_p > lift_m))] = 1
        texts = (
            self._texts[0],
            self._texts[1].format(month=MONTH_NAMES[m]),
            self._texts[2].format(part=_PART_TEXT[p]),
        )
        ranking = ContextRanking(
            self._index[order], np.exp(score[order]).astype(np.float32), texts, code[order]
        )
        if len(self._cache) >= 64:
            self._cache.clear()
        self._cache[key] = ranking
        return ranking
