"""A deterministic sample shop for `facetwo demo` and the tests: catalog.csv + interactions.csv.

It stands in for the input files at the start of the data flow (load -> train -> ...). The same
arguments give byte-identical files, nothing is downloaded, and each file is replaced atomically.

The generative story:
- 45 product kinds in 15 categories; each product has a brand and often several variants (sizes,
  colours, pack sizes) sharing a `group`; popularity within a kind is long-tailed (Zipf).
- Each shopper mixes one to three personas (new parent, dog owner, coffee lover, photographer,
  gardener, gamer, home cook, runner, ...) over everyday needs. Engagement is log-normal, so a few
  shoppers are heavy and most are light; some join during the year.
- A shopper adopts products of the kinds their personas favour and keeps to one variant (their
  size). Durables are bought once, on a seasonal day (garden in spring, toys in December);
  consumables are re-bought at a personal cadence with log-normal noise, skips and sometimes a stop.
- A purchase triggers complements, often in the same session and of the same brand:
  camera -> battery, SD card, bag; printer -> ink; coffee machine -> beans, descaler.
- Purchases come in sessions (view -> cart -> purchase); shoppers also browse without buying.
- About a third of the shoppers also buy gifts (the `gift` column is 1): mostly before
  Christmas, some for birthdays, from the gift kinds (books, games, kitchen, cameras, toys),
  chosen regardless of their own personas.

The kinds, personas, complements and seasons are tables in `server._sample_catalog`, which also
builds the catalog; this module draws the shoppers and their events and writes both files.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import logging
import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ._sample_catalog import (
    CATALOG_HEADER,
    COMPLEMENTS,
    HOUR_WEIGHTS,
    KINDS,
    PERSONAS,
    SEASONS,
    Catalog,
    build_catalog,
    sample_indices,
)

logger = logging.getLogger(__name__)

_Floats = npt.NDArray[np.float64]
_Ints = npt.NDArray[np.int64]
_Rng = np.random.Generator

_DAY = 86_400
_EVENTS = ("view", "cart", "purchase")
_INTERACTIONS_HEADER = ("user_id", "item_id", "timestamp", "event", "quantity", "gift")
_GIFT_SEASONS = ("gifts", "december")
"""Kinds people give: the gift categories and toys."""


@dataclass(frozen=True, slots=True)
class SampleStore:
    """Paths of a generated sample shop."""

    interactions: Path
    catalog: Path


@dataclass(frozen=True, slots=True)
class _Shoppers:
    affinity: _Floats  # (shoppers, kinds): how much each kind matters to the shopper
    adopt_p: _Floats  # (shoppers, kinds): probability of adopting the kind this period
    engagement: _Floats
    join_day: _Ints
    size_q: _Floats  # the shopper's size quantile, for sized variants


@dataclass(frozen=True, slots=True)
class _Adoptions:
    user: _Ints
    item: _Ints
    second: _Ints  # the first purchase, in seconds from the start
    rotation: _Ints  # consumables of one kind bought in rotation stretch each other's cadence


@dataclass(frozen=True, slots=True)
class _Purchases:
    user: _Ints
    item: _Ints
    second: _Ints
    quantity: _Ints
    first: _Ints  # 1 for the shopper's first purchase of the item


@dataclass(frozen=True, slots=True)
class _Events:
    user: _Ints
    item: _Ints
    second: _Ints
    event: _Ints  # index into _EVENTS
    quantity: _Ints


def _columns(parts: Iterable[Sequence[npt.NDArray[np.generic]]]) -> list[_Ints]:
    return [np.concatenate(column).astype(np.int64) for column in zip(*parts, strict=True)]


def _draw_shoppers(rng: _Rng, n: int, days: int) -> _Shoppers:
    table = np.zeros((len(PERSONAS), len(KINDS)))
    for p, (_, _, pairs) in enumerate(PERSONAS):
        for k, prob in pairs:
            table[p, k] = prob
    picks = 1 + sample_indices(rng, np.array([row[1] for row in PERSONAS[1:]]), 3 * n).reshape(n, 3)
    active = rng.random((n, 3)) < np.array([1.0, 0.4, 0.12])  # one, two or three personas
    miss = np.tile(1.0 - table[0], (n, 1))
    for j in range(3):
        miss *= np.where(active[:, j, None], 1.0 - table[picks[:, j]], 1.0)
    engagement = np.clip(rng.lognormal(-1.5, 1.0, n), 0.05, 4.0)
    join = np.where(rng.random(n) < 0.35, rng.integers(0, days - 14, n), 0)
    adopt_p = 1.0 - miss ** engagement[:, None]
    return _Shoppers(1.0 - miss, adopt_p, engagement, join.astype(np.int64), rng.random(n))


def _choose_items(rng: _Rng, cat: Catalog, k: int, q: _Floats, brand: _Ints | None = None) -> _Ints:
    """Products of kind k by popularity, of `brand` where it has any (accessories fit)."""
    prods = np.flatnonzero(cat.prod_kind == k)
    chosen = np.empty(q.size, dtype=np.int64)
    brand = np.full(q.size, -1, dtype=np.int64) if brand is None else brand
    for b in np.unique(brand):
        sel = brand == b
        weights = cat.prod_pop[prods] * np.where(cat.prod_brand[prods] == b, 1000.0, 1.0)
        chosen[sel] = prods[sample_indices(rng, weights, int(sel.sum()))]
    length = cat.prod_len[chosen]
    if KINDS[k].style == "size":  # the shopper's own size, or the nearest this product has
        size = (q * len(KINDS[k].variants)).astype(np.int64)
        local: _Ints = np.clip(size - cat.prod_offset[chosen], 0, length - 1)
    else:  # a fixed favourite per (shopper, product)
        local = (((q * 7.31 + chosen * 0.618034) % 1.0) * length).astype(np.int64)
    return (cat.prod_first[chosen] + local).astype(np.int64)


def _time_of_day(rng: _Rng, n: int) -> _Ints:
    hours = 8 + sample_indices(rng, HOUR_WEIGHTS, n)
    return hours * 3600 + rng.integers(0, 3600, n)


def _season_table(start: datetime.date, days: int) -> dict[str, _Floats]:
    day_of_year = (start.timetuple().tm_yday - 1 + np.arange(days)) % 365
    table = {}
    for name, (peak, width, amplitude) in SEASONS.items():
        dist = np.abs(day_of_year - peak)
        dist = np.minimum(dist, 365 - dist)
        table[name] = 1.0 + amplitude * np.exp(-0.5 * (dist / width) ** 2)
    return table


def _seasonal_days(rng: _Rng, weights: _Floats, lo: _Ints) -> _Ints:
    """Days in [lo, len(weights)) drawn in proportion to the seasonal weights."""
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    below = np.where(lo > 0, cdf[np.maximum(lo - 1, 0)], 0.0)
    found = np.searchsorted(cdf, below + rng.random(lo.size) * (1.0 - below), side="right")
    return np.minimum(found, weights.size - 1).astype(np.int64)


def _adopt(rng: _Rng, cat: Catalog, shoppers: _Shoppers, seasons: dict[str, _Floats]) -> _Adoptions:
    """Each shopper's own products and the time of their first purchase."""
    days = seasons["flat"].size
    users, kinds = np.nonzero(rng.random(shoppers.adopt_p.shape) < shoppers.adopt_p)
    parts = []
    for k, kind in enumerate(KINDS):
        adopters = users[kinds == k]
        count = 1 + rng.poisson(kind.extra_products * np.sqrt(shoppers.engagement[adopters]))
        s = np.repeat(adopters, count)
        join = shoppers.join_day[s]
        day = _seasonal_days(rng, seasons[kind.season], np.zeros_like(s))
        if kind.cadence_days > 0 and kind.season == "flat":  # most are regulars already
            settle = (rng.random(s.size) * kind.cadence_days).astype(np.int64)
            regular = np.minimum(join + settle, days - 1)
            day = np.where((rng.random(s.size) < 0.6) | (day < join), regular, day)
        keep = day >= join  # otherwise it was bought before they joined
        s, day, rotation = s[keep], day[keep], np.repeat(count, count)[keep]
        items = _choose_items(rng, cat, k, shoppers.size_q[s])
        parts.append((s, items, day * _DAY + _time_of_day(rng, s.size), rotation))
    return _add_complements(rng, cat, shoppers, _Adoptions(*_columns(parts)), days)


def _add_complements(
    rng: _Rng, cat: Catalog, shoppers: _Shoppers, base: _Adoptions, days: int
) -> _Adoptions:
    """Complements of base adoptions, same session or days later; then one per (shopper, item)."""
    parts = [(base.user, base.item, base.second, base.rotation)]
    for parent, child, prob in COMPLEMENTS:
        idx = np.flatnonzero(cat.item_kind[base.item] == parent)
        idx = idx[rng.random(idx.size) < prob]
        later_day = base.second[idx] // _DAY + 1 + rng.exponential(7.0, idx.size).astype(np.int64)
        second = np.where(
            rng.random(idx.size) < 0.6,
            base.second[idx] + rng.integers(60, 900, idx.size),
            later_day * _DAY + _time_of_day(rng, idx.size),
        )
        s = base.user[idx]
        brand = cat.prod_brand[cat.item_product[base.item[idx]]]
        items = _choose_items(rng, cat, child, shoppers.size_q[s], brand)
        keep = second < days * _DAY
        parts.append((s[keep], items[keep], second[keep], np.ones(int(keep.sum()), np.int64)))
    user, item, second, rotation = _columns(parts)
    key = user * cat.item_kind.size + item
    order = np.lexsort((second, key))
    _, first = np.unique(key[order], return_index=True)  # the earliest adoption wins
    earliest = order[first]
    return _Adoptions(user[earliest], item[earliest], second[earliest], rotation[earliest])


def _purchase(
    rng: _Rng, cat: Catalog, adopted: _Adoptions, seasons: dict[str, _Floats]
) -> _Purchases:
    """Durables once (rarely twice); consumables again and again at a personal cadence."""
    days = seasons["flat"].size
    cadence = np.array([kind.cadence_days for kind in KINDS])[cat.item_kind[adopted.item]]
    durable = np.flatnonzero(cadence == 0)
    user, item, second = adopted.user[durable], adopted.item[durable], adopted.second[durable]
    ones = np.ones(durable.size, np.int64)
    parts: list[tuple[_Ints, ...]] = [
        (user, item, second, ones + (rng.random(ones.size) < 0.04), ones)
    ]
    again = np.flatnonzero(rng.random(durable.size) < 0.02)  # lost, broken, or a gift
    again_day = second[again] // _DAY + 30 + rng.integers(0, days, again.size)
    again, again_day = again[again_day < days], again_day[again_day < days]
    again_second = again_day * _DAY + _time_of_day(rng, again.size)
    parts.append((user[again], item[again], again_second, ones[again], 0 * ones[again]))
    repeat = np.flatnonzero(cadence > 0)
    shortest_gap = 0.3 * min(kind.cadence_days for kind in KINDS if kind.cadence_days > 0)
    chunk = 1 + int(1e6 * shortest_gap / days)  # bounds the (chunk, series length) arrays
    for lo in range(0, repeat.size, chunk):
        parts.append(_repeat(rng, cat, adopted, repeat[lo : lo + chunk], seasons))
    return _Purchases(*_columns(parts))


def _repeat(
    rng: _Rng, cat: Catalog, adopted: _Adoptions, idx: _Ints, seasons: dict[str, _Floats]
) -> tuple[_Ints, ...]:
    """Purchase series of consumable adoptions: noisy gaps, skips, stops, off-season lulls."""
    days, n, kind = seasons["flat"].size, idx.size, cat.item_kind[adopted.item[idx]]
    cadence = np.array([k.cadence_days for k in KINDS])[kind] * adopted.rotation[idx]
    cadence *= np.clip(rng.lognormal(0.0, 0.3, n), 0.5, 2.5)  # the shopper's own rhythm
    start = adopted.second[idx] / _DAY
    m = int(np.ceil((days - start.min()) / (0.6 * cadence.min()))) + 1
    quantity = 1 + (rng.random((n, m)) < 0.15) + (rng.random((n, m)) < 0.03)
    gaps = cadence[:, None] * np.clip(rng.lognormal(0.0, 0.25, (n, m - 1)), 0.6, 1.8)
    when = start[:, None] + np.hstack([np.zeros((n, 1)), np.cumsum(gaps * quantity[:, :-1], 1)])
    stop = np.where(rng.random(n) < 0.4, start + rng.random(n) * (days - start), days)
    skip = rng.beta(2.0, 3.0, n)  # how often they buy it elsewhere
    day = np.minimum(when, days - 1).astype(np.int64)
    names = list(SEASONS)
    season = np.array([names.index(k.season) for k in KINDS])[kind]
    lull = np.stack([seasons[name] / seasons[name].max() for name in names])
    keep = (when < stop[:, None]) & (rng.random((n, m)) >= skip[:, None])
    keep &= rng.random((n, m)) < lull[season[:, None], day]
    keep[:, 0] = True
    r, col = np.nonzero(keep)
    second = np.where(
        col == 0, adopted.second[idx[r]], day[r, col] * _DAY + _time_of_day(rng, r.size)
    )
    return adopted.user[idx[r]], adopted.item[idx[r]], second, quantity[r, col], 1 * (col == 0)


def _sessions(rng: _Rng, cat: Catalog, bought: _Purchases) -> _Events:
    """Views and carts around purchases (view -> cart -> purchase), research views days before."""
    n, first, product = bought.user.size, bought.first == 1, cat.item_product[bought.item]
    cart_gap = rng.integers(20, 600, n)
    view_gap = cart_gap + rng.integers(60, 1800, n)
    viewed = rng.random(n) < np.where(first, 0.85, 0.3)  # reorders often skip browsing
    carted = rng.random(n) < np.where(first, 0.95, 0.8)
    length, position = cat.prod_len[product], bought.item - cat.prod_first[product]
    sibling = first & (length > 1) & (rng.random(n) < 0.3)  # compared another size or colour
    step = 1 + (rng.random(n) * np.maximum(length - 1, 1)).astype(np.int64)
    other = bought.item - position + (position + step) % length
    durable = np.array([k.cadence_days == 0 for k in KINDS])[cat.item_kind[bought.item]]
    research_second = bought.second - rng.integers(1, 10, n) * _DAY + rng.integers(-3600, 3600, n)
    research = first & durable & (rng.random(n) < 0.35) & (research_second >= 0)
    view, cart, purchase, ones = (np.full(n, e, np.int64) for e in (0, 1, 2, 1))
    parts = [
        (bought.user, bought.item, bought.second, purchase, bought.quantity),
        (bought.user, bought.item, bought.second - cart_gap, cart, ones),
        (bought.user, bought.item, bought.second - view_gap, view, ones),
        (bought.user, other, bought.second - view_gap - 300, view, ones),
        (bought.user, bought.item, research_second, view, ones),
    ]
    masks = [ones == 1, carted, viewed, sibling, research]
    return _Events(*_columns([[c[m] for c in p] for p, m in zip(parts, masks, strict=True)]))


def _browse(rng: _Rng, cat: Catalog, shoppers: _Shoppers, seasons: dict[str, _Floats]) -> _Events:
    """Views that do not convert, mostly within the shopper's interests; some abandoned carts."""
    days = seasons["flat"].size
    visits = rng.poisson(50.0 * shoppers.engagement * (days - shoppers.join_day) / days)
    user = np.repeat(np.arange(visits.size), visits)
    interest = np.cumsum(shoppers.affinity + 0.01, axis=1)
    interest = interest / interest[:, -1:] + np.arange(visits.size)[:, None]  # row r: (r, r + 1]
    found = np.searchsorted(interest.ravel(), user + rng.random(user.size), side="right")
    kind = np.minimum(found - user * len(KINDS), len(KINDS) - 1)
    item, second = np.zeros_like(user), np.zeros_like(user)
    for k, spec in enumerate(KINDS):
        sel = np.flatnonzero(kind == k)
        item[sel] = _choose_items(rng, cat, k, rng.random(sel.size))
        day = _seasonal_days(rng, seasons[spec.season], shoppers.join_day[user[sel]])
        second[sel] = day * _DAY + _time_of_day(rng, sel.size)
    cart = np.flatnonzero(rng.random(user.size) < 0.2)
    ones = np.ones(user.size, np.int64)
    views = (user, item, second, 0 * ones, ones)
    carted = (user[cart], item[cart], second[cart] + rng.integers(30, 600, cart.size), ones[cart])
    return _Events(*_columns([views, (*carted, ones[cart])]))


def _gifts(rng: _Rng, cat: Catalog, shoppers: _Shoppers, seasons: dict[str, _Floats]) -> _Events:
    """Purchases for someone else: mostly before Christmas, some for birthdays, from the gift
    kinds, chosen regardless of the buyer's own interests (that is what makes them gifts)."""
    days, n = seasons["flat"].size, shoppers.engagement.size
    givers = np.flatnonzero(rng.random(n) < 0.35)
    user = np.repeat(givers, 1 + rng.poisson(np.sqrt(shoppers.engagement[givers])))
    join = shoppers.join_day[user]
    christmas = _seasonal_days(rng, seasons["december"] - 0.99, join)  # the peak alone
    birthday = join + (rng.random(user.size) * (days - join)).astype(np.int64)
    day = np.where(rng.random(user.size) < 0.7, christmas, np.minimum(birthday, days - 1))
    kinds = np.array([k for k, kind in enumerate(KINDS) if kind.season in _GIFT_SEASONS])
    weight = np.array([KINDS[k].share for k in kinds], np.float64)
    kind = kinds[sample_indices(rng, weight / weight.sum(), user.size)]
    item = np.zeros_like(user)
    for k in np.unique(kind).tolist():
        sel = np.flatnonzero(kind == k)
        item[sel] = _choose_items(rng, cat, k, rng.random(sel.size))
    second = day * _DAY + _time_of_day(rng, user.size)
    ones = np.ones(user.size, np.int64)
    return _Events(user, item, second, 2 * ones, ones)


def _write_atomically(path: Path, header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _interaction_rows(
    events: _Events, gift: _Ints, start: datetime.date, n_shoppers: int, n_items: int
) -> Iterator[tuple[str, ...]]:
    """Rows sorted by timestamp, user_id, item_id (ids are zero-padded: text order = number);
    `gift` is 1 for a purchase made as a gift."""
    order = np.lexsort((gift, events.event, events.item, events.user, events.second))
    width = max(5, len(str(n_shoppers)))
    users = [f"u-{u:0{width}d}" for u in range(1, n_shoppers + 1)]
    items = [f"sku-{i:05d}" for i in range(1, n_items + 1)]
    for lo in range(0, order.size, 100_000):  # bounded memory for large shops
        part = order[lo : lo + 100_000]
        when = np.datetime64(start, "s") + events.second[part].astype("timedelta64[s]")
        stamps: list[str] = np.datetime_as_string(when, unit="s").tolist()
        columns = (events.user[part], events.item[part], events.event[part], events.quantity[part])
        flags = gift[part].tolist()
        for t, u, i, e, q, g in zip(stamps, *(c.tolist() for c in columns), flags, strict=True):
            yield users[u], items[i], f"{t}Z", _EVENTS[e], str(q), "1" if g else ""


def _check_int(name: str, value: object, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in {lo}..{hi}, got {value}")


def generate_sample_store(
    out_dir: Path,
    *,
    seed: int = 7,
    n_items: int = 1000,
    n_shoppers: int = 2000,
    days: int = 365,
    start: datetime.date = datetime.date(2025, 1, 1),
) -> SampleStore:
    """Write a deterministic sample shop, catalog.csv and interactions.csv, into out_dir.

    Args:
        out_dir: directory for the two files; created if missing; the files are replaced atomically.
        seed: seeds the only random generator used: the same arguments give byte-identical files.
        n_items: catalog size, 50..20000.
        n_shoppers: number of shoppers, 10..100000 (some of them never interact).
        days: length of the period, 28..3660.
        start: first day of the period; timestamps (UTC) fall in [start, start + days).

    Returns:
        The paths of the files written.

    Raises:
        TypeError: an argument has the wrong type.
        ValueError: an argument is out of range; the message names it.
        OSError: out_dir cannot be created or written.
    """
    _check_int("seed", seed, 0, 2**63 - 1)
    _check_int("n_items", n_items, 50, 20_000)
    _check_int("n_shoppers", n_shoppers, 10, 100_000)
    _check_int("days", days, 28, 3660)
    if isinstance(start, datetime.datetime) or not isinstance(start, datetime.date):
        raise TypeError(f"start must be a datetime.date, got {type(start).__name__}")
    began = time.perf_counter()
    rng = np.random.default_rng(seed)
    seasons = _season_table(start, days)
    cat = build_catalog(rng, n_items)
    shoppers = _draw_shoppers(rng, n_shoppers, days)
    bought = _purchase(rng, cat, _adopt(rng, cat, shoppers, seasons), seasons)
    parts = [_sessions(rng, cat, bought), _browse(rng, cat, shoppers, seasons)]
    parts.append(_gifts(rng, cat, shoppers, seasons))
    events = _Events(*_columns([[getattr(p, f) for f in _Events.__slots__] for p in parts]))
    gift = np.zeros(events.user.size, np.int64)
    gift[events.user.size - parts[-1].user.size :] = 1
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    store = SampleStore(interactions=out / "interactions.csv", catalog=out / "catalog.csv")
    _write_atomically(store.catalog, CATALOG_HEADER, cat.rows)
    rows = _interaction_rows(events, gift, start, n_shoppers, n_items)
    _write_atomically(store.interactions, _INTERACTIONS_HEADER, rows)
    elapsed = time.perf_counter() - began
    logger.info(
        "sample store: %d items, %d interactions in %.2fs", n_items, events.user.size, elapsed
    )
    return store
