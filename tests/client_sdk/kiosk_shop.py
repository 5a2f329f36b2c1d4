"""The six-item shop of shop.py with a context prior: who buys what, when (known answers).

Counts of distinct buyers (min_users 10, smoothing 1; every month and part of the day has the
same volume, so a lift is an item's share of its own cells against 1/12 or 1/4):

    kettle      200 buyers, 17 in every month, 50 in every part of the day   (flat)
    camera      100 buyers: 80 in December, 20 in November, other months unpublished
    batteries    60 buyers: 50 in the evening, other parts unpublished; months unpublished
    teapot red   30 buyers, nothing else published; teapot blue 25 (a variant of red)
    camera bag  not listed: under the floor (the model's prior places it)
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client_sdk.bundle import CONTEXT_PRIOR_FILE
from client_sdk.context_prior import ContextPrior, encode_context_prior
from tests.client_sdk.shop import (
    BATTERIES,
    CAMERA,
    KETTLE,
    TEAPOT_BLUE,
    TEAPOT_RED,
    write_shop_bundle,
)

_NONE_12 = (0,) * 12
_NONE_4 = (0,) * 4


def shop_context_prior() -> ContextPrior:
    return ContextPrior(
        min_users=10,
        smoothing=1.0,
        utc_offset_minutes=0,
        month_totals=(1000,) * 12,
        part_totals=(3000,) * 4,
        items={
            KETTLE: (200, *(17,) * 12, *(50,) * 4),
            CAMERA: (100, *(0,) * 10, 20, 80, *_NONE_4),
            BATTERIES: (60, *_NONE_12, 0, 0, 50, 0),
            TEAPOT_RED: (30, *_NONE_12, *_NONE_4),
            TEAPOT_BLUE: (25, *_NONE_12, *_NONE_4),
        },
    )


def write_kiosk_shop_bundle(
    out_dir: Path, key: Ed25519PrivateKey, *, extra_files: dict[str, bytes] | None = None
) -> Path:
    """The shop bundle, signed with `context_prior.json` (or the given extra files)."""
    files = (
        extra_files
        if extra_files is not None
        else {CONTEXT_PRIOR_FILE: encode_context_prior(shop_context_prior())}
    )
    # Valid for ten years: the tests move the clock through a whole year.
    return write_shop_bundle(out_dir, key, extra_files=files, valid_for=timedelta(days=3650))
