"""The network ledger: every request written before it goes out, by default too (issue 4)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client_sdk import Updater
from client_sdk.errors import FetchError, HttpStatusError, StoreError
from client_sdk.ledger import FileLedger, LedgerEntry, LedgerFetcher, NetworkLedger
from client_sdk.store import PrivateStore
from client_sdk.updater import LEDGER_FILE
from tests.client_sdk.shop import FixedClock
from tests.client_sdk.test_updater import BASE, FakeFetcher
from tests.conftest import FIXED_NOW, write_tiny_bundle

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)


def test_file_ledger_round_trip_and_completion(tmp_path: Path) -> None:
    ledger = FileLedger(tmp_path / "sub" / "ledger.jsonl")
    assert ledger.entries() == []
    first = ledger.record_request("https://m.example/a", 0, T0, status="sent")
    second = ledger.record_request("https://m.example/b", 0, T0, status="sent")
    ledger.complete(first, "https://m.example/a", 1234, T0, ok=True)
    ledger.complete(second, "https://m.example/b", 0, T0, ok=False)
    expected = [
        LedgerEntry("https://m.example/a", 1234, T0, "ok"),
        LedgerEntry("https://m.example/b", 0, T0, "failed"),
    ]
    assert ledger.entries() == expected
    again = FileLedger(tmp_path / "sub" / "ledger.jsonl")  # a new process reads the same
    assert again.entries() == expected
    again.record_request("https://m.example/c", 5, T0)
    assert [e.url for e in again.entries()][-1] == "https://m.example/c"


def test_a_torn_last_line_is_skipped_and_a_broken_middle_line_named(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger = FileLedger(path)
    ledger.record_request("https://m.example/a", 7, T0)
    with path.open("ab") as handle:
        handle.write(b'{"i":2,"u":"https://m.exa')  # the crash came mid-write
    assert [e.url for e in FileLedger(path).entries()] == ["https://m.example/a"]
    path.write_bytes(b'not json\n{"i":1,"u":"x","n":0,"t":0,"s":"ok"}\n')
    with pytest.raises(StoreError, match=r"ledger.jsonl:1: malformed ledger line"):
        FileLedger(path).entries()


def test_a_torn_tail_is_cut_before_the_next_line(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    FileLedger(path).record_request("https://m.example/a", 7, T0)
    with path.open("ab") as handle:
        handle.write(b'{"i":2,"u":"https://m.exa')  # a crash, or a full disk, mid-write
    FileLedger(path).record_request("https://m.example/b", 8, T0)
    FileLedger(path).record_request("https://m.example/c", 9, T0)
    for _ in range(2):  # every later start reads it whole
        assert [e.url[-1] for e in FileLedger(path).entries()] == ["a", "b", "c"]


def test_two_writers_on_one_file_keep_every_entry(tmp_path: Path) -> None:
    one, two = FileLedger(tmp_path / "ledger.jsonl"), FileLedger(tmp_path / "ledger.jsonl")
    for n in range(50):
        for writer in (one, two):
            entry = writer.record_request(f"https://m.example/{n}", 0, T0, status="sent")
            writer.complete(entry, f"https://m.example/{n}", n, T0, ok=True)
    entries = FileLedger(tmp_path / "ledger.jsonl").entries()
    assert len(entries) == 100
    assert {e.status for e in entries} == {"ok"}


def test_the_file_keeps_the_newest_entries(tmp_path: Path) -> None:
    ledger = FileLedger(tmp_path / "ledger.jsonl", max_entries=4)
    for n in range(1, 10):
        ledger.record_request(f"https://m.example/{n}", n, T0 + timedelta(minutes=n))
    assert [e.nbytes for e in ledger.entries()] == [8, 9]  # 9 lines > 2 x 4: the newest 2
    with pytest.raises(ValueError, match="max_entries"):
        FileLedger(tmp_path / "x", max_entries=1)


class _Counting:
    def __init__(self) -> None:
        self.calls = 0

    def fetch(self, url: str, *, max_bytes: int) -> bytes:
        self.calls += 1
        if url.endswith("/missing"):
            raise HttpStatusError(f"{url}: HTTP 404", 404)
        return b"x" * 10


def test_no_entry_no_request(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    inner = _Counting()
    fetcher = LedgerFetcher(inner, FileLedger(blocker / "ledger.jsonl"))  # cannot be created
    with pytest.raises(FetchError, match="network ledger cannot be written"):
        fetcher.fetch("https://m.example/a", max_bytes=100)
    assert inner.calls == 0


def test_failed_requests_are_in_the_ledger(tmp_path: Path) -> None:
    ledger = FileLedger(tmp_path / "ledger.jsonl")
    fetcher = LedgerFetcher(_Counting(), ledger, clock=FixedClock(T0))
    assert fetcher.fetch("https://m.example/a", max_bytes=100) == b"x" * 10
    with pytest.raises(HttpStatusError):
        fetcher.fetch("https://m.example/missing", max_bytes=100)
    assert [(e.url, e.nbytes, e.status) for e in ledger.entries()] == [
        ("https://m.example/a", 10, "ok"),
        ("https://m.example/missing", 0, "failed"),
    ]


def test_an_updater_keeps_a_ledger_without_being_asked(
    tmp_path: Path, signing_key: Ed25519PrivateKey
) -> None:
    fake = FakeFetcher()
    fake.publish(write_tiny_bundle(tmp_path / "v1", signing_key, model_version=1))
    device = tmp_path / "device"
    updater = Updater(BASE, device, trusted_keys=[signing_key.public_key()], fetcher=fake)
    updater.update(now=FIXED_NOW)
    entries = updater.network_ledger()
    assert [e.url for e in entries] == [url for url, _cap in fake.requests]
    assert [e.nbytes for e in entries] == [len(fake.files[url]) for url, _cap in fake.requests]
    assert {e.status for e in entries} == {"ok"}
    assert (device / LEDGER_FILE).is_file()
    updater.update(now=FIXED_NOW)  # nothing new: the manifest and its signature again
    assert len(updater.network_ledger()) == len(entries) + 2


def test_a_shoppers_ledger_fetcher_is_used_as_it_is(
    tmp_path: Path, signing_key: Ed25519PrivateKey
) -> None:
    fake = FakeFetcher()
    fake.publish(write_tiny_bundle(tmp_path / "v1", signing_key, model_version=1))
    with PrivateStore.open(None) as store:
        ledger = NetworkLedger(store)
        device = tmp_path / "device"
        updater = Updater(
            BASE,
            device,
            trusted_keys=[signing_key.public_key()],
            fetcher=LedgerFetcher(fake, ledger),
        )
        updater.update(now=FIXED_NOW)
        assert [e.url for e in ledger.entries()] == [url for url, _cap in fake.requests]
        assert updater.network_ledger() == ledger.entries()
    assert not (device / LEDGER_FILE).exists()  # one ledger, the shopper's sealed one


@pytest.mark.parametrize(
    "url",
    [
        "https://user:secret@models.example",
        "https://models.example/?device=42",
        "https://models.example/#me",
        "ftp://models.example",
        "models.example",
    ],
)
def test_an_identifying_server_url_is_refused(
    tmp_path: Path, signing_key: Ed25519PrivateKey, url: str
) -> None:
    with pytest.raises(ValueError, match="server_url"):
        Updater(url, tmp_path / "device", trusted_keys=[signing_key.public_key()])
