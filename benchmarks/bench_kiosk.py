"""Benchmark: a kiosk interaction at 10k items, and the bytes a session writes to disk.

    .venv/bin/python -m benchmarks.bench_kiosk               # 100 sessions of 20 taps
    .venv/bin/python -m benchmarks.bench_kiosk --sessions 200 --taps 30

A synthetic 10k-item sparse model (32 neighbours per item, int8, variant groups of three) with
a context prior of 5,000 listed items, opened with `Recommender.ephemeral` under store rules
(9,000 items stocked, 200 of them excluded as age-restricted). A tap is what the kiosk page does:
`record("view", item)`, `recommend(k=10, in_view=item)` and `also_bought(item, k=6)`; half the
taps follow a suggestion, half browse at random. Each session ends with `end_session()`.
Target: a tap under 50 ms; zero bytes written to disk during the sessions.

Bytes written are measured three ways around all the sessions (nothing is printed meanwhile):
the process's write syscalls (`wchar` in /proc/self/io: files, pipes and sockets alike), its
writes to storage (`write_bytes`), and an audit hook counting files opened for writing and
SQLite databases other than ":memory:".
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from client_sdk import Recommender  # noqa: E402
from client_sdk.bundle import CONTEXT_PRIOR_FILE, CatalogEntry  # noqa: E402
from client_sdk.context_prior import ContextPrior, encode_context_prior  # noqa: E402
from client_sdk.kiosk import KioskRules  # noqa: E402
from model_export.export import SparseItemModel, export_bundle  # noqa: E402

N_ITEMS = 10_000
NEIGHBORS = 32
LISTED = 5_000
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def synthetic_context_prior(rng: np.random.Generator) -> ContextPrior:
    """Distinct-buyer counts for the 5,000 most popular items, every published cell >= 10."""
    items = {}
    for i in range(LISTED):
        total = int(2_000 / (1 + i) ** 0.6) + 10
        months = rng.multinomial(int(total * 1.5), rng.dirichlet(np.full(12, 3.0)))
        parts = rng.multinomial(int(total * 1.2), rng.dirichlet(np.full(4, 5.0)))
        cells = [int(min(c, total)) if c >= 10 else 0 for c in (*months, *parts)]
        items[f"sku-{i:05d}"] = (total, *cells)
    return ContextPrior(10, 10.0, 0, (50_000,) * 12, (150_000,) * 4, items)


def build_bundle(out: Path, key: Ed25519PrivateKey) -> Path:
    rng = np.random.default_rng(7)
    ids = tuple(f"sku-{i:05d}" for i in range(N_ITEMS))
    model = SparseItemModel(
        item_ids=ids,
        neighbor_index=rng.integers(0, N_ITEMS, size=(N_ITEMS, NEIGHBORS)).astype(np.int64),
        neighbor_weight=rng.random((N_ITEMS, NEIGHBORS)).astype(np.float32),
        base_score=(np.linspace(1.0, 0.0, N_ITEMS) * 1e-4).astype(np.float32),
        event_weights={"view": 0.25, "cart": 0.5, "purchase": 1.0},
    )
    catalog = [
        CatalogEntry(item, f"Item {i}", f"c{i % 40}", f"g{i // 3}", i % 5 == 0)
        for i, item in enumerate(ids)
    ]
    histories = [
        (rng.choice(N_ITEMS, 20, replace=False).astype(np.int64), np.ones(20, np.float32))
        for _ in range(10)
    ]
    prior = encode_context_prior(synthetic_context_prior(rng))
    path, _ = export_bundle(
        model,
        out,
        catalog=catalog,
        model_version=1,
        signing_keys=[key],
        sample_histories=histories,
        valid_for=timedelta(days=30),
        extra_files={CONTEXT_PRIOR_FILE: prior},
    )
    return path


class WriteCounter:
    """Audit hook: files opened for writing and SQLite files, while active."""

    def __init__(self) -> None:
        self.active = False
        self.writes: list[str] = []

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.active:
            return
        if event == "open":
            _path, mode, flags = args
            if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & _WRITE_FLAGS
            ):
                self.writes.append(str(args[0]))
        elif event == "sqlite3.connect" and args[0] != ":memory:":
            self.writes.append(str(args[0]))


def proc_io() -> dict[str, int]:
    """This process's I/O counters (Linux); empty elsewhere."""
    try:
        text = Path("/proc/self/io").read_text()
    except OSError:
        return {}
    return {k: int(v) for k, v in (line.split(": ") for line in text.splitlines())}


def timed(times: list[float], call: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    result = call()
    times.append(time.perf_counter() - start)
    return result


def run_sessions(bundle: Path, key: Ed25519PrivateKey, sessions: int, taps: int) -> dict[str, Any]:
    rng = random.Random(3)
    stocked = frozenset(f"sku-{i:05d}" for i in range(N_ITEMS) if i % 10 != 9)
    excluded = frozenset(rng.sample(sorted(stocked), 200))
    allowed = sorted(stocked - excluded)
    session = Recommender.ephemeral(
        bundle, trusted_keys=[key.public_key()], rules=KioskRules(stocked, excluded)
    )
    times: dict[str, list[float]] = {
        k: [] for k in ("tap", "record", "recommend", "also_bought", "first_screen", "end")
    }
    counter = WriteCounter()
    sys.addaudithook(counter)
    with session:
        session.recommend(k=10)  # warm-up: the first run of the graph allocates
        session.end_session()
        before = proc_io()
        counter.active = True
        for _ in range(sessions):
            shown = [
                r.item_id for r in timed(times["first_screen"], lambda: session.recommend(k=10))
            ]
            for _ in range(taps):
                item = rng.choice(shown) if shown and rng.random() < 0.5 else rng.choice(allowed)
                start = time.perf_counter()
                timed(times["record"], partial(session.record, "view", item))
                mine = timed(times["recommend"], partial(session.recommend, k=10, in_view=item))
                timed(times["also_bought"], partial(session.also_bought, item, k=6))
                times["tap"].append(time.perf_counter() - start)
                shown = [r.item_id for r in mine]
            timed(times["end"], session.end_session)
        counter.active = False
        after = proc_io()
    return {
        "times": times,
        "io": {k: after.get(k, 0) - before.get(k, 0) for k in ("wchar", "write_bytes")},
        "opened_for_writing": len(counter.writes),
    }


def ms(values: list[float], q: float) -> float:
    return float(np.quantile(np.array(values), q) * 1000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--taps", type=int, default=20)
    args = parser.parse_args(argv)
    key = Ed25519PrivateKey.generate()
    with tempfile.TemporaryDirectory(prefix="facetwo-kiosk-bench-") as tmp:
        bundle = build_bundle(Path(tmp) / "bundle", key)
        result = run_sessions(bundle, key, args.sessions, args.taps)
    times = result["times"]
    print(
        f"{args.sessions} sessions x {args.taps} taps, {N_ITEMS:,} items, "
        "9,000 stocked, 200 excluded"
    )
    print("| measure | p50 ms | p99 ms | calls |")
    print("|---|---:|---:|---:|")
    for name, label in (
        ("tap", "**a tap: record + recommend(k=10, in_view) + also_bought(k=6)**"),
        ("record", "`record('view', item)`"),
        ("recommend", "`recommend(k=10, in_view=item)`"),
        ("also_bought", "`also_bought(item, k=6)`"),
        ("first_screen", "empty session `recommend(k=10)` (context prior)"),
        ("end", "`end_session()` (wipe)"),
    ):
        values = times[name]
        print(f"| {label} | {ms(values, 0.5):.2f} | {ms(values, 0.99):.2f} | {len(values):,} |")
    io = result["io"]
    print(
        f"\nduring the sessions: {io['wchar']:,} bytes through write syscalls, "
        f"{io['write_bytes']:,} bytes to storage, {result['opened_for_writing']} files opened "
        f"for writing; median tap {statistics.median(times['tap']) * 1000:.2f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
