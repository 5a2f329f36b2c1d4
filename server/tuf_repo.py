"""The update metadata of the registry, as a TUF repository (step "publish" of the data flow).

Devices use python-tuf's ``ngclient`` against this metadata, so TUF's protections hold for the
bundles: arbitrary payloads, rollback, fast-forward, freeze (expiry), mix-and-match, endless data
and key rotation with thresholds. This module produces and signs the metadata with
``tuf.api.metadata``; the registry stores every version as a blob and a row in ``tuf_metadata``,
in the same SQLite transaction as the release it describes, so a publish is atomic.

Layout (consistent snapshots, so every file but ``timestamp.json`` is immutable):

- ``root`` — signed by the offline root keys (threshold of the old *and* the new root when it
  rotates); names the keys of every role. Installed by ``facetwo keys create|rotate``.
- ``targets`` — one entry per file of each channel's latest release: ``<channel>/manifest.json``
  (custom ``model_version``), ``<channel>/manifest.sig`` and ``<channel>/<file>``, each with its
  length and sha256. Online key.
- ``snapshot`` -> the targets version, length and hash; ``timestamp`` -> the snapshot version,
  length and hash. Online keys; the timestamp is short-lived and re-signed by :func:`refresh`.

Online keys are Ed25519 PEM files in a keys directory (:class:`OnlineKeys`), matched to roles by
their TUF key id, so a rotation only has to drop the new key file beside the old ones.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.signer import CryptoSigner, SSlibKey
from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import (
    Metadata,
    MetaFile,
    Root,
    Signed,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization import DeserializationError

from model_export.errors import ExportError
from model_export.signing import load_private_key
from server.blobs import BlobStore
from server.errors import ConflictError, KeyMaterialError, ServerError

__all__ = [
    "ONLINE_ROLES",
    "ROLES",
    "MetadataLifetimes",
    "OnlineKeys",
    "current_root",
    "install_root",
    "refresh_metadata",
    "sign_online_metadata",
    "tuf_key",
]

logger = logging.getLogger(__name__)

ROLES = ("root", "targets", "snapshot", "timestamp")
ONLINE_ROLES = ("targets", "snapshot", "timestamp")
BUNDLE_KEY_FILE = "signing.key"


@dataclass(frozen=True, slots=True)
class MetadataLifetimes:
    """How long each role's metadata stays valid after it is signed.

    Online roles are re-signed by :func:`refresh_metadata` once half their lifetime has passed;
    the root is renewed with ``facetwo keys rotate``.
    """

    root: timedelta = timedelta(days=365)
    targets: timedelta = timedelta(days=90)
    snapshot: timedelta = timedelta(days=7)
    timestamp: timedelta = timedelta(days=1)

    def __post_init__(self) -> None:
        """Raises: ValueError naming the field when a lifetime is not positive."""
        for role in ROLES:
            value = getattr(self, role)
            if not isinstance(value, timedelta) or value <= timedelta(0):
                raise ValueError(f"{role}: expected a positive timedelta, got {value!r}")

    def of(self, role: str) -> timedelta:
        """The lifetime of ``role``."""
        value: timedelta = getattr(self, role)
        return value


def tuf_key(public_key: object) -> SSlibKey:
    """The TUF public key (with its key id) of a ``cryptography`` Ed25519 public key."""
    return SSlibKey.from_crypto(public_key)  # type: ignore[arg-type]


class OnlineKeys:
    """The service's signing keys: ``*.key`` Ed25519 PEM files in one directory.

    The directory is read on every use, so keys added by a rotation are picked up by running
    processes. ``signing.key`` is the bundle key (it signs bundle manifests); the others sign
    the TUF roles their key id is trusted for.
    """

    def __init__(self, keys_dir: Path, *, passphrase: bytes | None = None) -> None:
        """Args:
        keys_dir: The directory of private key files.
        passphrase: Passphrase of encrypted key files (from the environment), if any.
        """
        self._dir = keys_dir
        self._passphrase = passphrase

    @property
    def keys_dir(self) -> Path:
        """The directory read."""
        return self._dir

    def signers(self) -> dict[str, CryptoSigner]:
        """Every key in the directory, by TUF key id.

        Raises:
            KeyMaterialError: The directory or a key file cannot be read.
        """
        found: dict[str, CryptoSigner] = {}
        try:
            paths = sorted(self._dir.glob("*.key"))
        except OSError as exc:
            raise KeyMaterialError(f"{self._dir}: cannot list keys: {exc}") from exc
        for path in paths:
            key = self._load(path)
            signer = CryptoSigner(key, tuf_key(key.public_key()))
            found[signer.public_key.keyid] = signer
        return found

    def bundle_key(self) -> Ed25519PrivateKey:
        """The bundle signing key, ``signing.key``.

        Raises:
            KeyMaterialError: It is missing or unreadable.
        """
        return self._load(self._dir / BUNDLE_KEY_FILE)

    def _load(self, path: Path) -> Ed25519PrivateKey:
        try:
            return load_private_key(path, passphrase=self._passphrase)
        except ExportError as exc:
            raise KeyMaterialError(str(exc)) from exc


def current_root(conn: sqlite3.Connection, blobs: BlobStore) -> Metadata[Root] | None:
    """The newest installed root, or None before ``facetwo keys create``.

    Raises:
        ServerError: The stored root cannot be read.
    """
    found = _current(conn, "root")
    if found is None:
        return None
    with blobs.open(found[1]) as handle:
        return _parse(handle.read(), Root, "stored root")


def install_root(
    conn: sqlite3.Connection, blobs: BlobStore, data: bytes, *, now: datetime
) -> Metadata[Root]:
    """Verify and store a new root version (inside the caller's transaction).

    Version 1 must be signed by a threshold of its own root keys; version N+1 by a threshold of
    version N's root keys and of its own.

    Raises:
        ConflictError: The version is not the next one.
        ServerError: Malformed, under-signed, expired, or without consistent snapshots.
    """
    new = _parse(data, Root, "new root")
    current = current_root(conn, blobs)
    expected = 1 if current is None else current.signed.version + 1
    if new.signed.version != expected:
        raise ConflictError(f"root: version {new.signed.version}, expected {expected}")
    try:
        if current is not None:
            current.signed.verify_delegate(Root.type, new.signed_bytes, new.signatures)
        new.signed.verify_delegate(Root.type, new.signed_bytes, new.signatures)
    except UnsignedMetadataError as exc:
        raise ServerError(f"root v{new.signed.version}: {exc}") from exc
    if new.signed.is_expired(now):
        raise ServerError(f"root v{new.signed.version}: expired at {new.signed.expires}")
    if not new.signed.consistent_snapshot:
        raise ServerError("root: consistent_snapshot must be true (immutable metadata URLs)")
    _store(conn, blobs, "root", new.signed.version, data, new.signed.expires)
    logger.info("installed root v%d", new.signed.version)
    return new


def sign_online_metadata(
    conn: sqlite3.Connection,
    blobs: BlobStore,
    keys: OnlineKeys,
    targets: Mapping[str, TargetFile],
    *,
    lifetimes: MetadataLifetimes,
    now: datetime,
) -> int:
    """Sign and store new targets, snapshot and timestamp versions (inside a transaction).

    Args:
        conn: A connection inside the caller's write transaction.
        blobs: Where the metadata bytes go.
        keys: The online keys.
        targets: Target path -> file info, the whole new targets list.
        lifetimes: Expiry periods.
        now: Signing time (timezone-aware).

    Returns:
        The new targets version.

    Raises:
        ServerError: No root is installed.
        KeyMaterialError: The keys directory lacks a threshold of keys for a role.
    """
    root = _require_root(conn, blobs)
    signers = keys.signers()
    version = _next(conn, "targets")
    body = Targets(version=version, expires=now + lifetimes.targets, targets=dict(targets))
    targets_bytes = _sign_and_store(conn, blobs, root.signed, Metadata(body), signers)
    snapshot = Snapshot(
        version=_next(conn, "snapshot"),
        expires=now + lifetimes.snapshot,
        meta={"targets.json": MetaFile.from_data(version, targets_bytes, ["sha256"])},
    )
    snapshot_bytes = _sign_and_store(conn, blobs, root.signed, Metadata(snapshot), signers)
    _sign_timestamp(
        conn, blobs, root.signed, snapshot.version, snapshot_bytes, signers, lifetimes, now
    )
    logger.info("signed targets v%d (%d target files)", version, len(targets))
    return version


def refresh_metadata(
    conn: sqlite3.Connection,
    blobs: BlobStore,
    keys: OnlineKeys,
    targets: Mapping[str, TargetFile],
    *,
    lifetimes: MetadataLifetimes,
    now: datetime,
) -> list[str]:
    """Re-sign online metadata that has used up half its lifetime (inside a transaction).

    The timestamp alone is re-signed when only it is due; when targets or snapshot are due, or
    the root changed the online keys since they were signed, all three are.

    Returns:
        The roles re-signed (empty when nothing was due or no root is installed).

    Raises:
        KeyMaterialError: A due role cannot be signed with the keys directory.
    """
    root = current_root(conn, blobs)
    if root is None:
        return []
    due = [role for role in ONLINE_ROLES if _is_due(conn, role, lifetimes, now)]
    if any(role != "timestamp" for role in due) or _signed_by_stale_keys(conn, blobs, root.signed):
        sign_online_metadata(conn, blobs, keys, targets, lifetimes=lifetimes, now=now)
        return list(ONLINE_ROLES)
    if due:
        snapshot = _current(conn, "snapshot")
        if snapshot is None:  # pragma: no cover - snapshot is signed with the first targets
            raise ServerError("timestamp is due but no snapshot exists")
        with blobs.open(snapshot[1]) as handle:
            snapshot_bytes = handle.read()
        signers = keys.signers()
        _sign_timestamp(
            conn, blobs, root.signed, snapshot[0], snapshot_bytes, signers, lifetimes, now
        )
        return ["timestamp"]
    return []


def _sign_timestamp(
    conn: sqlite3.Connection,
    blobs: BlobStore,
    root: Root,
    snapshot_version: int,
    snapshot_bytes: bytes,
    signers: Mapping[str, CryptoSigner],
    lifetimes: MetadataLifetimes,
    now: datetime,
) -> None:
    timestamp = Timestamp(
        version=_next(conn, "timestamp"),
        expires=now + lifetimes.timestamp,
        snapshot_meta=MetaFile.from_data(snapshot_version, snapshot_bytes, ["sha256"]),
    )
    _sign_and_store(conn, blobs, root, Metadata(timestamp), signers)


def _sign_and_store(
    conn: sqlite3.Connection,
    blobs: BlobStore,
    root: Root,
    metadata: Metadata[Any],
    signers: Mapping[str, CryptoSigner],
) -> bytes:
    body = metadata.signed
    role = root.roles[body.type]
    used = 0
    for keyid in role.keyids:
        signer = signers.get(keyid)
        if signer is not None:
            metadata.sign(signer, append=True)
            used += 1
    if used < role.threshold:
        wanted = ", ".join(keyid[:12] for keyid in role.keyids)
        raise KeyMaterialError(
            f"role {body.type!r} needs {role.threshold} signature(s) by keys [{wanted}]; "
            f"the keys directory holds {used} of them"
        )
    data = metadata.to_bytes()
    _store(conn, blobs, body.type, body.version, data, body.expires)
    return data


def _store(
    conn: sqlite3.Connection,
    blobs: BlobStore,
    role: str,
    version: int,
    data: bytes,
    expires: datetime,
) -> None:
    digest = blobs.put_bytes(data)
    conn.execute(
        "INSERT INTO tuf_metadata (role, version, sha256, size, expires_at) VALUES (?, ?, ?, ?, ?)",
        (role, version, digest, len(data), expires.astimezone(timezone.utc).isoformat()),
    )


def _current(conn: sqlite3.Connection, role: str) -> tuple[int, str] | None:
    row = conn.execute(
        "SELECT version, sha256 FROM tuf_metadata WHERE role = ? ORDER BY version DESC LIMIT 1",
        (role,),
    ).fetchone()
    return None if row is None else (int(row[0]), str(row[1]))


def _next(conn: sqlite3.Connection, role: str) -> int:
    found = _current(conn, role)
    return 1 if found is None else found[0] + 1


def _require_root(conn: sqlite3.Connection, blobs: BlobStore) -> Metadata[Root]:
    root = current_root(conn, blobs)
    if root is None:
        raise ServerError("no TUF root installed: run `facetwo keys create` first")
    return root


def _is_due(
    conn: sqlite3.Connection, role: str, lifetimes: MetadataLifetimes, now: datetime
) -> bool:
    row = conn.execute(
        "SELECT expires_at FROM tuf_metadata WHERE role = ? ORDER BY version DESC LIMIT 1",
        (role,),
    ).fetchone()
    if row is None:
        return True
    return datetime.fromisoformat(row[0]) - now <= lifetimes.of(role) / 2


def _signed_by_stale_keys(conn: sqlite3.Connection, blobs: BlobStore, root: Root) -> bool:
    """Whether some current online metadata does not verify under the current root."""
    for role in ONLINE_ROLES:
        found = _current(conn, role)
        if found is None:
            return True
        with blobs.open(found[1]) as handle:
            metadata = Metadata.from_bytes(handle.read())
        try:
            root.verify_delegate(role, metadata.signed_bytes, metadata.signatures)
        except UnsignedMetadataError:
            return True
    return False


def _parse(data: bytes, kind: type[Signed], what: str) -> Metadata[Root]:
    try:
        metadata: Metadata[Root] = Metadata.from_bytes(data)
    except DeserializationError as exc:
        raise ServerError(f"{what}: not valid TUF metadata: {exc}") from exc
    if not isinstance(metadata.signed, kind):
        raise ServerError(f"{what}: expected {kind.type} metadata, got {metadata.signed.type}")
    return metadata
