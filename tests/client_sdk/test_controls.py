"""The shopper's controls on the six-item shop (see shop.py): known answers for dismissals,
variants, the item in view, interest decay, retention, intent modes, pause, export and forget."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from client_sdk import (
    InterestConfig,
    Recommendation,
    Recommender,
    RecommenderConfig,
    generate_store_key,
)
from tests.client_sdk.shop import (
    BATTERIES,
    CAMERA,
    CAMERA_BAG,
    GROUPS,
    KETTLE,
    SHOP_IDS,
    TEAPOT_BLUE,
    TEAPOT_RED,
    FixedClock,
    write_shop_bundle,
)
from tests.conftest import FIXED_NOW


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
        shop_bundle, trusted_keys=[signing_key.public_key()], clock=clock
    ) as opened:
        yield opened


def ids(result: list[Recommendation]) -> list[str]:
    return [r.item_id for r in result]


def controls(result: list[Recommendation]) -> list[str]:
    return [reason.text for reason in result[0].reasons if reason.kind == "control"]


def test_a_list_never_shows_two_variants_of_one_group(rec: Recommender) -> None:
    rec.record("purchase", KETTLE)
    result = rec.recommend(k=3)
    # Scores: red teapot 0.6, blue teapot 0.3 (same group: left out), then the prior.
    assert ids(result) == [TEAPOT_RED, CAMERA, BATTERIES]
    assert controls(result) == ["one variant per product: 1 left out"]
    assert result[0].reasons[0].text == "because you bought Aurora Kettle"


def test_not_interested_suppresses_the_item_and_its_variants(rec: Recommender) -> None:
    rec.record("purchase", KETTLE)
    rec.dismiss(TEAPOT_BLUE, reason="not_interested")
    result = rec.recommend(k=3)
    assert ids(result) == [CAMERA, BATTERIES, CAMERA_BAG]
    assert "2 dismissed items and variants hidden" in controls(result)
    assert rec.undismiss(TEAPOT_BLUE) is True
    assert rec.undismiss(TEAPOT_BLUE) is False
    assert ids(rec.recommend(k=1)) == [TEAPOT_RED]


def test_bought_elsewhere_a_consumable_counts_as_a_purchase(rec: Recommender) -> None:
    rec.record("purchase", CAMERA)
    assert ids(rec.recommend(k=1)) == [BATTERIES]
    rec.dismiss(BATTERIES, reason="bought_elsewhere")
    # Batteries are now a purchase (bag: 0.3 from the camera + 0.6 from the batteries).
    top = rec.recommend(k=1)[0]
    assert top.item_id == CAMERA_BAG
    assert top.score == pytest.approx(0.9 + 1e-4, abs=5e-3)
    exported = json.loads(rec.export_data())
    purchases = [e["item_id"] for e in exported["events"] if e["kind"] == "purchase"]
    assert purchases == [CAMERA, BATTERIES]
    assert exported["dismissals"][0]["recorded_purchase"] is True
    rec.undismiss(BATTERIES)  # reversible: the purchase it recorded goes too
    assert ids(rec.recommend(k=1)) == [BATTERIES]


def test_bought_elsewhere_a_durable_good_only_suppresses_it(rec: Recommender) -> None:
    rec.dismiss(CAMERA, reason="bought_elsewhere")
    exported = json.loads(rec.export_data())
    assert exported["events"] == []
    assert CAMERA not in ids(rec.recommend(k=10))


def test_the_item_in_view_seeds_the_list_and_is_left_out_with_its_variants(
    rec: Recommender,
) -> None:
    result = rec.recommend(k=3, in_view=TEAPOT_RED)
    # Red teapot -> blue 0.6 (a variant: left out) and kettle 0.3; then the prior.
    assert ids(result) == [KETTLE, CAMERA, BATTERIES]
    assert result[0].reasons[0].text == "because you are looking at Basil Teapot (red)"
    assert "Basil Teapot (red) (in view) and its variants left out" in controls(result)


def test_a_one_off_view_fades_and_cannot_dominate_for_weeks(
    rec: Recommender, clock: FixedClock
) -> None:
    rec.record("view", KETTLE, at=FIXED_NOW - timedelta(days=21))
    rec.record("view", CAMERA, at=FIXED_NOW - timedelta(days=1))
    # Kettle view: 0.25 * 2^-3 = 0.031; camera view: 0.25 * 2^(-1/7) = 0.227.
    assert ids(rec.recommend(k=2)) == [BATTERIES, CAMERA_BAG]
    clock.advance(days=40)
    # Both views are now below min_weight (0.01): popular items, but never the viewed ones.
    result = rec.recommend(k=2)
    assert ids(result) == [TEAPOT_RED, BATTERIES]
    assert result[0].reasons[0].kind == "popular"
    assert "2 older interests have faded" in controls(result)


def test_purchases_outlast_views(rec: Recommender) -> None:
    rec.record("purchase", CAMERA, at=FIXED_NOW - timedelta(days=30))
    rec.record("view", KETTLE)
    # 1.0 * 2^(-30/120) = 0.84 beats a fresh view's 0.25.
    assert ids(rec.recommend(k=1)) == [BATTERIES]


def test_retention_deletes_old_browsing_but_keeps_purchases(
    shop_bundle: Path, signing_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    clock, key = FixedClock(), generate_store_key()
    path = tmp_path / "shopper.db"
    keys = [signing_key.public_key()]
    with Recommender.open(
        shop_bundle, trusted_keys=keys, store=path, store_key=key, clock=clock
    ) as r:
        r.record("view", KETTLE, at=FIXED_NOW - timedelta(days=170))
        r.record("purchase", CAMERA, at=FIXED_NOW - timedelta(days=170))
    clock.advance(days=20)  # the view is now 190 days old, past the 180-day retention
    with Recommender.open(
        shop_bundle, trusted_keys=keys, store=path, store_key=key, clock=clock
    ) as r:
        assert [e["item_id"] for e in json.loads(r.export_data())["events"]] == [CAMERA]


def test_gift_mode_neither_learns_nor_uses_the_history(rec: Recommender) -> None:
    rec.record("purchase", KETTLE)
    rec.set_intent("gift")
    result = rec.recommend(k=3)
    # The model's popular choices, the kettle included, one teapot only.
    assert ids(result) == [KETTLE, TEAPOT_RED, CAMERA]
    assert "gift mode: your own history is not used" in controls(result)
    rec.record("purchase", CAMERA)  # a gift: not learned
    rec.set_intent("for_me")
    assert [e["item_id"] for e in json.loads(rec.export_data())["events"]] == [KETTLE]
    assert ids(rec.recommend(k=1)) == [TEAPOT_RED]
    with pytest.raises(ValueError, match="intent"):
        rec.set_intent("surprise")


def test_pause_stops_learning_and_survives_a_restart(
    shop_bundle: Path, signing_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    key, path, keys = generate_store_key(), tmp_path / "shopper.db", [signing_key.public_key()]
    clock = FixedClock()
    with Recommender.open(
        shop_bundle, trusted_keys=keys, store=path, store_key=key, clock=clock
    ) as r:
        r.record("view", KETTLE)
        r.pause()
        r.record("purchase", CAMERA)
    with Recommender.open(
        shop_bundle, trusted_keys=keys, store=path, store_key=key, clock=clock
    ) as r:
        assert r.paused
        r.record("purchase", BATTERIES)
        r.resume()
        r.record("cart", CAMERA_BAG)
        exported = json.loads(r.export_data())
    assert [e["item_id"] for e in exported["events"]] == [KETTLE, CAMERA_BAG]
    assert exported["settings"] == {"learning_paused": False}


def test_export_is_readable_and_forget_erases(rec: Recommender) -> None:
    local = timezone(timedelta(hours=2))
    rec.record("search", KETTLE, at=FIXED_NOW.astimezone(local))
    rec.record("purchase", CAMERA, quantity=2)
    rec.dismiss(TEAPOT_RED)
    exported = json.loads(rec.export_data())
    assert exported["events"][0] == {
        "kind": "search",
        "item_id": KETTLE,
        "title": "Aurora Kettle",
        "quantity": 1.0,
        "at": "2026-01-15T14:00:00+02:00",
    }
    assert exported["dismissals"][0]["reason"] == "not_interested"
    rec.forget(KETTLE)
    exported = json.loads(rec.export_data())
    assert [e["item_id"] for e in exported["events"]] == [CAMERA]
    rec.forget()
    exported = json.loads(rec.export_data())
    assert (exported["events"], exported["dismissals"], exported["network_ledger"]) == ([], [], [])
    assert ids(rec.recommend(k=1)) == [KETTLE]


def test_local_time_and_time_zone_are_context(rec: Recommender) -> None:
    context = rec.context(FIXED_NOW.astimezone(timezone(timedelta(hours=-5))))
    assert (context.hour, context.weekday, context.utc_offset_minutes) == (7, 3, -300)
    assert context.time_zone == "UTC-05:00"


def test_control_arguments_are_validated(rec: Recommender) -> None:
    with pytest.raises(ValueError, match="reason"):
        rec.dismiss(KETTLE, reason="meh")
    with pytest.raises(TypeError, match="item_id"):
        rec.dismiss(17)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="in_view"):
        rec.recommend(k=1, in_view="")
    with pytest.raises(ValueError, match="timezone-aware"):
        rec.recommend(k=1, now=FIXED_NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match="half_life"):
        InterestConfig(view_half_life_days=0)
    with pytest.raises(ValueError, match="min_weight"):
        RecommenderConfig(interest=InterestConfig(min_weight=1.5))


@settings(max_examples=40, deadline=None)
@given(
    history=st.lists(st.sampled_from(SHOP_IDS), max_size=4),
    dismissed=st.sets(st.sampled_from(SHOP_IDS), max_size=3),
    excluded=st.sets(st.sampled_from(SHOP_IDS), max_size=2),
    in_view=st.none() | st.sampled_from(SHOP_IDS),
    k=st.integers(min_value=0, max_value=7),
)
def test_recommend_never_shows_what_the_controls_hide(
    shop_bundle: Path,
    signing_key: Ed25519PrivateKey,
    history: list[str],
    dismissed: set[str],
    excluded: set[str],
    in_view: str | None,
    k: int,
) -> None:
    keys = [signing_key.public_key()]
    with Recommender.open(shop_bundle, trusted_keys=keys, clock=FixedClock()) as r:
        for item in history:
            r.record("purchase", item)
        for item in dismissed:
            r.dismiss(item)
        hidden_groups = {GROUPS[i] for i in dismissed} | ({GROUPS[in_view]} if in_view else set())
        allowed = {
            i for i in SHOP_IDS if GROUPS[i] not in hidden_groups and i not in history
        } - excluded
        result = ids(r.recommend(k=k, exclude=excluded, in_view=in_view))
        assert set(result) <= allowed
        assert len({GROUPS[i] for i in result}) == len(result)
        assert len(result) == min(k, len({GROUPS[i] for i in allowed}))
        r.forget()
        exported = json.loads(r.export_data())
        assert exported["events"] == exported["dismissals"] == []
