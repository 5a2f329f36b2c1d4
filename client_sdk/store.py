"""Step "store": the shopper's private data in one SQLite file, every record sealed.

Guarantees:

- every record is AES-256-GCM encrypted and authenticated under a fresh nonce, and its associated
  data binds it to its table and row id, so records cannot be swapped or moved; plaintexts are
  padded to 32-byte buckets so lengths say little;
- the key comes from the host app (the OS keystore on a phone, `store_keys.keyring_store_key` on
  a desktop) and is never written beside the data: the file holds a random salt and a sealed
  key check only;
- a wrong key, a damaged file or a foreign file raises `StoreUnreadableError` before anything is
  written, never a silent fresh store; a file made by a newer SDK raises `StoreError`;
- writes are atomic transactions in WAL mode; a write that returned survives the app being
  killed (and, with `StoreConfig(synchronous="full")`, a power cut too); the file is never left
  corrupt; a full disk raises `StoreFullError` and loses nothing that was acknowledged before;
  one process owns the file at a time (`StoreBusyError` otherwise);
- erased records are overwritten with zeros (`secure_delete`) and `compact()` truncates the WAL,
  so erasing leaves no ciphertext behind either;
- the schema has a version; older files are migrated in one transaction.

`path=None` keeps the store in memory (SQLite ":memory:" under a random key): nothing is written
to disk, which is what a kiosk session needs.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import sqlite3
import threading
import urllib.parse
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._crypto import SEAL_KEY_BYTES, SealKey, derive_seal_key, open_sealed, seal
from .errors import StoreBusyError, StoreError, StoreFullError, StoreUnreadableError

logger = logging.getLogger(__name__)

TABLES = ("event", "control", "setting", "ledger")
"""The sealed record tables. Their names are the only plaintext words in the file."""
SCHEMA_VERSION = 1
APPLICATION_ID = 0x66616365  # "face": marks a file as a facetwo store
_PAD_BYTES = 32
_CHECK_PLAINTEXT = b"facetwo-store-key-check"
_PURPOSE = b"facetwo store records v1"
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_FULL = 5, 6, 13

# Migration i brings a file from schema version i to i + 1, inside the caller's transaction.
_MIGRATIONS: list[tuple[str, ...]] = [
    (
        "CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL)",
        *(f"CREATE TABLE {t} (id INTEGER PRIMARY KEY, body BLOB NOT NULL)" for t in TABLES),
    ),
]


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """How the store writes."""

    synchronous: str = "normal"
    """"normal": an acknowledged write survives the app crashing or being killed; after an OS
    crash or power cut the last few may be lost, but the file stays consistent (SQLite's WAL
    guarantee). "full": it survives a power cut too, at the price of an fsync per write
    (0.3-2 ms on these machines, more on phone flash)."""
    max_record_bytes: int = 64 * 1024

    def __post_init__(self) -> None:
        if self.synchronous not in ("full", "normal"):
            raise ValueError(f"synchronous must be 'full' or 'normal', found {self.synchronous!r}")
        if not 256 <= self.max_record_bytes <= 16 * 1024 * 1024:
            raise ValueError(
                f"max_record_bytes must be in [256, 16777216], found {self.max_record_bytes}"
            )


class PrivateStore:
    """Sealed records in tables (`TABLES`), each a JSON object, addressed by an integer id.

    Use `PrivateStore.open(...)`. Thread-safe; a context manager that closes on exit.
    """

    def __init__(
        self, conn: sqlite3.Connection, key: SealKey, path: Path | None, config: StoreConfig
    ) -> None:
        self._conn = conn
        self._key = key
        self._path = path
        self._config = config
        self._lock = threading.RLock()
        self._next_id = {t: _max_id(conn, t) + 1 for t in TABLES}

    @classmethod
    def open(
        cls, path: Path | str | None, key: bytes | None = None, *, config: StoreConfig | None = None
    ) -> PrivateStore:
        """Open the store at `path` with the host's 32-byte `key`, creating it if absent.

        With `path=None` the store lives in memory under a random key (`key` must be None).

        Raises:
            TypeError, ValueError: `key` is not 32 bytes, or is given without a path.
            StoreUnreadableError: wrong key, damaged or foreign file (the file is left as it was).
            StoreBusyError: another process or Recommender has the file open.
            StoreError: the file was made by a newer SDK, or cannot be created.
        """
        config = config or StoreConfig()
        if path is None:
            if key is not None:
                raise ValueError("store_key is given but store is None (an in-memory store)")
            return cls._open_memory(config)
        if key is None:
            raise ValueError("store_key is required when store is a path")
        derive_seal_key(key, salt=b"", purpose=b"check")  # type and length checks, early
        target = Path(path)
        _remove_stale_temps(target)
        wal = target.with_name(target.name + "-wal")
        if not target.exists():
            if wal.exists():
                raise StoreUnreadableError(f"store {target.name} is missing but its WAL is present")
            _create(target, key)
        return cls._open_file(target, key, config)

    @classmethod
    def _open_memory(cls, config: StoreConfig) -> PrivateStore:
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA temp_store=MEMORY")
        conn.execute("BEGIN")
        _migrate(conn, 0)
        conn.execute("COMMIT")
        key = derive_seal_key(
            secrets.token_bytes(SEAL_KEY_BYTES), salt=secrets.token_bytes(16), purpose=_PURPOSE
        )
        return cls(conn, key, None, config)

    @classmethod
    def _open_file(cls, path: Path, key: bytes, config: StoreConfig) -> PrivateStore:
        _probe_key(path, key)
        uri = f"file:{urllib.parse.quote(os.fspath(path.resolve()))}?mode=rw"
        try:
            conn = sqlite3.connect(
                uri, uri=True, isolation_level=None, timeout=0, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open store {path.name}: {exc}") from exc
        try:
            seal_key, version = _check_file(conn, path, key)
            store = cls(conn, seal_key, path, config)
            if version < SCHEMA_VERSION:
                # Prove every record opens before the first write, so a tampered file stays as
                # it was; then migrate in one transaction.
                present = {row[0] for row in store._query("SELECT name FROM sqlite_master")}
                for table in TABLES:
                    if table in present:
                        store.records(table)
                with store._write_txn():
                    _migrate(conn, version)
                logger.info("migrated store schema %d -> %d", version, SCHEMA_VERSION)
            conn.execute(f"PRAGMA synchronous={config.synchronous.upper()}")
            conn.execute("PRAGMA secure_delete=ON")
            conn.execute("PRAGMA temp_store=MEMORY")
            conn.execute("PRAGMA journal_size_limit=1048576")
        except BaseException:
            conn.close()
            raise
        return store

    @property
    def path(self) -> Path | None:
        """The store file, or None for an in-memory store."""
        return self._path

    @property
    def in_memory(self) -> bool:
        """True when nothing is written to disk."""
        return self._path is None

    @property
    def schema_version(self) -> int:
        """The schema version of the open file."""
        with self._lock:
            return int(self._query("PRAGMA user_version")[0][0])

    def records(self, table: str) -> list[tuple[int, dict[str, Any]]]:
        """Every record of `table`, opened and authenticated, in id order.

        Raises:
            StoreUnreadableError: a record does not authenticate (tampered or moved).
            StoreError: the file cannot be read.
        """
        _check_table(table)
        with self._lock:
            rows = self._query(f"SELECT id, body FROM {table} ORDER BY id")  # noqa: S608
            return [(int(i), self._open(table, int(i), bytes(body))) for i, body in rows]

    @contextmanager
    def transaction(self) -> Iterator[StoreWriter]:
        """One atomic write: everything done through the writer commits together or not at all.

        Raises:
            StoreFullError: the disk or the store's size limit is full; nothing was written.
            StoreError: the write failed; nothing was written.
        """
        with self._lock, self._write_txn():
            yield StoreWriter(self)

    def add(self, table: str, payload: Mapping[str, Any]) -> int:
        """Seal and append one record in its own transaction; returns its id once durable.

        Raises:
            StoreFullError, StoreError: as `transaction`.
        """
        with self.transaction() as writer:
            return writer.add(table, payload)

    def compact(self) -> None:
        """Move the WAL into the file and truncate it, so erased records leave no copy behind.

        Raises:
            StoreError: the checkpoint failed.
        """
        with self._lock:
            if self._path is not None:
                self._query("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        """Close the file (idempotent)."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> PrivateStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals shared with StoreWriter ---------------------------------------------------

    def _seal(self, table: str, record_id: int, payload: Mapping[str, Any]) -> bytes:
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        if len(text) > self._config.max_record_bytes:
            raise ValueError(
                f"record of {len(text)} bytes is over max_record_bytes "
                f"({self._config.max_record_bytes})"
            )
        padded = text + b" " * (-len(text) % _PAD_BYTES)
        return seal(self._key, padded, associated_data=_place(table, record_id))

    def _open(self, table: str, record_id: int, body: bytes) -> dict[str, Any]:
        plain = open_sealed(self._key, body, associated_data=_place(table, record_id))
        try:
            value = json.loads(plain.decode("utf-8"))
        except ValueError as exc:
            raise StoreUnreadableError("store is unreadable: wrong key or damaged file") from exc
        if not isinstance(value, dict):
            raise StoreUnreadableError("store is unreadable: wrong key or damaged file")
        return value

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _store_error(exc, "read") from exc

    @contextmanager
    def _write_txn(self) -> Iterator[None]:
        saved = dict(self._next_id)
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            yield
            self._conn.execute("COMMIT")
        except BaseException as exc:
            self._next_id = saved
            if self._conn.in_transaction:
                try:
                    self._conn.execute("ROLLBACK")
                except sqlite3.Error:
                    logger.warning("rollback after a failed store write also failed")
            if isinstance(exc, sqlite3.Error):
                raise _store_error(exc, "write") from exc
            raise


class StoreWriter:
    """Writes inside one `PrivateStore.transaction()`."""

    def __init__(self, store: PrivateStore) -> None:
        self._store = store

    def add(self, table: str, payload: Mapping[str, Any]) -> int:
        """Seal and insert a record; returns its new id."""
        _check_table(table)
        record_id = self._store._next_id[table]
        body = self._store._seal(table, record_id, payload)
        self._store._conn.execute(
            f"INSERT INTO {table} (id, body) VALUES (?, ?)",  # noqa: S608
            (record_id, body),
        )
        self._store._next_id[table] = record_id + 1
        return record_id

    def put(self, table: str, record_id: int, payload: Mapping[str, Any]) -> None:
        """Seal and insert or replace the record `record_id`."""
        _check_table(table)
        body = self._store._seal(table, record_id, payload)
        self._store._conn.execute(
            f"INSERT OR REPLACE INTO {table} (id, body) VALUES (?, ?)",  # noqa: S608
            (record_id, body),
        )
        self._store._next_id[table] = max(self._store._next_id[table], record_id + 1)

    def delete(self, table: str, record_ids: Collection[int]) -> None:
        """Delete records by id (ids that do not exist are ignored)."""
        _check_table(table)
        self._store._conn.executemany(
            f"DELETE FROM {table} WHERE id = ?",  # noqa: S608
            [(int(i),) for i in record_ids],
        )

    def delete_all(self, table: str) -> None:
        """Delete every record of `table`."""
        _check_table(table)
        self._store._conn.execute(f"DELETE FROM {table}")  # noqa: S608


def _create(path: Path, key: bytes) -> None:
    """Create a new store atomically: build it beside `path`, fsync, rename into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            os.chmod(tmp, 0o600)
            conn.execute("PRAGMA locking_mode=EXCLUSIVE")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            conn.execute("BEGIN IMMEDIATE")
            _migrate(conn, 0)
            salt = secrets.token_bytes(16)
            seal_key = derive_seal_key(key, salt=salt, purpose=_PURPOSE)
            check = seal(seal_key, _CHECK_PLAINTEXT, associated_data=b"meta/check")
            conn.executemany(
                "INSERT INTO meta (name, value) VALUES (?, ?)", [("salt", salt), ("check", check)]
            )
            conn.execute("COMMIT")
        finally:
            conn.close()
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except sqlite3.Error as exc:
        raise _store_error(exc, "create") from exc
    except OSError as exc:
        raise StoreError(f"cannot create store {path.name}: {exc.strerror}") from exc
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
            leftover.unlink(missing_ok=True)
    logger.info("created private store %s (schema %d)", path.name, SCHEMA_VERSION)


def _remove_stale_temps(path: Path) -> None:
    """Delete what a creation killed half-way left beside `path` (never the store itself)."""
    if path.parent.is_dir():
        for stale in path.parent.glob(f".{path.name}.*.tmp*"):
            stale.unlink(missing_ok=True)


def _check_file(
    conn: sqlite3.Connection, path: Path, key: bytes, *, exclusive: bool = True
) -> tuple[SealKey, int]:
    """Read-only checks of an existing file: ours, a version we know, and the right key."""
    unreadable = StoreUnreadableError(f"store {path.name} is unreadable: wrong key or damaged file")
    try:
        if exclusive:
            conn.execute("PRAGMA locking_mode=EXCLUSIVE")
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if app_id != APPLICATION_ID or version < 1:
            raise unreadable
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"store {path.name} has schema version {version}; this SDK reads up to "
                f"{SCHEMA_VERSION}"
            )
        meta = dict(conn.execute("SELECT name, value FROM meta").fetchall())
        if exclusive:
            # Take the write lock now, without writing: a second owner fails here, not later.
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("COMMIT")
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise StoreBusyError(f"store {path.name} is open in another process") from exc
        raise unreadable from exc
    except sqlite3.DatabaseError as exc:
        raise unreadable from exc
    salt, check = meta.get("salt"), meta.get("check")
    if not isinstance(salt, bytes) or not isinstance(check, bytes):
        raise unreadable
    seal_key = derive_seal_key(key, salt=salt, purpose=_PURPOSE)
    try:
        opened = open_sealed(seal_key, check, associated_data=b"meta/check")
    except StoreUnreadableError as exc:
        raise unreadable from exc
    if opened != _CHECK_PLAINTEXT:
        raise unreadable
    return seal_key, version


def _migrate(conn: sqlite3.Connection, version: int) -> None:
    for target in range(version, len(_MIGRATIONS)):
        for statement in _MIGRATIONS[target]:
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version={len(_MIGRATIONS)}")


def _max_id(conn: sqlite3.Connection, table: str) -> int:
    row = conn.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()  # noqa: S608
    return int(row[0])


def _place(table: str, record_id: int) -> bytes:
    return f"{table}/{record_id}".encode("ascii")


def _check_table(table: str) -> None:
    if table not in TABLES:
        raise ValueError(f"table must be one of {', '.join(TABLES)}; found {table!r}")


def _store_error(exc: sqlite3.Error, action: str) -> StoreError:
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+; the message otherwise
    if code == _SQLITE_FULL or "full" in str(exc):
        return StoreFullError(f"store {action} failed: the disk or the store is full")
    if code in (_SQLITE_BUSY, _SQLITE_LOCKED) or "locked" in str(exc):
        return StoreBusyError(f"store {action} failed: the store is in use elsewhere")
    return StoreError(f"store {action} failed: {exc}")


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some platforms cannot open directories; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        logger.debug("fsync of the store's directory is not supported here")
    finally:
        os.close(fd)


def _probe_key(path: Path, key: bytes) -> None:
    """Check the key on a shared (not exclusive) connection before the real open, so that a
    refused store can be closed without SQLite rewriting it.

    Raises:
        StoreUnreadableError: wrong key or damaged file; the store file and its WAL unchanged.
    """
    uri = f"file:{urllib.parse.quote(os.fspath(path.resolve()))}?mode=rw"
    shm, wal = path.with_name(path.name + "-shm"), path.with_name(path.name + "-wal")
    had_shm, had_wal = shm.exists(), wal.exists()
    try:
        probe = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=0)
    except sqlite3.Error:
        return  # the real open reports it
    try:
        _check_file(probe, path, key, exclusive=False)
    except StoreUnreadableError:
        _close_leaving_file(probe, path)
        # Files this read-only probe made (SQLite's index and an empty log): nothing uses them.
        if not had_shm:
            shm.unlink(missing_ok=True)
        if not had_wal and wal.exists() and wal.stat().st_size == 0:
            wal.unlink()
        raise
    except (sqlite3.Error, StoreError):
        probe.close()  # busy, or a newer schema: the real open reports it as before
        return
    probe.close()


def _close_leaving_file(conn: sqlite3.Connection, path: Path) -> None:
    """Close a connection to a store we refuse, without changing the file.

    SQLite checkpoints the WAL into the database and deletes it when the last connection
    closes, which would rewrite a store opened with the wrong key. A read-only connection kept
    open across that close makes it not the last one, and a read-only connection never
    checkpoints when it closes itself.
    """
    uri = f"file:{urllib.parse.quote(os.fspath(path.resolve()))}?mode=ro"
    guard: sqlite3.Connection | None
    try:
        guard = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=0)
        guard.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error:
        guard = None
    try:
        conn.close()
    finally:
        if guard is not None:
            guard.close()
