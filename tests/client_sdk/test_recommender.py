"""Recommender: known answers on the two-cluster model, reasons, input validation."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from client_sdk import Recommender, RecommenderConfig
from tests.client_sdk.shop import FixedClock
from tests.conftest import FIXED_NOW, TINY_IDS

_WEST = timezone(timedelta(hours=-5))


@pytest.fixture
def rec(tiny_bundle: Path, signing_key: Ed25519PrivateKey) -> Iterator[Recommender]:
    keys = [signing_key.public_key()]
    with Recommender.open(tiny_bundle, trusted_keys=keys, clock=FixedClock()) as opened:
        yield opened


def test_withheld_item_of_the_cluster_ranks_first(rec: Recommender) -> None:
    rec.record("purchase", "a0")
    rec.record("purchase", "a1")
    result = rec.recommend(k=3)
    assert result[0].item_id == "a2"
    assert {r.item_id for r in result[1:]} <= {"b0", "b1", "b2"}


def test_scores_match_the_weights(rec: Recommender) -> None:
    rec.record("purchase", "b0")
    first, second = rec.recommend(k=2)
    # b0 -> b1 weight 0.6, b0 -> b2 weight 0.3, plus the tiny popularity prior.
    assert (first.item_id, second.item_id) == ("b1", "b2")
    assert first.score == pytest.approx(0.6 + 2e-4, abs=3e-3)
    assert second.score == pytest.approx(0.3 + 1e-4, abs=3e-3)


def test_event_kind_weights_the_history(rec: Recommender) -> None:
    rec.record("view", "a0")
    rec.record("purchase", "b0")
    top = rec.recommend(k=1)[0]
    assert top.item_id == "b1"  # a purchase (1.0) outweighs a view (0.25)


def test_a_search_counts_like_a_view_and_says_so(rec: Recommender) -> None:
    rec.record("search", "b0", at=FIXED_NOW)
    rec.record("view", "a0", at=FIXED_NOW - timedelta(days=7))
    top = rec.recommend(k=1, now=FIXED_NOW)[0]
    # Search b0: 0.25 now; view a0: 0.25 halved by a week. b0 -> b1 (0.6) wins.
    assert top.item_id == "b1"
    assert top.reasons[0].text == "because you searched for Item B0"


def test_reasons_name_the_history_items_that_contributed(rec: Recommender) -> None:
    rec.record("purchase", "a0")
    rec.record("view", "a1")
    top = rec.recommend(k=1)[0]
    assert top.item_id == "a2"
    texts = [reason.text for reason in top.reasons]
    # a2 gets 0.3 from a0 (purchase, weight 1) and 0.6 * 0.25 = 0.15 from a1 (view).
    assert texts == ["because you bought Item A0", "because you viewed Item A1"]
    assert top.reasons[0].share == pytest.approx(2 / 3, abs=0.02)
    assert math.isclose(sum(r.share for r in top.reasons), 1.0, abs_tol=1e-6)


def test_empty_history_gives_popular_items_with_that_reason(rec: Recommender) -> None:
    result = rec.recommend(k=3)
    assert [r.item_id for r in result] == ["a0", "a1", "a2"]
    assert all(r.reasons[0].kind == "popular" for r in result)


def test_history_items_are_not_suggested_and_k_beyond_catalogue(rec: Recommender) -> None:
    rec.record("purchase", "a0")
    result = rec.recommend(k=50)
    assert len(result) == 5
    assert "a0" not in {r.item_id for r in result}


def test_exclude_and_candidates(rec: Recommender) -> None:
    rec.record("purchase", "a0")
    assert [r.item_id for r in rec.recommend(k=1, exclude={"a1"})] == ["a2"]
    assert [r.item_id for r in rec.recommend(k=5, candidates=["b2", "a1"])] == ["a1", "b2"]
    with pytest.raises(ValueError, match="not both"):
        rec.recommend(k=1, exclude={"a1"}, candidates=["b2"])


def test_unknown_items_are_kept_but_not_scored(rec: Recommender) -> None:
    rec.record("purchase", "sku-not-in-model")
    assert [r.item_id for r in rec.recommend(k=2)] == ["a0", "a1"]


@pytest.mark.parametrize(
    ("kwargs", "error", "needle"),
    [
        ({"kind": "like", "item_id": "a0"}, ValueError, "kind"),
        ({"kind": 3, "item_id": "a0"}, TypeError, "kind"),
        ({"kind": "view", "item_id": ""}, ValueError, "item_id"),
        ({"kind": "view", "item_id": "x" * 257}, ValueError, "item_id"),
        ({"kind": "view", "item_id": 17}, TypeError, "item_id"),
        ({"kind": "purchase", "item_id": "a0", "quantity": float("nan")}, ValueError, "quantity"),
        ({"kind": "purchase", "item_id": "a0", "quantity": -1}, ValueError, "quantity"),
        ({"kind": "purchase", "item_id": "a0", "quantity": "2"}, TypeError, "quantity"),
        ({"kind": "purchase", "item_id": "a0", "quantity": True}, TypeError, "quantity"),
        ({"kind": "view", "item_id": "a0", "at": datetime(2026, 1, 1)}, ValueError, "at"),
        ({"kind": "view", "item_id": "a0", "at": "2026-01-01"}, TypeError, "at"),
        (
            {"kind": "view", "item_id": "a0", "at": datetime.max.replace(tzinfo=_WEST)},
            ValueError,
            "at",
        ),
        ({"kind": "search", "item_id": "a0", "quantity": 1e9}, ValueError, "quantity"),
    ],
)
def test_record_refuses_bad_arguments_naming_them(
    rec: Recommender, kwargs: dict[str, object], error: type[Exception], needle: str
) -> None:
    with pytest.raises(error, match=needle):
        rec.record(**kwargs)  # type: ignore[arg-type]
    assert [r.reasons[0].kind for r in rec.recommend(k=1)] == ["popular"]


def test_recommend_refuses_bad_k(rec: Recommender) -> None:
    with pytest.raises(TypeError, match="k must be int"):
        rec.recommend(k=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="k must be >= 0"):
        rec.recommend(k=-1)
    assert rec.recommend(k=0) == []


def test_closed_recommender_refuses_work(rec: Recommender) -> None:
    with rec:
        rec.record("view", "a0")
    with pytest.raises(ValueError, match="closed"):
        rec.recommend(k=1)


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="threads"):
        RecommenderConfig(threads=0)
    with pytest.raises(ValueError, match="max_history_items"):
        RecommenderConfig(max_history_items=0)


@settings(max_examples=40, deadline=None)
@given(
    history=st.lists(st.sampled_from(TINY_IDS), max_size=6),
    excluded=st.sets(st.sampled_from(TINY_IDS)),
    k=st.integers(min_value=0, max_value=8),
)
def test_recommend_never_returns_history_or_excluded_items(
    shared_tiny_bundle: Path,
    signing_key: Ed25519PrivateKey,
    history: list[str],
    excluded: set[str],
    k: int,
) -> None:
    keys = [signing_key.public_key()]
    with Recommender.open(shared_tiny_bundle, trusted_keys=keys, clock=FixedClock()) as rec:
        for item in history:
            rec.record("purchase", item)
        result = [r.item_id for r in rec.recommend(k=k, exclude=excluded)]
        allowed = set(TINY_IDS) - set(history) - excluded
        assert set(result) <= allowed
        assert len(result) == min(k, len(allowed))
        assert len(set(result)) == len(result)
