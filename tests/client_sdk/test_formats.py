"""The shared opening of the bundle's versioned JSON side files (`load_versioned_json`)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client_sdk import FormatError, Recommender
from client_sdk._formats import load_versioned_json
from client_sdk.bundle import CONTEXT_PRIOR_FILE, REORDER_PRIORS_FILE
from client_sdk.priors import default_priors
from tests.client_sdk.kiosk_shop import write_kiosk_shop_bundle
from tests.client_sdk.shop import KETTLE, TEAPOT_RED

NESTED = b"[" * 100_000 + b"]" * 100_000
WAIT = 10.0  # seconds: a generous bound, so a broken test fails instead of hanging


def test_a_tagged_object_is_returned() -> None:
    data = b'{"format": "f", "version": 2, "x": [1]}'
    assert load_versioned_json(data, "f.json", "f", 2) == {"format": "f", "version": 2, "x": [1]}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff", r"^f\.json: not UTF-8 JSON$"),
        (b"{", r"^f\.json: not UTF-8 JSON$"),
        (NESTED, r"^f\.json: JSON nested too deeply$"),
        (b'{"a": ' + NESTED + b"}", r"^f\.json: JSON nested too deeply$"),
        (b"[]", r"^f\.json: expected an object, found list$"),
        (b'{"format": "f", "version": 3}', r"^f\.json: expected format 'f' version 2, found 'f'"),
    ],
)
def test_unreadable_files_are_refused_naming_the_file(data: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        load_versioned_json(data, "f.json", "f", 2)


def test_deeply_nested_signed_side_files_fall_back_with_a_warning(
    tmp_path: Path, signing_key: Ed25519PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    bundle = write_kiosk_shop_bundle(
        tmp_path / "bundle",
        signing_key,
        extra_files={REORDER_PRIORS_FILE: NESTED, CONTEXT_PRIOR_FILE: NESTED},
    )
    with (
        caplog.at_level(logging.WARNING),
        Recommender.open(bundle, trusted_keys=[signing_key.public_key()]) as rec,
    ):
        assert rec._extras.wait(WAIT)
        assert rec._extras.priors == default_priors()  # parsed in the extras thread: no error
        assert rec._extras.context is None
        assert rec.shortcuts() == []
        assert [r.item_id for r in rec.recommend(k=1, in_view=KETTLE)] == [TEAPOT_RED]
    assert "reorder priors unusable (reorder_priors.json: JSON nested too deeply)" in caplog.text
    assert "context_prior.json unusable (context_prior.json: JSON nested too deeply)" in caplog.text
