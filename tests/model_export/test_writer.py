"""Bundle writing and signing keys."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client_sdk.bundle import read_bundle
from model_export.errors import ExportError
from model_export.signing import load_private_key, write_key_pair
from model_export.writer import write_bundle
from tests.conftest import FIXED_NOW, write_tiny_bundle


def test_bundle_lists_every_file_with_hash_and_size(tiny_bundle: Path) -> None:
    manifest = json.loads((tiny_bundle / "manifest.json").read_bytes())
    assert manifest["format_version"] == 2  # the columnar catalog (issue 7)
    assert manifest["model_version"] == 1
    assert manifest["expires_at"] == "2026-04-15T12:00:00Z"
    assert set(manifest["files"]) == {"model.onnx", "catalog.json"}
    for name, entry in manifest["files"].items():
        assert entry["size"] == (tiny_bundle / name).stat().st_size
    assert manifest["model"]["n_items"] == 6
    assert manifest["model"]["weights"] == "int8-per-row"


def test_existing_bundle_is_not_overwritten(
    tiny_bundle: Path, signing_key: Ed25519PrivateKey
) -> None:
    with pytest.raises(ExportError, match="already exists"):
        write_tiny_bundle(tiny_bundle, signing_key)


def test_write_bundle_validates_its_arguments(
    tmp_path: Path, signing_key: Ed25519PrivateKey
) -> None:
    with pytest.raises(ExportError, match=r"needs model\.onnx"):
        write_bundle(
            tmp_path / "b", files={}, model_version=1, signing_keys=[signing_key], model_info={}
        )
    files = {"model.onnx": b"x", "catalog.json": b"{}"}
    with pytest.raises(ExportError, match="model_version must be >= 1"):
        write_bundle(
            tmp_path / "b", files=files, model_version=0, signing_keys=[signing_key], model_info={}
        )
    with pytest.raises(ExportError, match="at least one signing key"):
        write_bundle(tmp_path / "b", files=files, model_version=1, signing_keys=[], model_info={})
    assert not (tmp_path / "b").exists()
    assert not list(tmp_path.iterdir())  # no staging directory left behind


def test_key_pair_round_trip_and_private_key_mode(tmp_path: Path) -> None:
    paths = write_key_pair(tmp_path / "keys")
    assert stat.S_IMODE(paths.private_key.stat().st_mode) == 0o600
    key = load_private_key(paths.private_key)
    bundle = write_tiny_bundle(tmp_path / "bundle", key)
    assert read_bundle(bundle, [paths.public_key], now=FIXED_NOW).manifest.model_version == 1
    with pytest.raises(ExportError, match="refusing to overwrite"):
        write_key_pair(tmp_path / "keys")


def test_encrypted_key_needs_its_passphrase(tmp_path: Path) -> None:
    paths = write_key_pair(tmp_path, passphrase=b"correct horse")
    assert isinstance(
        load_private_key(paths.private_key, passphrase=b"correct horse"), Ed25519PrivateKey
    )
    with pytest.raises(ExportError, match="wrong passphrase"):
        load_private_key(paths.private_key, passphrase=b"wrong")
    with pytest.raises(ExportError, match="cannot read signing key"):
        load_private_key(tmp_path / "missing.key")
