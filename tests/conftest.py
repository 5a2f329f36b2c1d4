"""Shared fixtures: a fixed clock, signing keys, and a tiny model with known answers.

The tiny catalogue has two clusters of three items, {a0, a1, a2} and {b0, b1, b2}: an item's
neighbours are the other two items of its cluster. A shopper with a0 and a1 must be offered a2
first; one with b0 must be offered b1 and b2 before anything from cluster a.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client_sdk.bundle import CatalogEntry
from model_export.export import SparseItemModel, export_bundle

FIXED_NOW = datetime(2026, 1, 15, 12, 0, tzinfo=timezone.utc)
TINY_IDS = ("a0", "a1", "a2", "b0", "b1", "b2")


@pytest.fixture
def now() -> datetime:
    return FIXED_NOW


@pytest.fixture(scope="session")
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="session")
def other_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def make_tiny_model() -> SparseItemModel:
    """Two clusters of three items: weight 0.6 to the next item of the cluster, 0.3 to the last."""
    index = np.array([[1, 2], [2, 0], [0, 1], [4, 5], [5, 3], [3, 4]], np.int64)
    weight = np.array([[0.6, 0.3]] * 6, np.float32)
    base = np.array([6, 5, 4, 3, 2, 1], np.float32) * 1e-4
    return SparseItemModel(
        item_ids=TINY_IDS,
        neighbor_index=index,
        neighbor_weight=weight,
        base_score=base,
        event_weights={"view": 0.25, "cart": 0.5, "purchase": 1.0},
    )


def tiny_catalog() -> list[CatalogEntry]:
    return [
        CatalogEntry(item_id=i, title=f"Item {i.upper()}", category=i[0], group=f"g-{i}")
        for i in TINY_IDS
    ]


def write_tiny_bundle(
    out_dir: Path,
    key: Ed25519PrivateKey,
    *,
    model_version: int = 1,
    now: datetime = FIXED_NOW,
) -> Path:
    model = make_tiny_model()
    histories = [
        (np.array([0, 1], np.int64), np.array([1.0, 0.25], np.float32)),
        (np.array([3], np.int64), np.array([1.0], np.float32)),
    ]
    path, _report = export_bundle(
        model,
        out_dir,
        catalog=tiny_catalog(),
        model_version=model_version,
        signing_keys=[key],
        sample_histories=histories,
        now=now,
    )
    return path


@pytest.fixture
def tiny_bundle(tmp_path: Path, signing_key: Ed25519PrivateKey) -> Path:
    return write_tiny_bundle(tmp_path / "bundle", signing_key)


@pytest.fixture(scope="session")
def shared_tiny_bundle(
    tmp_path_factory: pytest.TempPathFactory, signing_key: Ed25519PrivateKey
) -> Path:
    """A read-only tiny bundle shared by tests that must not modify it."""
    return write_tiny_bundle(tmp_path_factory.mktemp("shared") / "bundle", signing_key)
