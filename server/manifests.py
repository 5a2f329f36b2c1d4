"""What the registry needs to know of a bundle manifest, and how a rollback re-signs one.

The registry parses a manifest only for ``model_version`` and ``files`` (with strict checks on
both); signatures are checked by the devices and, when the service holds the bundle key, at
upload. :func:`resign_manifest` makes the manifest of a re-release: the same files under a new,
higher ``model_version`` and a fresh validity window, signed again, so devices that refuse
rollbacks accept it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from model_export.signing import sign_manifest
from server.blobs import is_sha256_hex
from server.errors import ServerError

__all__ = [
    "MANIFEST_NAME",
    "SIGNATURE_NAME",
    "ParsedManifest",
    "parse_manifest",
    "read_capped",
    "resign_manifest",
]

MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.sig"
MAX_SIGNATURE_BYTES = 65_536  # the client refuses more (client_sdk.verify)
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # as client_sdk.verify


@dataclass(frozen=True, slots=True)
class ParsedManifest:
    """The parts of a manifest the registry relies on.

    Attributes:
        model_version: The manifest's ``model_version``.
        files: File name -> ``(sha256 hex, size in bytes)``.
    """

    model_version: int
    files: dict[str, tuple[str, int]]


def read_capped(path: Path, max_bytes: int) -> bytes:
    """Read a regular file of at most ``max_bytes`` bytes.

    Raises:
        ServerError: The file is missing, a symlink, or larger than ``max_bytes``.
    """
    if path.is_symlink() or not path.is_file():
        raise ServerError(f"{path}: missing or not a regular file")
    with path.open("rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ServerError(f"{path}: larger than the limit of {max_bytes} bytes")
    return data


def parse_manifest(data: bytes, where: str) -> ParsedManifest:
    """Extract ``model_version`` and ``files`` from manifest bytes, checking both strictly.

    Args:
        data: The raw ``manifest.json`` bytes.
        where: What to call the manifest in error messages (a path or a digest).

    Returns:
        The parsed parts.

    Raises:
        ServerError: Not a JSON object, duplicate keys, a bad version, file name, digest or
            size; the message names the field.
    """
    document = _load_object(data, where)
    model_version = _nonnegative_int(document.get("model_version"))
    if model_version is None:
        raise ServerError(
            f"{where}: field 'model_version': expected an int >= 0, "
            f"got {document.get('model_version')!r}"
        )
    raw_files = document.get("files")
    if not isinstance(raw_files, dict) or not raw_files:
        raise ServerError(f"{where}: field 'files': expected a non-empty object")
    files: dict[str, tuple[str, int]] = {}
    for name, entry in raw_files.items():
        _check_file_name(name, where)
        entry = entry if isinstance(entry, dict) else {}
        sha256, size = entry.get("sha256"), _nonnegative_int(entry.get("size"))
        if not isinstance(sha256, str) or not is_sha256_hex(sha256):
            raise ServerError(
                f"{where}: files[{name!r}].sha256: expected 64 lowercase hex, got {sha256!r}"
            )
        if size is None:
            raise ServerError(
                f"{where}: files[{name!r}].size: expected an int >= 0, got {entry.get('size')!r}"
            )
        files[name] = (sha256, size)
    return ParsedManifest(model_version, files)


def resign_manifest(
    manifest_bytes: bytes,
    *,
    model_version: int,
    signing_keys: Sequence[Ed25519PrivateKey],
    now: datetime | None = None,
) -> tuple[bytes, bytes]:
    """Re-issue a manifest under a new ``model_version``, valid from ``now``, and sign it.

    Everything else (files, model facts) stays; ``created_at`` becomes ``now`` and
    ``expires_at`` keeps the original validity period.

    Args:
        manifest_bytes: The original manifest.
        model_version: The new version (must be >= 1).
        signing_keys: Bundle signing keys (Ed25519).
        now: The re-release time (timezone-aware); the current time when None.

    Returns:
        ``(manifest bytes, manifest.sig bytes)``.

    Raises:
        ServerError: The manifest is malformed, the version is not positive or no key is given.
    """
    if model_version < 1:
        raise ServerError(f"model_version: must be >= 1, got {model_version}")
    if not signing_keys:
        raise ServerError("re-signing a manifest needs the bundle signing key (signing.key)")
    document = _load_object(manifest_bytes, "manifest")
    try:
        created = _parse_time(document["created_at"])
        validity = _parse_time(document["expires_at"]) - created
    except (KeyError, TypeError, ValueError) as exc:
        raise ServerError(f"manifest: created_at/expires_at: not ISO-8601 times: {exc}") from exc
    if validity <= timedelta(0):
        validity = timedelta(days=90)
    start = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(microsecond=0)
    document["model_version"] = model_version
    document["created_at"] = _format_time(start)
    document["expires_at"] = _format_time(start + validity)
    # The same serialisation as model_export.writer, so a re-release looks like any release.
    new_bytes = json.dumps(document, indent=1, sort_keys=True).encode("utf-8") + b"\n"
    return new_bytes, sign_manifest(new_bytes, signing_keys)


def _load_object(data: bytes, where: str) -> dict[str, Any]:
    try:
        document = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ServerError(f"{where}: not valid UTF-8 JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ServerError(f"{where}: expected a JSON object, got {type(document).__name__}")
    return document


def _parse_time(text: object) -> datetime:
    if not isinstance(text, str):
        raise TypeError(f"expected a string, got {type(text).__name__}")
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _format_time(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _check_file_name(name: str, where: str) -> None:
    if "/" in name or "\\" in name or ".." in name:
        raise ServerError(f"{where}: file name {name!r}: path separators and '..' are not allowed")
    if name in (MANIFEST_NAME, SIGNATURE_NAME) or _FILE_NAME.fullmatch(name) is None:
        raise ServerError(f"{where}: file name {name!r}: expected a flat [A-Za-z0-9._-] name")


def _nonnegative_int(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate keys in an object")
    return result
