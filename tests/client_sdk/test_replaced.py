"""After buying a durable item, the other items of its kind are left out (another camera is not
what a camera's buyer needs), on the shop of shop.py with kinds:

    kettle, teapot red, teapot blue   kind "brewer"  (the teapots are one variant group)
    camera, batteries                 kind "power"   (batteries are consumable)
    camera bag                        no kind
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client_sdk import FormatError, Recommendation, Recommender, RecommenderConfig
from client_sdk.catalog import BundleCatalog, encode_catalog, parse_catalog
from tests.client_sdk.shop import (
    BATTERIES,
    CAMERA,
    CAMERA_BAG,
    KETTLE,
    TEAPOT_BLUE,
    TEAPOT_RED,
    FixedClock,
    shop_catalog,
    write_shop_bundle,
)

KINDS = {KETTLE: "brewer", TEAPOT_RED: "brewer", TEAPOT_BLUE: "brewer"}
KINDS |= {CAMERA: "power", BATTERIES: "power"}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, signing_key: Ed25519PrivateKey) -> Path:
    catalog = [dataclasses.replace(e, kind=KINDS.get(e.item_id, "")) for e in shop_catalog()]
    return write_shop_bundle(
        tmp_path_factory.mktemp("kinds") / "bundle", signing_key, catalog=catalog
    )


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


def opened(bundle: Path, key: Ed25519PrivateKey, clock: FixedClock, **config: float) -> Recommender:
    return Recommender.open(
        bundle,
        trusted_keys=[key.public_key()],
        clock=clock,
        config=RecommenderConfig(**config),  # type: ignore[arg-type]
    )


@pytest.fixture
def rec(bundle: Path, signing_key: Ed25519PrivateKey, clock: FixedClock) -> Iterator[Recommender]:
    with opened(bundle, signing_key, clock, replaced_days=30) as recommender:
        yield recommender


def ids(result: list[Recommendation]) -> list[str]:
    return [r.item_id for r in result]


def controls(result: list[Recommendation]) -> list[str]:
    return [r.text for r in result[0].reasons if r.kind == "control"]


def test_buying_a_kettle_leaves_out_the_teapots(rec: Recommender) -> None:
    rec.record("view", CAMERA_BAG)
    assert TEAPOT_RED in ids(rec.recommend(k=5))  # viewing is not buying
    rec.record("purchase", KETTLE)
    result = rec.recommend(k=5)
    assert ids(result) == [CAMERA, BATTERIES]  # kettle, bag: history; teapots: replaced
    assert controls(result) == ["2 other items like Aurora Kettle left out: you bought one"]


def test_the_kind_comes_back_after_replaced_days(rec: Recommender, clock: FixedClock) -> None:
    rec.record("purchase", KETTLE)
    clock.advance(days=29)
    assert TEAPOT_RED not in ids(rec.recommend(k=5))
    clock.advance(days=2)
    assert TEAPOT_RED in ids(rec.recommend(k=5))


def test_consumables_leave_nothing_out(rec: Recommender) -> None:
    rec.record("purchase", BATTERIES)
    assert CAMERA in ids(rec.recommend(k=5))


def test_bought_elsewhere_counts_as_bought(rec: Recommender) -> None:
    rec.dismiss(KETTLE, reason="bought_elsewhere")
    result = rec.recommend(k=5)
    assert not {TEAPOT_RED, TEAPOT_BLUE} & set(ids(result))
    assert "2 other items like Aurora Kettle left out: you bought one" in controls(result)


def test_bought_elsewhere_as_a_gift_or_while_paused_leaves_nothing_out(
    rec: Recommender,
) -> None:
    rec.set_intent("gift")
    rec.dismiss(KETTLE, reason="bought_elsewhere")
    rec.set_intent("for_me")
    rec.pause()
    rec.dismiss(CAMERA, reason="bought_elsewhere")
    rec.resume()
    shown = ids(rec.recommend(k=5))
    assert TEAPOT_RED in shown and BATTERIES in shown  # their kinds stay in the lists
    assert not any("you bought one" in text for text in controls(rec.recommend(k=5)))


def test_a_warm_cache_answers_as_a_cold_one_at_the_window_edge(
    bundle: Path, signing_key: Ed25519PrivateKey, clock: FixedClock
) -> None:
    with opened(bundle, signing_key, clock, replaced_days=30) as warm:
        warm.record("purchase", KETTLE)
        bought = clock.current
        clock.current = bought + timedelta(days=30, seconds=-1)
        assert TEAPOT_RED not in ids(warm.recommend(k=5))  # fills the cache, the same day
        clock.current = bought + timedelta(days=30, seconds=1)
        warm_answer = ids(warm.recommend(k=5))
    with opened(bundle, signing_key, FixedClock(bought), replaced_days=30) as cold:
        cold.record("purchase", KETTLE)
        cold._clock.current = bought + timedelta(days=30, seconds=1)  # type: ignore[attr-defined]
        assert ids(cold.recommend(k=5)) == warm_answer
    assert TEAPOT_RED in warm_answer


def test_gift_mode_and_a_zero_window_show_the_kind(
    bundle: Path, signing_key: Ed25519PrivateKey, clock: FixedClock
) -> None:
    with opened(bundle, signing_key, clock, replaced_days=0) as rec:
        rec.record("purchase", KETTLE)
        assert ids(rec.recommend(k=1)) == [TEAPOT_RED]
    with opened(bundle, signing_key, clock) as rec:
        rec.record("purchase", KETTLE)
        rec.set_intent("gift")
        assert TEAPOT_RED in ids(rec.recommend(k=5))
    with pytest.raises(ValueError, match="replaced_days"):
        RecommenderConfig(replaced_days=-1)


def test_kinds_round_trip_and_bad_kind_lists_are_named() -> None:
    catalog = BundleCatalog.from_entries(
        dataclasses.replace(e, kind=KINDS.get(e.item_id, "")) for e in shop_catalog()
    )
    back = parse_catalog(encode_catalog(catalog), 2)
    assert back.kind_names == ("brewer", "power")
    assert back.entry(3).kind == "power" and back.entry(5).kind == ""
    plain = parse_catalog(encode_catalog(BundleCatalog.from_entries(shop_catalog())), 2)
    assert plain.kind_names == () and plain.entry(0).kind == ""
    broken = encode_catalog(catalog).replace(b'"kind_items":[[0,1,2]', b'"kind_items":[[0,9,2]')
    with pytest.raises(FormatError, match="field 'kind_items': expected indices"):
        parse_catalog(broken, 2)
