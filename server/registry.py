"""The publish step: release metadata in SQLite (``data_dir/registry.sqlite3``, WAL mode,
versioned schema) over content-addressed blobs (``data_dir/blobs``). Guarantees:

- The manifest is read under a size cap and parsed only for ``model_version`` and ``files``
  (signatures are the devices' job); every listed file must be a regular file with a flat name
  (no separators, no ``..``) and is checked against its sha256 and size while it is copied.
- All blobs are stored first, then the release row and its file list in one transaction: after a
  crash the old or the new release is visible, never half of one (orphan blobs are harmless).
- Model versions only go up within a channel. Each call opens its own short-lived connection,
  so one ``Registry`` serves many threads and several processes may share a ``data_dir``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any

from server.blobs import BlobStore, is_sha256_hex
from server.errors import ServerError

__all__ = ["MANIFEST_NAME", "SIGNATURE_NAME", "Registry", "Release", "is_valid_channel"]

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.sig"
_CHANNEL = re.compile(r"[a-z][a-z0-9-]{0,31}")
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # as client_sdk.verify
_MAX_SIGNATURE_BYTES = 65_536  # the client refuses more (client_sdk.verify)
_SQLITE_TIMEOUT = 30.0  # seconds
_Files = dict[str, tuple[str, int]]  # file name -> (sha256 hex, size in bytes)

# Schema version = number of steps applied. Append steps (tokens, jobs, ...); never edit old ones.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        "CREATE TABLE releases (id INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL,"
        " model_version INTEGER NOT NULL, manifest_sha256 TEXT NOT NULL,"
        " signature_sha256 TEXT NOT NULL, published_at TEXT NOT NULL,"
        " UNIQUE (channel, model_version))",
        "CREATE INDEX releases_manifest_sha256 ON releases (manifest_sha256)",
        "CREATE INDEX releases_signature_sha256 ON releases (signature_sha256)",
        "CREATE TABLE release_files (release_id INTEGER NOT NULL REFERENCES releases (id),"
        " name TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,"
        " PRIMARY KEY (release_id, name))",
        "CREATE INDEX release_files_sha256 ON release_files (sha256)",
    ),
)


@dataclass(frozen=True, slots=True)
class Release:
    """One published bundle on one channel.

    Attributes:
        channel: The channel name.
        model_version: The manifest's ``model_version``.
        manifest_sha256: Digest of the exact ``manifest.json`` bytes.
        signature_sha256: Digest of the exact ``manifest.sig`` bytes.
        files: Name -> ``(sha256, size)`` for every file the manifest lists (read-only).
        published_at: When it was published (UTC).
    """

    channel: str
    model_version: int
    manifest_sha256: str
    signature_sha256: str
    files: Mapping[str, tuple[str, int]]
    published_at: datetime


def is_valid_channel(channel: object) -> bool:
    """Tell whether ``channel`` is a valid channel name (``[a-z][a-z0-9-]{0,31}``).

    Args:
        channel: Anything.

    Returns:
        True for a valid name.
    """
    return isinstance(channel, str) and _CHANNEL.fullmatch(channel) is not None


class Registry:
    """Releases per channel, stored in SQLite, with their bytes in a blob store."""

    def __init__(
        self,
        data_dir: Path,
        *,
        max_manifest_bytes: int = 1_000_000,
        max_bundle_bytes: int = 1 << 30,
    ) -> None:
        """Open the registry in ``data_dir``, creating and migrating it as needed.

        Args:
            data_dir: Directory holding ``registry.sqlite3`` and ``blobs/``.
            max_manifest_bytes: Largest ``manifest.json`` accepted.
            max_bundle_bytes: Largest total of the sizes a manifest may declare.

        Raises:
            ValueError: A limit is not positive.
            ServerError: The database is unusable or was written by a newer facetwo.
            OSError: The directory cannot be created.
        """
        if max_manifest_bytes < 1:
            raise ValueError(f"max_manifest_bytes: must be >= 1, got {max_manifest_bytes}")
        if max_bundle_bytes < 1:
            raise ValueError(f"max_bundle_bytes: must be >= 1, got {max_bundle_bytes}")
        self._max_manifest_bytes = max_manifest_bytes
        self._max_bundle_bytes = max_bundle_bytes
        data_dir.mkdir(parents=True, exist_ok=True)
        self._db_path = data_dir / "registry.sqlite3"
        self._blobs = BlobStore(data_dir / "blobs")
        self._migrate()

    @property
    def blobs(self) -> BlobStore:
        """The blob store holding every published byte."""
        return self._blobs

    def publish_bundle(
        self, bundle_dir: Path, *, channel: str = "stable", now: datetime | None = None
    ) -> Release:
        """Store a bundle directory's files and make it the channel's latest release.

        Args:
            bundle_dir: Directory with ``manifest.json``, ``manifest.sig`` and every file the
                manifest lists; other entries are ignored.
            channel: Channel to publish on.
            now: Publication time (timezone-aware); the current time when None.

        Returns:
            The new release.

        Raises:
            ValueError: ``channel`` is not a valid name or ``now`` is naive.
            ServerError: The bundle is malformed (unreadable or oversized manifest, bad names,
                missing files, digest or size mismatch) or its ``model_version`` is not greater
                than the channel's latest; the previous release stays the latest.
        """
        _check_channel(channel)
        published_at = _utc(now)
        manifest_bytes, signature_bytes, model_version, files = self._read_bundle(bundle_dir)
        with self._connect() as conn:  # fail fast, before copying any bytes
            _check_newer(conn, channel, model_version)
        for name, (sha256, size) in sorted(files.items()):
            path = bundle_dir / name
            if path.is_symlink() or not path.is_file():
                raise ServerError(f"{path}: listed in the manifest but not a regular file")
            self._blobs.put_file(path, expected_sha256=sha256, expected_size=size)
        manifest_sha256 = self._blobs.put_bytes(manifest_bytes)
        signature_sha256 = self._blobs.put_bytes(signature_bytes)
        with self._connect() as conn, _transaction(conn):
            _check_newer(conn, channel, model_version)  # again: another publisher may have won
            cursor = conn.execute(
                "INSERT INTO releases (channel, model_version, manifest_sha256, "
                "signature_sha256, published_at) VALUES (?, ?, ?, ?, ?)",
                (channel, model_version, manifest_sha256, signature_sha256, published_at),
            )
            conn.executemany(
                "INSERT INTO release_files (release_id, name, sha256, size) VALUES (?, ?, ?, ?)",
                [(cursor.lastrowid, n, sha, size) for n, (sha, size) in sorted(files.items())],
            )
        logger.info("published %s v%d: %d files", channel, model_version, len(files))
        row = (model_version, manifest_sha256, signature_sha256, published_at)
        return _release(channel, row, files)

    def latest(self, channel: str) -> Release | None:
        """Return the channel's newest release, or None if it has none.

        Args:
            channel: Channel name.

        Returns:
            The release with the highest model version, or None.

        Raises:
            ValueError: ``channel`` is not a valid name.
            ServerError: The database cannot be read.
        """
        found = self._select(channel, limit=1)
        return found[0] if found else None

    def releases(self, channel: str) -> list[Release]:
        """Return every release of the channel, newest first.

        Args:
            channel: Channel name.

        Returns:
            Releases ordered by descending model version (empty for an unknown channel).

        Raises:
            ValueError: ``channel`` is not a valid name.
            ServerError: The database cannot be read.
        """
        return self._select(channel, limit=-1)

    def is_published_blob(self, digest: str) -> bool:
        """Tell whether a release references the blob: only such blobs are public.

        Args:
            digest: SHA-256 as 64 lowercase hex digits.

        Returns:
            True when some release references the blob.

        Raises:
            ValueError: ``digest`` is malformed.
            ServerError: The database cannot be read.
        """
        self._blobs.path_for(digest)  # validates the digest
        with self._connect() as conn:
            row = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM releases WHERE manifest_sha256 = ?1 "
                "OR signature_sha256 = ?1) OR EXISTS (SELECT 1 FROM release_files "
                "WHERE sha256 = ?1)",
                (digest,),
            ).fetchone()
        return bool(row[0])

    def _select(self, channel: str, *, limit: int) -> list[Release]:
        _check_channel(channel)
        with self._connect() as conn, _transaction(conn, "BEGIN"):
            rows = conn.execute(
                "SELECT id, model_version, manifest_sha256, signature_sha256, published_at "
                "FROM releases WHERE channel = ? ORDER BY model_version DESC LIMIT ?",
                (channel, limit),
            ).fetchall()
            files: dict[int, _Files] = {row[0]: {} for row in rows}
            for release_id, name, sha256, size in conn.execute(
                "SELECT release_id, name, sha256, size FROM release_files WHERE release_id IN "
                "(SELECT id FROM releases WHERE channel = ? ORDER BY model_version DESC LIMIT ?) "
                "ORDER BY release_id, name",
                (channel, limit),
            ):
                files[release_id][name] = (sha256, size)
        return [_release(channel, tuple(row[1:]), files[row[0]]) for row in rows]

    def _read_bundle(self, bundle_dir: Path) -> tuple[bytes, bytes, int, _Files]:
        manifest_bytes = _read_capped(bundle_dir / MANIFEST_NAME, self._max_manifest_bytes)
        signature_bytes = _read_capped(bundle_dir / SIGNATURE_NAME, _MAX_SIGNATURE_BYTES)
        if not signature_bytes:
            raise ServerError(f"{bundle_dir / SIGNATURE_NAME}: empty signature")
        model_version, files = _parse_manifest(manifest_bytes, bundle_dir / MANIFEST_NAME)
        total, cap = sum(size for _, size in files.values()), self._max_bundle_bytes
        if total > cap:
            raise ServerError(f"{bundle_dir}: files total {total} bytes, over the cap of {cap}")
        return manifest_bytes, signature_bytes, model_version, files

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """Yield a fresh connection; close it afterwards and wrap SQLite errors in ServerError."""
        try:
            conn = sqlite3.connect(self._db_path, timeout=_SQLITE_TIMEOUT, isolation_level=None)
        except sqlite3.Error as exc:
            raise ServerError(f"{self._db_path}: cannot open: {exc}") from exc
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = FULL")
            yield conn
        except sqlite3.Error as exc:
            raise ServerError(f"{self._db_path}: {exc}") from exc
        finally:
            conn.close()

    def _migrate(self) -> None:
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode = WAL")
            with _transaction(conn):
                conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                row = conn.execute("SELECT version FROM schema_version").fetchone()
                current = 0 if row is None else int(row[0])
                if current > len(_MIGRATIONS):
                    raise ServerError(
                        f"{self._db_path}: schema version {current} is newer than this "
                        f"facetwo supports ({len(_MIGRATIONS)})"
                    )
                for statements in _MIGRATIONS[current:]:
                    for statement in statements:
                        conn.execute(statement)
                conn.execute("DELETE FROM schema_version")
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (len(_MIGRATIONS),))
        if current < len(_MIGRATIONS):
            logger.info("registry schema migrated from v%d to v%d", current, len(_MIGRATIONS))


def _release(channel: str, row: tuple[Any, ...], files: Mapping[str, tuple[str, int]]) -> Release:
    """Build a Release from ``(model_version, manifest, signature, published_at)``."""
    version, manifest, signature, published_at = row
    published = datetime.fromisoformat(published_at)
    return Release(channel, version, manifest, signature, MappingProxyType(dict(files)), published)


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection, begin: str = "BEGIN IMMEDIATE") -> Iterator[None]:
    """Run the body in one transaction: commit on success, roll back on any exception."""
    conn.execute(begin)
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _check_channel(channel: str) -> None:
    if not is_valid_channel(channel):
        raise ValueError(f"channel: expected [a-z][a-z0-9-]{{0,31}}, got {channel!r}")


def _check_newer(conn: sqlite3.Connection, channel: str, model_version: int) -> None:
    row = conn.execute(
        "SELECT MAX(model_version) FROM releases WHERE channel = ?", (channel,)
    ).fetchone()
    if row[0] is not None and model_version <= row[0]:
        raise ServerError(
            f"channel {channel!r}: model_version {model_version} is not greater than the "
            f"latest published {row[0]}"
        )


def _utc(now: datetime | None) -> str:
    if now is not None and now.utcoffset() is None:
        raise ValueError("now: must be timezone-aware")
    return (now or datetime.now(timezone.utc)).astimezone(timezone.utc).isoformat()


def _read_capped(path: Path, max_bytes: int) -> bytes:
    if path.is_symlink() or not path.is_file():
        raise ServerError(f"{path}: missing or not a regular file")
    with path.open("rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ServerError(f"{path}: larger than the limit of {max_bytes} bytes")
    return data


def _parse_manifest(data: bytes, path: Path) -> tuple[int, _Files]:
    """Extract ``model_version`` and ``files`` from manifest bytes, checking both strictly."""
    try:
        document = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ServerError(f"{path}: not valid UTF-8 JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ServerError(f"{path}: expected a JSON object, got {type(document).__name__}")
    model_version = _nonnegative_int(document.get("model_version"))
    if model_version is None:
        raise ServerError(
            f"{path}: field 'model_version': expected an int >= 0, "
            f"got {document.get('model_version')!r}"
        )
    raw_files = document.get("files")
    if not isinstance(raw_files, dict) or not raw_files:
        raise ServerError(f"{path}: field 'files': expected a non-empty object")
    files: _Files = {}
    for name, entry in raw_files.items():
        _check_file_name(name, path)
        entry = entry if isinstance(entry, dict) else {}
        sha256, size = entry.get("sha256"), _nonnegative_int(entry.get("size"))
        if not isinstance(sha256, str) or not is_sha256_hex(sha256):
            raise ServerError(
                f"{path}: files[{name!r}].sha256: expected 64 lowercase hex, got {sha256!r}"
            )
        if size is None:
            raise ServerError(
                f"{path}: files[{name!r}].size: expected an int >= 0, got {entry.get('size')!r}"
            )
        files[name] = (sha256, size)
    return model_version, files


def _check_file_name(name: str, path: Path) -> None:
    if "/" in name or "\\" in name or ".." in name:
        raise ServerError(f"{path}: file name {name!r}: path separators and '..' are not allowed")
    if name in (MANIFEST_NAME, SIGNATURE_NAME) or _FILE_NAME.fullmatch(name) is None:
        raise ServerError(f"{path}: file name {name!r}: expected a flat [A-Za-z0-9._-] name")


def _nonnegative_int(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate keys in an object")
    return result
