"""Kiosk sessions (issue 6): memory only, wiped when the visit ends, store rules before top-k.

The shop is tests/client_sdk/kiosk_shop.py: the six-item two-cluster model with a context prior.
"""

from __future__ import annotations

import gc
import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client_sdk import Recommendation, Recommender, generate_store_key
from client_sdk.errors import StoreError
from client_sdk.kiosk import KioskRules, KioskSession
from model_export.signing import public_pem
from tests.client_sdk.kiosk_shop import write_kiosk_shop_bundle
from tests.client_sdk.shop import (
    BATTERIES,
    CAMERA,
    CAMERA_BAG,
    KETTLE,
    SHOP_IDS,
    TEAPOT_BLUE,
    TEAPOT_RED,
    FixedClock,
)

ROOT = Path(__file__).resolve().parents[2]
DECEMBER_MORNING = datetime(2026, 12, 10, 10, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, signing_key: Ed25519PrivateKey) -> Path:
    return write_kiosk_shop_bundle(tmp_path_factory.mktemp("kiosk") / "bundle", signing_key)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(DECEMBER_MORNING)


@pytest.fixture
def kiosk(
    bundle: Path, signing_key: Ed25519PrivateKey, clock: FixedClock
) -> Iterator[KioskSession]:
    session = Recommender.ephemeral(
        bundle, trusted_keys=[signing_key.public_key()], clock=clock, watch_idle=False
    )
    with session:
        yield session


def ids(result: list[Recommendation]) -> list[str]:
    return [r.item_id for r in result]


def first_reasons(result: list[Recommendation]) -> list[str]:
    return [r.reasons[0].text for r in result]


def events_of(session: Recommender) -> list[Any]:
    exported: list[Any] = json.loads(session.export_data())["events"]
    return exported


# -- nothing on disk ---------------------------------------------------------------------------

_CREATING: tuple[str, ...] = (
    *("os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.link", "os.symlink"),
    *("os.truncate", "os.chmod", "tempfile.mkstemp", "tempfile.mkdtemp", "shutil."),
)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


class _WriteAudit:
    """Records every file write or creation the process starts while active. An audit hook
    cannot be removed, so it is installed once and does nothing while inactive."""

    def __init__(self) -> None:
        self.active = False
        self.seen: list[tuple[str, str]] = []

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.active:
            return
        if event == "open":
            path, mode, flags = args
            writes = isinstance(mode, str) and any(c in mode for c in "wax+")
            if writes or (isinstance(flags, int) and flags & _WRITE_FLAGS):
                self.seen.append((event, str(path)))
        elif event == "sqlite3.connect" and args[0] != ":memory:":
            self.seen.append((event, str(args[0])))
        elif event.startswith(_CREATING):
            self.seen.append((event, str(args[0]) if args else ""))

    @contextmanager
    def watching(self) -> Iterator[list[tuple[str, str]]]:
        self.seen = []
        self.active = True
        try:
            yield self.seen
        finally:
            self.active = False


_AUDIT: _WriteAudit | None = None


def write_audit() -> _WriteAudit:
    global _AUDIT  # one hook per process: the audit API offers no removal
    if _AUDIT is None:
        _AUDIT = _WriteAudit()
        sys.addaudithook(_AUDIT)
    return _AUDIT


def snapshot(*roots: Path) -> dict[str, tuple[int, int]]:
    """Every file and directory under the roots, with its size and modification time."""
    found = {}
    for root in roots:
        for path in [root, *root.rglob("*")]:
            info = path.lstat()
            found[str(path)] = (info.st_size, info.st_mtime_ns)
    return found


def test_a_session_writes_nothing_anywhere(
    bundle: Path,
    signing_key: Ed25519PrivateKey,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trusted = [signing_key.public_key()]
    Recommender.ephemeral(bundle, trusted_keys=trusted, watch_idle=False).close()  # warm imports
    home, cwd, tmp = (tmp_path / name for name in ("home", "cwd", "tmp"))
    for folder in (home, cwd, tmp):
        folder.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr("tempfile.tempdir", str(tmp))
    monkeypatch.chdir(cwd)
    before = snapshot(home, cwd, tmp, bundle)
    clock = FixedClock(DECEMBER_MORNING)
    with write_audit().watching() as writes:
        session = Recommender.ephemeral(bundle, trusted_keys=trusted, clock=clock)
        session.recommend(k=3)
        session.record("view", CAMERA)
        session.record("purchase", CAMERA, quantity=2)
        session.recommend(k=3, in_view=KETTLE)
        session.also_bought(KETTLE)
        session.dismiss(BATTERIES, reason="bought_elsewhere")
        session.set_intent("gift")
        session.pause()
        session.export_data()
        session.forget(CAMERA)
        session.end_session()
        session.record("view", TEAPOT_RED)
        clock.advance(seconds=600)
        session.recommend(k=3)  # idle: wiped first
        session.close()
    assert writes == []
    assert snapshot(home, cwd, tmp, bundle) == before
    # The same watch sees a store that does write: the hook is no blind spot.
    with write_audit().watching() as writes:
        Recommender.open(
            bundle, trusted_keys=trusted, store=cwd / "s.db", store_key=generate_store_key()
        ).close()
        (cwd / "note.txt").write_text("x")
    assert {event for event, _path in writes} >= {"open", "sqlite3.connect", "os.rename"}


# -- wiping ------------------------------------------------------------------------------------


def test_end_session_wipes_everything_and_keeps_the_model(kiosk: KioskSession) -> None:
    kiosk.record("purchase", CAMERA)
    kiosk.record("purchase", BATTERIES)
    assert [s.item_id for s in kiosk.shortcuts()] == [BATTERIES]
    kiosk.dismiss(KETTLE)
    kiosk.pause()
    kiosk.set_intent("gift")
    assert kiosk.generation == 0
    kiosk.end_session()
    assert kiosk.generation == 1
    exported = json.loads(kiosk.export_data())
    assert exported["events"] == [] and exported["dismissals"] == []
    assert exported["store"]["where"] == "memory"
    assert (kiosk.paused, kiosk.intent) == (False, "for_me")
    assert kiosk.shortcuts() == []  # nothing the last visitor bought is kept anywhere
    # Back to the crowd's December list: the camera leads, the kettle is no longer dismissed.
    result = kiosk.recommend(k=2)
    assert ids(result) == [CAMERA, KETTLE]
    assert first_reasons(result) == ["popular this December", "popular with other shoppers"]
    kiosk.record("purchase", CAMERA)  # the next visitor's session learns as usual
    assert ids(kiosk.recommend(k=1)) == [BATTERIES]


def test_an_idle_session_is_wiped_before_the_next_call_sees_it(
    kiosk: KioskSession, clock: FixedClock
) -> None:
    kiosk.record("purchase", CAMERA)
    clock.advance(seconds=119)
    assert ids(kiosk.recommend(k=1)) == [BATTERIES]  # still the visitor's own list
    clock.advance(seconds=119)  # each call restarts the idle time
    assert len(events_of(kiosk)) == 1
    clock.advance(seconds=120)
    assert events_of(kiosk) == []
    assert kiosk.generation == 1
    assert first_reasons(kiosk.recommend(k=1)) == ["popular this December"]


def test_an_idle_set_intent_starts_a_new_session_first(
    kiosk: KioskSession, clock: FixedClock
) -> None:
    kiosk.record("purchase", CAMERA)
    clock.advance(seconds=300)
    kiosk.set_intent("gift")  # the next visitor's choice survives the wipe it causes
    assert (kiosk.intent, kiosk.generation) == ("gift", 1)
    assert events_of(kiosk) == []


def test_the_watcher_wipes_an_abandoned_session_without_a_call(
    bundle: Path, signing_key: Ed25519PrivateKey, clock: FixedClock
) -> None:
    ticks: queue.Queue[bool] = queue.Queue()
    waiting = threading.Semaphore(0)

    def waiter(seconds: float) -> bool:
        assert seconds == 5.0  # min(120 / 4, 5)
        waiting.release()  # the previous check is done
        return ticks.get(timeout=10)

    session = Recommender.ephemeral(
        bundle, trusted_keys=[signing_key.public_key()], clock=clock, idle_waiter=waiter
    )
    try:
        assert waiting.acquire(timeout=10)
        session.record("purchase", CAMERA)
        ticks.put(False)  # a check while the visitor is still there
        assert waiting.acquire(timeout=10)
        assert session.generation == 0
        clock.advance(seconds=121)
        ticks.put(False)  # the visitor walked away
        assert waiting.acquire(timeout=10)
        assert session.generation == 1
        assert events_of(session) == []  # this call found it already wiped
        assert session.generation == 1
    finally:
        ticks.put(True)
        session.close()


def test_close_and_collection_drop_the_store(bundle: Path, signing_key: Ed25519PrivateKey) -> None:
    trusted = [signing_key.public_key()]
    session = Recommender.ephemeral(bundle, trusted_keys=trusted, watch_idle=False)
    session.record("view", CAMERA)
    store = session._store
    del session
    gc.collect()
    with pytest.raises(StoreError):
        store.records("event")


def test_the_session_is_wiped_at_process_exit(
    bundle: Path, signing_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    pub = tmp_path / "signing.pub"
    pub.write_bytes(public_pem(signing_key.public_key()))
    code = f"""
from datetime import datetime, timezone
from client_sdk import PrivateStore, Recommender
close = PrivateStore.close
def noisy_close(self):
    print("store closed, records left:", len(self.records("event")), flush=True)
    close(self)
PrivateStore.close = noisy_close
class Clock:
    def now(self):
        return datetime(2026, 12, 10, 10, tzinfo=timezone.utc)
session = Recommender.ephemeral({str(bundle)!r}, trusted_keys=[{str(pub)!r}], clock=Clock())
session.record("view", {CAMERA!r})
print("exiting", flush=True)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.splitlines() == ["exiting", "store closed, records left: 1"]


# -- store rules -------------------------------------------------------------------------------


def test_rules_apply_before_top_k(kiosk: KioskSession) -> None:
    stocked = frozenset(SHOP_IDS) - {CAMERA_BAG}
    kiosk.set_rules(KioskRules(stocked=stocked, excluded=frozenset({BATTERIES})))
    kiosk.record("purchase", CAMERA)
    # The camera's neighbours (batteries 0.6, bag 0.3) are not allowed here; k still come back.
    assert ids(kiosk.recommend(k=2)) == [KETTLE, TEAPOT_RED]
    assert ids(kiosk.recommend(k=2, exclude=[KETTLE])) == [TEAPOT_RED]
    assert ids(kiosk.recommend(k=5, candidates=[TEAPOT_BLUE, BATTERIES])) == [TEAPOT_BLUE]
    assert kiosk.also_bought(CAMERA) == []
    with pytest.raises(ValueError, match="not both"):
        kiosk.recommend(exclude=[KETTLE], candidates=[TEAPOT_RED])


def test_rules_filter_the_empty_session_list_too(kiosk: KioskSession) -> None:
    kiosk.set_rules(KioskRules(excluded=frozenset({CAMERA})))
    assert ids(kiosk.recommend(k=2)) == [KETTLE, TEAPOT_RED]
    assert kiosk.rules.allows(KETTLE) and not kiosk.rules.allows(CAMERA)


def test_rules_are_validated() -> None:
    with pytest.raises(TypeError, match="excluded must be a collection"):
        KioskRules(excluded=CAMERA)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="stocked must hold str"):
        KioskRules(stocked=frozenset({1}))  # type: ignore[arg-type]
    assert KioskRules(stocked=[KETTLE]).stocked == frozenset({KETTLE})  # type: ignore[arg-type]


def test_bad_idle_timeout_is_refused(bundle: Path, signing_key: Ed25519PrivateKey) -> None:
    for bad in (0, -1.0, float("nan"), True):
        with pytest.raises(ValueError, match="idle_timeout"):
            Recommender.ephemeral(bundle, trusted_keys=[signing_key.public_key()], idle_timeout=bad)


# -- also bought -------------------------------------------------------------------------------


def test_also_bought_is_the_crowds_never_the_item_or_its_variants(kiosk: KioskSession) -> None:
    # Red teapot -> blue 0.6 (its variant: never) and kettle 0.3; nothing else is linked.
    result = kiosk.also_bought(TEAPOT_RED, k=5)
    assert ids(result) == [KETTLE]
    assert result[0].reasons[0].kind == "also_bought"
    assert result[0].reasons[0].text == "people who bought Basil Teapot (red) also bought this"
    # The visitor's own history neither shapes nor filters it; a dismissal does.
    kiosk.record("purchase", KETTLE)
    assert ids(kiosk.also_bought(TEAPOT_RED)) == [KETTLE]
    kiosk.dismiss(KETTLE)
    assert kiosk.also_bought(TEAPOT_RED) == []
    assert kiosk.also_bought("sku-unknown") == []


def test_every_tap_re_ranks_at_once(kiosk: KioskSession) -> None:
    assert ids(kiosk.recommend(k=2)) == [CAMERA, KETTLE]  # the crowd's December
    kiosk.record("view", TEAPOT_RED)
    result = kiosk.recommend(k=2)
    # Red teapot -> blue 0.6 and kettle 0.3 (times a view's 0.25): the model's list now.
    assert ids(result) == [TEAPOT_BLUE, KETTLE]
    assert first_reasons(result)[0] == "because you viewed Basil Teapot (red)"
