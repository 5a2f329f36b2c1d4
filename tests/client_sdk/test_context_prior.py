"""Cold start in context (issue 6): the context prior's format, its known rankings, and an empty
session on the device ranking by it (switchable), on the shop of kiosk_shop.py."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client_sdk import FormatError, Recommendation, Recommender, RecommenderConfig
from client_sdk.bundle import CONTEXT_PRIOR_FILE
from client_sdk.context_prior import (
    ContextPopularity,
    encode_context_prior,
    parse_context_prior,
    part_of_day,
)
from tests.client_sdk.kiosk_shop import shop_context_prior, write_kiosk_shop_bundle
from tests.client_sdk.shop import (
    BATTERIES,
    CAMERA,
    CAMERA_BAG,
    KETTLE,
    SHOP_IDS,
    TEAPOT_BLUE,
    TEAPOT_RED,
    FixedClock,
)

DECEMBER_MORNING = datetime(2026, 12, 10, 10, 0, tzinfo=timezone.utc)
JUNE_EVENING = datetime(2026, 6, 10, 19, 0, tzinfo=timezone.utc)
INDEX = {item: i for i, item in enumerate(SHOP_IDS)}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, signing_key: Ed25519PrivateKey) -> Path:
    return write_kiosk_shop_bundle(tmp_path_factory.mktemp("context") / "bundle", signing_key)


def ids(result: list[Recommendation]) -> list[str]:
    return [r.item_id for r in result]


def open_at(
    bundle: Path, key: Ed25519PrivateKey, when: datetime, config: RecommenderConfig | None = None
) -> Recommender:
    return Recommender.open(
        bundle, trusted_keys=[key.public_key()], clock=FixedClock(when), config=config
    )


# -- the format --------------------------------------------------------------------------------


def test_the_file_round_trips() -> None:
    prior = shop_context_prior()
    assert parse_context_prior(encode_context_prior(prior)) == prior


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": 2}, "expected format 'facetwo-context-prior' version 1"),
        ({"min_users": 1}, "min_users must be in"),
        ({"smoothing": "x"}, "field 'smoothing': expected a number"),
        ({"month_totals": [1] * 11}, "month_totals must be 12 counts"),
        ({"items": {KETTLE: [9, *[0] * 16]}}, "9 buyers in all is under min_users"),
        ({"items": {KETTLE: [20, 5, *[0] * 15]}}, r"items.sku-aurora-kettle-0042\[1\]"),
        ({"items": {KETTLE: [20, 21, *[0] * 15]}}, "found 21"),
        ({"parts_of_day": [["day", 0, 24]]}, "field 'parts_of_day'"),
        ({"items": []}, "field 'items'"),
    ],
)
def test_a_malformed_file_is_refused_naming_the_field(
    change: dict[str, object], message: str
) -> None:
    import json

    document = json.loads(encode_context_prior(shop_context_prior()))
    document.update(change)
    with pytest.raises(FormatError, match=message):
        parse_context_prior(json.dumps(document).encode())
    with pytest.raises(FormatError, match="not UTF-8 JSON"):
        parse_context_prior(b"\xff")


def test_parts_of_day() -> None:
    parts = [part_of_day(hour) for hour in range(24)]
    assert parts == [3] * 5 + [0] * 7 + [1] * 5 + [2] * 5 + [3] * 2


# -- known rankings ----------------------------------------------------------------------------


def test_december_lifts_the_camera_over_the_more_popular_kettle() -> None:
    ranking = ContextPopularity(shop_context_prior(), INDEX).rank(DECEMBER_MORNING)
    ranked = [SHOP_IDS[i] for i in ranking.index]
    assert ranked == [CAMERA, KETTLE, TEAPOT_RED, BATTERIES, TEAPOT_BLUE]
    # Camera: 100/415 buyers, December 80 of its 183.3 cells (hidden ones count 8.33) against
    # 1/12 expected: lift (80 + 1) / (15.28 + 1) = 4.975.
    assert float(ranking.score[0]) == pytest.approx(100 / 415 * 81 / (183.33 / 12 + 1), rel=1e-3)
    assert ranking.reason[ranking.code[0]] == "popular this December"
    assert ranking.reason[ranking.code[1]] == "popular with other shoppers"


def test_the_evening_lifts_the_batteries_and_june_lowers_the_camera() -> None:
    popularity = ContextPopularity(shop_context_prior(), INDEX)
    ranking = popularity.rank(JUNE_EVENING)
    assert [SHOP_IDS[i] for i in ranking.index[:3]] == [KETTLE, BATTERIES, CAMERA]
    assert ranking.reason[ranking.code[1]] == "popular in the evening"
    month_only = popularity.rank(JUNE_EVENING, part=False)  # camera: 100 x 0.57 < 60 batteries
    assert [SHOP_IDS[i] for i in month_only.index[:3]] == [KETTLE, BATTERIES, CAMERA]
    flat = popularity.rank(JUNE_EVENING, month=False, part=False)  # buyers only
    assert [SHOP_IDS[i] for i in flat.index] == [KETTLE, CAMERA, BATTERIES, TEAPOT_RED, TEAPOT_BLUE]


def test_ids_the_model_does_not_know_are_ignored() -> None:
    prior = shop_context_prior()
    extra = replace(prior, items={**prior.items, "sku-gone": (500, *(0,) * 16)})
    ranking = ContextPopularity(extra, INDEX).rank(JUNE_EVENING)
    assert len(ranking.index) == 5


# -- on the device -----------------------------------------------------------------------------


def test_an_empty_session_ranks_the_crowds_choice_in_this_context(
    bundle: Path, signing_key: Ed25519PrivateKey
) -> None:
    with open_at(bundle, signing_key, DECEMBER_MORNING) as rec:
        result = rec.recommend(k=6)
    # The context's list, one variant per product, then the unlisted bag by the model's prior.
    assert ids(result) == [CAMERA, KETTLE, TEAPOT_RED, BATTERIES, CAMERA_BAG]
    assert [r.reasons[0].text for r in result] == [
        "popular this December",
        *["popular with other shoppers"] * 4,
    ]
    assert result[0].reasons[-1].text == "one variant per product: 1 left out"


def test_exclusions_apply_before_top_k_in_context(
    bundle: Path, signing_key: Ed25519PrivateKey
) -> None:
    with open_at(bundle, signing_key, DECEMBER_MORNING) as rec:
        assert ids(rec.recommend(k=2, exclude=[CAMERA])) == [KETTLE, TEAPOT_RED]
        assert ids(rec.recommend(k=2, candidates=[CAMERA_BAG, TEAPOT_BLUE])) == [
            TEAPOT_BLUE,
            CAMERA_BAG,
        ]
        rec.dismiss(KETTLE)
        assert ids(rec.recommend(k=2)) == [CAMERA, TEAPOT_RED]


def test_the_first_event_replaces_the_popular_list(
    bundle: Path, signing_key: Ed25519PrivateKey
) -> None:
    with open_at(bundle, signing_key, DECEMBER_MORNING) as rec:
        # The item in view is the model's: what is bought with it, not what is popular.
        in_view = rec.recommend(k=2, in_view=CAMERA)
        assert ids(in_view) == [BATTERIES, CAMERA_BAG]
        assert in_view[0].reasons[0].text == "because you are looking at Cobalt Camera"
        rec.record("purchase", KETTLE)
        result = rec.recommend(k=2)
        assert ids(result) == [TEAPOT_RED, CAMERA]  # kettle -> red 0.6 (blue is its variant)
        assert result[0].reasons[0].text == "because you bought Aurora Kettle"


@pytest.mark.parametrize(
    ("contexts", "when", "expected"),
    [
        ((), DECEMBER_MORNING, [KETTLE, TEAPOT_RED, CAMERA, BATTERIES]),  # the model's prior
        (("month",), DECEMBER_MORNING, [CAMERA, KETTLE, BATTERIES, TEAPOT_RED]),
        (("part_of_day",), DECEMBER_MORNING, [KETTLE, CAMERA, TEAPOT_RED, BATTERIES]),
        (("part_of_day",), JUNE_EVENING, [KETTLE, BATTERIES, CAMERA, TEAPOT_RED]),
        (("month", "part_of_day"), DECEMBER_MORNING, [CAMERA, KETTLE, TEAPOT_RED, BATTERIES]),
    ],
)
def test_the_contexts_are_switchable(
    bundle: Path,
    signing_key: Ed25519PrivateKey,
    contexts: tuple[str, ...],
    when: datetime,
    expected: list[str],
) -> None:
    config = RecommenderConfig(popular_contexts=contexts)
    with open_at(bundle, signing_key, when, config) as rec:
        assert ids(rec.recommend(k=4)) == expected
    with pytest.raises(ValueError, match="popular_contexts"):
        RecommenderConfig(popular_contexts=("weather",))


def test_an_unreadable_prior_costs_the_bundle_nothing_else(
    tmp_path: Path, signing_key: Ed25519PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    broken = write_kiosk_shop_bundle(
        tmp_path / "bundle", signing_key, extra_files={CONTEXT_PRIOR_FILE: b'{"format": "new"}'}
    )
    with caplog.at_level(logging.WARNING), open_at(broken, signing_key, JUNE_EVENING) as rec:
        assert ids(rec.recommend(k=2)) == [KETTLE, TEAPOT_RED]  # the model's global prior
    assert "context_prior.json unusable" in caplog.text
