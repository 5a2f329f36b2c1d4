"""The attack table: every tampering is refused with its specific error, before parsing."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client_sdk import (
    BundleError,
    DigestMismatchError,
    ExpiredBundleError,
    FormatError,
    Recommender,
    RollbackError,
    SignatureError,
)
from client_sdk.bundle import read_bundle
from client_sdk.verify import verify_manifest
from model_export.signing import sign_manifest
from tests.conftest import FIXED_NOW

Tamper = Callable[[Path, Ed25519PrivateKey], None]


def _flip_model_bit(bundle: Path, _key: Ed25519PrivateKey) -> None:
    data = bytearray((bundle / "model.onnx").read_bytes())
    data[100] ^= 0x01
    (bundle / "model.onnx").write_bytes(bytes(data))


def _append_to_catalog(bundle: Path, _key: Ed25519PrivateKey) -> None:
    with (bundle / "catalog.json").open("ab") as handle:
        handle.write(b" ")


def _truncate_model(bundle: Path, _key: Ed25519PrivateKey) -> None:
    data = (bundle / "model.onnx").read_bytes()
    (bundle / "model.onnx").write_bytes(data[:-10])


def _edit_manifest(bundle: Path, _key: Ed25519PrivateKey) -> None:
    text = (bundle / "manifest.json").read_text()
    (bundle / "manifest.json").write_text(text.replace('"model_version": 1', '"model_version": 9'))


def _strip_signature(bundle: Path, _key: Ed25519PrivateKey) -> None:
    (bundle / "manifest.sig").write_text('{"signatures": []}')


def _sign_with_other_key(bundle: Path, _key: Ed25519PrivateKey) -> None:
    other = Ed25519PrivateKey.generate()
    (bundle / "manifest.sig").write_bytes(
        sign_manifest((bundle / "manifest.json").read_bytes(), [other])
    )


def _garbage_signature(bundle: Path, _key: Ed25519PrivateKey) -> None:
    (bundle / "manifest.sig").write_bytes(b"\x00\xff not json")


def _missing_model(bundle: Path, _key: Ed25519PrivateKey) -> None:
    (bundle / "model.onnx").unlink()


def _unknown_format(bundle: Path, key: Ed25519PrivateKey) -> None:
    manifest = json.loads((bundle / "manifest.json").read_bytes())
    manifest["format_version"] = 99
    data = json.dumps(manifest).encode()
    (bundle / "manifest.json").write_bytes(data)
    (bundle / "manifest.sig").write_bytes(sign_manifest(data, [key]))


def _path_traversal(bundle: Path, key: Ed25519PrivateKey) -> None:
    manifest = json.loads((bundle / "manifest.json").read_bytes())
    manifest["files"]["../escape"] = manifest["files"]["model.onnx"]
    data = json.dumps(manifest).encode()
    (bundle / "manifest.json").write_bytes(data)
    (bundle / "manifest.sig").write_bytes(sign_manifest(data, [key]))


def _oversized_manifest(bundle: Path, _key: Ed25519PrivateKey) -> None:
    (bundle / "manifest.json").write_bytes(b" " * 1_000_001)


ATTACKS: list[tuple[str, Tamper, type[BundleError]]] = [
    ("flipped bit in model", _flip_model_bit, DigestMismatchError),
    ("appended byte to catalog", _append_to_catalog, DigestMismatchError),
    ("truncated model", _truncate_model, DigestMismatchError),
    ("edited manifest", _edit_manifest, SignatureError),
    ("stripped signature", _strip_signature, SignatureError),
    ("signed by an untrusted key", _sign_with_other_key, SignatureError),
    ("garbage signature file", _garbage_signature, SignatureError),
    ("missing model file", _missing_model, DigestMismatchError),
    ("unknown format version", _unknown_format, FormatError),
    ("path traversal in file list", _path_traversal, FormatError),
    ("oversized manifest", _oversized_manifest, SignatureError),
]


@pytest.mark.parametrize(("name", "tamper", "error"), ATTACKS, ids=[a[0] for a in ATTACKS])
def test_tampered_bundle_is_refused_with_its_specific_error(
    tiny_bundle: Path,
    signing_key: Ed25519PrivateKey,
    tmp_path: Path,
    name: str,
    tamper: Tamper,
    error: type[BundleError],
) -> None:
    victim = tmp_path / "victim"
    shutil.copytree(tiny_bundle, victim)
    tamper(victim, signing_key)
    with pytest.raises(error):
        Recommender.open(victim, trusted_keys=[signing_key.public_key()], now=FIXED_NOW)
    assert not _open_helpers()
    # The untouched original still opens and serves.
    with Recommender.open(
        tiny_bundle, trusted_keys=[signing_key.public_key()], now=FIXED_NOW
    ) as rec:
        assert rec.recommend(k=2)


def test_expired_bundle_is_refused(tiny_bundle: Path, signing_key: Ed25519PrivateKey) -> None:
    later = FIXED_NOW + timedelta(days=91)
    with pytest.raises(ExpiredBundleError, match="expired at"):
        Recommender.open(tiny_bundle, trusted_keys=[signing_key.public_key()], now=later)


def test_rollback_is_refused(tiny_bundle: Path, signing_key: Ed25519PrivateKey) -> None:
    with pytest.raises(RollbackError, match="version 1 is not newer than installed 1"):
        read_bundle(tiny_bundle, [signing_key.public_key()], now=FIXED_NOW, installed_version=1)


def test_no_trusted_keys_verifies_nothing(tiny_bundle: Path) -> None:
    manifest = (tiny_bundle / "manifest.json").read_bytes()
    signature = (tiny_bundle / "manifest.sig").read_bytes()
    with pytest.raises(SignatureError, match="no trusted keys"):
        verify_manifest(manifest, signature, [], now=FIXED_NOW)


def test_key_rotation_any_trusted_signature_suffices(
    tiny_bundle: Path, signing_key: Ed25519PrivateKey, other_key: Ed25519PrivateKey
) -> None:
    manifest = (tiny_bundle / "manifest.json").read_bytes()
    both = sign_manifest(manifest, [other_key, signing_key])
    verified = verify_manifest(manifest, both, [signing_key.public_key()], now=FIXED_NOW)
    assert verified.model_version == 1
    verified = verify_manifest(manifest, both, [other_key.public_key()], now=FIXED_NOW)
    assert verified.model_version == 1


def test_trusted_keys_accept_pem_raw_and_path_forms(
    tiny_bundle: Path, signing_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    from cryptography.hazmat.primitives import serialization

    public = signing_key.public_key()
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "k.pub").write_bytes(pem)
    for form in (raw, pem, pem.decode(), tmp_path / "k.pub", str(tmp_path / "k.pub")):
        assert read_bundle(tiny_bundle, [form], now=FIXED_NOW).manifest.model_version == 1


def test_a_single_key_instead_of_a_list_is_a_type_error(
    tiny_bundle: Path, signing_key: Ed25519PrivateKey
) -> None:
    from model_export.signing import public_pem

    with pytest.raises(TypeError, match="sequence of keys"):
        read_bundle(tiny_bundle, public_pem(signing_key.public_key()), now=FIXED_NOW)  # type: ignore[arg-type]


def test_deeply_nested_json_is_a_verification_error(
    tiny_bundle: Path, signing_key: Ed25519PrivateKey
) -> None:
    manifest = (tiny_bundle / "manifest.json").read_bytes()
    nested = b"[" * 30_000 + b"]" * 30_000  # an attacker's signature file, not yet verified
    with pytest.raises(SignatureError, match="malformed"):
        verify_manifest(manifest, nested, [signing_key.public_key()], now=FIXED_NOW)
    signed_nested = sign_manifest(nested, [signing_key])
    with pytest.raises(FormatError, match="not UTF-8 JSON"):
        verify_manifest(nested, signed_nested, [signing_key.public_key()], now=FIXED_NOW)


def _open_helpers() -> list[threading.Thread]:
    """The helper threads of `Recommender.open` and `read_bundle` still alive."""
    return [
        t for t in threading.enumerate() if t.name.startswith(("facetwo-open", "facetwo-verify"))
    ]


def _replace_signed(bundle: Path, key: Ed25519PrivateKey, name: str, data: bytes) -> None:
    """Replace one file and sign the manifest again: the file is then verified, yet bad."""
    (bundle / name).write_bytes(data)
    manifest = json.loads((bundle / "manifest.json").read_bytes())
    manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    manifest_bytes = json.dumps(manifest).encode()
    (bundle / "manifest.json").write_bytes(manifest_bytes)
    (bundle / "manifest.sig").write_bytes(sign_manifest(manifest_bytes, [key]))


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("catalog.json", b'{"format": "facetwo-catalog", "version": 2}', "catalog.json"),
        ("model.onnx", b"\x08\x07 not a model", "onnxruntime cannot load"),
    ],
)
def test_a_signed_but_malformed_file_fails_open_and_leaves_no_thread(
    tiny_bundle: Path, signing_key: Ed25519PrivateKey, name: str, data: bytes, message: str
) -> None:
    """The model loads beside the catalogue parse (and is read and hashed beside the other
    files): either failing fails `open` with its own error, and no helper thread outlives it."""
    _replace_signed(tiny_bundle, signing_key, name, data)
    with pytest.raises(FormatError, match=message):
        Recommender.open(tiny_bundle, trusted_keys=[signing_key.public_key()], now=FIXED_NOW)
    assert not [
        t for t in threading.enumerate() if t.name.startswith(("facetwo-open", "facetwo-verify"))
    ]


def test_open_works_where_no_helper_thread_can_start(
    tiny_bundle: Path, signing_key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At interpreter shutdown, or at a thread limit, `submit` raises RuntimeError: the files
    are then verified, and the model loaded, on the calling thread."""

    def refuse(*_args: object, **_kwargs: object) -> object:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(ThreadPoolExecutor, "submit", refuse)
    keys = [signing_key.public_key()]
    with Recommender.open(tiny_bundle, trusted_keys=keys, now=FIXED_NOW) as rec:
        assert rec.recommend(k=2)
    _flip_model_bit(tiny_bundle, signing_key)
    with pytest.raises(DigestMismatchError):
        Recommender.open(tiny_bundle, trusted_keys=keys, now=FIXED_NOW)
