"""Tests for server.sample_store: format, determinism, validation and the shop's known structure."""

from __future__ import annotations

import csv
import datetime
import itertools
import re
import statistics
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.sample_store import SampleStore, generate_sample_store

INTERACTIONS_HEADER = ["user_id", "item_id", "timestamp", "event", "quantity", "gift"]
CATALOG_HEADER = ["item_id", "title", "category", "group", "consumable", "price", "kind"]
TIMESTAMP = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class Shop:
    store: SampleStore
    catalog: dict[str, dict[str, str]]
    interactions: list[dict[str, str]]
    purchases: dict[tuple[str, str], list[datetime.datetime]]  # (user, item) -> times, in order

    def buyers(self, title_pattern: str) -> set[str]:
        pattern = re.compile(title_pattern)
        return {u for u, i in self.purchases if pattern.search(self.catalog[i]["title"])}


def generate_small(out_dir: Path, seed: int = 7) -> SampleStore:
    return generate_sample_store(out_dir, seed=seed, n_items=120, n_shoppers=150, days=120)


def parse_time(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text, TIMESTAMP)


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def load(store: SampleStore) -> Shop:
    _, catalog = read_csv(store.catalog)
    _, interactions = read_csv(store.interactions)
    purchases: dict[tuple[str, str], list[datetime.datetime]] = defaultdict(list)
    for row in interactions:
        if row["event"] == "purchase":
            purchases[row["user_id"], row["item_id"]].append(parse_time(row["timestamp"]))
    by_id = {row["item_id"]: row for row in catalog}
    return Shop(store, by_id, interactions, dict(purchases))


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Shop:
    """The default-size shop, generated once for the structural tests."""
    return load(generate_sample_store(tmp_path_factory.mktemp("default")))


def assert_well_formed(
    shop: Shop, n_items: int, n_shoppers: int, start: datetime.date, days: int
) -> None:
    assert len(shop.catalog) == n_items
    assert list(shop.catalog) == [f"sku-{i:05d}" for i in range(1, n_items + 1)]
    user_ids = {f"u-{u:05d}" for u in range(1, n_shoppers + 1)}
    first = datetime.datetime.combine(start, datetime.time())
    last = first + datetime.timedelta(days=days)
    keys = []
    for row in shop.interactions:
        assert row["user_id"] in user_ids
        assert row["item_id"] in shop.catalog
        assert row["event"] in {"view", "cart", "purchase"}
        assert int(row["quantity"]) >= 1
        if row["event"] == "view":
            assert row["quantity"] == "1"
        assert row["gift"] in {"", "1"}
        if row["gift"]:
            assert (row["event"], row["quantity"]) == ("purchase", "1")
        assert first <= parse_time(row["timestamp"]) < last
        keys.append((row["timestamp"], row["user_id"], row["item_id"]))
    assert keys == sorted(keys)


def test_same_arguments_give_identical_files_and_another_seed_differs(tmp_path: Path) -> None:
    one = generate_small(tmp_path / "one")
    two = generate_small(tmp_path / "two")
    other = generate_small(tmp_path / "other", seed=8)

    assert one.catalog.read_bytes() == two.catalog.read_bytes()
    assert one.interactions.read_bytes() == two.interactions.read_bytes()
    assert one.interactions.read_bytes() != other.interactions.read_bytes()
    assert one.catalog.read_bytes() != other.catalog.read_bytes()


def test_writes_exact_headers_into_a_created_directory_without_leftovers(tmp_path: Path) -> None:
    out = tmp_path / "new" / "dir"
    store = generate_small(out)

    assert store == SampleStore(interactions=out / "interactions.csv", catalog=out / "catalog.csv")
    assert sorted(p.name for p in out.iterdir()) == ["catalog.csv", "interactions.csv"]
    assert read_csv(store.catalog)[0] == CATALOG_HEADER
    assert read_csv(store.interactions)[0] == INTERACTIONS_HEADER


def test_replaces_existing_files(tmp_path: Path) -> None:
    (tmp_path / "catalog.csv").write_text("stale\n")
    (tmp_path / "interactions.csv").write_text("stale\n")
    store = generate_small(tmp_path)

    assert read_csv(store.catalog)[0] == CATALOG_HEADER
    assert read_csv(store.interactions)[0] == INTERACTIONS_HEADER
    assert len(list(tmp_path.iterdir())) == 2


def test_small_shop_respects_every_argument(tmp_path: Path) -> None:
    start = datetime.date(2024, 6, 15)
    store = generate_sample_store(tmp_path, n_items=80, n_shoppers=30, days=40, start=start)

    small = load(store)
    assert_well_formed(small, n_items=80, n_shoppers=30, start=start, days=40)
    assert {row["event"] for row in small.interactions} == {"view", "cart", "purchase"}


def test_smallest_catalog_still_covers_every_category(tmp_path: Path) -> None:
    store = generate_sample_store(tmp_path, n_items=50, n_shoppers=10, days=28)

    small = load(store)
    assert_well_formed(small, n_items=50, n_shoppers=10, start=datetime.date(2025, 1, 1), days=28)
    assert len({row["category"] for row in small.catalog.values()}) == 15


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32), n_items=st.integers(50, 400), n_shoppers=st.integers(10, 60))
def test_any_small_shop_is_well_formed(seed: int, n_items: int, n_shoppers: int) -> None:
    with tempfile.TemporaryDirectory() as out:
        store = generate_sample_store(
            Path(out), seed=seed, n_items=n_items, n_shoppers=n_shoppers, days=30
        )
        assert_well_formed(load(store), n_items, n_shoppers, datetime.date(2025, 1, 1), days=30)


def test_catalog_rows_are_complete_and_readable(shop: Shop) -> None:
    rows = list(shop.catalog.values())
    categories = Counter(row["category"] for row in rows)
    titles = [row["title"] for row in rows]

    assert 10 <= len(categories) <= 15
    assert {row["consumable"] for row in rows} == {"true", "false"}
    assert all(re.fullmatch(r"\d+\.\d\d", row["price"]) for row in rows)
    assert all(row["group"] and row["title"] for row in rows)
    cameras = {row["title"] for row in rows if row["kind"] == "camera"}
    assert cameras and all("Camera" in title for title in cameras)
    # Only products that replace each other have a kind: a second novel is no substitute.
    assert {row["kind"] for row in rows if row["category"] in ("Books", "Toys & Games")} == {""}
    assert len(set(titles)) == len(titles)
    assert any(re.search(r"Coffee Beans 1 kg$", t) for t in titles)
    assert any(re.search(r"AA Batteries \d+-pack$", t) for t in titles)


def test_default_shop_is_sized_like_a_small_shop(shop: Shop) -> None:
    events = Counter(row["event"] for row in shop.interactions)

    assert_well_formed(shop, 1000, 2000, datetime.date(2025, 1, 1), 365)
    assert 40_000 <= len(shop.interactions) <= 80_000
    assert 2.0 <= events["view"] / events["purchase"] <= 4.0
    assert events["purchase"] < events["cart"] < events["view"]


def test_popularity_is_long_tailed_and_most_shoppers_light(shop: Shop) -> None:
    item_buys = Counter(i for (_, i), times in shop.purchases.items() for _ in times)
    user_buys = Counter(u for (u, _), times in shop.purchases.items() for _ in times)
    top_tenth = sum(n for _, n in item_buys.most_common(len(shop.catalog) // 10))

    assert top_tenth > 0.4 * sum(item_buys.values())
    assert max(user_buys.values()) > 8 * statistics.median(user_buys.values())


def test_coffee_is_rebought_at_a_personal_cadence(shop: Shop) -> None:
    gaps = []
    repeaters = 0
    for (_, item), times in shop.purchases.items():
        if "Beans" in shop.catalog[item]["title"] and len(times) > 1:
            repeaters += 1
            gaps += [(b - a).total_seconds() / 86_400 for a, b in itertools.pairwise(times)]

    assert repeaters >= 30
    assert 5 <= statistics.median(gaps) <= 40


def test_durables_are_almost_never_bought_twice(shop: Shop) -> None:
    counts = [
        len(times)
        for (_, item), times in shop.purchases.items()
        if shop.catalog[item]["consumable"] == "false"
    ]

    assert len(counts) > 500
    assert sum(n > 1 for n in counts) / len(counts) < 0.03


def test_shoppers_keep_to_one_variant_of_a_group(shop: Shop) -> None:
    sizes = Counter(row["group"] for row in shop.catalog.values())
    variants: dict[tuple[str, str], set[str]] = defaultdict(set)
    for user, item in shop.purchases:
        group = shop.catalog[item]["group"]
        if sizes[group] > 1:
            variants[user, group].add(item)

    assert max(sizes.values()) >= 3
    assert len(variants) > 500
    assert sum(len(items) == 1 for items in variants.values()) / len(variants) > 0.9


def test_camera_buyers_buy_camera_batteries(shop: Shop) -> None:
    everyone = {user for user, _ in shop.purchases}
    cameras = shop.buyers(r"(Mirrorless|Compact|DSLR) Camera$")
    batteries = shop.buyers(r"Camera Battery$")
    base_rate = len(batteries) / len(everyone)

    assert len(cameras) >= 20
    assert len(batteries & cameras) / len(cameras) > 3 * base_rate


def first_purchases(
    shop: Shop, title_pattern: str
) -> dict[str, list[tuple[datetime.datetime, str]]]:
    """user -> (first purchase time, brand) of each item whose title matches."""
    found: dict[str, list[tuple[datetime.datetime, str]]] = defaultdict(list)
    for (user, item), times in shop.purchases.items():
        title = shop.catalog[item]["title"]
        if re.search(title_pattern, title):
            found[user].append((times[0], title.split()[0]))
    return found


def test_camera_batteries_fit_the_camera_and_come_with_it(shop: Shop) -> None:
    cameras = first_purchases(shop, r"(Mirrorless|Compact|DSLR) Camera$")
    batteries = first_purchases(shop, r"Camera Battery$")
    both = [(cameras[user], batteries[user]) for user in cameras if user in batteries]
    same_brand = [any(c[1] == b[1] for c in cs for b in bs) for cs, bs in both]
    fortnight = datetime.timedelta(days=14)
    soon = [any(c[0] <= b[0] <= c[0] + fortnight for c in cs for b in bs) for cs, bs in both]

    assert len(both) >= 20
    assert sum(same_brand) > 0.7 * len(both)
    assert sum(soon) > 0.5 * len(both)


def test_garden_sells_in_summer_and_toys_in_december(shop: Shop) -> None:
    months: dict[str, Counter[int]] = defaultdict(Counter)
    for (_, item), times in shop.purchases.items():
        months[shop.catalog[item]["category"]].update(t.month for t in times)
    garden, toys = months["Garden"], months["Toys & Games"]

    assert sum(garden[m] for m in (5, 6, 7, 8)) > 2 * sum(garden[m] for m in (11, 12, 1, 2))
    assert toys[12] > 2 * max(toys[m] for m in range(1, 12))


def test_gifts_are_flagged_mostly_before_christmas_from_the_gift_kinds(shop: Shop) -> None:
    gifts = [row for row in shop.interactions if row["gift"]]
    purchases = [row for row in shop.interactions if row["event"] == "purchase"]
    assert 0.01 < len(gifts) / len(purchases) < 0.2
    december = sum(parse_time(row["timestamp"]).month == 12 for row in gifts)
    assert december > 0.5 * len(gifts)
    categories = {shop.catalog[row["item_id"]]["category"] for row in gifts}
    assert "Pet Food & Supplies" not in categories and "Toys & Games" in categories


def test_purchases_often_follow_a_view_in_the_same_session(shop: Shop) -> None:
    last_view: dict[tuple[str, str], datetime.datetime] = {}
    in_session = purchases = 0
    for row in shop.interactions:
        key, when = (row["user_id"], row["item_id"]), parse_time(row["timestamp"])
        if row["event"] == "view":
            last_view[key] = when
        elif row["event"] == "purchase":
            purchases += 1
            in_session += key in last_view and when - last_view[key] <= datetime.timedelta(hours=1)

    assert in_session > 0.3 * purchases
    assert len(set(last_view) - set(shop.purchases)) > 0.5 * len(last_view)  # browsing only


@pytest.mark.parametrize(
    ("arguments", "name"),
    [
        ({"n_items": 49}, "n_items"),
        ({"n_items": 20_001}, "n_items"),
        ({"n_shoppers": 9}, "n_shoppers"),
        ({"n_shoppers": 100_001}, "n_shoppers"),
        ({"days": 27}, "days"),
        ({"days": 3661}, "days"),
        ({"seed": -1}, "seed"),
    ],
)
def test_out_of_range_arguments_are_refused_by_name(
    tmp_path: Path, arguments: dict[str, Any], name: str
) -> None:
    with pytest.raises(ValueError, match=rf"^{name} "):
        generate_sample_store(tmp_path / "out", **arguments)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("arguments", "name"),
    [
        ({"n_items": "100"}, "n_items"),
        ({"n_shoppers": True}, "n_shoppers"),
        ({"days": 30.0}, "days"),
        ({"start": datetime.datetime(2025, 1, 1)}, "start"),
    ],
)
def test_wrongly_typed_arguments_are_refused_by_name(
    tmp_path: Path, arguments: dict[str, Any], name: str
) -> None:
    with pytest.raises(TypeError, match=rf"^{name} "):
        generate_sample_store(tmp_path, **arguments)
