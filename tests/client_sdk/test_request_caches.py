"""What `recommend()` keeps between calls (issue 7) is refreshed by every change of the state."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client_sdk import Recommender
from client_sdk.features import DEFAULT_EVENT_WEIGHTS, Event, EventLog, InterestConfig
from client_sdk.ranking import top_contributors
from tests.client_sdk.shop import FixedClock
from tests.conftest import FIXED_NOW


@pytest.fixture
def rec(tiny_bundle: Path, signing_key: Ed25519PrivateKey) -> Iterator[Recommender]:
    keys = [signing_key.public_key()]
    with Recommender.open(tiny_bundle, trusted_keys=keys, clock=FixedClock()) as opened:
        yield opened


def _ids(rec: Recommender) -> list[str]:
    return [r.item_id for r in rec.recommend(k=2)]


def test_each_change_of_the_state_reaches_the_next_list(rec: Recommender) -> None:
    rec.record("purchase", "b0")
    assert _ids(rec) == ["b1", "b2"]  # b0 -> b1 0.6, b0 -> b2 0.3
    rec.dismiss("b1")
    assert _ids(rec) == ["b2", "a0"]  # then the popularity prior, a0 first
    assert rec.recommend(k=1)[0].reasons[-1].text == "1 dismissed items and variants hidden"
    assert rec.undismiss("b1")
    assert _ids(rec) == ["b1", "b2"]
    rec.record("purchase", "b1")  # b2 now gets 0.3 + 0.6; the history is never suggested back
    assert _ids(rec) == ["b2", "a0"]
    rec.forget("b1")
    assert _ids(rec) == ["b1", "b2"]
    rec.pause()
    rec.record("purchase", "a0")  # dropped while paused
    assert _ids(rec) == ["b1", "b2"]
    rec.forget()
    assert _ids(rec) == ["a0", "a1"]


def test_interest_fades_between_calls_on_an_unchanged_log(rec: Recommender) -> None:
    rec.record("view", "a0", at=FIXED_NOW)
    now = rec.recommend(k=1, now=FIXED_NOW)[0]
    week = rec.recommend(k=1, now=FIXED_NOW + timedelta(days=7))[0]  # a view's half-life
    assert now.item_id == week.item_id == "a1"
    assert now.score == pytest.approx(0.25 * 0.6 + 5e-4, abs=3e-3)
    assert week.score == pytest.approx(0.25 * 0.6 / 2 + 5e-4, abs=3e-3)


def test_event_log_history_follows_appends_and_removals() -> None:
    log = EventLog({"x": 0, "y": 1, "z": 2}, 3)
    interest = InterestConfig()
    for record_id, (kind, item, hours) in enumerate(
        [("purchase", "x", 0), ("view", "y", 1), ("cart", "z", 2), ("view", "x", 3)]
    ):
        log.append(record_id, Event(kind, item, 1.0, FIXED_NOW + timedelta(hours=hours)))
    later = FIXED_NOW + timedelta(hours=3)
    first = log.history(DEFAULT_EVENT_WEIGHTS, max_items=2, now=later, interest=interest)
    # most recently touched first: x (viewed at 3h; its purchase is the stronger event), z
    assert first.index.tolist() == [0, 2]
    assert first.kind == ("purchase", "cart")
    version = log.version
    log.remove([3])
    assert log.version > version
    second = log.history(DEFAULT_EVENT_WEIGHTS, max_items=5, now=later, interest=interest)
    assert second.index.tolist() == [2, 1, 0]
    year = later + timedelta(days=400)
    faded = log.history(DEFAULT_EVENT_WEIGHTS, max_items=5, now=year, interest=interest)
    assert (faded.index.tolist(), faded.faded) == ([0], 2)  # only the purchase still counts
    assert faded.weight[0] == pytest.approx(2 ** (-(400 + 1 / 8) / 120), rel=1e-6)


def test_top_contributors_known_answer() -> None:
    contributions = np.array(
        [[0.5, 0.3, -0.1, 0.2], [-1.0, -2.0, 0.0, 0.0], [0.0, 0.0, 0.25, 0.0]], np.float32
    )
    sources, shares = top_contributors(contributions)
    assert sources == [[0, 1, 3], [], [2]]
    assert shares[0] == pytest.approx([0.5, 0.3, 0.2])
    assert shares[1:] == [[], [1.0]]
    assert top_contributors(np.zeros((2, 0), np.float32)) == ([[], []], [[], []])
