"""Step "verify" of the data flow: decide, from raw bytes alone, whether a bundle may be used.

Pure: no files, no sockets, no clock of its own. The rules, in the order they are checked:

- sizes: the manifest and its signature file are within their caps, before anything is parsed;
- signature: at least one signature in the signature file is a valid Ed25519 signature over the
  exact manifest bytes by a trusted key;
- format: the (now authenticated) manifest parses and its format version is one this SDK reads;
- version: the model version is newer than the installed one (no rollback, no replay);
- expiry: the signed expiry time is still in the future (no freeze on a stale model);
- files: each file's size and sha256 match the manifest, checked before the file is parsed.

Every rule raises a specific `BundleError`; verification never returns False.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ._crypto import check_signature, key_id, sha256_hex
from .errors import (
    DigestMismatchError,
    ExpiredBundleError,
    FormatError,
    RollbackError,
    SignatureError,
)

FORMAT_VERSION = 2
"""The newest bundle format (2: a columnar catalog), the one `model_export` writes. Versioned
apart from the SDK."""
READABLE_FORMAT_VERSIONS = (1, 2)
"""The bundle formats this SDK reads (1: a catalog of rows); unknown formats are refused."""

MAX_MANIFEST_BYTES = 1_000_000
MAX_SIGNATURE_BYTES = 65_536
_HEX64 = re.compile(r"[0-9a-f]{64}")
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One bundle file as the signed manifest lists it."""

    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class Manifest:
    """A verified manifest: every field here was covered by a trusted signature."""

    format_version: int
    model_version: int
    created_at: datetime
    expires_at: datetime
    files: Mapping[str, FileEntry]
    model: Mapping[str, Any] = field(default_factory=dict)
    digest: str = ""
    """Hex sha256 of the raw manifest bytes."""


def verify_manifest(
    manifest_bytes: bytes,
    signature_bytes: bytes,
    trusted_keys: Sequence[Ed25519PublicKey],
    *,
    now: datetime,
    installed_version: int | None = None,
) -> Manifest:
    """Check a manifest's signature, format, version and expiry, in that order.

    Args:
        manifest_bytes: the raw `manifest.json` bytes, exactly as received.
        signature_bytes: the raw `manifest.sig` bytes.
        trusted_keys: the Ed25519 public keys whose signatures are accepted.
        now: the current time (timezone-aware).
        installed_version: the model version installed now; the new one must be greater.

    Returns:
        The verified manifest.

    Raises:
        SignatureError: oversized, malformed or unsigned by any trusted key.
        FormatError: the manifest is malformed or of an unknown format version.
        RollbackError: the model version is not newer than `installed_version`.
        ExpiredBundleError: the manifest's expiry time has passed.
    """
    if not trusted_keys:
        raise SignatureError("no trusted keys given: nothing can be verified")
    if len(manifest_bytes) > MAX_MANIFEST_BYTES:
        raise SignatureError(
            f"manifest is {len(manifest_bytes)} bytes, over the cap of {MAX_MANIFEST_BYTES}"
        )
    if len(signature_bytes) > MAX_SIGNATURE_BYTES:
        raise SignatureError(
            f"signature file is {len(signature_bytes)} bytes, over the cap of {MAX_SIGNATURE_BYTES}"
        )
    _check_signatures(manifest_bytes, signature_bytes, trusted_keys)
    manifest = _parse_manifest(manifest_bytes)
    if installed_version is not None and manifest.model_version <= installed_version:
        raise RollbackError(
            f"bundle version {manifest.model_version} is not newer than installed "
            f"{installed_version}"
        )
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if now >= manifest.expires_at:
        raise ExpiredBundleError(
            f"bundle version {manifest.model_version} expired at "
            f"{manifest.expires_at.isoformat()} (now {now.isoformat()})"
        )
    return manifest


def verify_file(manifest: Manifest, name: str, data: bytes) -> None:
    """Check one file's size and sha256 against the verified manifest.

    Raises:
        DigestMismatchError: the file is not listed, or its size or sha256 differ.
    """
    entry = manifest.files.get(name)
    if entry is None:
        raise DigestMismatchError(f"file {name!r} is not listed in the signed manifest")
    if len(data) != entry.size:
        raise DigestMismatchError(f"file {name!r} is {len(data)} bytes, manifest says {entry.size}")
    found = sha256_hex(data)
    if found != entry.sha256:
        raise DigestMismatchError(
            f"file {name!r} has sha256 {found[:16]}..., manifest says {entry.sha256[:16]}..."
        )


def _check_signatures(
    manifest_bytes: bytes, signature_bytes: bytes, trusted_keys: Sequence[Ed25519PublicKey]
) -> None:
    try:
        document = json.loads(signature_bytes.decode("utf-8"))
        signatures = document["signatures"]
        if not isinstance(signatures, list):
            raise TypeError("signatures is not a list")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError) as exc:
        raise SignatureError("signature file is malformed") from exc
    by_id = {key_id(key): key for key in trusted_keys}
    for entry in signatures:
        if not isinstance(entry, dict):
            continue
        key = by_id.get(str(entry.get("keyid", "")))
        if key is None:
            continue
        check_signature(key, str(entry.get("sig", "")), manifest_bytes)
        return
    raise SignatureError(f"manifest is not signed by any of the {len(by_id)} trusted key(s)")


def _parse_manifest(manifest_bytes: bytes) -> Manifest:
    try:
        raw = json.loads(manifest_bytes.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise FormatError("manifest is not UTF-8 JSON") from exc
    if not isinstance(raw, dict):
        raise FormatError("manifest is not a JSON object")
    version = _field(raw, "format_version", int)
    if version not in READABLE_FORMAT_VERSIONS:
        readable = ", ".join(map(str, READABLE_FORMAT_VERSIONS))
        raise FormatError(f"bundle format {version} is not supported (this SDK reads {readable})")
    model_version = _field(raw, "model_version", int)
    if model_version < 1:
        raise FormatError(f"manifest field 'model_version': must be >= 1, found {model_version}")
    files_raw = _field(raw, "files", dict)
    files: dict[str, FileEntry] = {}
    for name, entry in files_raw.items():
        if not _FILE_NAME.fullmatch(name) or ".." in name:
            raise FormatError(f"manifest lists an unsafe file name {name!r}")
        if not isinstance(entry, dict):
            raise FormatError(f"manifest field 'files.{name}': expected an object")
        sha = _field(entry, "sha256", str, where=f"files.{name}.")
        size = _field(entry, "size", int, where=f"files.{name}.")
        if not _HEX64.fullmatch(sha) or size < 0:
            raise FormatError(f"manifest field 'files.{name}': bad sha256 or size")
        files[name] = FileEntry(sha256=sha, size=size)
    model = raw.get("model", {})
    if not isinstance(model, dict):
        raise FormatError("manifest field 'model': expected an object")
    return Manifest(
        format_version=version,
        model_version=model_version,
        created_at=_timestamp(raw, "created_at"),
        expires_at=_timestamp(raw, "expires_at"),
        files=files,
        model=model,
        digest=sha256_hex(manifest_bytes),
    )


def _field(raw: Mapping[str, Any], name: str, kind: type, *, where: str = "") -> Any:
    value = raw.get(name)
    # bool is an int in Python; a manifest that says `true` for a version is malformed.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        found = type(value).__name__
        raise FormatError(
            f"manifest field '{where}{name}': expected {kind.__name__}, found {found}"
        )
    return value


def _timestamp(raw: Mapping[str, Any], name: str) -> datetime:
    text = _field(raw, name, str)
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise FormatError(f"manifest field '{name}': cannot parse {text!r}") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value
