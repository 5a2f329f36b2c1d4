"""The publish step: releases per channel in SQLite over content-addressed blobs, and the TUF
metadata that describes them (``data_dir/registry.sqlite3``, ``data_dir/blobs``). Guarantees:

- The manifest is read under a size cap and parsed only for ``model_version`` and ``files``;
  every listed file must be a regular file with a flat name (or, for uploads, a stored blob) and
  is checked against its sha256 and size.
- All blobs are stored first, then the release row, its file list and the new signed TUF
  metadata (targets, snapshot, timestamp) in one transaction: after a crash the old or the new
  release is visible, never half of one (orphan blobs are harmless and never served).
- Model versions only go up within a channel. A rollback or a promotion that would go down
  re-issues the old content under the next version, re-signed with the bundle key, so devices
  (which refuse older versions) accept it.
- When the service holds the bundle key, a published manifest must carry its valid signature.
- Each write opens its own connection, so one ``Registry`` serves many threads and several
  processes may share a ``data_dir``; reads go through one shared connection (fast 304s).
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any

from tuf.api.metadata import TargetFile

from client_sdk.errors import BundleError
from client_sdk.verify import verify_manifest
from server import tuf_repo
from server.blobs import BlobStore
from server.db import DB_FILE_NAME, Database, transaction
from server.errors import ConflictError, KeyMaterialError, NotFoundError, ServerError
from server.manifests import (
    MANIFEST_NAME,
    MAX_SIGNATURE_BYTES,
    SIGNATURE_NAME,
    ParsedManifest,
    parse_manifest,
    read_capped,
    resign_manifest,
)
from server.tuf_repo import MetadataLifetimes, OnlineKeys

__all__ = ["MANIFEST_NAME", "SIGNATURE_NAME", "Registry", "Release", "is_valid_channel"]

logger = logging.getLogger(__name__)

_CHANNEL_PATTERN = "[a-z][a-z0-9-]{0,31}"
_CHANNEL = re.compile(_CHANNEL_PATTERN)
_Files = dict[str, tuple[str, int]]  # file name -> (sha256 hex, size in bytes)


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
    """Releases per channel and their TUF metadata, in SQLite, with bytes in a blob store."""

    def __init__(
        self,
        data_dir: Path,
        *,
        keys: OnlineKeys | None = None,
        lifetimes: MetadataLifetimes | None = None,
        max_manifest_bytes: int = 1_000_000,
        max_bundle_bytes: int = 1 << 30,
    ) -> None:
        """Open the registry in ``data_dir``, creating and migrating it as needed.

        Args:
            data_dir: Directory holding ``registry.sqlite3`` and ``blobs/``.
            keys: The online signing keys (TUF roles and the bundle key); needed to publish
                once a TUF root is installed, and for re-signing rollbacks.
            lifetimes: Expiry periods of the TUF metadata.
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
        self._keys = keys
        self._lifetimes = lifetimes or MetadataLifetimes()
        data_dir.mkdir(parents=True, exist_ok=True)
        self._data_dir = data_dir
        self._blobs = BlobStore(data_dir / "blobs")
        self._db = Database(data_dir / DB_FILE_NAME)

    @property
    def blobs(self) -> BlobStore:
        """The blob store holding every published byte."""
        return self._blobs

    @property
    def database(self) -> Database:
        """The SQLite database (for the jobs and datasets tables)."""
        return self._db

    @property
    def data_dir(self) -> Path:
        """The registry's directory."""
        return self._data_dir

    @property
    def keys(self) -> OnlineKeys | None:
        """The online signing keys, if configured."""
        return self._keys

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
            ConflictError: Its ``model_version`` is not greater than the channel's latest.
            KeyMaterialError: The metadata cannot be signed with the configured keys.
            ServerError: The bundle is malformed (unreadable or oversized manifest, bad names,
                missing files, digest or size mismatch, bad signature); the previous release
                stays the latest.
        """
        _check_channel(channel)
        published_at = _utc(now)
        manifest_path = bundle_dir / MANIFEST_NAME
        manifest_bytes = read_capped(manifest_path, self._max_manifest_bytes)
        signature_bytes = read_capped(bundle_dir / SIGNATURE_NAME, MAX_SIGNATURE_BYTES)
        if not signature_bytes:
            raise ServerError(f"{bundle_dir / SIGNATURE_NAME}: empty signature")
        parsed = self._check_manifest(manifest_bytes, signature_bytes, str(manifest_path), now)
        with self._db.connect() as conn:  # fail fast, before copying any bytes
            _check_newer(conn, channel, parsed.model_version)
        for name, (sha256, size) in sorted(parsed.files.items()):
            path = bundle_dir / name
            if path.is_symlink() or not path.is_file():
                raise ServerError(f"{path}: listed in the manifest but not a regular file")
            self._blobs.put_file(path, expected_sha256=sha256, expected_size=size)
        manifest_sha256 = self._blobs.put_bytes(manifest_bytes)
        signature_sha256 = self._blobs.put_bytes(signature_bytes)
        return self._commit(channel, parsed, manifest_sha256, signature_sha256, published_at)

    def publish_uploaded(
        self,
        manifest_sha256: str,
        signature_sha256: str,
        *,
        channel: str = "stable",
        now: datetime | None = None,
    ) -> Release:
        """Release a bundle whose files were uploaded as blobs (the admin API's publish).

        Args:
            manifest_sha256: Digest of the uploaded ``manifest.json``.
            signature_sha256: Digest of the uploaded ``manifest.sig``.
            channel: Channel to publish on.
            now: Publication time (timezone-aware); the current time when None.

        Returns:
            The new release.

        Raises:
            ValueError: A digest or ``channel`` is malformed, or ``now`` is naive.
            NotFoundError: The manifest, signature or a listed file was not uploaded.
            ConflictError: The version is not newer than the channel's latest.
            ServerError: The manifest is malformed or oversized, or a file's size differs.
        """
        _check_channel(channel)
        published_at = _utc(now)
        manifest_bytes = self._read_blob(manifest_sha256, self._max_manifest_bytes, "manifest")
        signature_bytes = self._read_blob(signature_sha256, MAX_SIGNATURE_BYTES, "signature")
        parsed = self._check_manifest(
            manifest_bytes, signature_bytes, f"manifest {manifest_sha256[:12]}", now
        )
        for name, (sha256, size) in sorted(parsed.files.items()):
            if not self._blobs.has(sha256):
                raise NotFoundError(f"file {name!r} (sha256 {sha256}) was not uploaded")
            found = self._blobs.size(sha256)
            if found != size:
                raise ServerError(f"file {name!r}: manifest says {size} bytes, blob has {found}")
        return self._commit(channel, parsed, manifest_sha256, signature_sha256, published_at)

    def promote(
        self,
        source_channel: str,
        target_channel: str,
        *,
        model_version: int | None = None,
        now: datetime | None = None,
    ) -> Release:
        """Publish a release of ``source_channel`` (its latest by default) on ``target_channel``.

        The same bytes are published when their version is newer than the target's latest;
        otherwise the content is re-issued under the target's next version.

        Raises:
            ValueError: A channel name is invalid or ``now`` is naive.
            NotFoundError: No such release.
            KeyMaterialError: Re-signing is needed but the bundle key is missing.
        """
        source = self._release(source_channel, model_version)
        latest = self.latest(target_channel)
        if latest is None or source.model_version > latest.model_version:
            return self._republish(source, target_channel, None, now)
        return self._republish(source, target_channel, latest.model_version + 1, now)

    def rollback(self, channel: str, to_version: int, *, now: datetime | None = None) -> Release:
        """Make an older release of ``channel`` current again, under the next version number.

        Raises:
            ValueError: ``channel`` is invalid or ``now`` is naive.
            NotFoundError: The channel has no release ``to_version``.
            ConflictError: ``to_version`` already is the latest release.
            KeyMaterialError: The bundle key (needed to re-sign) is missing.
        """
        source = self._release(channel, to_version)
        latest = self.latest(channel) or source  # the channel has a release: `source`
        if latest.model_version == to_version:
            raise ConflictError(f"channel {channel!r}: v{to_version} already is the latest")
        return self._republish(source, channel, latest.model_version + 1, now)

    def latest(self, channel: str) -> Release | None:
        """Return the channel's newest release, or None if it has none.

        Raises:
            ValueError: ``channel`` is not a valid name.
            ServerError: The database cannot be read.
        """
        found = self._select(channel, limit=1)
        return found[0] if found else None

    def releases(self, channel: str) -> list[Release]:
        """Return every release of the channel, newest first (empty for an unknown channel).

        Raises:
            ValueError: ``channel`` is not a valid name.
            ServerError: The database cannot be read.
        """
        return self._select(channel, limit=-1)

    def channels(self) -> list[str]:
        """Return every channel with at least one release, sorted.

        Raises:
            ServerError: The database cannot be read.
        """
        return [row[0] for row in self._db.read("SELECT DISTINCT channel FROM releases ORDER BY 1")]

    def is_published_blob(self, digest: str) -> bool:
        """Tell whether a release references the blob: only such blobs are public.

        Raises:
            ValueError: ``digest`` is malformed.
            ServerError: The database cannot be read.
        """
        self._blobs.path_for(digest)  # validates the digest
        row = self._db.read(
            "SELECT EXISTS (SELECT 1 FROM releases WHERE manifest_sha256 = ?1 "
            "OR signature_sha256 = ?1) OR EXISTS (SELECT 1 FROM release_files "
            "WHERE sha256 = ?1)",
            (digest,),
        )
        return bool(row[0][0])

    def current_metadata(self, role: str) -> tuple[int, str] | None:
        """The newest ``(version, sha256)`` of a TUF role, or None before any.

        Raises:
            ServerError: The database cannot be read.
        """
        rows = self._db.read(
            "SELECT version, sha256 FROM tuf_metadata WHERE role = ? ORDER BY version DESC LIMIT 1",
            (role,),
        )
        return (int(rows[0][0]), str(rows[0][1])) if rows else None

    def metadata_sha256(self, role: str, version: int) -> str | None:
        """The blob digest of one version of a TUF role, or None if it does not exist.

        Raises:
            ServerError: The database cannot be read.
        """
        rows = self._db.read(
            "SELECT sha256 FROM tuf_metadata WHERE role = ? AND version = ?", (role, version)
        )
        return str(rows[0][0]) if rows else None

    def install_root(self, root_bytes: bytes, *, now: datetime | None = None) -> int:
        """Verify and install a new TUF root, then re-sign the online metadata under it.

        Returns:
            The installed root version.

        Raises:
            ConflictError: Not the next version.
            ServerError: Malformed, under-signed or expired root.
            KeyMaterialError: The online keys the new root names are not in the keys directory.
        """
        moment = datetime.fromisoformat(_utc(now))
        with self._db.connect() as conn, transaction(conn):
            root = tuf_repo.install_root(conn, self._blobs, root_bytes, now=moment)
            self._sign_online_metadata(conn, moment)
        return root.signed.version

    def refresh_metadata(self, *, now: datetime | None = None) -> list[str]:
        """Re-sign online metadata that has used up half its lifetime (see tuf_repo).

        Returns:
            The roles re-signed.

        Raises:
            KeyMaterialError: Something is due but cannot be signed.
        """
        if self.current_metadata("root") is None:
            return []
        moment = datetime.fromisoformat(_utc(now))
        with self._db.connect() as conn, transaction(conn):
            return tuf_repo.refresh_metadata(
                conn,
                self._blobs,
                self._require_keys(),
                self._targets(conn),
                lifetimes=self._lifetimes,
                now=moment,
            )

    def next_model_version(self) -> int:
        """One more than the highest model version on any channel (1 for an empty registry)."""
        rows = self._db.read("SELECT MAX(model_version) FROM releases")
        return 1 if rows[0][0] is None else int(rows[0][0]) + 1

    def _check_manifest(
        self, manifest_bytes: bytes, signature_bytes: bytes, where: str, now: datetime | None
    ) -> ParsedManifest:
        parsed = parse_manifest(manifest_bytes, where)
        total, cap = sum(size for _, size in parsed.files.values()), self._max_bundle_bytes
        if total > cap:
            raise ServerError(f"{where}: files total {total} bytes, over the cap of {cap}")
        if self._keys is not None and (self._keys.keys_dir / tuf_repo.BUNDLE_KEY_FILE).is_file():
            public = self._keys.bundle_key().public_key()
            try:
                verify_manifest(
                    manifest_bytes,
                    signature_bytes,
                    [public],
                    now=now or datetime.now(timezone.utc),
                )
            except BundleError as exc:
                raise ServerError(f"{where}: refused by the service's bundle key: {exc}") from exc
        return parsed

    def _commit(
        self,
        channel: str,
        parsed: ParsedManifest,
        manifest_sha256: str,
        signature_sha256: str,
        published_at: str,
    ) -> Release:
        with self._db.connect() as conn, transaction(conn):
            _check_newer(conn, channel, parsed.model_version)  # again: another publisher may win
            cursor = conn.execute(
                "INSERT INTO releases (channel, model_version, manifest_sha256, "
                "signature_sha256, published_at) VALUES (?, ?, ?, ?, ?)",
                (channel, parsed.model_version, manifest_sha256, signature_sha256, published_at),
            )
            conn.executemany(
                "INSERT INTO release_files (release_id, name, sha256, size) VALUES (?, ?, ?, ?)",
                [
                    (cursor.lastrowid, n, sha, size)
                    for n, (sha, size) in sorted(parsed.files.items())
                ],
            )
            if tuf_repo.current_root(conn, self._blobs) is not None:
                self._sign_online_metadata(conn, datetime.fromisoformat(published_at))
        logger.info("published %s v%d: %d files", channel, parsed.model_version, len(parsed.files))
        row = (parsed.model_version, manifest_sha256, signature_sha256, published_at)
        return _release(channel, row, parsed.files)

    def _republish(
        self, source: Release, channel: str, new_version: int | None, now: datetime | None
    ) -> Release:
        _check_channel(channel)
        published_at = _utc(now)
        with self._blobs.open(source.manifest_sha256) as handle:
            manifest_bytes = handle.read()
        if new_version is None:
            manifest_sha256, signature_sha256 = source.manifest_sha256, source.signature_sha256
        else:
            key = self._require_keys().bundle_key()
            manifest_bytes, signature_bytes = resign_manifest(
                manifest_bytes, model_version=new_version, signing_keys=[key], now=now
            )
            manifest_sha256 = self._blobs.put_bytes(manifest_bytes)
            signature_sha256 = self._blobs.put_bytes(signature_bytes)
        parsed = parse_manifest(manifest_bytes, f"manifest {manifest_sha256[:12]}")
        logger.info(
            "re-releasing %s v%d on %s as v%d",
            source.channel,
            source.model_version,
            channel,
            parsed.model_version,
        )
        return self._commit(channel, parsed, manifest_sha256, signature_sha256, published_at)

    def _release(self, channel: str, model_version: int | None) -> Release:
        for release in self.releases(channel):
            if model_version is None or release.model_version == model_version:
                return release
        wanted = "any release" if model_version is None else f"release v{model_version}"
        raise NotFoundError(f"channel {channel!r} has no {wanted}")

    def _read_blob(self, digest: str, max_bytes: int, what: str) -> bytes:
        try:
            with self._blobs.open(digest) as handle:
                data = handle.read(max_bytes + 1)
        except FileNotFoundError:
            raise NotFoundError(f"{what} blob {digest} was not uploaded") from None
        if len(data) > max_bytes:
            raise ServerError(f"{what} blob {digest[:12]}: larger than the limit of {max_bytes}")
        return data

    def _sign_online_metadata(self, conn: sqlite3.Connection, now: datetime) -> None:
        """Sign new targets, snapshot and timestamp metadata for the releases in ``conn``."""
        tuf_repo.sign_online_metadata(
            conn,
            self._blobs,
            self._require_keys(),
            self._targets(conn),
            lifetimes=self._lifetimes,
            now=now,
        )

    def _require_keys(self) -> OnlineKeys:
        if self._keys is None:
            raise KeyMaterialError(
                "this registry has a TUF root, so publishing signs metadata: configure the "
                "online keys directory (--keys-dir or FACETWO_KEYS_DIR)"
            )
        return self._keys

    def _targets(self, conn: sqlite3.Connection) -> dict[str, TargetFile]:
        """The TUF targets: every file of each channel's latest release."""
        targets: dict[str, TargetFile] = {}
        latest = conn.execute(
            "SELECT r.id, r.channel, r.model_version, r.manifest_sha256, r.signature_sha256 "
            "FROM releases r JOIN (SELECT channel, MAX(model_version) AS v FROM releases "
            "GROUP BY channel) m ON r.channel = m.channel AND r.model_version = m.v"
        ).fetchall()
        for release_id, channel, version, manifest, signature in latest:
            custom = {"custom": {"model_version": version}}
            for name, digest, extra in (
                (MANIFEST_NAME, manifest, custom),
                (SIGNATURE_NAME, signature, None),
            ):
                path = f"{channel}/{name}"
                size = self._blobs.size(digest)
                targets[path] = TargetFile(size, {"sha256": digest}, path, extra)
            for name, digest, size in conn.execute(
                "SELECT name, sha256, size FROM release_files WHERE release_id = ?", (release_id,)
            ):
                path = f"{channel}/{name}"
                targets[path] = TargetFile(size, {"sha256": digest}, path)
        return targets

    def _select(self, channel: str, *, limit: int) -> list[Release]:
        _check_channel(channel)
        with self._db.connect() as conn, transaction(conn, "BEGIN"):
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


def _release(channel: str, row: tuple[Any, ...], files: Mapping[str, tuple[str, int]]) -> Release:
    """Build a Release from ``(model_version, manifest, signature, published_at)``."""
    version, manifest, signature, published_at = row
    published = datetime.fromisoformat(published_at)
    return Release(channel, version, manifest, signature, MappingProxyType(dict(files)), published)


def _check_channel(channel: str) -> None:
    if not is_valid_channel(channel):
        raise ValueError(f"channel: expected {_CHANNEL_PATTERN}, got {channel!r}")


def _check_newer(conn: sqlite3.Connection, channel: str, model_version: int) -> None:
    row = conn.execute(
        "SELECT MAX(model_version) FROM releases WHERE channel = ?", (channel,)
    ).fetchone()
    if row[0] is not None and model_version <= row[0]:
        raise ConflictError(
            f"channel {channel!r}: model_version {model_version} is not greater than the "
            f"latest published {row[0]}"
        )


def _utc(now: datetime | None) -> str:
    if now is not None and now.utcoffset() is None:
        raise ValueError("now: must be timezone-aware")
    return (now or datetime.now(timezone.utc)).astimezone(timezone.utc).isoformat()
