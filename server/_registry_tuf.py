"""The registry's TUF side: the signed metadata that describes each channel's latest release.

`RegistryMetadata` reads and writes the `tuf_metadata` rows through `server.tuf_repo`, inside
the registry's own transactions, so a release and the metadata naming it commit together.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from tuf.api.metadata import TargetFile

from server import tuf_repo
from server.blobs import BlobStore
from server.db import Database, transaction
from server.errors import KeyMaterialError
from server.manifests import MANIFEST_NAME, SIGNATURE_NAME
from server.tuf_repo import MetadataLifetimes, OnlineKeys

__all__ = ["RegistryMetadata"]


class RegistryMetadata:
    """TUF metadata of a registry: roles' versions, root installs, signing and refresh."""

    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        keys: OnlineKeys | None,
        lifetimes: MetadataLifetimes,
    ) -> None:
        self._db = db
        self._blobs = blobs
        self._keys = keys
        self._lifetimes = lifetimes

    def current(self, role: str) -> tuple[int, str] | None:
        """The newest ``(version, sha256)`` of a role, or None before any.

        Raises:
            ServerError: The database cannot be read.
        """
        rows = self._db.read(
            "SELECT version, sha256 FROM tuf_metadata WHERE role = ? ORDER BY version DESC LIMIT 1",
            (role,),
        )
        return (int(rows[0][0]), str(rows[0][1])) if rows else None

    def sha256(self, role: str, version: int) -> str | None:
        """The blob digest of one version of a role, or None if it does not exist.

        Raises:
            ServerError: The database cannot be read.
        """
        rows = self._db.read(
            "SELECT sha256 FROM tuf_metadata WHERE role = ? AND version = ?", (role, version)
        )
        return str(rows[0][0]) if rows else None

    def install_root(self, root_bytes: bytes, now: datetime) -> int:
        """Verify and install a new root, then re-sign the online metadata under it.

        Raises:
            ConflictError: Not the next version.
            ServerError: Malformed, under-signed or expired root.
            KeyMaterialError: The online keys the new root names are missing.
        """
        with self._db.connect() as conn, transaction(conn):
            root = tuf_repo.install_root(conn, self._blobs, root_bytes, now=now)
            self.sign(conn, now)
        return int(root.signed.version)

    def refresh(self, now: datetime) -> list[str]:
        """Re-sign online metadata that has used up half its lifetime; the roles re-signed.

        Raises:
            KeyMaterialError: Something is due but cannot be signed.
        """
        if self.current("root") is None:
            return []
        with self._db.connect() as conn, transaction(conn):
            return tuf_repo.refresh_metadata(
                conn,
                self._blobs,
                self.require_keys(),
                self._targets(conn),
                lifetimes=self._lifetimes,
                now=now,
            )

    def sign_if_rooted(self, conn: sqlite3.Connection, now: datetime) -> None:
        """Inside a release's transaction: sign new metadata once a root is installed."""
        if tuf_repo.current_root(conn, self._blobs) is not None:
            self.sign(conn, now)

    def sign(self, conn: sqlite3.Connection, now: datetime) -> None:
        """Sign new targets, snapshot and timestamp metadata for the releases in ``conn``."""
        tuf_repo.sign_online_metadata(
            conn,
            self._blobs,
            self.require_keys(),
            self._targets(conn),
            lifetimes=self._lifetimes,
            now=now,
        )

    def require_keys(self) -> OnlineKeys:
        """The online keys.

        Raises:
            KeyMaterialError: None are configured.
        """
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
