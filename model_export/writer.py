"""Step "write": put a model and its catalog into a signed bundle directory, atomically.

The bundle is assembled in a temporary directory beside the target and renamed into place
only when every file, the manifest and its signature are written and flushed, so a crash
leaves either no bundle or a whole one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client_sdk._crypto import sha256_hex
from client_sdk.bundle import (
    CATALOG_FILE,
    MANIFEST_FILE,
    MODEL_FILE,
    SIGNATURE_FILE,
    BundleCatalog,
    CatalogEntry,
)
from client_sdk.catalog import encode_catalog as encode_catalog_columns
from client_sdk.verify import FORMAT_VERSION

from .errors import ExportError
from .signing import sign_manifest


def encode_catalog(entries: Sequence[CatalogEntry]) -> bytes:
    """The `catalog.json` bytes (bundle format 2: columns) for items in model-index order.

    Raises:
        ExportError: an item id is listed twice.
    """
    try:
        catalog = BundleCatalog.from_entries(entries)
    except ValueError as exc:
        raise ExportError(f"catalog: {exc}") from exc
    return encode_catalog_columns(catalog)


def write_bundle(
    out_dir: Path,
    *,
    files: Mapping[str, bytes],
    model_version: int,
    signing_keys: Sequence[Ed25519PrivateKey],
    model_info: Mapping[str, Any],
    valid_for: timedelta = timedelta(days=90),
    now: datetime | None = None,
) -> Path:
    """Write `files` plus a signed manifest into a new bundle directory `out_dir`.

    Args:
        out_dir: the bundle directory to create; it must not exist or be empty.
        files: file name -> bytes; must include `model.onnx` and `catalog.json`.
        model_version: the release number devices compare (must grow with every release).
        signing_keys: the Ed25519 keys that sign the manifest.
        model_info: facts about the model, signed with the manifest (kind, sizes, weights).
        valid_for: how long devices may use the bundle before it counts as expired.
        now: the creation time (tests pass a fixed clock).

    Raises:
        ExportError: a required file is missing, the version is not positive, or `out_dir`
            already holds files.
    """
    for name in (MODEL_FILE, CATALOG_FILE):
        if name not in files:
            raise ExportError(f"bundle needs {name}")
    if model_version < 1:
        raise ExportError(f"model_version must be >= 1, found {model_version}")
    if valid_for <= timedelta(0):
        raise ExportError(f"valid_for must be positive, found {valid_for}")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ExportError(f"{out_dir} already exists and is not an empty directory")
    created = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(microsecond=0)
    manifest = {
        "format_version": FORMAT_VERSION,
        "model_version": model_version,
        "created_at": created.isoformat().replace("+00:00", "Z"),
        "expires_at": (created + valid_for).isoformat().replace("+00:00", "Z"),
        "files": {
            name: {"sha256": sha256_hex(data), "size": len(data)}
            for name, data in sorted(files.items())
        },
        "model": dict(model_info),
    }
    manifest_bytes = json.dumps(manifest, indent=1, sort_keys=True).encode("utf-8") + b"\n"
    everything = {
        **files,
        MANIFEST_FILE: manifest_bytes,
        SIGNATURE_FILE: sign_manifest(manifest_bytes, signing_keys),
    }
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for name, data in everything.items():
            _write_synced(staging / name, data)
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
