"""Reorder priors from purchase logs: collapse, fallbacks, k-anonymity, shipping (issue 5)."""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client_sdk.bundle import REORDER_PRIORS_FILE, read_bundle
from client_sdk.errors import DigestMismatchError
from client_sdk.priors import (
    DueParams,
    ReorderPriors,
    bundle_priors,
    encode_priors,
    parse_priors,
)
from model_export.errors import ExportError
from model_export.export import export_bundle
from server.data import load_catalog, load_interactions
from server.errors import DataError
from server.reorder import (
    EPOCH_ORDINAL,
    PriorConfig,
    categories_from_catalog,
    collapse_purchase_days,
    compute_priors,
)
from server.reorder_tuning import reorder_priors_file
from tests.conftest import FIXED_NOW, make_tiny_model, tiny_catalog

ROOT = Path(__file__).resolve().parents[2]
COMPLETE_JOURNEY = ROOT.parent / "shared" / "datasets" / "completejourney_sample"
START = date(2025, 1, 6)

Row = tuple[str, str, date, float]


def write_log(path: Path, rows: list[Row], *, events: dict[int, str] | None = None) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "item_id", "timestamp", "quantity", "event"])
        for line, (user, item, day, quantity) in enumerate(rows):
            event = (events or {}).get(line, "purchase")
            writer.writerow([user, item, f"{day.isoformat()}T10:00:00Z", f"{quantity:g}", event])
    return path


def tiny_bundle_with(out: Path, key: Ed25519PrivateKey, extra_files: dict[str, bytes]) -> Path:
    history = (np.array([0, 1], np.int64), np.array([1.0, 0.25], np.float32))
    path, _ = export_bundle(
        make_tiny_model(),
        out,
        catalog=tiny_catalog(),
        model_version=1,
        signing_keys=[key],
        sample_histories=[history],
        now=FIXED_NOW,
        extra_files=extra_files,
    )
    return path


def every(user: str, item: str, days: int, times: int, *, quantity: float = 1.0) -> list[Row]:
    return [(user, item, START + timedelta(days=days * n), quantity) for n in range(times)]


def priors_of(
    tmp_path: Path,
    rows: list[Row],
    config: PriorConfig,
    *,
    categories: dict[str, str] | None = None,
    params: DueParams | None = None,
) -> ReorderPriors:
    days = collapse_purchase_days(load_interactions(write_log(tmp_path / "log.csv", rows)))
    return compute_priors(days, categories=categories, config=config, params=params)


def test_purchases_collapse_to_one_row_per_user_item_and_day(tmp_path: Path) -> None:
    rows = [
        ("u1", "milk", START, 1.0),
        ("u1", "milk", START, 2.0),  # same day: one purchase day of 3 units
        ("u1", "milk", START + timedelta(days=7), 1.0),
        ("u1", "tea", START, 1.0),  # a view: dropped
    ]
    log = write_log(tmp_path / "log.csv", rows, events={3: "view"})
    days = collapse_purchase_days(load_interactions(log))
    assert [days.items[i] for i in days.item] == ["milk", "milk"]
    assert (days.day + EPOCH_ORDINAL).tolist() == [START.toordinal(), START.toordinal() + 7]
    assert days.quantity.tolist() == [3.0, 1.0]
    only_views = write_log(tmp_path / "views.csv", rows[:1], events={0: "view"})
    with pytest.raises(DataError, match="no purchase events"):
        collapse_purchase_days(load_interactions(only_views))


def test_item_priors_known_answers(tmp_path: Path) -> None:
    rows = [r for u in range(12) for r in every(f"u{u}", "milk", 7, 4, quantity=2)]
    rows += [r for u in range(12) for r in every(f"u{u}", "cake", 30, 1)]  # never again
    config = PriorConfig(min_buyers=10, repeat_prior_strength=0.0)
    priors = priors_of(tmp_path, rows, config)
    milk, cake = priors.items["milk"], priors.items["cake"]
    assert (milk.level, milk.buyers, milk.repeat_probability) == ("item", 12, 1.0)
    assert milk.usual_quantity == 2.0
    assert milk.interval.level == "item" and milk.interval.repeaters == 12
    assert milk.interval.median_days == pytest.approx(7.0)
    assert milk.interval.quantiles_days == (7.0,) * 5
    assert milk.interval.log_scale == config.min_log_scale  # no spread: the floor
    assert (cake.buyers, cake.repeat_probability) == (12, 0.0)
    assert cake.interval == priors.shop.interval  # nobody bought cake twice: the shop's
    assert priors.shop.repeat_probability == pytest.approx(0.5)  # 12 of 24 pairs


def test_repeat_probability_shrinks_towards_the_level_above(tmp_path: Path) -> None:
    rows = [r for u in range(12) for r in every(f"u{u}", "milk", 7, 2)]
    rows += [r for u in range(12) for r in every(f"u{u}", "cake", 7, 1)]
    priors = priors_of(tmp_path, rows, PriorConfig(repeat_prior_strength=12.0))
    shop = priors.shop.repeat_probability
    assert shop == pytest.approx(0.5)
    assert priors.items["milk"].repeat_probability == pytest.approx((12 + 12 * shop) / 24)


def test_no_prior_describes_fewer_than_min_buyers(tmp_path: Path) -> None:
    rows = [r for u in range(9) for r in every(f"u{u}", "rare", 5, 3)]  # 9 buyers: too few
    rows += [r for u in range(12) for r in every(f"v{u}", "common", 10, 1)]  # no repeaters
    rows += [r for u in range(12) for r in every(f"w{u}", "staple", 14, 3)]
    categories = {"rare": "tea", "common": "tea", "staple": "bread"}
    priors = priors_of(tmp_path, rows, PriorConfig(min_buyers=10), categories=categories)
    assert "rare" not in priors.items
    assert priors.item_categories["rare"] == "tea"
    tea = priors.categories["tea"]
    assert tea.buyers == 21 and tea.interval.level == "shop"  # only 9 repeaters in tea
    assert priors.items["common"].interval.level == "shop"
    assert priors.prior_for("rare") is tea
    for prior in [priors.shop, *priors.categories.values(), *priors.items.values()]:
        assert prior.buyers >= 10 and prior.interval.repeaters >= 10
    tiny = priors_of(tmp_path, rows[:12], PriorConfig(min_buyers=10))
    assert (tiny.shop.level, tiny.shop.buyers, tiny.items) == ("default", 0, {})


def test_a_heavy_buyer_cannot_drag_the_interval(tmp_path: Path) -> None:
    rows = [r for u in range(10) for r in every(f"u{u}", "oil", 30, 2)]
    rows += every("heavy", "oil", 2, 101)  # 100 intervals of 2 days, weighing one buyer
    priors = priors_of(tmp_path, rows, PriorConfig(min_buyers=10))
    assert priors.items["oil"].interval.median_days == pytest.approx(30.0)


def test_priors_are_shipped_signed_in_the_bundle(
    tmp_path: Path, signing_key: Ed25519PrivateKey
) -> None:
    rows = [r for u in range(12) for r in every(f"u{u}", "milk", 7, 4)]
    priors = priors_of(tmp_path, rows, PriorConfig(), params=DueParams(prior_strength=4.0))
    data = encode_priors(priors)
    bundle_dir = tiny_bundle_with(tmp_path / "bundle", signing_key, {REORDER_PRIORS_FILE: data})
    bundle = read_bundle(bundle_dir, [signing_key.public_key()], now=FIXED_NOW)
    assert bundle_priors(bundle) == priors
    (bundle_dir / REORDER_PRIORS_FILE).write_bytes(data.replace(b'"buyers":12', b'"buyers":99'))
    with pytest.raises(DigestMismatchError, match=REORDER_PRIORS_FILE):
        read_bundle(bundle_dir, [signing_key.public_key()], now=FIXED_NOW)
    with pytest.raises(ExportError, match="would replace a bundle file"):
        tiny_bundle_with(tmp_path / "other", signing_key, {"model.onnx": b"x"})


def test_reorder_priors_file_trusts_exact_own_rhythms(tmp_path: Path) -> None:
    # every shopper keeps an exact rhythm of their own (7 to 11 days): the validation cut must
    # choose the weakest prior, whose dates are exact
    rows = [r for u in range(30) for r in every(f"u{u}", f"i{u % 3}", 7 + u % 5, 20)]
    interactions = load_interactions(write_log(tmp_path / "log.csv", rows))
    priors = parse_priors(reorder_priors_file(interactions))
    assert set(priors.items) == {"i0", "i1", "i2"}
    assert priors.params.prior_strength == 0.5


@pytest.mark.skipif(not COMPLETE_JOURNEY.is_dir(), reason="../shared/datasets is not present")
def test_complete_journey_priors_keep_k_anonymity(tmp_path: Path) -> None:
    buyers: dict[str, set[str]] = defaultdict(set)
    rows = []
    with (COMPLETE_JOURNEY / "transactions_sample.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            stamp = row["transaction_timestamp"].replace(" ", "T")
            quantity = float(row["quantity"]) or 1.0
            rows.append((row["household_id"], row["product_id"], stamp, quantity))
            buyers[row["product_id"]].add(row["household_id"])
    log = tmp_path / "cj.csv"
    with log.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "item_id", "timestamp", "quantity"])
        writer.writerows(rows)
    catalog = tmp_path / "catalog.csv"
    with (
        (COMPLETE_JOURNEY / "products.csv").open(encoding="utf-8") as src,
        catalog.open("w", encoding="utf-8", newline="") as dst,
    ):
        writer = csv.writer(dst)
        writer.writerow(["item_id", "title", "category"])
        for row in csv.DictReader(src):
            writer.writerow([row["product_id"], row["product_type"] or "?", row["department"]])
    days = collapse_purchase_days(load_interactions(log))
    categories = categories_from_catalog(load_catalog(catalog))
    priors = compute_priors(days, categories=categories, config=PriorConfig(min_buyers=10))
    assert priors.items and priors.categories
    for item_id, prior in priors.items.items():
        assert len(buyers[item_id]) == prior.buyers >= 10
        assert prior.interval.repeaters >= 10 and 0.0 <= prior.repeat_probability <= 1.0
    assert 30 < priors.shop.interval.median_days < 120  # the README's median gap is 70 days
    assert math.isfinite(priors.shop.interval.log_scale)
    assert np.isclose(
        parse_priors(encode_priors(priors)).shop.repeat_probability, priors.shop.repeat_probability
    )
