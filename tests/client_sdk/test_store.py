"""The private store: sealed records, one typed error for a wrong key or a tampered file (which
is left untouched), migrations, single ownership, a full disk, and the key helpers."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from client_sdk import (
    PrivateStore,
    Recommender,
    StoreBusyError,
    StoreConfig,
    StoreError,
    StoreFullError,
    StoreUnreadableError,
    generate_store_key,
    keyring_store_key,
)
from client_sdk import store as store_module
from tests.client_sdk.shop import CAMERA, KETTLE, FixedClock, write_shop_bundle

KEY = bytes(range(32))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_store(path: Path, n: int = 3) -> None:
    with PrivateStore.open(path, KEY) as store:
        for i in range(n):
            store.add("event", {"i": f"item-{i}", "n": i})


def raw_sql(path: Path, *statements: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for statement in statements:
            conn.execute(statement)
    finally:
        conn.close()


def test_records_round_trip_and_persist(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with PrivateStore.open(path, KEY) as store:
        assert store.add("event", {"i": "x", "q": 1.5}) == 1
        with store.transaction() as writer:
            assert writer.add("event", {"i": "y"}) == 2
            writer.put("setting", 1, {"paused": True})
        assert store.schema_version == store_module.SCHEMA_VERSION
    with PrivateStore.open(path, KEY) as store:
        assert store.records("event") == [(1, {"i": "x", "q": 1.5}), (2, {"i": "y"})]
        assert store.records("setting") == [(1, {"paused": True})]
    assert [p.name for p in tmp_path.iterdir()] == ["s.db"]  # WAL checkpointed on close


def test_a_failed_transaction_writes_nothing(tmp_path: Path) -> None:
    with PrivateStore.open(tmp_path / "s.db", KEY) as store:
        store.add("event", {"i": "kept"})
        with pytest.raises(RuntimeError), store.transaction() as writer:
            writer.add("event", {"i": "lost"})
            raise RuntimeError("host app failed mid-way")
        assert store.add("event", {"i": "next"}) == 2
        assert [row["i"] for _i, row in store.records("event")] == ["kept", "next"]


def test_record_bodies_are_sealed_and_padded(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    make_store(path)
    conn = sqlite3.connect(path)
    try:
        bodies = [bytes(b) for (b,) in conn.execute("SELECT body FROM event")]
    finally:
        conn.close()
    assert all((len(b) - 28) % 32 == 0 for b in bodies)  # nonce + tag around 32-byte buckets
    assert not any(b"item-" in b for b in bodies)


def test_wrong_key_is_one_typed_error_and_the_file_stays_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    make_store(path)
    before = digest(path)
    with pytest.raises(StoreUnreadableError, match="wrong key or damaged"):
        PrivateStore.open(path, generate_store_key())
    assert digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.db"]
    with PrivateStore.open(path, KEY) as store:  # the right key still opens it, intact
        assert len(store.records("event")) == 3


def _flip_a_record_byte(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        body = bytearray(conn.execute("SELECT body FROM event WHERE id = 2").fetchone()[0])
        body[20] ^= 1
        conn.execute("UPDATE event SET body = ? WHERE id = 2", (bytes(body),))
    finally:
        conn.close()


def _swap_two_records(path: Path) -> None:
    raw_sql(
        path,
        "UPDATE event SET id = -1 WHERE id = 1",
        "UPDATE event SET id = 1 WHERE id = 2",
        "UPDATE event SET id = 2 WHERE id = -1",
    )


def _move_a_record_to_another_table(path: Path) -> None:
    raw_sql(path, "INSERT INTO control (id, body) SELECT id, body FROM event WHERE id = 1")


def _damage_the_header(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))


def _foreign_database(path: Path) -> None:
    path.unlink()
    raw_sql(path, "CREATE TABLE notes (body TEXT)")


def _empty_file(path: Path) -> None:
    path.write_bytes(b"")


def _forget_the_key_check(path: Path) -> None:
    raw_sql(path, "DELETE FROM meta WHERE name = 'check'")


TAMPERING: list[tuple[str, Callable[[Path], None]]] = [
    ("flipped record byte", _flip_a_record_byte),
    ("swapped records", _swap_two_records),
    ("record moved to another table", _move_a_record_to_another_table),
    ("damaged header", _damage_the_header),
    ("foreign database", _foreign_database),
    ("empty file", _empty_file),
    ("key check removed", _forget_the_key_check),
]


@pytest.mark.parametrize(("name", "tamper"), TAMPERING, ids=[t[0] for t in TAMPERING])
def test_a_tampered_file_is_refused_and_left_untouched(
    tmp_path: Path, name: str, tamper: Callable[[Path], None]
) -> None:
    path = tmp_path / "s.db"
    make_store(path)
    tamper(path)
    before = digest(path)
    with pytest.raises(StoreUnreadableError):
        store = PrivateStore.open(path, KEY)
        try:  # a moved record is only found when its table is read
            for table in store_module.TABLES:
                store.records(table)
        finally:
            store.close()
    assert digest(path) == before


def test_a_recommender_on_a_tampered_store_refuses_to_open(
    tmp_path: Path, signing_key: Ed25519PrivateKey
) -> None:
    bundle = write_shop_bundle(tmp_path / "bundle", signing_key)
    path, keys = tmp_path / "s.db", [signing_key.public_key()]
    with Recommender.open(
        bundle, trusted_keys=keys, store=path, store_key=KEY, clock=FixedClock()
    ) as r:
        r.record("purchase", KETTLE)
        r.record("view", CAMERA)
    _flip_a_record_byte(path)
    before = digest(path)
    with pytest.raises(StoreUnreadableError):
        Recommender.open(bundle, trusted_keys=keys, store=path, store_key=KEY, clock=FixedClock())
    assert digest(path) == before


def test_a_lone_wal_never_becomes_a_fresh_store(tmp_path: Path) -> None:
    (tmp_path / "s.db-wal").write_bytes(b"left over")
    with pytest.raises(StoreUnreadableError, match="missing"):
        PrivateStore.open(tmp_path / "s.db", KEY)
    assert not (tmp_path / "s.db").exists()


def test_a_newer_schema_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    make_store(path)
    raw_sql(path, "PRAGMA user_version = 99")
    before = digest(path)
    with pytest.raises(StoreError, match="schema version 99; this SDK reads up to 1"):
        PrivateStore.open(path, KEY)
    assert digest(path) == before


def test_an_older_schema_is_migrated_in_one_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.db"
    make_store(path)
    migrations = [*store_module._MIGRATIONS, ("CREATE TABLE extra (id INTEGER PRIMARY KEY)",)]
    monkeypatch.setattr(store_module, "_MIGRATIONS", migrations)
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 2)
    with PrivateStore.open(path, KEY) as store:
        assert store.schema_version == 2
        assert [row["n"] for _i, row in store.records("event")] == [0, 1, 2]
    # A migration that fails leaves the file at its old version.
    path2 = tmp_path / "s2.db"
    monkeypatch.setattr(store_module, "_MIGRATIONS", store_module._MIGRATIONS[:1])
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 1)
    make_store(path2)
    monkeypatch.setattr(store_module, "_MIGRATIONS", [*migrations[:1], ("CREATE TABLE event (x)",)])
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 2)
    with pytest.raises(StoreError, match="already exists"):
        PrivateStore.open(path2, KEY)
    monkeypatch.setattr(store_module, "_MIGRATIONS", migrations[:1])
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 1)
    with PrivateStore.open(path2, KEY) as store:
        assert store.schema_version == 1


def test_one_owner_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with PrivateStore.open(path, KEY), pytest.raises(StoreBusyError, match="another process"):
        PrivateStore.open(path, KEY)
    with PrivateStore.open(path, KEY) as store:
        assert store.records("event") == []


def test_a_full_disk_raises_a_typed_error_and_loses_nothing_acknowledged(
    tmp_path: Path, signing_key: Ed25519PrivateKey
) -> None:
    bundle = write_shop_bundle(tmp_path / "bundle", signing_key)
    path, keys = tmp_path / "s.db", [signing_key.public_key()]
    acknowledged: list[str] = []
    with Recommender.open(
        bundle, trusted_keys=keys, store=path, store_key=KEY, clock=FixedClock()
    ) as r:
        conn = r._store._conn  # simulate a full disk: cap the file a few pages above its size
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages + 3}")
        with pytest.raises(StoreFullError, match="full"):
            for i in range(10_000):
                r.record("view", f"sku-{i:05d}")
                acknowledged.append(f"sku-{i:05d}")
        assert 10 < len(acknowledged) < 10_000
        exported = json.loads(r.export_data())  # memory holds exactly what the file holds
        assert [e["item_id"] for e in exported["events"]] == acknowledged
    with Recommender.open(
        bundle, trusted_keys=keys, store=path, store_key=KEY, clock=FixedClock()
    ) as r:
        r.record("view", "sku-after")  # room again: the store works
        events = [e["item_id"] for e in json.loads(r.export_data())["events"]]
    assert events == [*acknowledged, "sku-after"]


def test_in_memory_store_and_key_arguments(tmp_path: Path) -> None:
    with PrivateStore.open(None) as store:
        assert store.in_memory and store.path is None
        store.add("ledger", {"u": "x"})
        assert len(store.records("ledger")) == 1
    with pytest.raises(ValueError, match="store_key is required"):
        PrivateStore.open(tmp_path / "s.db")
    with pytest.raises(ValueError, match="store is None"):
        PrivateStore.open(None, KEY)
    with pytest.raises(ValueError, match="store_key must be 32 bytes, found 16"):
        PrivateStore.open(tmp_path / "s.db", KEY[:16])
    with pytest.raises(TypeError, match="store_key must be bytes"):
        PrivateStore.open(tmp_path / "s.db", "secret")  # type: ignore[arg-type]
    with PrivateStore.open(None) as store, pytest.raises(ValueError, match="table"):
        store.add("users", {})
    with pytest.raises(ValueError, match="synchronous"):
        StoreConfig(synchronous="off")
    assert not list(tmp_path.iterdir())


def test_compact_truncates_the_wal(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with PrivateStore.open(path, KEY) as store:
        store.add("event", {"i": "x"})
        assert (tmp_path / "s.db-wal").stat().st_size > 0
        store.compact()
        assert (tmp_path / "s.db-wal").stat().st_size == 0


class FakeKeyring:
    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service_name: str, username: str) -> str | None:
        return self.entries.get((service_name, username))

    def set_password(self, service_name: str, username: str, password: str) -> None:
        self.entries[(service_name, username)] = password


def test_keyring_helper_creates_once_then_returns_the_same_key() -> None:
    ring = FakeKeyring()
    first = keyring_store_key(backend=ring)
    assert len(first) == 32
    assert keyring_store_key(backend=ring) == first
    assert list(ring.entries) == [("facetwo", "private-store")]
    ring.entries[("facetwo", "private-store")] = "c2hvcnQ="
    with pytest.raises(StoreError, match="holds 5 bytes, expected 32"):
        keyring_store_key(backend=ring)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@settings(max_examples=30, deadline=None)
@given(payloads=st.lists(st.dictionaries(st.text(max_size=8), json_values), max_size=6))
def test_the_store_round_trips(payloads: list[dict[str, Any]]) -> None:
    with PrivateStore.open(None) as store:
        ids = [store.add("event", p) for p in payloads]
        assert store.records("event") == list(zip(ids, payloads, strict=True))


def test_wrong_key_after_an_unclean_exit_leaves_the_store_and_its_wal_as_they_were(
    tmp_path: Path,
) -> None:
    """Review finding (issue 4): closing the refused connection used to checkpoint the WAL."""
    import subprocess
    import sys

    path = tmp_path / "s.db"
    writer = (
        "import os, sys\n"
        "from client_sdk.store import PrivateStore\n"
        f"s = PrivateStore.open({str(path)!r}, bytes(range(32)))\n"
        "for i in range(50):\n"
        "    s.add('setting', {'n': i})\n"
        "os._exit(0)\n"  # no close: the WAL stays, as after a crash
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", writer], check=True, cwd=root)
    files = {p.name: digest(p) for p in sorted(tmp_path.iterdir())}
    assert "s.db-wal" in files
    with pytest.raises(StoreUnreadableError):
        PrivateStore.open(path, generate_store_key())
    assert {p.name: digest(p) for p in sorted(tmp_path.iterdir())} == files
    with PrivateStore.open(path, KEY) as store:
        assert len(store.records("setting")) == 50
