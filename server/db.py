"""The registry's SQLite database (``registry.sqlite3``): schema, connections, transactions.

Guarantees:

- WAL mode and ``synchronous = FULL``: a committed transaction survives a crash, and readers
  never block the single writer. Each write opens its own short-lived connection, so any number
  of threads and processes may share one data directory.
- The schema is versioned: its version is the number of migration steps applied. Steps are only
  ever appended; a database written by a newer facetwo is refused rather than misread.
- :class:`Database` keeps one shared connection for reads per :class:`Database` for hot paths (the
  304 answers of the public API): opening SQLite costs ~150 us, a query on an open connection a
  few. Every statement runs in its own implicit transaction, so it sees the latest commit.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from server.errors import ServerError

__all__ = ["DB_FILE_NAME", "SCHEMA_VERSION", "Database", "transaction"]

logger = logging.getLogger(__name__)

DB_FILE_NAME = "registry.sqlite3"
_SQLITE_TIMEOUT = 30.0  # seconds a writer waits for the lock

# Schema version = number of steps applied. Append steps; never edit old ones.
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
    (
        # TUF metadata: every signed version of every top-level role, as a blob.
        "CREATE TABLE tuf_metadata (role TEXT NOT NULL, version INTEGER NOT NULL,"
        " sha256 TEXT NOT NULL, size INTEGER NOT NULL, expires_at TEXT NOT NULL,"
        " PRIMARY KEY (role, version))",
        # Validated uploads for training jobs.
        "CREATE TABLE datasets (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,"
        " name TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,"
        " rows INTEGER NOT NULL, uploaded_at TEXT NOT NULL)",
        "CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, status TEXT NOT NULL,"
        " interactions_id INTEGER NOT NULL REFERENCES datasets (id),"
        " catalog_id INTEGER REFERENCES datasets (id), channel TEXT,"
        " model_version INTEGER, owner TEXT NOT NULL, created_at TEXT NOT NULL,"
        " finished_at TEXT, error TEXT)",
        "CREATE TABLE job_log (job_id INTEGER NOT NULL REFERENCES jobs (id),"
        " line INTEGER NOT NULL, message TEXT NOT NULL, PRIMARY KEY (job_id, line))",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)


class Database:
    """One SQLite file: migrated on open, fresh connections for writes, a shared reader."""

    def __init__(self, path: Path) -> None:
        """Open (creating and migrating as needed) the database at ``path``.

        Args:
            path: The database file.

        Raises:
            ServerError: The database is unusable or was written by a newer facetwo.
        """
        self._path = path
        self._reader = _SharedReader(path)
        self._migrate()

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """Yield a fresh autocommit connection; close it afterwards.

        Raises:
            ServerError: SQLite failed (the message names the file).
        """
        try:
            conn = sqlite3.connect(self._path, timeout=_SQLITE_TIMEOUT, isolation_level=None)
        except sqlite3.Error as exc:
            raise ServerError(f"{self._path}: cannot open: {exc}") from exc
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = FULL")
            yield conn
        except sqlite3.Error as exc:
            raise ServerError(f"{self._path}: {exc}") from exc
        finally:
            conn.close()

    def read(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one read-only query on the shared connection and return every row.

        Raises:
            ServerError: SQLite failed.
        """
        return self._reader.query(sql, parameters)

    def close(self) -> None:
        """Close the shared reader (it reopens on the next :meth:`read`)."""
        self._reader.close()

    def _migrate(self) -> None:
        with self.connect() as conn:
            conn.execute("PRAGMA journal_mode = WAL")
            with transaction(conn):
                conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                row = conn.execute("SELECT version FROM schema_version").fetchone()
                current = 0 if row is None else int(row[0])
                if current > SCHEMA_VERSION:
                    raise ServerError(
                        f"{self._path}: schema version {current} is newer than this "
                        f"facetwo supports ({SCHEMA_VERSION})"
                    )
                for statements in _MIGRATIONS[current:]:
                    for statement in statements:
                        conn.execute(statement)
                conn.execute("DELETE FROM schema_version")
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        if current < SCHEMA_VERSION:
            logger.info("registry schema migrated from v%d to v%d", current, SCHEMA_VERSION)


class _SharedReader:
    """A lazily opened connection for reads, guarded by a lock, closed with its owner."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None

    def query(self, sql: str, parameters: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                if self._conn is None:
                    conn = sqlite3.connect(
                        self._path, timeout=_SQLITE_TIMEOUT, check_same_thread=False
                    )
                    self._conn = conn
                    # Close the connection when the owner goes away, before sqlite warns.
                    self._finalizer = weakref.finalize(self, conn.close)
                return self._conn.execute(sql, parameters).fetchall()
            except sqlite3.Error as exc:
                self._close_locked()
                raise ServerError(f"{self._path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        if self._finalizer is not None:
            self._finalizer()  # closes the connection exactly once
        self._conn, self._finalizer = None, None


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection, begin: str = "BEGIN IMMEDIATE") -> Iterator[None]:
    """Run the body in one transaction: commit on success, roll back on any exception.

    ``BEGIN IMMEDIATE`` takes the write lock at once, so two writers serialise instead of
    failing at commit time.
    """
    conn.execute(begin)
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
