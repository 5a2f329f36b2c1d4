"""Side files parsed in the background: open returns before them, their users wait for them."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client_sdk import Recommender
from client_sdk.bundle import REORDER_PRIORS_FILE, VerifiedBundle
from client_sdk.context_prior import bundle_context_popularity
from client_sdk.extras import BundleExtras
from client_sdk.priors import ReorderPriors, default_priors, usable_priors
from tests.client_sdk.kiosk_shop import write_kiosk_shop_bundle
from tests.client_sdk.shop import CAMERA, KETTLE, TEAPOT_RED, FixedClock

WAIT = 10.0  # seconds: a generous bound, so a broken test fails instead of hanging


def test_given_extras_are_ready_with_defaults() -> None:
    extras = BundleExtras.of()
    assert extras.wait(0)
    assert extras.priors == default_priors()
    assert extras.context is None
    assert extras.gifts is None


def test_open_returns_before_the_side_files_are_parsed(
    tmp_path: Path, signing_key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = write_kiosk_shop_bundle(tmp_path / "bundle", signing_key)
    release, started = threading.Event(), threading.Event()

    def slow_priors(verified: VerifiedBundle) -> ReorderPriors:
        started.set()
        assert release.wait(WAIT), "the test never released the parser"
        return usable_priors(verified)

    monkeypatch.setattr("client_sdk.extras.usable_priors", slow_priors)
    with Recommender.open(bundle, trusted_keys=[signing_key.public_key()]) as rec:
        assert started.wait(WAIT)
        assert not rec._extras.wait(0)  # open returned while the priors were still parsing
        rec.record("purchase", KETTLE)
        assert [r.item_id for r in rec.recommend(k=1)] == [TEAPOT_RED]  # needs no side file
        release.set()
        assert rec._extras.wait(WAIT)
        assert rec.shortcuts() == []  # the priors are there now


def test_an_empty_session_waits_for_the_context_prior(
    tmp_path: Path, signing_key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = write_kiosk_shop_bundle(tmp_path / "bundle", signing_key)
    release = threading.Event()

    def slow_context(*args: object) -> object:
        assert release.wait(WAIT)
        return bundle_context_popularity(*args)  # type: ignore[arg-type]

    asked = threading.Event()
    real_get = BundleExtras._get

    def noting_get(self: BundleExtras) -> object:
        asked.set()  # the caller has reached the side files
        return real_get(self)

    monkeypatch.setattr("client_sdk.extras.bundle_context_popularity", slow_context)
    monkeypatch.setattr(BundleExtras, "_get", noting_get)
    december = FixedClock(datetime(2026, 12, 10, 10, 0, tzinfo=timezone.utc))
    with Recommender.open(bundle, trusted_keys=[signing_key.public_key()], clock=december) as rec:
        answer: list[list[str]] = []
        caller = threading.Thread(
            target=lambda: answer.append([r.item_id for r in rec.recommend(k=1)])
        )
        caller.start()
        assert asked.wait(WAIT)
        assert not rec._extras.wait(0)  # the caller asked while the prior was still parsing
        release.set()
        caller.join(WAIT)
        assert answer == [[CAMERA]]  # December's favourite: it waited for the context prior


def test_a_failure_in_the_parser_reaches_the_caller(
    tmp_path: Path, signing_key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = write_kiosk_shop_bundle(
        tmp_path / "bundle", signing_key, extra_files={REORDER_PRIORS_FILE: b"{}"}
    )

    def broken(_bundle: VerifiedBundle) -> ReorderPriors:
        raise MemoryError("no room")

    monkeypatch.setattr("client_sdk.extras.usable_priors", broken)
    with Recommender.open(bundle, trusted_keys=[signing_key.public_key()]) as rec:
        with pytest.raises(MemoryError, match="no room"):
            rec.shortcuts()
        assert [r.item_id for r in rec.recommend(k=1, in_view=KETTLE)] == [TEAPOT_RED]
