"""Reorder shortcuts through the Recommender (issue 5): purchases from the encrypted store, pins,
snoozes, reorder, "bought elsewhere", durables, gift mode and pause, restarts, forget and export.

The six-item shop (shop.py) ships no reorder priors, so the device uses `default_priors()`: a
median interval of 30 days (log scale 0.7) and repeat probability 0.5. Most tests make the
shopper's own rhythm dominate (`prior_strength` 0.01: after m own intervals the own median weighs
m / (m + 0.01)), so a consumable bought every 10 days is expected 10 days after its last purchase.
All times come from an injected clock.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client_sdk import (
    Recommender,
    RecommenderConfig,
    ReorderPayload,
    Shortcut,
    ShortcutConfig,
    generate_store_key,
)
from client_sdk.bundle import REORDER_PRIORS_FILE
from client_sdk.priors import (
    QUANTILE_LEVELS,
    DueParams,
    IntervalPrior,
    ItemPrior,
    ReorderPriors,
    encode_priors,
    parse_priors,
)
from tests.client_sdk.shop import (
    BATTERIES,
    CAMERA,
    CAMERA_BAG,
    KETTLE,
    TEAPOT_RED,
    TITLES,
    FixedClock,
    write_shop_bundle,
)
from tests.conftest import FIXED_NOW

TODAY = FIXED_NOW.date()
OWN_RHYTHM = RecommenderConfig(shortcuts=ShortcutConfig(params=DueParams(prior_strength=0.01)))


@pytest.fixture(scope="module")
def shop_bundle(tmp_path_factory: pytest.TempPathFactory, signing_key: Ed25519PrivateKey) -> Path:
    return write_shop_bundle(tmp_path_factory.mktemp("shop") / "bundle", signing_key)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def rec(
    shop_bundle: Path, signing_key: Ed25519PrivateKey, clock: FixedClock
) -> Iterator[Recommender]:
    with Recommender.open(
        shop_bundle, trusted_keys=[signing_key.public_key()], clock=clock, config=OWN_RHYTHM
    ) as opened:
        yield opened


def buy(rec: Recommender, item_id: str, *ages: int, quantity: float = 1) -> None:
    """Purchases `ages` days before the fixed now."""
    for age in ages:
        rec.record("purchase", item_id, quantity=quantity, at=FIXED_NOW - timedelta(days=age))


def ids(found: list[Shortcut]) -> list[str]:
    return [s.item_id for s in found]


def only(found: list[Shortcut], item_id: str) -> Shortcut:
    return next(s for s in found if s.item_id == item_id)


# --- due-ness from the stored purchases ---------------------------------------------------


def test_a_consumable_bought_every_ten_days_is_due_ten_days_after_the_last(
    rec: Recommender,
) -> None:
    buy(rec, BATTERIES, 53, 43, 32, 23, 13, 3)  # intervals 10, 11, 9, 10, 10: median 10
    found = rec.shortcuts()
    assert ids(found) == [BATTERIES]
    shortcut = found[0]
    assert shortcut.title == "Delta Batteries 4-pack"
    assert not shortcut.pinned
    assert shortcut.reason == "you buy this about every 10 days; last bought 3 days ago"
    assert shortcut.due is not None
    assert shortcut.due.expected_date == TODAY + timedelta(days=7)
    assert shortcut.due.last_bought == TODAY - timedelta(days=3)
    assert shortcut.due.purchase_days == 6
    assert shortcut.due.interval_days == pytest.approx(10.0, abs=0.05)
    assert 0.0 < shortcut.due.confidence <= 1.0
    assert shortcut.usual_quantity == 1.0


def test_without_override_the_rhythm_blends_with_the_default_prior(
    shop_bundle: Path, signing_key: Ed25519PrivateKey, clock: FixedClock
) -> None:
    with Recommender.open(shop_bundle, trusted_keys=[signing_key.public_key()], clock=clock) as rec:
        buy(rec, BATTERIES, 50, 40, 30, 20, 10, 0)
        due = rec.shortcuts()[0].due
    # 5 own intervals of exactly 10 days against the prior's 30 (prior_strength 2): the median
    # is exp((5 ln 10 + 2 ln 30) / 7) = 13.69 days; bought today, that is the expected wait.
    assert due is not None
    expected = math.exp((5 * math.log(10) + 2 * math.log(30)) / 7)
    assert due.interval_days == pytest.approx(expected)
    assert due.expected_date == TODAY + timedelta(days=round(expected))


def test_due_items_come_first(rec: Recommender) -> None:
    buy(rec, BATTERIES, 40, 30, 20, 10)  # due today
    buy(rec, KETTLE, 30, 1)  # every 29 days, bought yesterday
    assert ids(rec.shortcuts()) == [BATTERIES, KETTLE]
    assert ids(rec.shortcuts(k=1)) == [BATTERIES]


def test_a_durable_bought_once_never_becomes_a_shortcut(rec: Recommender) -> None:
    buy(rec, CAMERA, 40)  # not consumable, one purchase day
    buy(rec, BATTERIES, 20, 10)
    assert ids(rec.shortcuts(k=10)) == [BATTERIES]
    buy(rec, KETTLE, 60, 5)  # not consumable, but the shopper's own habit
    assert ids(rec.shortcuts(k=10)) == [BATTERIES, KETTLE]
    rec.pin(CAMERA)  # the shopper's explicit choice still shows
    assert ids(rec.shortcuts(k=10)) == [CAMERA, BATTERIES, KETTLE]


def test_a_consumable_bought_once_is_a_shortcut_from_the_prior(rec: Recommender) -> None:
    buy(rec, BATTERIES, 5)
    assert rec.shortcuts()[0].reason == (
        "you bought this 5 days ago; items are usually bought again after about 30 days"
    )


def test_a_purchase_dated_after_now_does_not_count_yet(rec: Recommender) -> None:
    buy(rec, BATTERIES, 30, 20)
    # A device clock up to a day ahead is tolerated: the purchase is dated tomorrow.
    rec.record("purchase", BATTERIES, at=FIXED_NOW + timedelta(hours=20))
    assert rec.shortcuts()[0].reason == "you buy this about every 10 days; last bought 20 days ago"
    later = FIXED_NOW + timedelta(days=2)  # intervals 10 and 21: a median of sqrt(210) days
    assert rec.shortcuts(now=later)[0].reason == (
        "you buy this about every 14 days; last bought yesterday"
    )


def test_purchase_days_are_the_shoppers_local_days(rec: Recommender) -> None:
    plus_two = timezone(timedelta(hours=2))
    # 00:30 on Jan 5 in UTC+2 is 22:30 on Jan 4 in UTC: the shopper's day is Jan 5.
    rec.record("purchase", BATTERIES, at=datetime(2026, 1, 5, 0, 30, tzinfo=plus_two))
    now = datetime(2026, 1, 15, 9, 0, tzinfo=plus_two)
    assert rec.shortcuts(now=now)[0].reason.startswith("you bought this 10 days ago")


# --- pins and snoozes ---------------------------------------------------------------------


def test_pinned_items_come_first_in_the_shoppers_order(rec: Recommender) -> None:
    buy(rec, BATTERIES, 40, 30, 20, 10)
    rec.pin(CAMERA_BAG)
    rec.pin(KETTLE)
    found = rec.shortcuts()
    assert ids(found) == [CAMERA_BAG, KETTLE, BATTERIES]
    assert [s.pinned for s in found] == [True, True, False]
    assert found[0].reason == "pinned by you"
    assert found[0].due is None
    assert found[0].title == "Ember Camera Bag"
    rec.pin(KETTLE, position=0)  # moves it
    assert ids(rec.shortcuts()) == [KETTLE, CAMERA_BAG, BATTERIES]
    assert ids(rec.shortcuts(k=1)) == [KETTLE, CAMERA_BAG]  # pins show even beyond k
    assert rec.unpin(CAMERA_BAG) is True
    assert rec.unpin(CAMERA_BAG) is False
    assert ids(rec.shortcuts()) == [KETTLE, BATTERIES]


def test_snooze_hides_an_item_until_its_day(rec: Recommender, clock: FixedClock) -> None:
    buy(rec, BATTERIES, 40, 30, 20, 10)
    buy(rec, KETTLE, 31, 1)
    assert rec.snooze(BATTERIES, 5) == TODAY + timedelta(days=5)
    assert ids(rec.shortcuts()) == [KETTLE]
    clock.advance(days=4)
    assert ids(rec.shortcuts()) == [KETTLE]
    clock.advance(days=1)
    assert set(ids(rec.shortcuts())) == {BATTERIES, KETTLE}


def test_a_snoozed_pin_still_shows(rec: Recommender) -> None:
    rec.pin(BATTERIES)
    rec.snooze(BATTERIES, 30)
    assert ids(rec.shortcuts()) == [BATTERIES]


def test_bad_arguments_are_refused_with_their_names(rec: Recommender) -> None:
    with pytest.raises(ValueError, match=r"days must be an int in \[1, 366\], found 0"):
        rec.snooze(BATTERIES, 0)
    with pytest.raises(ValueError, match=r"k must be in \[1, 10000\], found 0"):
        rec.shortcuts(k=0)
    with pytest.raises(TypeError, match="k must be int"):
        rec.shortcuts(k=2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="position must be >= 0, found -1"):
        rec.pin(KETTLE, position=-1)
    with pytest.raises(TypeError, match="item_id must be str"):
        rec.reorder(7)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        rec.shortcuts(now=datetime(2026, 1, 1))


# --- reorder and "bought elsewhere" -------------------------------------------------------


def test_reorder_returns_the_usual_quantity_and_records_the_purchase(
    rec: Recommender, clock: FixedClock
) -> None:
    buy(rec, BATTERIES, 30, 20, 10, quantity=2)
    rec.snooze(BATTERIES, 3)
    assert rec.reorder(BATTERIES) == ReorderPayload(item_id=BATTERIES, quantity=2.0)
    events = json.loads(rec.export_data())["events"]
    assert len(events) == 4
    assert events[-1]["kind"] == "purchase"
    assert events[-1]["quantity"] == 2.0
    assert events[-1]["at"] == FIXED_NOW.isoformat()
    found = rec.shortcuts()  # the snooze is cleared and the clock restarted
    assert found[0].reason == "you buy this about every 10 days; last bought today"
    assert found[0].due is not None
    assert found[0].due.expected_date == TODAY + timedelta(days=10)


def test_reorder_of_an_item_never_bought_here_orders_the_usual_one(rec: Recommender) -> None:
    assert rec.reorder(CAMERA_BAG) == ReorderPayload(CAMERA_BAG, 1.0)
    rec.pin(CAMERA_BAG)
    assert rec.shortcuts()[0].reason == (
        "you bought this today; items are usually bought again after about 30 days"
    )


def test_bought_elsewhere_restarts_a_consumables_clock(rec: Recommender) -> None:
    buy(rec, BATTERIES, 40, 30, 20, 10)
    before = rec.shortcuts()[0]
    assert before.reason == "you buy this about every 10 days; last bought 10 days ago"
    rec.dismiss(BATTERIES, reason="bought_elsewhere")
    after = rec.shortcuts()[0]
    assert after.reason == "you buy this about every 10 days; last bought today"
    assert after.due is not None and before.due is not None
    assert after.due.expected_date == TODAY + timedelta(days=10)
    assert after.due.purchase_days == 5
    assert after.due.due_probability < before.due.due_probability
    assert rec.recommend(k=6)  # the dismissal also keeps it out of recommendations
    assert BATTERIES not in {r.item_id for r in rec.recommend(k=6)}
    assert rec.undismiss(BATTERIES)
    assert rec.shortcuts()[0].reason == before.reason


def test_bought_elsewhere_of_a_non_consumable_marks_the_clock(rec: Recommender) -> None:
    buy(rec, KETTLE, 50, 25)
    rec.dismiss(KETTLE, reason="bought_elsewhere")
    found = only(rec.shortcuts(), KETTLE)
    assert found.reason == "you buy this about every 25 days; last bought elsewhere today"
    assert found.due is not None and found.due.purchase_days == 2  # no purchase recorded
    rec.undismiss(KETTLE)
    assert only(rec.shortcuts(), KETTLE).reason.endswith("last bought 25 days ago")


def test_a_mark_dated_after_now_does_not_count_yet(rec: Recommender) -> None:
    buy(rec, KETTLE, 50, 25)
    rec.dismiss(KETTLE, reason="bought_elsewhere")  # a mark today, no purchase
    yesterday = FIXED_NOW - timedelta(days=1)
    assert rec.shortcuts(now=yesterday)[0].reason.endswith("last bought 24 days ago")


def test_not_interested_removes_an_unpinned_shortcut(rec: Recommender) -> None:
    buy(rec, BATTERIES, 20, 10)
    buy(rec, KETTLE, 50, 25)
    rec.dismiss(KETTLE, reason="not_interested")
    assert ids(rec.shortcuts()) == [BATTERIES]
    rec.pin(KETTLE)
    assert ids(rec.shortcuts()) == [KETTLE, BATTERIES]


# --- pause and gift mode ------------------------------------------------------------------


def test_gift_mode_shows_no_shortcut_and_learns_nothing(rec: Recommender) -> None:
    buy(rec, BATTERIES, 30, 20, 10, quantity=3)
    rec.pin(KETTLE)
    rec.set_intent("gift")
    assert rec.shortcuts() == []
    # The shop's usual quantity, not the shopper's; nothing recorded.
    assert rec.reorder(BATTERIES) == ReorderPayload(BATTERIES, 1.0)
    rec.dismiss(BATTERIES, reason="bought_elsewhere")  # a gift: the shopper's clock stays
    rec.set_intent("for_me")
    assert len(json.loads(rec.export_data())["events"]) == 3
    assert only(rec.shortcuts(), BATTERIES).reason.endswith("last bought 10 days ago")
    assert ids(rec.shortcuts()) == [KETTLE, BATTERIES]


def test_paused_learning_still_shows_shortcuts_but_records_no_reorder(rec: Recommender) -> None:
    buy(rec, BATTERIES, 30, 20, 10, quantity=3)
    rec.pause()
    assert ids(rec.shortcuts()) == [BATTERIES]
    assert rec.reorder(BATTERIES) == ReorderPayload(BATTERIES, 3.0)
    assert len(json.loads(rec.export_data())["events"]) == 3
    # "bought elsewhere" is the shopper's instruction: the clock restarts, nothing is learned.
    rec.dismiss(BATTERIES, reason="bought_elsewhere")
    assert rec.shortcuts()[0].reason.endswith("last bought elsewhere today")
    assert len(json.loads(rec.export_data())["events"]) == 3


# --- the store: restarts, export, forget --------------------------------------------------


def test_shortcut_state_survives_closing_and_reopening_the_encrypted_store(
    shop_bundle: Path, signing_key: Ed25519PrivateKey, clock: FixedClock, tmp_path: Path
) -> None:
    path, key = tmp_path / "shopper.db", generate_store_key()

    def session() -> Recommender:
        return Recommender.open(
            shop_bundle,
            trusted_keys=[signing_key.public_key()],
            store=path,
            store_key=key,
            clock=clock,
            config=OWN_RHYTHM,
        )

    with session() as rec:
        buy(rec, BATTERIES, 40, 30, 20, 10)
        buy(rec, KETTLE, 50, 25)
        buy(rec, TEAPOT_RED, 60, 45, 30)
        rec.pin(CAMERA_BAG)
        rec.snooze(TEAPOT_RED, 10)
        rec.dismiss(KETTLE, reason="bought_elsewhere")
        before = rec.shortcuts(k=10)
    assert ids(before) == [CAMERA_BAG, BATTERIES, KETTLE]
    for stored in tmp_path.iterdir():  # the file and any WAL: every record is sealed
        raw = stored.read_bytes()
        assert CAMERA_BAG.encode() not in raw and b"pinned" not in raw
    clock.advance(days=10)
    with session() as rec:
        assert rec.shortcuts(k=10, now=FIXED_NOW) == before
        after = rec.shortcuts(k=10)  # ten days on: the snooze has ended
    assert ids(after)[0] == CAMERA_BAG
    assert set(ids(after)) == {CAMERA_BAG, BATTERIES, TEAPOT_RED, KETTLE}
    assert only(after, KETTLE).reason.endswith("last bought elsewhere 10 days ago")


def test_export_data_lists_pins_snoozes_and_marks(rec: Recommender) -> None:
    buy(rec, KETTLE, 50, 25)
    rec.pin(BATTERIES)
    rec.snooze(TEAPOT_RED, 7)
    rec.dismiss(KETTLE, reason="bought_elsewhere")
    exported = json.loads(rec.export_data())["reorder_shortcuts"]
    assert exported == {
        "pinned": [{"item_id": BATTERIES, "title": TITLES[BATTERIES]}],
        "snoozed": [{"item_id": TEAPOT_RED, "title": TITLES[TEAPOT_RED], "until": "2026-01-22"}],
        "bought_elsewhere": [{"item_id": KETTLE, "title": TITLES[KETTLE], "on": "2026-01-15"}],
    }


def test_forget_erases_purchases_and_shortcut_state(
    shop_bundle: Path, signing_key: Ed25519PrivateKey, clock: FixedClock, tmp_path: Path
) -> None:
    path, key = tmp_path / "shopper.db", generate_store_key()

    def session() -> Recommender:
        return Recommender.open(
            shop_bundle,
            trusted_keys=[signing_key.public_key()],
            store=path,
            store_key=key,
            clock=clock,
        )

    with session() as rec:
        buy(rec, BATTERIES, 20, 10)
        buy(rec, KETTLE, 50, 25)
        rec.pin(CAMERA_BAG)
        rec.pin(KETTLE)
        rec.snooze(BATTERIES, 3)
        rec.forget(KETTLE)  # one item: its purchases and its pin
        assert ids(rec.shortcuts()) == [CAMERA_BAG]
        assert json.loads(rec.export_data())["reorder_shortcuts"]["pinned"] == [
            {"item_id": CAMERA_BAG, "title": TITLES[CAMERA_BAG]}
        ]
        rec.forget()
        assert rec.shortcuts() == []
    with session() as rec:
        assert rec.shortcuts() == []
        assert json.loads(rec.export_data())["reorder_shortcuts"] == {
            "pinned": [],
            "snoozed": [],
            "bought_elsewhere": [],
        }
        assert json.loads(rec.export_data())["events"] == []


# --- the bundle's priors ------------------------------------------------------------------


def interval(median: float, scale: float, level: str, repeaters: int) -> IntervalPrior:
    quantiles = tuple(max(1.0, median * (p / (1 - p)) ** scale) for p in QUANTILE_LEVELS)
    return IntervalPrior(level, repeaters, math.log(median), scale, quantiles)


def shop_priors() -> ReorderPriors:
    """Photo items are bought again after about 20 days, four at a time."""
    return ReorderPriors(
        min_buyers=10,
        params=DueParams(),
        shop=ItemPrior("shop", 400, 0.3, 1.0, interval(45.0, 0.8, "shop", 100)),
        categories={
            "photo": ItemPrior("category", 60, 0.7, 4.0, interval(20.0, 0.5, "category", 30))
        },
        item_categories={BATTERIES: "photo", CAMERA_BAG: "photo"},
    )


def write_bundle_with(out_dir: Path, key: Ed25519PrivateKey, priors_file: bytes) -> Path:
    """The shop of shop.py, with a reorder priors file signed into it."""
    return write_shop_bundle(out_dir, key, extra_files={REORDER_PRIORS_FILE: priors_file})


def test_the_bundles_priors_shape_shortcuts(
    tmp_path: Path, signing_key: Ed25519PrivateKey, clock: FixedClock
) -> None:
    bundle = write_bundle_with(tmp_path / "bundle", signing_key, encode_priors(shop_priors()))
    with Recommender.open(bundle, trusted_keys=[signing_key.public_key()], clock=clock) as rec:
        buy(rec, BATTERIES, 4)
        assert rec.shortcuts()[0].reason == (
            "you bought this 4 days ago; items like this are usually bought again after about "
            "20 days"
        )
        assert rec.reorder(CAMERA_BAG) == ReorderPayload(CAMERA_BAG, 4.0)


def test_unreadable_priors_fall_back_to_the_default_with_a_warning(
    tmp_path: Path,
    signing_key: Ed25519PrivateKey,
    clock: FixedClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    newer = json.dumps({"format": "facetwo-reorder-priors", "version": 99}).encode()
    bundle = write_bundle_with(tmp_path / "bundle", signing_key, newer)
    with (
        caplog.at_level(logging.WARNING, logger="client_sdk.priors"),
        Recommender.open(bundle, trusted_keys=[signing_key.public_key()], clock=clock) as rec,
    ):
        buy(rec, BATTERIES, 4)
        reason = rec.shortcuts()[0].reason
    assert reason.endswith("items are usually bought again after about 30 days")
    assert "reorder priors unusable" in caplog.text
    assert "version 99" in caplog.text


def test_snooze_returns_a_date(rec: Recommender) -> None:
    until = rec.snooze(CAMERA_BAG, 1)
    assert isinstance(until, date) and until == TODAY + timedelta(days=1)


def test_a_built_bundle_ships_the_reorder_priors_the_device_uses(
    tmp_path: Path, signing_key: Ed25519PrivateKey, clock: FixedClock
) -> None:
    from server.pipeline import build_bundle
    from server.reorder_tuning import TuningConfig
    from server.sample_store import generate_sample_store

    shop = generate_sample_store(tmp_path / "shop", n_items=150, n_shoppers=400, seed=5)
    report = build_bundle(
        shop.interactions,
        tmp_path / "bundle",
        signing_keys=[signing_key],
        catalog_path=shop.catalog,
        model_version=1,
        now=FIXED_NOW,
        reorder_priors=TuningConfig(
            prior_strengths=(2.0,),
            own_scales=(0.5,),
            spread_scales=(1.0,),
            continuation_strengths=(10.0,),
            irregular_shares=(0.05,),
        ),
    )
    priors = parse_priors((report.bundle_dir / REORDER_PRIORS_FILE).read_bytes())
    own = [i for i, p in priors.items.items() if p.interval.level == "item"]
    assert own, "the sample shop has items with enough buyers who bought them again"
    with Recommender.open(
        report.bundle_dir, trusted_keys=[signing_key.public_key()], clock=clock
    ) as rec:
        item_id = own[0]
        buy(rec, item_id, 2)
        days = round(priors.items[item_id].interval.median_days)
        assert days != 30  # not the default prior
        assert rec.shortcuts()[0].reason == (
            f"you bought this 2 days ago; shoppers who buy it again usually do after about "
            f"{days} days"
        )
