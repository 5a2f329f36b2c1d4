"""The columnar catalogue of bundle format 2 (issue 7), and format 1 bundles still opening."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client_sdk import FormatError, Recommender
from client_sdk.bundle import CATALOG_FILE, read_bundle
from client_sdk.catalog import BundleCatalog, CatalogEntry, encode_catalog, parse_catalog
from model_export.errors import ExportError
from model_export.signing import sign_manifest
from model_export.writer import encode_catalog as write_catalog
from tests.client_sdk.shop import (
    BATTERIES,
    CAMERA,
    KETTLE,
    SHOP_IDS,
    TEAPOT_BLUE,
    TEAPOT_RED,
    FixedClock,
    write_shop_bundle,
)
from tests.conftest import FIXED_NOW

ENTRIES = [
    CatalogEntry("a", "Apple", "fruit", "", True),
    CatalogEntry("b-red", "Bag (red)", "bags", "bag"),
    CatalogEntry("c", "Cherry", "fruit", "c"),  # named after itself, alone: no group listed
    CatalogEntry("b-blue", "Bag (blue)", "bags", "bag"),
    CatalogEntry("d", "Drill", "", "tools-d", False),  # alone, but under its own group name
]


def _document(**changes: Any) -> bytes:
    document = json.loads(write_catalog(ENTRIES))
    document.update(changes)
    return json.dumps(document).encode()


def test_catalog_round_trips_with_variants_categories_and_consumables() -> None:
    data = write_catalog(ENTRIES)
    document = json.loads(data)
    assert document["format"] == "facetwo-catalog" and document["version"] == 2
    assert document["item_ids"] == ["a", "b-red", "c", "b-blue", "d"]
    assert document["category_names"] == ["fruit", "bags", ""]
    assert document["category_code"] == [0, 1, 0, 1, 2]
    assert document["group_names"] == ["bag", "tools-d"]
    assert document["group_items"] == [[1, 3], [4]]
    assert document["consumable"] == [0]
    catalog = parse_catalog(data, 2)
    assert (
        list(catalog.entries)
        == [
            CatalogEntry("a", "Apple", "fruit", "a", True),  # an empty group is the item's own id
            *ENTRIES[1:],
        ]
    )
    assert encode_catalog(catalog) == data


def test_variants_share_a_group_code_and_every_other_item_has_its_own() -> None:
    catalog = BundleCatalog.from_entries(ENTRIES)
    codes = catalog.group_code.tolist()
    assert codes[1] == codes[3]
    assert len({codes[0], codes[1], codes[2], codes[4]}) == 4
    assert catalog.consumable.tolist() == [True, False, False, False, False]
    assert dict(catalog.index) == {"a": 0, "b-red": 1, "c": 2, "b-blue": 3, "d": 4}
    for array in (catalog.group_code, catalog.category_code, catalog.consumable):
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 1


def test_entries_are_made_on_demand_as_a_sequence() -> None:
    catalog = BundleCatalog.from_entries(ENTRIES)
    assert len(catalog.entries) == 5
    assert catalog.entries[-1] == catalog.entry(4) == ENTRIES[4]
    assert catalog.entries[1:4:2] == (ENTRIES[1], ENTRIES[3])
    assert ENTRIES[2] in catalog.entries
    with pytest.raises(IndexError):
        catalog.entries[5]
    assert repr(catalog) == "BundleCatalog(5 items, 2 variant groups)"


def test_an_empty_catalog_round_trips() -> None:
    catalog = parse_catalog(write_catalog([]), 2)
    assert len(catalog) == 0 and list(catalog.entries) == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"[1, 2]", r"catalog\.json: expected an object, found list"),
        (_document(version=3), r"catalog\.json: expected format 'facetwo-catalog' version 2"),
        (_document(item_ids="abc"), r"field 'item_ids': expected a list, found str"),
        (
            _document(item_ids=["a", 1, "c", "d", "e"]),
            r"field 'item_ids': expected strings, found int",
        ),
        (
            _document(item_ids=["a", "b", "a", "d", "e"]),
            r"field 'item_ids': 'a' is listed more than once",
        ),
        (_document(titles=["x"]), r"field 'titles': expected 5 values, found 1"),
        (
            _document(category_code=[0, 1, 0, 1, 3]),
            r"field 'category_code': expected codes in \[0, 3\)",
        ),
        (
            _document(category_code=[0, 1, 0, 1.5, 2]),
            r"field 'category_code': expected a flat list of integers, found float",
        ),
        (
            _document(category_code=[[0], [0, 1]]),
            r"field 'category_code': expected a flat list of integers, found list",
        ),
        (
            _document(category_code=[[0], [1], [0], [1], [2]]),
            r"field 'category_code': expected a flat list of integers, found list",
        ),
        (
            _document(category_code=[True, 1, 0, 1, 2]),
            r"field 'category_code': expected a flat list of integers, found bool",
        ),
        (
            _document(category_code=[0, 1, 0, 1, 2**64]),
            r"field 'category_code': expected 64-bit integers",
        ),
        (
            _document(category_code=[0, 1]),
            r"field 'category_code': expected shape \(5,\), found \(2,\)",
        ),
        (
            _document(category_names=["fruit", "fruit", ""]),
            r"'category_names': 'fruit' is listed more",
        ),
        (_document(group_items=[[1, 3]]), r"field 'group_items': expected 2 lists, found 1"),
        (
            _document(group_items=[[1, 3], []]),
            r"field 'group_items\[1\]': expected a non-empty list",
        ),
        (_document(group_items=[[1, 3], [3]]), r"an item is listed in more than one group"),
        (
            _document(group_items=[[1, 3], [7]]),
            r"field 'group_items': expected indices in \[0, 5\)",
        ),
        (_document(consumable=[5]), r"field 'consumable': expected indices in \[0, 5\)"),
        (_document(consumable=None), r"field 'consumable': expected a list, found NoneType"),
        (_document(consumable=[0, True]), r"field 'consumable': expected a flat list of integers"),
        (_document(consumable=[[0], [0, 1]]), r"field 'consumable': expected a flat list"),
        (_document(consumable=[2**63]), r"field 'consumable': expected indices in \[0, 5\)"),
        (_document(consumable=[-(2**70)]), r"field 'consumable': expected indices in \[0, 5\)"),
        (
            _document(group_items=[[True, 3], [4]]),
            r"field 'group_items': expected a flat list of integers, found bool",
        ),
        (
            _document(group_items=[[1, [3]], [4]]),
            r"field 'group_items': expected a flat list of integers, found list",
        ),
        (
            _document(kind_names=["camera"], kind_items=[[0, True]]),
            r"field 'kind_items': expected a flat list of integers, found bool",
        ),
        (
            _document(kind_items=[[0]]),
            r"field 'kind_items': present without 'kind_names'",
        ),
        (
            _document(kind_names=[]),
            r"field 'kind_names': present without 'kind_items'",
        ),
        (
            _document(kind_names=[], kind_items=[[0]]),
            r"field 'kind_items': expected 0 lists, found 1",
        ),
        (b"[" * 100_000 + b"]" * 100_000, r"catalog\.json: JSON nested too deeply"),
        (
            _document(titles="x").replace(b'"x"', b"[" * 50_000 + b"]" * 50_000),
            r"catalog\.json: JSON nested too deeply",
        ),
    ],
)
def test_malformed_catalogs_are_refused_naming_the_field(data: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        parse_catalog(data, 2)


def test_the_writer_refuses_a_duplicate_id() -> None:
    with pytest.raises(ExportError, match="'a' is listed more than once"):
        write_catalog([ENTRIES[0], ENTRIES[0]])


def test_bundle_catalog_matches_the_shop(tmp_path: Path, signing_key: Ed25519PrivateKey) -> None:
    bundle = read_bundle(
        write_shop_bundle(tmp_path / "b", signing_key), [signing_key.public_key()], now=FIXED_NOW
    )
    assert bundle.manifest.format_version == 2
    catalog = bundle.catalog()
    assert catalog.item_ids == SHOP_IDS
    assert catalog.group_names == ("kettle", "teapot", "camera", "battery", "camera-bag")
    assert catalog.group_code[1] == catalog.group_code[2]
    assert catalog.entry(4).consumable and catalog.entry(4).category == "photo"
    assert catalog.entry(0).group == "kettle"


def _as_format_1(bundle: Path, key: Ed25519PrivateKey, rows: Sequence[Mapping[str, Any]]) -> None:
    """Rewrite a bundle as format 1 wrote it: a catalogue of rows, re-signed."""
    data = json.dumps({"items": list(rows)}).encode()
    (bundle / CATALOG_FILE).write_bytes(data)
    manifest = json.loads((bundle / "manifest.json").read_bytes())
    manifest["format_version"] = 1
    manifest["files"][CATALOG_FILE] = {
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
    }
    manifest_bytes = json.dumps(manifest).encode()
    (bundle / "manifest.json").write_bytes(manifest_bytes)
    (bundle / "manifest.sig").write_bytes(sign_manifest(manifest_bytes, [key]))


def test_a_format_1_bundle_still_opens_and_recommends(
    tmp_path: Path, signing_key: Ed25519PrivateKey
) -> None:
    bundle = write_shop_bundle(tmp_path / "b", signing_key)
    rows: list[dict[str, Any]] = [
        {"id": KETTLE, "title": "Aurora Kettle", "group": "kettle"},
        {"id": TEAPOT_RED, "title": "Basil Teapot (red)", "group": "teapot"},
        {"id": TEAPOT_BLUE, "title": "Basil Teapot (blue)", "group": "teapot"},
        {"id": CAMERA},  # title and group default to the id
        {"id": BATTERIES, "consumable": True},
        {"id": SHOP_IDS[5], "category": "photo"},
    ]
    _as_format_1(bundle, signing_key, rows)
    keys = [signing_key.public_key()]
    with Recommender.open(bundle, trusted_keys=keys, clock=FixedClock()) as rec:
        assert rec.catalog.entry(3) == CatalogEntry(CAMERA, CAMERA, "", CAMERA, False)
        assert rec.catalog.entry(4).consumable
        rec.record("purchase", KETTLE)
        # kettle -> red teapot 0.6, blue teapot 0.3: one variant per product
        top = rec.recommend(k=2)
        assert [r.item_id for r in top] == [TEAPOT_RED, CAMERA]
        assert top[0].reasons[0].text == "because you bought Aurora Kettle"


def test_kinds_round_trip_and_an_empty_kind_list_is_read() -> None:
    cameras = [CatalogEntry("x", "X", kind="camera"), CatalogEntry("y", "Y"), ENTRIES[0]]
    data = write_catalog(cameras)
    assert json.loads(data)["kind_items"] == [[0]]
    assert [e.kind for e in parse_catalog(data, 2).entries] == ["camera", "", ""]
    empty = parse_catalog(_document(kind_names=[], kind_items=[]), 2)
    assert {e.kind for e in empty.entries} == {""}


def test_a_deeply_nested_format_1_catalog_is_refused() -> None:
    with pytest.raises(FormatError, match=r"catalog\.json is malformed"):
        parse_catalog(b'{"items": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 1)


Mutate = Callable[[list[dict[str, Any]]], object]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda rows: rows.append({"title": "no id"}), r"catalog\.json is malformed"),
        (lambda rows: rows.append(dict(rows[0])), r"'sku-aurora-kettle-0042' is listed more"),
    ],
)
def test_a_malformed_format_1_catalog_is_refused(
    tmp_path: Path, signing_key: Ed25519PrivateKey, mutate: Mutate, message: str
) -> None:
    bundle = write_shop_bundle(tmp_path / "b", signing_key)
    rows: list[dict[str, Any]] = [{"id": item} for item in SHOP_IDS]
    mutate(rows)
    _as_format_1(bundle, signing_key, rows)
    with pytest.raises(FormatError, match=message):
        read_bundle(bundle, [signing_key.public_key()], now=FIXED_NOW).catalog()


def test_the_manifest_item_count_must_match(tmp_path: Path, signing_key: Ed25519PrivateKey) -> None:
    bundle = write_shop_bundle(tmp_path / "b", signing_key)
    _as_format_1(bundle, signing_key, [{"id": item} for item in SHOP_IDS[:5]])
    with pytest.raises(FormatError, match=r"catalog\.json has 5 items, manifest says 6"):
        read_bundle(bundle, [signing_key.public_key()], now=FIXED_NOW).catalog()


def test_numpy_codes_are_checked_on_construction() -> None:
    good = BundleCatalog.from_entries(ENTRIES)
    with pytest.raises(ValueError, match=r"field 'group_of': expected codes in \[-1, 2\)"):
        BundleCatalog(
            good.item_ids,
            good.titles,
            good.category_names,
            good.category_code,
            good.group_names,
            np.array([-2, 0, -1, 0, 1]),
            good.consumable,
        )
