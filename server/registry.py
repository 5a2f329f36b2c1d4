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
from datetime import datetime, timezone
from pathlib import Path

from client_sdk.errors import BundleError
from client_sdk.verify import verify_manifest
from server import tuf_repo
from server._registry_tuf import RegistryMetadata
from server._releases import (
    Files,
    Release,
    check_channel,
    check_newer,
    is_valid_channel,
    make_release,
    utc_text,
)
from server.blobs import BlobStore
from server.db import DB_FILE_NAME, Database, transaction
from server.errors import ConflictError, NotFoundError, ServerError
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
        self._metadata = RegistryMetadata(self._db, self._blobs, keys, self._lifetimes)

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
        check_channel(channel)
        published_at = utc_text(now)
        manifest_path = bundle_dir / MANIFEST_NAME
        manifest_bytes = read_capped(manifest_path, self._max_manifest_bytes)
        signature_bytes = read_capped(bundle_dir / SIGNATURE_NAME, MAX_SIGNATURE_BYTES)
        if not signature_bytes:
            raise ServerError(f"{bundle_dir / SIGNATURE_NAME}: empty signature")
        parsed = self._check_manifest(manifest_bytes, signature_bytes, str(manifest_path), now)
        with self._db.connect() as conn:  # fail fast, before copying any bytes
            check_newer(conn, channel, parsed.model_version)
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
        check_channel(channel)
        published_at = utc_text(now)
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
        return self._metadata.current(role)

    def metadata_sha256(self, role: str, version: int) -> str | None:
        """The blob digest of one version of a TUF role, or None if it does not exist.

        Raises:
            ServerError: The database cannot be read.
        """
        return self._metadata.sha256(role, version)

    def install_root(self, root_bytes: bytes, *, now: datetime | None = None) -> int:
        """Verify and install a new TUF root, then re-sign the online metadata under it.

        Returns:
            The installed root version.

        Raises:
            ConflictError: Not the next version.
            ServerError: Malformed, under-signed or expired root.
            KeyMaterialError: The online keys the new root names are not in the keys directory.
        """
        return self._metadata.install_root(root_bytes, datetime.fromisoformat(utc_text(now)))

    def refresh_metadata(self, *, now: datetime | None = None) -> list[str]:
        """Re-sign online metadata that has used up half its lifetime (see tuf_repo).

        Returns:
            The roles re-signed.

        Raises:
            KeyMaterialError: Something is due but cannot be signed.
        """
        return self._metadata.refresh(datetime.fromisoformat(utc_text(now)))

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
            check_newer(conn, channel, parsed.model_version)  # again: another publisher may win
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
            self._metadata.sign_if_rooted(conn, datetime.fromisoformat(published_at))
        logger.info("published %s v%d: %d files", channel, parsed.model_version, len(parsed.files))
        row = (parsed.model_version, manifest_sha256, signature_sha256, published_at)
        return make_release(channel, row, parsed.files)

    def _republish(
        self, source: Release, channel: str, new_version: int | None, now: datetime | None
    ) -> Release:
        check_channel(channel)
        published_at = utc_text(now)
        with self._blobs.open(source.manifest_sha256) as handle:
            manifest_bytes = handle.read()
        if new_version is None:
            manifest_sha256, signature_sha256 = source.manifest_sha256, source.signature_sha256
        else:
            key = self._metadata.require_keys().bundle_key()
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

    def _select(self, channel: str, *, limit: int) -> list[Release]:
        check_channel(channel)
        with self._db.connect() as conn, transaction(conn, "BEGIN"):
            rows = conn.execute(
                "SELECT id, model_version, manifest_sha256, signature_sha256, published_at "
                "FROM releases WHERE channel = ? ORDER BY model_version DESC LIMIT ?",
                (channel, limit),
            ).fetchall()
            files: dict[int, Files] = {row[0]: {} for row in rows}
            for release_id, name, sha256, size in conn.execute(
                "SELECT release_id, name, sha256, size FROM release_files WHERE release_id IN "
                "(SELECT id FROM releases WHERE channel = ? ORDER BY model_version DESC LIMIT ?) "
                "ORDER BY release_id, name",
                (channel, limit),
            ):
                files[release_id][name] = (sha256, size)
        return [make_release(channel, tuple(row[1:]), files[row[0]]) for row in rows]
