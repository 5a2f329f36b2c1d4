"""Tests for server.registry: publishing bundles, refusals, atomicity and persistence."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from server.blobs import BlobStore
from server.db import SCHEMA_VERSION
from server.errors import ServerError
from server.registry import Registry, Release, is_valid_channel

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
FILES = {"model.onnx": b"\x08\x01fake-onnx-graph", "catalog.json": b'{"items": ["a", "b"]}'}


def write_bundle(
    directory: Path,
    model_version: int,
    files: dict[str, bytes] | None = None,
    *,
    signature: bytes = b"\x01" * 64,
    edit: Callable[[dict[str, Any]], None] | None = None,
) -> Path:
    """Write a tiny fake bundle: correct sha256/size entries, arbitrary signature bytes."""
    files = FILES if files is None else files
    directory.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {
        "format_version": 1,
        "model_version": model_version,
        "created_at": "2026-01-01T00:00:00Z",
        "expires_at": "2027-01-01T00:00:00Z",
        "files": {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            for name, data in files.items()
        },
    }
    if edit is not None:
        edit(manifest)
    for name, data in files.items():
        (directory / name).write_bytes(data)
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    (directory / "manifest.sig").write_bytes(signature)
    return directory


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "data")


@pytest.fixture
def first(registry: Registry, tmp_path: Path) -> Release:
    return registry.publish_bundle(write_bundle(tmp_path / "v1", 1), now=T0)


def test_publish_then_latest(registry: Registry, tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path / "b", 7)
    release = registry.publish_bundle(bundle, channel="beta", now=T0)
    manifest_bytes = (bundle / "manifest.json").read_bytes()
    assert release.channel == "beta"
    assert release.model_version == 7
    assert release.manifest_sha256 == hashlib.sha256(manifest_bytes).hexdigest()
    assert release.signature_sha256 == hashlib.sha256(b"\x01" * 64).hexdigest()
    assert release.published_at == T0
    assert dict(release.files) == {
        name: (hashlib.sha256(data).hexdigest(), len(data)) for name, data in FILES.items()
    }
    assert registry.latest("beta") == release
    assert registry.latest("stable") is None
    assert registry.releases("stable") == []
    for digest in (release.manifest_sha256, release.signature_sha256):
        assert registry.is_published_blob(digest)
    for name, (digest, _) in release.files.items():
        assert registry.is_published_blob(digest)
        assert registry.blobs.path_for(digest).read_bytes() == FILES[name]
    with pytest.raises(TypeError):
        release.files["x"] = ("0" * 64, 1)  # type: ignore[index]


def test_releases_newest_first_and_persist(registry: Registry, tmp_path: Path) -> None:
    for version in (1, 2, 10):
        registry.publish_bundle(
            write_bundle(tmp_path / f"v{version}", version), now=T0 + timedelta(days=version)
        )
    versions = [r.model_version for r in registry.releases("stable")]
    assert versions == [10, 2, 1]
    reopened = Registry(tmp_path / "data")  # another process would see the same
    assert reopened.releases("stable") == registry.releases("stable")
    latest = reopened.latest("stable")
    assert latest is not None
    assert latest.published_at == T0 + timedelta(days=10)


def test_channels_are_independent(registry: Registry, tmp_path: Path) -> None:
    registry.publish_bundle(write_bundle(tmp_path / "a", 5), channel="stable", now=T0)
    registry.publish_bundle(write_bundle(tmp_path / "b", 1), channel="canary-2", now=T0)
    assert [r.model_version for r in registry.releases("canary-2")] == [1]


def test_database_layout(registry: Registry, tmp_path: Path) -> None:
    db = tmp_path / "data" / "registry.sqlite3"
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    finally:
        conn.close()
    assert (tmp_path / "data" / "blobs" / "sha256").is_dir()


def test_newer_schema_is_refused(registry: Registry, tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "data" / "registry.sqlite3")
    try:
        with conn:
            conn.execute("UPDATE schema_version SET version = 99")
    finally:
        conn.close()
    with pytest.raises(ServerError, match="schema version 99"):
        Registry(tmp_path / "data")


def _tamper_file(bundle: Path) -> None:
    (bundle / "model.onnx").write_bytes(b"\x08\x01evil-onnx-graph")  # same size, other bytes


def _grow_file(bundle: Path) -> None:
    (bundle / "catalog.json").write_bytes(FILES["catalog.json"] + b" ")


def _remove_file(bundle: Path) -> None:
    (bundle / "model.onnx").unlink()


def _symlink_file(bundle: Path) -> None:
    target = bundle.parent / "elsewhere.onnx"
    (bundle / "model.onnx").rename(target)
    (bundle / "model.onnx").symlink_to(target)


def _rename_entry(new_name: str) -> Callable[[dict[str, Any]], None]:
    def edit(manifest: dict[str, Any]) -> None:
        manifest["files"][new_name] = manifest["files"].pop("model.onnx")

    return edit


def _set(key: str, value: object) -> Callable[[dict[str, Any]], None]:
    def edit(manifest: dict[str, Any]) -> None:
        manifest[key] = value

    return edit


def _set_size(manifest: dict[str, Any]) -> None:
    manifest["files"]["catalog.json"]["size"] += 1


def _oversize_manifest(manifest: dict[str, Any]) -> None:
    manifest["padding"] = "x" * 1_000_001


# One row per refusal: (id, model_version, manifest edit, bundle edit, expected message).
REFUSALS: list[
    tuple[str, int, Callable[[dict[str, Any]], None] | None, Callable[[Path], None] | None, str]
] = [
    ("tampered file", 2, None, _tamper_file, "sha256 mismatch"),
    ("file larger than declared", 2, None, _grow_file, "found more than"),
    ("declared size wrong", 2, _set_size, None, "found 21"),
    ("missing file", 2, None, _remove_file, "not a regular file"),
    ("symlinked file", 2, None, _symlink_file, "not a regular file"),
    ("parent traversal", 2, _rename_entry("../model.onnx"), None, "'..' are not allowed"),
    ("dot-dot inside", 2, _rename_entry("a..b"), None, "'..' are not allowed"),
    ("subdirectory", 2, _rename_entry("sub/model.onnx"), None, "path separators"),
    ("backslash", 2, _rename_entry("sub\\model.onnx"), None, "path separators"),
    ("hidden name", 2, _rename_entry(".model"), None, "flat"),
    ("reserved name", 2, _rename_entry("manifest.sig"), None, "flat"),
    ("same version", 1, None, None, "model_version 1 is not greater than the latest published 1"),
    ("older version", 0, None, None, "model_version 0 is not greater than the latest published 1"),
    ("bool version", 2, _set("model_version", True), None, "model_version"),
    ("no files", 2, _set("files", {}), None, "'files'"),
    ("bad digest", 2, _set("files", {"model.onnx": {"sha256": "AB", "size": 1}}), None, "sha256"),
    ("oversized manifest", 2, _oversize_manifest, None, "larger than the limit"),
]


@pytest.mark.parametrize(
    ("version", "edit_manifest", "edit_bundle", "message"),
    [row[1:] for row in REFUSALS],
    ids=[row[0] for row in REFUSALS],
)
def test_publish_refusals_keep_previous_release(
    registry: Registry,
    first: Release,
    tmp_path: Path,
    version: int,
    edit_manifest: Callable[[dict[str, Any]], None] | None,
    edit_bundle: Callable[[Path], None] | None,
    message: str,
) -> None:
    bundle = write_bundle(tmp_path / "v2", version, edit=edit_manifest)
    if edit_bundle is not None:
        edit_bundle(bundle)
    with pytest.raises(ServerError, match=re.escape(message)):
        registry.publish_bundle(bundle, now=T0 + timedelta(hours=1))
    assert registry.latest("stable") == first
    assert registry.releases("stable") == [first]


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("manifest.json", b"\xff\xfe not utf-8"),
        ("manifest.json", b"[1, 2]"),
        ("manifest.json", b'{"model_version": 2, "model_version": 3, "files": {}}'),
        ("manifest.sig", b""),
    ],
)
def test_malformed_manifest_or_signature(
    registry: Registry, first: Release, tmp_path: Path, name: str, content: bytes
) -> None:
    bundle = write_bundle(tmp_path / "v2", 2)
    (bundle / name).write_bytes(content)
    with pytest.raises(ServerError, match=re.escape(name)):
        registry.publish_bundle(bundle)
    assert registry.latest("stable") == first


def test_missing_manifest(registry: Registry, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ServerError, match=r"manifest\.json: missing"):
        registry.publish_bundle(tmp_path / "empty")


def test_bundle_size_cap(tmp_path: Path) -> None:
    small = Registry(tmp_path / "data", max_bundle_bytes=10)
    with pytest.raises(ServerError, match="over the cap of 10"):
        small.publish_bundle(write_bundle(tmp_path / "b", 1))
    with pytest.raises(ValueError, match="max_bundle_bytes"):
        Registry(tmp_path / "data", max_bundle_bytes=0)


def test_unlisted_entries_are_ignored(registry: Registry, tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path / "b", 1)
    (bundle / "notes.txt").write_bytes(b"not published")
    release = registry.publish_bundle(bundle)
    assert set(release.files) == set(FILES)
    assert not registry.is_published_blob(hashlib.sha256(b"not published").hexdigest())


def test_crash_while_storing_blobs_keeps_old_release(
    registry: Registry, first: Release, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    real_put_file = BlobStore.put_file

    def crashing_put_file(self: BlobStore, path: Path, **kwargs: Any) -> str:
        calls.append(path.name)
        if len(calls) == 2:
            raise OSError("simulated crash: disk full")
        return real_put_file(self, path, **kwargs)

    monkeypatch.setattr(BlobStore, "put_file", crashing_put_file)
    with pytest.raises(OSError, match="simulated crash"):
        registry.publish_bundle(write_bundle(tmp_path / "v2", 2, {**FILES, "x.bin": b"new"}))
    assert len(calls) == 2
    assert registry.latest("stable") == first
    assert Registry(tmp_path / "data").releases("stable") == [first]


def test_crash_inside_the_transaction_rolls_back(
    registry: Registry, first: Release, tmp_path: Path
) -> None:
    # The release row is inserted first, then its files; failing on a file row must take the
    # release row with it.
    conn = sqlite3.connect(tmp_path / "data" / "registry.sqlite3")
    try:
        conn.execute(
            "CREATE TRIGGER crash BEFORE INSERT ON release_files WHEN NEW.name = 'z.bin' "
            "BEGIN SELECT RAISE(ABORT, 'simulated crash'); END"
        )
    finally:
        conn.close()
    with pytest.raises(ServerError, match="simulated crash"):
        registry.publish_bundle(write_bundle(tmp_path / "v2", 2, {**FILES, "z.bin": b"z"}))
    assert registry.latest("stable") == first
    assert registry.releases("stable") == [first]


@pytest.mark.parametrize("channel", ["", "Stable", "1st", "-x", "a" * 33, "a_b", "a/b", "é"])
def test_invalid_channel_names(registry: Registry, tmp_path: Path, channel: str) -> None:
    assert not is_valid_channel(channel)
    with pytest.raises(ValueError, match="channel"):
        registry.latest(channel)
    with pytest.raises(ValueError, match="channel"):
        registry.publish_bundle(write_bundle(tmp_path / "b", 1), channel=channel)


def test_valid_channel_names() -> None:
    for channel in ("stable", "a", "beta-2", "x" * 32):
        assert is_valid_channel(channel)


def test_naive_now_is_refused(registry: Registry, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        registry.publish_bundle(write_bundle(tmp_path / "b", 1), now=datetime(2026, 1, 1))


def test_non_utc_now_is_stored_as_utc(registry: Registry, tmp_path: Path) -> None:
    plus_two = timezone(timedelta(hours=2))
    release = registry.publish_bundle(
        write_bundle(tmp_path / "b", 1), now=datetime(2026, 1, 1, 12, tzinfo=plus_two)
    )
    assert release.published_at == datetime(2026, 1, 1, 10, tzinfo=timezone.utc)
    assert release.published_at.utcoffset() == timedelta(0)


def test_is_published_blob(registry: Registry, first: Release) -> None:
    orphan = registry.blobs.put_bytes(b"stored but never released")
    assert not registry.is_published_blob(orphan)
    assert registry.is_published_blob(first.manifest_sha256)
    with pytest.raises(ValueError):
        registry.is_published_blob("nope")
