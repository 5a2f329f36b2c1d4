"""The privacy proof (issue 4): what the SDK sends, and what its file holds.

1. A whole session per device — update over real HTTP on loopback, record, recommend, dismiss,
   export, forget, update again — runs under a Python audit hook that sees every socket and HTTP
   call the process makes. The only traffic is GETs of public bundle files with no identifier,
   the shopper's own part of the session makes none at all, two devices with different
   histories send byte-identical requests, and the network ledger lists exactly those requests.
2. The store file and its WAL hold no plaintext item id, title or event kind, and `forget`
   leaves not even the erased records' ciphertext behind.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client_sdk import PrivateStore, Recommender, Updater, generate_store_key
from client_sdk.ledger import LedgerFetcher, NetworkLedger
from client_sdk.updater import HttpFetcher
from tests.client_sdk.shop import (
    BATTERIES,
    CAMERA,
    KETTLE,
    SHOP_IDS,
    TEAPOT_BLUE,
    TEAPOT_RED,
    TITLES,
    FixedClock,
    write_shop_bundle,
)
from tests.conftest import FIXED_NOW

_WATCHED = ("socket.", "http.client.", "urllib.", "ftplib.", "smtplib.", "webbrowser.")


class _AuditRecorder:
    """Records network audit events of one thread while active. An audit hook cannot be
    removed, so it is installed once per process and does nothing while inactive."""

    def __init__(self) -> None:
        self.active = False
        self.thread = 0
        self.events: list[tuple[str, tuple[Any, ...]]] = []

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if self.active and event.startswith(_WATCHED) and threading.get_ident() == self.thread:
            self.events.append((event, args))

    @contextmanager
    def watching(self) -> Iterator[list[tuple[str, tuple[Any, ...]]]]:
        self.events = []
        self.thread = threading.get_ident()
        self.active = True
        try:
            yield self.events
        finally:
            self.active = False


_RECORDER: _AuditRecorder | None = None


def audit_recorder() -> _AuditRecorder:
    global _RECORDER  # one hook per process: the audit API offers no removal
    if _RECORDER is None:
        _RECORDER = _AuditRecorder()
        sys.addaudithook(_RECORDER)
    return _RECORDER


@contextmanager
def loopback_registry(bundle: Path) -> Iterator[str]:
    """Serve a bundle at the registry's public URLs on 127.0.0.1 (GET only, no logging)."""
    manifest = json.loads((bundle / "manifest.json").read_bytes())
    files = {
        f"/v1/blobs/{e['sha256']}": (bundle / n).read_bytes() for n, e in manifest["files"].items()
    }
    for name in ("manifest.json", "manifest.sig"):
        files[f"/v1/channels/stable/{name}"] = (bundle / name).read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _device_session(
    base: str, device: Path, key: Ed25519PrivateKey, history: list[tuple[str, str]]
) -> tuple[list[tuple[str, tuple[Any, ...]]], list[tuple[str, tuple[Any, ...]]], list[str]]:
    """One device: update, a private session, update again. Returns (network events of the
    updates, network events of the private part, the ledger's URLs)."""
    trusted, clock = [key.public_key()], FixedClock()
    recorder = audit_recorder()
    with PrivateStore.open(device / "shopper.db", generate_store_key()) as store:
        fetcher = LedgerFetcher(HttpFetcher(timeout_seconds=10), NetworkLedger(store), clock=clock)
        updater = Updater(base, device / "models", trusted_keys=trusted, fetcher=fetcher)
        with recorder.watching() as update_events:
            bundle = updater.update(now=FIXED_NOW).bundle_dir
        with recorder.watching() as private_events:
            rec = Recommender.open(bundle, trusted_keys=trusted, store=store, clock=clock)
            with rec:
                for kind, item in history:
                    rec.record(kind, item)
                rec.recommend(k=3)
                rec.dismiss(history[0][1], reason="bought_elsewhere")
                rec.recommend(k=3, in_view=TEAPOT_RED)
                rec.export_data()
                rec.forget(history[-1][1])
        with recorder.watching() as second_update:
            assert updater.update(now=FIXED_NOW).changed is False
        ledger = [entry.url for entry in NetworkLedger(store).entries()]
        statuses = {entry.status for entry in NetworkLedger(store).entries()}
    assert statuses == {"ok"}
    return update_events + second_update, private_events, ledger


def _sent_bytes(events: list[tuple[str, tuple[Any, ...]]]) -> list[bytes]:
    return [bytes(args[1]) for name, args in events if name == "http.client.send"]


def test_a_whole_session_sends_only_identical_anonymous_bundle_requests(
    tmp_path: Path, signing_key: Ed25519PrivateKey
) -> None:
    bundle = write_shop_bundle(tmp_path / "published", signing_key)
    devices = {
        "alice": [("purchase", BATTERIES), ("view", CAMERA), ("search", KETTLE)],
        "bob": [("purchase", TEAPOT_BLUE), ("cart", KETTLE)],
    }
    with loopback_registry(bundle) as base:
        results = {
            name: _device_session(base, tmp_path / name, signing_key, history)
            for name, history in devices.items()
        }
    port = int(base.rsplit(":", 1)[1])
    for network, private, ledger in results.values():
        assert private == []  # record, recommend, dismiss, export, forget: no network at all
        connects = [args[1] for name, args in network if name == "socket.connect"]
        assert connects and set(connects) == {("127.0.0.1", port)}
        requests = _sent_bytes(network)
        assert len(requests) == len(ledger) == 2 + 2 + 2  # manifest, sig, 2 blobs, then 2 again
        for raw in requests:
            head, _, body = raw.partition(b"\r\n\r\n")
            line, *headers = head.decode("ascii").split("\r\n")
            method, target, _version = line.split(" ")
            assert method == "GET" and body == b""
            assert target.startswith(("/v1/blobs/", "/v1/channels/stable/"))
            assert "?" not in target and "#" not in target
            names = {h.split(":", 1)[0].lower() for h in headers}
            assert names <= {"host", "user-agent", "accept", "accept-encoding", "connection"}
            for private_word in (b"alice", b"bob", *(i.encode() for i in SHOP_IDS)):
                assert private_word not in raw
        urls = [args[0] for name, args in network if name == "urllib.Request"]
        assert urls == ledger
    alice, bob = results["alice"][0], results["bob"][0]
    assert _sent_bytes(alice) == _sent_bytes(bob)  # byte for byte, whatever the history


def _raw_files(store: Path) -> bytes:
    wal = store.with_name(store.name + "-wal")
    return store.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


PLAINTEXTS = [
    *(item.encode() for item in SHOP_IDS),
    *(title.encode() for title in TITLES.values()),
    b"purchase",
    b"view",
    b"cart",
    b"search",
    b"not_interested",
    b"bought_elsewhere",
]


@pytest.mark.parametrize("synchronous", ["full", "normal"])
def test_the_store_and_its_wal_hold_no_plaintext(
    tmp_path: Path, signing_key: Ed25519PrivateKey, synchronous: str
) -> None:
    from client_sdk import RecommenderConfig, StoreConfig

    bundle = write_shop_bundle(tmp_path / "bundle", signing_key)
    path, key = tmp_path / "shopper.db", generate_store_key()
    config = RecommenderConfig(store=StoreConfig(synchronous=synchronous))
    keys = [signing_key.public_key()]
    with Recommender.open(
        bundle, trusted_keys=keys, store=path, store_key=key, clock=FixedClock(), config=config
    ) as rec:
        for kind in ("view", "search", "cart", "purchase"):
            for item in SHOP_IDS:
                rec.record(kind, item)
        rec.dismiss(TEAPOT_RED, reason="not_interested")
        rec.dismiss(BATTERIES, reason="bought_elsewhere")
        rec.pause()
        assert path.with_name("shopper.db-wal").stat().st_size > 0  # the WAL is checked too
        raw = _raw_files(path)
        assert [word for word in PLAINTEXTS if word in raw] == []
    raw = _raw_files(path)
    assert [word for word in PLAINTEXTS if word in raw] == []


def test_forget_leaves_no_trace_of_the_erased_records(
    tmp_path: Path, signing_key: Ed25519PrivateKey
) -> None:
    bundle = write_shop_bundle(tmp_path / "bundle", signing_key)
    path, key, keys = tmp_path / "shopper.db", generate_store_key(), [signing_key.public_key()]
    with Recommender.open(
        bundle, trusted_keys=keys, store=path, store_key=key, clock=FixedClock()
    ) as rec:
        rec.record("purchase", KETTLE)
        for _ in range(20):
            rec.record("view", CAMERA)
        rec.dismiss(CAMERA)
        conn = rec._store._conn  # the owner's connection: the file is locked to others
        kettle = bytes(conn.execute("SELECT body FROM event WHERE id = 1").fetchone()[0])
        camera = {bytes(b) for (b,) in conn.execute("SELECT body FROM event WHERE id > 1")}
        camera |= {bytes(b) for (b,) in conn.execute("SELECT body FROM control")}
        assert len(camera) == 21 and kettle in _raw_files(path)
        rec.forget(CAMERA)
        raw = _raw_files(path)
        assert kettle in raw
        assert [body for body in camera if body in raw] == []
        rec.forget()
        assert kettle not in _raw_files(path)
        assert json.loads(rec.export_data())["events"] == []
