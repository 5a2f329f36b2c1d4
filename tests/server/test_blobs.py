"""Tests for server.blobs: content addressing, atomic writes and digest/size checks."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.blobs import BlobStore, is_sha256_hex
from server.errors import ServerError


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _leftovers(store: BlobStore) -> list[Path]:
    """Temp files left anywhere in the store."""
    return [p for p in store.root.rglob("*") if p.name.startswith(".tmp-")]


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs")


def test_put_bytes_stores_under_its_digest(store: BlobStore) -> None:
    data = b"hello, face two"
    digest = store.put_bytes(data)
    assert digest == _sha(data)
    path = store.path_for(digest)
    assert path == store.root / "sha256" / digest[:2] / digest
    assert path.read_bytes() == data
    assert store.has(digest)
    with store.open(digest) as handle:
        assert handle.read() == data


def test_put_bytes_is_idempotent(store: BlobStore) -> None:
    assert store.put_bytes(b"same") == store.put_bytes(b"same")
    assert len([p for p in store.root.rglob("*") if p.is_file()]) == 1


def test_empty_blob(store: BlobStore) -> None:
    digest = store.put_bytes(b"")
    assert digest == _sha(b"")
    assert store.path_for(digest).read_bytes() == b""


def test_put_file_streams_and_checks(store: BlobStore, tmp_path: Path) -> None:
    data = bytes(range(256)) * 9000  # > one 1 MiB chunk
    source = tmp_path / "model.onnx"
    source.write_bytes(data)
    digest = store.put_file(source, expected_sha256=_sha(data), expected_size=len(data))
    assert digest == _sha(data)
    assert store.path_for(digest).read_bytes() == data
    assert store.put_file(source) == digest  # no expectations: just copies
    assert _leftovers(store) == []


def test_put_file_refuses_digest_mismatch(store: BlobStore, tmp_path: Path) -> None:
    source = tmp_path / "catalog.json"
    source.write_bytes(b"tampered")
    expected = _sha(b"original")
    with pytest.raises(ServerError) as info:
        store.put_file(source, expected_sha256=expected, expected_size=8)
    message = str(info.value)
    assert str(source) in message
    assert expected in message
    assert _sha(b"tampered") in message
    assert not store.has(_sha(b"tampered"))
    assert not store.has(expected)
    assert _leftovers(store) == []


@pytest.mark.parametrize(("declared", "found"), [(5, "found 4"), (3, "found more than 3")])
def test_put_file_refuses_size_mismatch(
    store: BlobStore, tmp_path: Path, declared: int, found: str
) -> None:
    source = tmp_path / "priors.bin"
    source.write_bytes(b"four")
    with pytest.raises(ServerError, match=f"expected {declared} bytes, {found}") as info:
        store.put_file(source, expected_size=declared)
    assert str(source) in str(info.value)
    assert not store.has(_sha(b"four"))
    assert _leftovers(store) == []


def test_put_file_missing_source(store: BlobStore, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        store.put_file(tmp_path / "absent")
    assert _leftovers(store) == []


def test_put_file_validates_expectations(store: BlobStore, tmp_path: Path) -> None:
    source = tmp_path / "f"
    source.write_bytes(b"x")
    with pytest.raises(ValueError, match="expected_sha256"):
        store.put_file(source, expected_sha256="ABC")
    with pytest.raises(ValueError, match="expected_size"):
        store.put_file(source, expected_size=-1)


@pytest.mark.parametrize(
    "digest",
    [
        "",
        "abc",
        "A" * 64,
        "g" * 64,
        "a" * 63,
        "a" * 65,
        "../" + "a" * 61,
        "a" * 62 + "/x",
        " " + "a" * 63,
    ],
)
def test_path_for_refuses_malformed_digests(store: BlobStore, digest: str) -> None:
    assert not is_sha256_hex(digest)
    with pytest.raises(ValueError, match="sha256"):
        store.path_for(digest)
    with pytest.raises(ValueError):
        store.has(digest)


def test_open_unknown_blob(store: BlobStore) -> None:
    assert not store.has("0" * 64)
    with pytest.raises(FileNotFoundError):
        store.open("0" * 64)


def test_is_sha256_hex_rejects_non_strings() -> None:
    assert not is_sha256_hex(None)
    assert not is_sha256_hex(b"a" * 64)
    assert is_sha256_hex("0123456789abcdef" * 4)


@settings(max_examples=25, deadline=None)
@given(st.binary(max_size=4096))
def test_round_trip_property(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as root:
        store = BlobStore(Path(root))
        digest = store.put_bytes(data)
        assert digest == _sha(data)
        with store.open(digest) as handle:
            assert handle.read() == data
