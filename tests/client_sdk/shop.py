"""A six-item shop with variant groups and a consumable, on the two-cluster tiny model.

The model is `tests.conftest.make_tiny_model` (an item's neighbours are the next item of its
cluster at 0.6 and the last at 0.3; popularity prior 6e-4 ... 1e-4 in index order). The ids are
long and distinctive so tests can grep raw store bytes for them:

    0 kettle        -> 1 teapot (red) 0.6, 2 teapot (blue) 0.3     group "kettle"
    1 teapot (red)  -> 2 teapot (blue) 0.6, 0 kettle 0.3           group "teapot"
    2 teapot (blue) -> 0 kettle 0.6, 1 teapot (red) 0.3            group "teapot"
    3 camera        -> 4 batteries 0.6, 5 camera bag 0.3           group "camera"
    4 batteries     -> 5 camera bag 0.6, 3 camera 0.3              group "battery", consumable
    5 camera bag    -> 3 camera 0.6, 4 batteries 0.3               group "camera-bag"
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client_sdk.bundle import CatalogEntry
from model_export.export import export_bundle
from tests.conftest import FIXED_NOW, make_tiny_model

KETTLE = "sku-aurora-kettle-0042"
TEAPOT_RED = "sku-basil-teapot-red-0107"
TEAPOT_BLUE = "sku-basil-teapot-blue-0108"
CAMERA = "sku-cobalt-camera-0311"
BATTERIES = "sku-delta-batteries-4pk-0419"
CAMERA_BAG = "sku-ember-camera-bag-0523"
SHOP_IDS = (KETTLE, TEAPOT_RED, TEAPOT_BLUE, CAMERA, BATTERIES, CAMERA_BAG)
TITLES = {
    KETTLE: "Aurora Kettle",
    TEAPOT_RED: "Basil Teapot (red)",
    TEAPOT_BLUE: "Basil Teapot (blue)",
    CAMERA: "Cobalt Camera",
    BATTERIES: "Delta Batteries 4-pack",
    CAMERA_BAG: "Ember Camera Bag",
}
GROUPS = {
    KETTLE: "kettle",
    TEAPOT_RED: "teapot",
    TEAPOT_BLUE: "teapot",
    CAMERA: "camera",
    BATTERIES: "battery",
    CAMERA_BAG: "camera-bag",
}


class FixedClock:
    """A clock tests move by hand."""

    def __init__(self, now: datetime = FIXED_NOW) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> None:
        self.current += timedelta(**delta)


def shop_catalog() -> list[CatalogEntry]:
    """The six items in model-index order: kitchen then photo, batteries consumable."""
    return [
        CatalogEntry(
            item_id=item,
            title=TITLES[item],
            category="kitchen" if i < 3 else "photo",
            group=GROUPS[item],
            consumable=item == BATTERIES,
        )
        for i, item in enumerate(SHOP_IDS)
    ]


def write_shop_bundle(
    out_dir: Path,
    key: Ed25519PrivateKey,
    *,
    model_version: int = 1,
    extra_files: Mapping[str, bytes] | None = None,
    valid_for: timedelta = timedelta(days=90),
    catalog: list[CatalogEntry] | None = None,
) -> Path:
    """The shop signed into a bundle, with `extra_files` (priors) signed in too; `catalog`
    replaces `shop_catalog()` (the same ids in the same order)."""
    histories = [
        (np.array([0, 1], np.int64), np.array([1.0, 0.25], np.float32)),
        (np.array([3], np.int64), np.array([1.0], np.float32)),
    ]
    path, _report = export_bundle(
        replace(make_tiny_model(), item_ids=SHOP_IDS),
        out_dir,
        catalog=catalog or shop_catalog(),
        model_version=model_version,
        signing_keys=[key],
        sample_histories=histories,
        now=FIXED_NOW,
        valid_for=valid_for,
        extra_files=extra_files,
    )
    return path
