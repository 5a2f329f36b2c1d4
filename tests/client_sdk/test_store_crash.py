"""Crash safety: a writer process is killed (SIGKILL) at random points, again and again; every
event whose `record()` returned must survive and the file must open every time.

The suite runs a few dozen kills; `benchmarks/bench_store.py` runs the same harness for 200+.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client_sdk import PrivateStore
from tests.client_sdk.shop import write_shop_bundle

ROOT = Path(__file__).resolve().parents[2]
KILLS_IN_SUITE = 24

# The writer reads the store key from stdin (never argv), announces each stage, and prints the
# sequence number of every event after record() returned: that line is the acknowledgement.
WRITER = """
import sys
from datetime import datetime, timezone
from client_sdk import Recommender

class Clock:
    def now(self):
        return datetime(2026, 1, 15, 12, tzinfo=timezone.utc)

bundle, store, public_hex, run = sys.argv[1:5]
key = bytes.fromhex(sys.stdin.readline().strip())
print("opening", flush=True)
rec = Recommender.open(bundle, trusted_keys=[bytes.fromhex(public_hex)], store=store,
                       store_key=key, clock=Clock())
print("ready", flush=True)
for seq in range(20000):
    rec.record("purchase" if seq % 3 else "view", f"run{run}-{seq}", quantity=1 + seq % 4)
    print(seq, flush=True)
"""


@dataclass(frozen=True)
class CrashReport:
    kills: int
    acknowledged: int
    lost: int
    stored: int


def run_crash_trials(
    bundle: Path, store: Path, key: bytes, public_key: bytes, *, kills: int, seed: int
) -> CrashReport:
    """Kill a writer `kills` times at random points; check every acknowledgement after each."""
    rng = random.Random(seed)
    acknowledged: set[str] = set()
    lost = stored = 0
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for run in range(kills):
        # Kill while opening (creating the file on the first run) or after 0..80 acks.
        stage = rng.random()
        target = -1 if stage < 0.15 else rng.randint(0, 80)
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(bundle), str(store), public_key.hex(), str(run)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(key.hex() + "\n")
        proc.stdin.close()
        acks = 0
        for line in proc.stdout:
            text = line.strip()
            if text.isdigit():
                acknowledged.add(f"run{run}-{text}")
                acks += 1
            if (target < 0 and text == "opening") or (target >= 0 and acks > target):
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        assert proc.stderr is not None
        err = proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
        assert proc.returncode == -signal.SIGKILL, f"writer ended on its own: {err[-500:]}"
        with PrivateStore.open(store, key) as private:  # it must open, every time
            held = {row["i"] for _i, row in private.records("event")}
        lost += len(acknowledged - held)
        stored = len(held)
    return CrashReport(kills, len(acknowledged), lost, stored)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
def test_no_acknowledged_event_is_lost_when_the_writer_is_killed(
    tmp_path: Path, signing_key: Ed25519PrivateKey
) -> None:
    bundle = write_shop_bundle(tmp_path / "bundle", signing_key)
    public = signing_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    report = run_crash_trials(
        bundle, tmp_path / "s.db", bytes(range(32)), public, kills=KILLS_IN_SUITE, seed=4
    )
    assert report.kills == KILLS_IN_SUITE
    assert report.acknowledged > 100
    assert report.lost == 0
    assert report.stored >= report.acknowledged
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".s.db")]
