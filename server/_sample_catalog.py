"""The sample shop's catalog: the data tables, their parsing, and the catalog.csv rows.

Private to `server.sample_store`, which tells the generative story on top of it. The tables are
plain text so that the whole shop reads at a glance; they are parsed once, at import. Given the
same random generator state, `build_catalog` returns the same catalog.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

_Floats = npt.NDArray[np.float64]
_Ints = npt.NDArray[np.int64]
_Rng = np.random.Generator

CATALOG_HEADER = ("item_id", "title", "category", "group", "consumable", "price", "kind")
SUBSTITUTE_KINDS = frozenset(
    {"camera", "stroller", "console", "printer", "lawn_mower", "coffee_machine", "headphones"}
)
"""Kinds whose products replace each other (one camera is enough): the catalog's `kind` column
names them; books, games, toys, clothes and the rest are left without a kind."""

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
SEASONS = {
    "flat": (0, 1, 0.0),
    "spring": (140, 40, 6.0),
    "summer": (190, 45, 1.5),
    "december": (350, 10, 8.0),
    "gifts": (350, 14, 1.5),
    "winter": (330, 35, 3.0),
    "january": (12, 18, 2.0),
}
HOUR_WEIGHTS = np.array([2, 3, 4, 4, 5, 5, 4, 4, 5, 6, 8, 9, 9, 7, 4], dtype=np.float64)  # 8-22h


@dataclass(frozen=True, slots=True)
class Kind:
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


def _parse_kinds() -> tuple[Kind, ...]:
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
            Kind(key, category, _split(brands), *settings, style, nouns_list, _split(variants))
        )
    return tuple(kinds)


KINDS = _parse_kinds()
KIND_INDEX = {kind.key: k for k, kind in enumerate(KINDS)}


def _parse_pairs(table: str) -> list[tuple[str, float, list[tuple[int, float]]]]:
    """Rows of `name [number] kind p kind p ...`."""
    parsed = []
    for row in _rows(table):
        name, *tokens = row.split()
        number = float(tokens.pop(0)) if tokens[0][0].isdigit() else 0.0
        pairs = zip(tokens[::2], tokens[1::2], strict=True)
        parsed.append((name, number, [(KIND_INDEX[k], float(p)) for k, p in pairs]))
    return parsed


PERSONAS = _parse_pairs(_PERSONA_TABLE)
COMPLEMENTS = [
    (KIND_INDEX[parent], child, p)
    for parent, _, pairs in _parse_pairs(_COMPLEMENT_TABLE)
    for child, p in pairs
]


@dataclass(frozen=True, slots=True)
class Catalog:
    rows: list[tuple[str, ...]]  # the catalog.csv rows
    item_kind: _Ints
    item_product: _Ints
    prod_kind: _Ints
    prod_first: _Ints  # a product's variants are items prod_first .. prod_first + prod_len - 1
    prod_len: _Ints
    prod_offset: _Ints  # index of the first variant in its kind's variant list
    prod_brand: _Ints
    prod_pop: _Floats


def sample_indices(rng: _Rng, weights: _Floats, n: int) -> _Ints:
    """n indices drawn in proportion to weights."""
    cdf = np.cumsum(weights)
    found = np.searchsorted(cdf / cdf[-1], rng.random(n), side="right")
    return np.minimum(found, weights.size - 1).astype(np.int64)


def _unique_title(rng: _Rng, kind: Kind, brand: str, used: set[str]) -> str:
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


def build_catalog(rng: _Rng, n_items: int) -> Catalog:
    """Products in kind order first (every kind gets one), then drawn by catalog share."""
    kind_draws = sample_indices(rng, np.array([kind.share for kind in KINDS]), n_items)
    rows: list[tuple[str, ...]] = []
    products: list[tuple[int, int, int, int, int]] = []  # kind, first item, length, offset, brand
    brands: dict[str, int] = {}
    used: set[str] = set()
    while len(rows) < n_items:
        k = len(products) if len(products) < len(KINDS) else int(kind_draws[len(products)])
        kind = KINDS[k]
        n_all = max(1, len(kind.variants))
        length = n_all if rng.random() < 0.5 else int(rng.integers(1, n_all + 1))
        uncovered = max(0, len(KINDS) - len(products) - 1)
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
            sort = kind.key if kind.key in SUBSTITUTE_KINDS else ""
            rows.append((item_id, title, kind.category, group, consumable, price_text, sort))
        brand_id = brands.setdefault(brand, len(brands))
        products.append((k, len(rows) - length, length, offset, brand_id))
    prod = np.array(products, dtype=np.int64)
    pop = np.zeros(len(products))
    for k in range(len(KINDS)):
        members = np.flatnonzero(prod[:, 0] == k)
        pop[members] = (1.0 + rng.permutation(members.size)) ** -1.1  # Zipf within the kind
    item_product = np.repeat(np.arange(len(products)), prod[:, 2])
    kind, first, length, offset, brand = prod.T
    return Catalog(rows, kind[item_product], item_product, kind, first, length, offset, brand, pop)
