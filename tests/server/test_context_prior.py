"""The context prior from aggregate timestamps (issue 6): known counts, the k-anonymity floor, the
local-time binning, and `build_bundle` shipping it signed."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client_sdk.bundle import CONTEXT_PRIOR_FILE, GIFT_PRIOR_FILE, read_bundle
from client_sdk.context_prior import parse_context_prior
from server import pipeline
from server.context_prior import (
    ContextPriorConfig,
    compute_context_prior,
    context_prior_file,
    gift_prior_file,
)
from server.data import Interactions, load_interactions
from server.pipeline import build_bundle
from server.sample_store import generate_sample_store
from server.training import TrainingResult, train_model

DEC_EVENING = datetime(2025, 12, 5, 19, 30, tzinfo=timezone.utc)
JUNE_MORNING = datetime(2025, 6, 5, 8, 0, tzinfo=timezone.utc)


def write_log(path: Path, rows: list[tuple[str, str, datetime, str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "item_id", "timestamp", "event"])
        for user, item, when, event in rows:
            writer.writerow([user, item, when.isoformat(), event])
    return path


@pytest.fixture
def log(tmp_path: Path) -> Path:
    rows = []
    # "toys": 12 buyers in December evenings (two of them twice), 5 in June mornings.
    for u in range(12):
        rows.append((f"u{u}", "toys", DEC_EVENING + timedelta(days=u % 3), "purchase"))
    rows += [("u0", "toys", DEC_EVENING, "purchase"), ("u1", "toys", DEC_EVENING, "purchase")]
    rows += [(f"j{u}", "toys", JUNE_MORNING, "purchase") for u in range(5)]
    # "kite": 9 buyers, under the floor; "tv": 30 viewers, 1 buyer (views do not count).
    rows += [(f"k{u}", "kite", JUNE_MORNING, "purchase") for u in range(9)]
    rows += [(f"v{u}", "tv", JUNE_MORNING, "view") for u in range(30)]
    rows.append(("v0", "tv", JUNE_MORNING, "purchase"))
    return write_log(tmp_path / "log.csv", rows)


def test_distinct_buyers_per_context_with_the_floor(log: Path) -> None:
    prior = compute_context_prior(load_interactions(log))
    assert set(prior.items) == {"toys"}  # kite: 9 buyers; tv: 1 buyer (30 only looked)
    months, parts = [0] * 12, [0, 0, 0, 0]
    months[11], parts[2] = 12, 12  # December evenings; June (5) and mornings (5) are too few
    assert prior.items["toys"] == (17, *months, *parts)
    # The volumes count every item, published or not: toys 12 + 5, kite 9, tv 1.
    assert prior.month_totals[11] == 12 and prior.month_totals[5] == 5 + 9 + 1
    assert prior.part_totals == (15, 0, 12, 0)


def test_a_lower_floor_publishes_more_and_views_count_when_asked(log: Path) -> None:
    data = load_interactions(log)
    prior = compute_context_prior(data, ContextPriorConfig(min_users=5, purchases_only=False))
    assert prior.items["toys"][6] == 5  # June
    assert prior.items["kite"][0] == 9
    assert prior.items["tv"][0] == 30


def test_timestamps_are_binned_in_the_shops_local_time(log: Path) -> None:
    data = load_interactions(log)
    # 19:30 UTC is 04:30 the next day at UTC+9: December nights, not evenings.
    prior = compute_context_prior(data, ContextPriorConfig(utc_offset_minutes=9 * 60))
    assert prior.items["toys"][13:] == (0, 0, 0, 12)
    with pytest.raises(ValueError, match="utc_offset_minutes"):
        ContextPriorConfig(utc_offset_minutes=24 * 60)
    with pytest.raises(ValueError, match="min_users"):
        ContextPriorConfig(min_users=1)


def test_the_file_reads_back_on_the_device(log: Path) -> None:
    data = load_interactions(log)
    assert parse_context_prior(context_prior_file(data)) == compute_context_prior(data)


def test_build_bundle_ships_it_signed(tmp_path: Path, signing_key: Ed25519PrivateKey) -> None:
    shop = generate_sample_store(tmp_path / "shop", n_items=100, n_shoppers=200, seed=3)
    report = build_bundle(
        shop.interactions,
        tmp_path / "bundle",
        signing_keys=[signing_key],
        catalog_path=shop.catalog,
        model_version=1,
    )
    bundle = read_bundle(report.bundle_dir, [signing_key.public_key()])
    shipped = parse_context_prior(bundle.files[CONTEXT_PRIOR_FILE])
    assert shipped == compute_context_prior(load_interactions(shop.interactions))
    assert shipped.items  # 200 shoppers: the most popular items pass the floor
    assert all(cells[0] >= 10 for cells in shipped.items.values())
    without = build_bundle(
        shop.interactions,
        tmp_path / "bare",
        signing_keys=[signing_key],
        model_version=1,
        context_prior=None,
    )
    bare = read_bundle(without.bundle_dir, [signing_key.public_key()])
    assert CONTEXT_PRIOR_FILE not in bare.files


def test_gift_prior_counts_only_gift_purchases_under_the_floor(tmp_path: Path) -> None:
    path = tmp_path / "gifts.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "item_id", "timestamp", "event", "gift"])
        for u in range(12):  # "toys": 12 givers in December evenings, also bought for themselves
            writer.writerow([f"u{u}", "toys", DEC_EVENING.isoformat(), "purchase", "1"])
            writer.writerow([f"u{u}", "toys", JUNE_MORNING.isoformat(), "purchase", ""])
        for u in range(30):  # "tv": 30 buyers for themselves, 3 givers: under the floor
            writer.writerow([f"v{u}", "tv", JUNE_MORNING.isoformat(), "purchase", ""])
            if u < 3:
                writer.writerow([f"v{u}", "tv", DEC_EVENING.isoformat(), "purchase", "yes"])
        writer.writerow(["w0", "toys", DEC_EVENING.isoformat(), "view", "1"])  # not a purchase
        writer.writerow(["k0", "kite", JUNE_MORNING.isoformat(), "purchase", "1"])  # one gift
    interactions = load_interactions(path)
    data = gift_prior_file(interactions)
    assert data is not None
    prior = parse_context_prior(data, file_name=GIFT_PRIOR_FILE)
    december, evening = 1 + 11, 1 + 12 + 2
    assert list(prior.items) == ["toys"]
    assert prior.items["toys"][0] == 12
    assert prior.items["toys"][december] == 12 and prior.items["toys"][evening] == 12
    assert prior.items["toys"][1 + 5] == 0  # their June purchases were for themselves
    assert prior.month_totals[5] == 0  # one gift in June: not even the volume says so
    assert prior.month_totals[11] == 12 + 3
    assert gift_prior_file(interactions, ContextPriorConfig(min_users=20)) is None
    plain = write_log(tmp_path / "plain.csv", [("u0", "toys", DEC_EVENING, "purchase")])
    assert gift_prior_file(load_interactions(plain)) is None


def test_build_bundle_ships_a_gift_prior_and_trains_on_own_purchases(
    tmp_path: Path, signing_key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = generate_sample_store(tmp_path / "shop", n_items=200, n_shoppers=1500, seed=3)
    interactions = load_interactions(shop.interactions)
    assert interactions.gift is not None and interactions.gift.any()
    trained_on: list[int] = []

    def train_and_note(rows: Interactions, *args: Any, **kwargs: Any) -> TrainingResult:
        trained_on.append(len(rows))
        return train_model(rows, *args, **kwargs)

    monkeypatch.setattr(pipeline, "train_model", train_and_note)
    report = build_bundle(
        shop.interactions, tmp_path / "bundle", signing_keys=[signing_key], model_version=1
    )
    bundle = read_bundle(report.bundle_dir, [signing_key.public_key()])
    shipped = parse_context_prior(bundle.files[GIFT_PRIOR_FILE], file_name=GIFT_PRIOR_FILE)
    assert shipped == compute_context_prior(interactions, rows=interactions.gift)
    assert shipped.items
    assert trained_on == [len(interactions) - int(interactions.gift.sum())]
