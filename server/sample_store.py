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

logger = logging.getLogger(__name__)

_Floats = npt.NDArray[np.float64]
_Ints = npt.NDArray[np.int64]
_Rng = np.random.Generator

_DAY = 86_400
_EVENTS = ("view", "cart", "purchase")
_INTERACTIONS_HEADER = ("user_id", "item_id", "timestamp", "event", "quantity")
_CATALOG_HEADER = ("item_id", "title", "category", "group", "consumable", "price")

# [Category] brands, then one row per kind (indented lines continue a row): key, cadence in days
# (0: durable), price range, season, catalog share, mean extra products a shopper adopts, variant
# style (one, pack, size, option), nouns | variants. Novels get generated titles ("*").
_KIND_TABLE = """
[Coffee & Tea] Kaffa Roasters;Morning Ritual;Alto Monte;Bluehill
coffee_beans   12 6 30 flat 4 .3 pack Arabica Coffee Beans;Espresso Roast Beans;Decaf Beans
               | 250 g;500 g;1 kg
tea            20 3 12 winter 3 .5 pack Green Tea;Earl Grey Tea;Chamomile Tea | 20-pack;80-pack
coffee_machine 0 60 600 gifts 2 0 one Espresso Machine;Bean-to-Cup Machine;Drip Coffee Maker
descaler       60 6 15 flat 1 0 pack Coffee Machine Descaler | 250 ml;500 ml
[Baby] Little Sprout;Nestling;Tiny Steps;Cuddle & Co
diapers        10 9 30 flat 3 0 size Diapers;Overnight Diapers | 1;2;3;4;5
wipes          14 3 15 flat 2 0 pack Baby Wipes;Sensitive Baby Wipes | 1-pack;6-pack
formula        10 12 30 flat 2 0 pack Infant Formula;Follow-On Formula | 400 g;800 g
stroller       0 150 700 flat 2 0 option Stroller;Travel System Stroller | Black;Grey;Navy
[Pet Food & Supplies] Happy Paws;Barkley;Whisker Way;Wild Trail
dog_food       21 10 60 flat 3 0 pack Adult Dog Food;Puppy Dry Food;Grain-Free Dog Food
               | 2 kg;6 kg;12 kg
dog_treats     18 3 12 flat 2 .3 pack Dog Dental Chews;Dog Training Treats | 150 g;400 g
dog_bed        0 30 150 flat 1 0 size Orthopedic Dog Bed;Dog Crate | S;M;L
cat_food       14 8 30 flat 3 .3 pack Wet Cat Food;Dry Cat Food;Senior Cat Food | 12-pack;24-pack
[Household Cleaning] Clearwave;Fresh Home;Sparkle;Greenleaf
detergent      28 6 20 flat 3 0 pack Laundry Detergent;Colour Detergent;Laundry Pods | 1.5 l;3 l
dish_tabs      35 7 20 flat 2 0 pack Dishwasher Tablets;Eco Dishwasher Tablets | 40-pack;80-pack
paper_towels   21 4 14 flat 2 0 pack Paper Towels;Toilet Paper | 4 rolls;12 rolls
[Personal Care] Purely;Edge & Co;Glow;Nordic Care
razor_blades   30 8 30 flat 2 0 pack Razor Blades;Sensitive Razor Cartridges | 4-pack;8-pack
shampoo        35 3 12 flat 3 .3 pack Shampoo;Conditioner;Body Wash | 250 ml;500 ml
[Snacks & Pantry] Harvest Table;Crunch Co;Olive Grove;Sweet Meadow
snacks         14 2 15 flat 4 .8 pack Salted Almonds;Dark Chocolate;Protein Bars;Granola
               | 1-pack;6-pack
pantry         30 3 20 flat 4 1 pack Olive Oil;Smoked Paprika;Basmati Rice;Pasta | 1-pack;3-pack
[Electronics] Voltix;Soundwave;Pixelon;Amperon
batteries      90 4 20 flat 2 0 pack AA Batteries;AAA Batteries | 4-pack;8-pack;24-pack
headphones     0 30 300 gifts 3 0 option Wireless Headphones;Noise-Cancelling Headphones;Earbuds
               | Black;White;Blue
console        0 250 500 gifts 1 0 one Game Console;Handheld Game Console
controller     0 40 70 gifts 1 0 option Wireless Controller | Black;White;Red
video_game     0 20 70 gifts 4 1.5 one Kart Rally;Starfall Odyssey;Dungeon Depths;Pitch Masters
[Cameras & Photo] Nordvik;Lumetra;Kairo;Optima
camera         0 300 1800 gifts 3 0 one Mirrorless Camera;Compact Camera;DSLR Camera
camera_battery 0 25 60 flat 2 0 one Camera Battery;Spare Camera Battery
sd_card        0 10 60 flat 2 0 pack SD Card;microSD Card | 64 GB;128 GB;256 GB
camera_bag     0 30 120 flat 1 0 option Camera Bag;Camera Backpack | Black;Olive
[Office & Printing] Printwell;Inkline;Papyra
printer        0 80 350 flat 2 0 one Inkjet Printer;Laser Printer
ink            60 15 60 flat 2 0 pack Black Ink Cartridge;Colour Ink Cartridge | standard;XL
[Books] A. Lindqvist;M. Okafor;R. Moreau;S. Tanaka;J. Alvarez;E. Novak
novel          0 8 25 gifts 6 1.5 option * | Paperback;Hardcover
cookbook       0 15 40 gifts 2 .3 option Weeknight Suppers;The Bread Book;Simple Italian
               | Paperback;Hardcover
[Toys & Games] Brickly;Playmore;Toytopia;Wonderwood
toys           0 10 80 december 5 1 one Building Blocks Set;Wooden Train Set;Plush Bear;Board Game
baby_toys      0 8 40 flat 2 .5 one Soft Rattle;Activity Gym;Stacking Cups
[Garden] GreenThumb;Bloomfield;Yardcraft;Terra Verde
seeds          30 2 8 spring 3 .8 pack Tomato Seeds;Wildflower Seeds;Basil Seeds | 10 g;50 g
fertiliser     45 5 25 spring 2 0 pack Plant Food;Lawn Fertiliser | 1 l;5 l
garden_tools   0 10 80 spring 3 1 one Pruning Shears;Garden Hose;Hand Trowel;Watering Can
lawn_mower     0 150 600 spring 1 0 one Cordless Lawn Mower;Robot Lawn Mower
[Kitchenware] ChefLine;Cast & Co;Copperpot;Kitchenly
cookware       0 20 150 gifts 3 .6 option Frying Pan;Saucepan;Cast Iron Skillet | 20 cm;24 cm
appliance      0 50 400 gifts 2 0 one Stand Mixer;Blender;Air Fryer
[Sports & Outdoors] Stride;Summit;Peakform;Trailhead
running_shoes  0 60 180 flat 3 0 size Trail Runner Shoe;Road Running Shoe | 39;40;41;42;43;44
energy_gels    21 6 30 summer 2 0 pack Energy Gel;Electrolyte Tablets | 6-pack;24-pack
fitness        0 15 120 january 2 .3 one Yoga Mat;Adjustable Dumbbells;Resistance Bands
[Apparel] Northwear;Urban Loop;Basics & Co;Fjellwear
tshirt         0 10 60 flat 3 .5 size Running T-Shirt;Cotton T-Shirt;Hoodie | S;M;L;XL
jacket         0 60 250 winter 2 0 size Winter Jacket;Rain Jacket | S;M;L;XL
"""
_NOVEL_WORDS = (
    "Silent;Last;Hidden;Northern;Paper;Winter;Golden;Quiet",
    "Harbour;Orchard;Letter;Garden;Lighthouse;Station;River;Promise",
)
_PRODUCT_LINES = "Classic;Pro;Essential;Premium;Original;Select;Signature;Ultra;Prime;Studio"
# persona, prevalence (%), then kind and adoption probability pairs; "everyday" is everyone's.
_PERSONA_TABLE = """
everyday     0  detergent .15 dish_tabs .08 paper_towels .15 shampoo .15 razor_blades .08 snacks .1
                batteries .08 novel .12 toys .15 headphones .05 tshirt .12 jacket .12 pantry .06
new_parent   12 diapers .95 wipes .7 formula .5 stroller .35 baby_toys .5 paper_towels .4
                detergent .4
dog_owner    10 dog_food .95 dog_treats .4 dog_bed .35
cat_owner    8  cat_food .95
coffee_lover 12 coffee_beans .9 tea .25 coffee_machine .3 descaler .15
photographer 9  camera .7 camera_battery .12 sd_card .2 camera_bag .12
gardener     9  seeds .8 fertiliser .55 garden_tools .7 lawn_mower .25
gamer        9  console .35 video_game .7 headphones .45 controller .15 batteries .3 snacks .4
home_cook    10 cookware .6 appliance .3 pantry .9 cookbook .45 dish_tabs .4
runner       8  running_shoes .75 energy_gels .7 fitness .3 tshirt .5
home_office  7  printer .4 ink .3 batteries .3 headphones .2
reader       6  novel .95 tea .35 cookbook .1
"""
# parent kind, then child kind and probability pairs: bought together or shortly after.
_COMPLEMENT_TABLE = """
camera         camera_battery .75 sd_card .65 camera_bag .45
printer        ink .9
coffee_machine coffee_beans .6 descaler .5
console        video_game .8 controller .5
dog_food       dog_treats .45
lawn_mower     fertiliser .4
running_shoes  energy_gels .3 tshirt .25
stroller       baby_toys .3
"""
# season: (peak day of the year, width in days, amplitude over a flat baseline of 1)
_SEASONS = {
    "flat": (0, 1, 0.0),
    "spring": (140, 40, 6.0),
    "summer": (190, 45, 1.5),
    "december": (350, 10, 8.0),
    "gifts": (350, 14, 1.5),
    "winter": (330, 35, 3.0),
    "january": (12, 18, 2.0),
}
_HOUR_WEIGHTS = np.array([2, 3, 4, 4, 5, 5, 4, 4, 5, 6, 8, 9, 9, 7, 4], dtype=np.float64)  # 8-22h


@dataclass(frozen=True, slots=True)
class _Kind:
    key: str
    category: str
    brands: tuple[str, ...]
    cadence_days: float
    price_range: tuple[float, float]
    season: str
    share: float
    extra_products: float
    style: str
    nouns: tuple[str, ...]
    variants: tuple[str, ...]


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(";") if part.strip())


def _rows(table: str) -> list[str]:
    """Lines of a table; indented lines continue the row above."""
    rows: list[str] = []
    for line in table.splitlines():
        if line[:1].isspace():
            rows[-1] += " " + line.strip()
        elif line:
            rows.append(line)
    return rows


def _parse_kinds() -> tuple[_Kind, ...]:
    kinds, category, brands = [], "", ""
    novels = tuple(f"The {a} {n}" for a in _split(_NOVEL_WORDS[0]) for n in _split(_NOVEL_WORDS[1]))
    for row in _rows(_KIND_TABLE):
        if row.startswith("["):
            category, _, brands = row[1:].partition("] ")
            continue
        key, cadence, lo, hi, season, share, extra, style, words = row.split(None, 8)
        nouns, _, variants = words.partition("|")
        settings = float(cadence), (float(lo), float(hi)), season, float(share), float(extra)
        nouns_list = novels if nouns.strip() == "*" else _split(nouns)
        kinds.append(
            _Kind(key, category, _split(brands), *settings, style, nouns_list, _split(variants))
        )
    return tuple(kinds)


_KINDS = _parse_kinds()
_KIND_INDEX = {kind.key: k for k, kind in enumerate(_KINDS)}


def _parse_pairs(table: str) -> list[tuple[str, float, list[tuple[int, float]]]]:
    """Rows of `name [number] kind p kind p ...`."""
    parsed = []
    for row in _rows(table):
        name, *tokens = row.split()
        number = float(tokens.pop(0)) if tokens[0][0].isdigit() else 0.0
        pairs = zip(tokens[::2], tokens[1::2], strict=True)
        parsed.append((name, number, [(_KIND_INDEX[k], float(p)) for k, p in pairs]))
    return parsed


_PERSONAS = _parse_pairs(_PERSONA_TABLE)
_COMPLEMENTS = [
    (_KIND_INDEX[parent], child, p)
    for parent, _, pairs in _parse_pairs(_COMPLEMENT_TABLE)
    for child, p in pairs
]


@dataclass(frozen=True, slots=True)
class SampleStore:
    """Paths of a generated sample shop."""

    interactions: Path
    catalog: Path


@dataclass(frozen=True, slots=True)
class _Catalog:
    rows: list[tuple[str, ...]]  # the catalog.csv rows
    item_kind: _Ints
    item_product: _Ints
    prod_kind: _Ints
    prod_first: _Ints  # a product's variants are items prod_first .. prod_first + prod_len - 1
    prod_len: _Ints
    prod_offset: _Ints  # index of the first variant in its kind's variant list
    prod_brand: _Ints
    prod_pop: _Floats


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


def _sample(rng: _Rng, weights: _Floats, n: int) -> _Ints:
    """n indices drawn in proportion to weights."""
    cdf = np.cumsum(weights)
    found = np.searchsorted(cdf / cdf[-1], rng.random(n), side="right")
    return np.minimum(found, weights.size - 1).astype(np.int64)


def _unique_title(rng: _Rng, kind: _Kind, brand: str, used: set[str]) -> str:
    books = kind.category == "Books"
    for attempt in range(6):
        noun = kind.nouns[int(rng.integers(len(kind.nouns)))]
        if books or attempt == 0:
            title = f"{noun} by {brand}" if books else f"{brand} {noun}"
        else:
            title = f"{brand} {rng.choice(_split(_PRODUCT_LINES))} {noun}"
        if title not in used:
            break
    base, number = title, 2
    while title in used:
        title, number = f"{base} {'Vol.' if books else 'Mk'} {number}", number + 1
    used.add(title)
    return title


def _variant_title(base: str, style: str, variant: str) -> str:
    if style == "one" or not variant:
        return base
    if style == "pack":
        return f"{base} {variant}"
    return f"{base}, size {variant}" if style == "size" else f"{base}, {variant}"


def _build_catalog(rng: _Rng, n_items: int) -> _Catalog:
    """Products in kind order first (every kind gets one), then drawn by catalog share."""
    kind_draws = _sample(rng, np.array([kind.share for kind in _KINDS]), n_items)
    rows: list[tuple[str, ...]] = []
    products: list[tuple[int, int, int, int, int]] = []  # kind, first item, length, offset, brand
    brands: dict[str, int] = {}
    used: set[str] = set()
    while len(rows) < n_items:
        k = len(products) if len(products) < len(_KINDS) else int(kind_draws[len(products)])
        kind = _KINDS[k]
        n_all = max(1, len(kind.variants))
        length = n_all if rng.random() < 0.5 else int(rng.integers(1, n_all + 1))
        uncovered = max(0, len(_KINDS) - len(products) - 1)
        length = min(length, n_items - len(rows) - uncovered)
        offset = int(rng.integers(0, n_all - length + 1))
        brand = kind.brands[int(rng.integers(len(kind.brands)))]
        base = _unique_title(rng, kind, brand, used)
        price = float(np.exp(rng.uniform(*np.log(kind.price_range))))
        for j in range(offset, offset + length):
            item_id = f"sku-{len(rows) + 1:05d}"
            scaled = price * (1.0 + 0.8 * j) if kind.style == "pack" else price
            group = f"g-{len(products) + 1:05d}" if length > 1 else f"g-{item_id}"
            title = _variant_title(base, kind.style, (kind.variants or ("",))[j])
            consumable = "true" if kind.cadence_days > 0 else "false"
            price_text = f"{max(0.99, round(scaled) - 0.01):.2f}"
            rows.append((item_id, title, kind.category, group, consumable, price_text))
        brand_id = brands.setdefault(brand, len(brands))
        products.append((k, len(rows) - length, length, offset, brand_id))
    prod = np.array(products, dtype=np.int64)
    pop = np.zeros(len(products))
    for k in range(len(_KINDS)):
        members = np.flatnonzero(prod[:, 0] == k)
        pop[members] = (1.0 + rng.permutation(members.size)) ** -1.1  # Zipf within the kind
    item_product = np.repeat(np.arange(len(products)), prod[:, 2])
    kind, first, length, offset, brand = prod.T
    return _Catalog(rows, kind[item_product], item_product, kind, first, length, offset, brand, pop)


def _draw_shoppers(rng: _Rng, n: int, days: int) -> _Shoppers:
    table = np.zeros((len(_PERSONAS), len(_KINDS)))
    for p, (_, _, pairs) in enumerate(_PERSONAS):
        for k, prob in pairs:
            table[p, k] = prob
    picks = 1 + _sample(rng, np.array([row[1] for row in _PERSONAS[1:]]), 3 * n).reshape(n, 3)
    active = rng.random((n, 3)) < np.array([1.0, 0.4, 0.12])  # one, two or three personas
    miss = np.tile(1.0 - table[0], (n, 1))
    for j in range(3):
        miss *= np.where(active[:, j, None], 1.0 - table[picks[:, j]], 1.0)
    engagement = np.clip(rng.lognormal(-1.5, 1.0, n), 0.05, 4.0)
    join = np.where(rng.random(n) < 0.35, rng.integers(0, days - 14, n), 0)
    adopt_p = 1.0 - miss ** engagement[:, None]
    return _Shoppers(1.0 - miss, adopt_p, engagement, join.astype(np.int64), rng.random(n))


def _choose_items(
    rng: _Rng, cat: _Catalog, k: int, q: _Floats, brand: _Ints | None = None
) -> _Ints:
    """Products of kind k by popularity, of `brand` where it has any (accessories fit)."""
    prods = np.flatnonzero(cat.prod_kind == k)
    chosen = np.empty(q.size, dtype=np.int64)
    brand = np.full(q.size, -1, dtype=np.int64) if brand is None else brand
    for b in np.unique(brand):
        sel = brand == b
        weights = cat.prod_pop[prods] * np.where(cat.prod_brand[prods] == b, 1000.0, 1.0)
        chosen[sel] = prods[_sample(rng, weights, int(sel.sum()))]
    length = cat.prod_len[chosen]
    if _KINDS[k].style == "size":  # the shopper's own size, or the nearest this product has
        size = (q * len(_KINDS[k].variants)).astype(np.int64)
        local: _Ints = np.clip(size - cat.prod_offset[chosen], 0, length - 1)
    else:  # a fixed favourite per (shopper, product)
        local = (((q * 7.31 + chosen * 0.618034) % 1.0) * length).astype(np.int64)
    return (cat.prod_first[chosen] + local).astype(np.int64)


def _time_of_day(rng: _Rng, n: int) -> _Ints:
    hours = 8 + _sample(rng, _HOUR_WEIGHTS, n)
    return hours * 3600 + rng.integers(0, 3600, n)


def _season_table(start: datetime.date, days: int) -> dict[str, _Floats]:
    day_of_year = (start.timetuple().tm_yday - 1 + np.arange(days)) % 365
    table = {}
    for name, (peak, width, amplitude) in _SEASONS.items():
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


def _adopt(
    rng: _Rng, cat: _Catalog, shoppers: _Shoppers, seasons: dict[str, _Floats]
) -> _Adoptions:
    """Each shopper's own products and the time of their first purchase."""
    days = seasons["flat"].size
    users, kinds = np.nonzero(rng.random(shoppers.adopt_p.shape) < shoppers.adopt_p)
    parts = []
    for k, kind in enumerate(_KINDS):
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
    rng: _Rng, cat: _Catalog, shoppers: _Shoppers, base: _Adoptions, days: int
) -> _Adoptions:
    """Complements of base adoptions, same session or days later; then one per (shopper, item)."""
    parts = [(base.user, base.item, base.second, base.rotation)]
    for parent, child, prob in _COMPLEMENTS:
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
    rng: _Rng, cat: _Catalog, adopted: _Adoptions, seasons: dict[str, _Floats]
) -> _Purchases:
    """Durables once (rarely twice); consumables again and again at a personal cadence."""
    days = seasons["flat"].size
    cadence = np.array([kind.cadence_days for kind in _KINDS])[cat.item_kind[adopted.item]]
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
    shortest_gap = 0.3 * min(kind.cadence_days for kind in _KINDS if kind.cadence_days > 0)
    chunk = 1 + int(1e6 * shortest_gap / days)  # bounds the (chunk, series length) arrays
    for lo in range(0, repeat.size, chunk):
        parts.append(_repeat(rng, cat, adopted, repeat[lo : lo + chunk], seasons))
    return _Purchases(*_columns(parts))


def _repeat(
    rng: _Rng, cat: _Catalog, adopted: _Adoptions, idx: _Ints, seasons: dict[str, _Floats]
) -> tuple[_Ints, ...]:
    """Purchase series of consumable adoptions: noisy gaps, skips, stops, off-season lulls."""
    days, n, kind = seasons["flat"].size, idx.size, cat.item_kind[adopted.item[idx]]
    cadence = np.array([k.cadence_days for k in _KINDS])[kind] * adopted.rotation[idx]
    cadence *= np.clip(rng.lognormal(0.0, 0.3, n), 0.5, 2.5)  # the shopper's own rhythm
    start = adopted.second[idx] / _DAY
    m = int(np.ceil((days - start.min()) / (0.6 * cadence.min()))) + 1
    quantity = 1 + (rng.random((n, m)) < 0.15) + (rng.random((n, m)) < 0.03)
    gaps = cadence[:, None] * np.clip(rng.lognormal(0.0, 0.25, (n, m - 1)), 0.6, 1.8)
    when = start[:, None] + np.hstack([np.zeros((n, 1)), np.cumsum(gaps * quantity[:, :-1], 1)])
    stop = np.where(rng.random(n) < 0.4, start + rng.random(n) * (days - start), days)
    skip = rng.beta(2.0, 3.0, n)  # how often they buy it elsewhere
    day = np.minimum(when, days - 1).astype(np.int64)
    names = list(_SEASONS)
    season = np.array([names.index(k.season) for k in _KINDS])[kind]
    lull = np.stack([seasons[name] / seasons[name].max() for name in names])
    keep = (when < stop[:, None]) & (rng.random((n, m)) >= skip[:, None])
    keep &= rng.random((n, m)) < lull[season[:, None], day]
    keep[:, 0] = True
    r, col = np.nonzero(keep)
    second = np.where(
        col == 0, adopted.second[idx[r]], day[r, col] * _DAY + _time_of_day(rng, r.size)
    )
    return adopted.user[idx[r]], adopted.item[idx[r]], second, quantity[r, col], 1 * (col == 0)


def _sessions(rng: _Rng, cat: _Catalog, bought: _Purchases) -> _Events:
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
    durable = np.array([k.cadence_days == 0 for k in _KINDS])[cat.item_kind[bought.item]]
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


def _browse(rng: _Rng, cat: _Catalog, shoppers: _Shoppers, seasons: dict[str, _Floats]) -> _Events:
    """Views that do not convert, mostly within the shopper's interests; some abandoned carts."""
    days = seasons["flat"].size
    visits = rng.poisson(50.0 * shoppers.engagement * (days - shoppers.join_day) / days)
    user = np.repeat(np.arange(visits.size), visits)
    interest = np.cumsum(shoppers.affinity + 0.01, axis=1)
    interest = interest / interest[:, -1:] + np.arange(visits.size)[:, None]  # row r: (r, r + 1]
    found = np.searchsorted(interest.ravel(), user + rng.random(user.size), side="right")
    kind = np.minimum(found - user * len(_KINDS), len(_KINDS) - 1)
    item, second = np.zeros_like(user), np.zeros_like(user)
    for k, spec in enumerate(_KINDS):
        sel = np.flatnonzero(kind == k)
        item[sel] = _choose_items(rng, cat, k, rng.random(sel.size))
        day = _seasonal_days(rng, seasons[spec.season], shoppers.join_day[user[sel]])
        second[sel] = day * _DAY + _time_of_day(rng, sel.size)
    cart = np.flatnonzero(rng.random(user.size) < 0.2)
    ones = np.ones(user.size, np.int64)
    views = (user, item, second, 0 * ones, ones)
    carted = (user[cart], item[cart], second[cart] + rng.integers(30, 600, cart.size), ones[cart])
    return _Events(*_columns([views, (*carted, ones[cart])]))


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
    events: _Events, start: datetime.date, n_shoppers: int, n_items: int
) -> Iterator[tuple[str, ...]]:
    """Rows sorted by timestamp, user_id, item_id (ids are zero-padded: text order = number)."""
    order = np.lexsort((events.event, events.item, events.user, events.second))
    width = max(5, len(str(n_shoppers)))
    users = [f"u-{u:0{width}d}" for u in range(1, n_shoppers + 1)]
    items = [f"sku-{i:05d}" for i in range(1, n_items + 1)]
    for lo in range(0, order.size, 100_000):  # bounded memory for large shops
        part = order[lo : lo + 100_000]
        when = np.datetime64(start, "s") + events.second[part].astype("timedelta64[s]")
        stamps: list[str] = np.datetime_as_string(when, unit="s").tolist()
        columns = (events.user[part], events.item[part], events.event[part], events.quantity[part])
        for t, u, i, e, q in zip(stamps, *(c.tolist() for c in columns), strict=True):
            yield users[u], items[i], f"{t}Z", _EVENTS[e], str(q)


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
    cat = _build_catalog(rng, n_items)
    shoppers = _draw_shoppers(rng, n_shoppers, days)
    bought = _purchase(rng, cat, _adopt(rng, cat, shoppers, seasons), seasons)
    parts = [_sessions(rng, cat, bought), _browse(rng, cat, shoppers, seasons)]
    events = _Events(*_columns([[getattr(p, f) for f in _Events.__slots__] for p in parts]))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    store = SampleStore(interactions=out / "interactions.csv", catalog=out / "catalog.csv")
    _write_atomically(store.catalog, _CATALOG_HEADER, cat.rows)
    rows = _interaction_rows(events, start, n_shoppers, n_items)
    _write_atomically(store.interactions, _INTERACTIONS_HEADER, rows)
    elapsed = time.perf_counter() - began
    logger.info(
        "sample store: %d items, %d interactions in %.2fs", n_items, events.user.size, elapsed
    )
    return store
