"""Gift mode (issue 4): what people buy as gifts, from the bundle's gift prior, on the shop of
kiosk_shop.py.

The gift prior lists three items, no month or part of the day published (every lift is 1), so
it ranks by givers: teapot red 40, teapot blue 30 (red's variant), camera bag 20. The model's
global prior then fills up: kettle, teapot red, camera, batteries (test_context_prior.py).
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client_sdk import Recommendation, Recommender
from client_sdk.bundle import CONTEXT_PRIOR_FILE, GIFT_PRIOR_FILE
from client_sdk.context_prior import ContextPrior, encode_context_prior
from tests.client_sdk.kiosk_shop import shop_context_prior, write_kiosk_shop_bundle
from tests.client_sdk.shop import (
    BATTERIES,
    CAMERA,
    CAMERA_BAG,
    KETTLE,
    TEAPOT_BLUE,
    TEAPOT_RED,
    FixedClock,
)

DECEMBER_MORNING = datetime(2026, 12, 10, 10, 0, tzinfo=timezone.utc)
NOTHING = (0,) * 16
GIFT_PRIOR = ContextPrior(
    min_users=10,
    smoothing=1.0,
    utc_offset_minutes=0,
    month_totals=(100,) * 12,
    part_totals=(300,) * 4,
    items={TEAPOT_RED: (40, *NOTHING), TEAPOT_BLUE: (30, *NOTHING), CAMERA_BAG: (20, *NOTHING)},
)


def write_bundle(directory: Path, key: Ed25519PrivateKey, gift_prior: bytes | None) -> Path:
    files = {CONTEXT_PRIOR_FILE: encode_context_prior(shop_context_prior())}
    if gift_prior is not None:
        files[GIFT_PRIOR_FILE] = gift_prior
    return write_kiosk_shop_bundle(directory / "bundle", key, extra_files=files)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, signing_key: Ed25519PrivateKey) -> Path:
    return write_bundle(
        tmp_path_factory.mktemp("gifts"), signing_key, encode_context_prior(GIFT_PRIOR)
    )


def open_at(bundle: Path, key: Ed25519PrivateKey) -> Recommender:
    return Recommender.open(
        bundle, trusted_keys=[key.public_key()], clock=FixedClock(DECEMBER_MORNING)
    )


def ids(result: list[Recommendation]) -> list[str]:
    return [r.item_id for r in result]


def texts(item: Recommendation, kind: str) -> list[str]:
    return [reason.text for reason in item.reasons if reason.kind == kind]


def test_gift_mode_ranks_what_people_give(bundle: Path, signing_key: Ed25519PrivateKey) -> None:
    with open_at(bundle, signing_key) as rec:
        rec.set_intent("gift")
        result = rec.recommend(k=4)
    assert ids(result) == [TEAPOT_RED, CAMERA_BAG, KETTLE, CAMERA]
    assert [texts(r, "popular") for r in result] == [
        ["a popular gift"],
        ["a popular gift"],
        ["popular with other shoppers"],  # the model's global prior fills up
        ["popular with other shoppers"],
    ]
    assert texts(result[0], "control") == [
        "gift mode: your own history is not used",
        "one variant per product: 1 left out",
    ]


def test_the_shoppers_own_history_neither_shapes_nor_filters_gifts(
    bundle: Path, signing_key: Ed25519PrivateKey
) -> None:
    with open_at(bundle, signing_key) as rec:
        rec.set_intent("gift")
        fresh = ids(rec.recommend(k=4))
        rec.set_intent("for_me")
        rec.record("purchase", KETTLE)
        rec.record("view", BATTERIES)
        assert KETTLE not in ids(rec.recommend(k=4))
        rec.set_intent("gift")
        assert ids(rec.recommend(k=4)) == fresh  # the kettle they own may still be a gift


def test_for_me_is_unchanged_by_the_gift_prior(
    bundle: Path, signing_key: Ed25519PrivateKey
) -> None:
    with open_at(bundle, signing_key) as rec:
        assert ids(rec.recommend(k=4)) == [CAMERA, KETTLE, TEAPOT_RED, BATTERIES]


def test_without_a_gift_prior_gift_mode_says_it_shows_what_is_popular(
    tmp_path: Path, signing_key: Ed25519PrivateKey
) -> None:
    plain = write_bundle(tmp_path, signing_key, None)
    with open_at(plain, signing_key) as rec:
        rec.set_intent("gift")
        result = rec.recommend(k=4)
    assert ids(result) == [CAMERA, KETTLE, TEAPOT_RED, BATTERIES]  # the context prior
    assert "this model has no gift data: showing what is popular" in texts(result[0], "control")


def test_an_unreadable_gift_prior_is_not_used(
    tmp_path: Path, signing_key: Ed25519PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    broken = write_bundle(tmp_path, signing_key, b'{"format": "facetwo-context-prior"}')
    with caplog.at_level(logging.WARNING), open_at(broken, signing_key) as rec:
        rec.set_intent("gift")
        assert ids(rec.recommend(k=2)) == [CAMERA, KETTLE]
    assert "gift_prior.json unusable" in caplog.text
