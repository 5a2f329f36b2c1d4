"""Benchmark of the private store and the shopper's controls (issue 4 targets).

    .venv/bin/python -m benchmarks.bench_store            # everything, 200 kills
    .venv/bin/python -m benchmarks.bench_store --kills 300 --runs 500

Prints one table:

- `record()` latency into the encrypted file store (the default synchronous=normal, and full,
  which fsyncs every write) and into the in-memory store; target p50 < 1 ms;
- `recommend(k=10)` against bare scoring of the same history, at 10k items with 1,000 events of
  history, 20 dismissals and variant groups of three; target: store + controls add < 1 ms;
- the crash test: a writer process SIGKILLed at random points `--kills` times; target 0
  acknowledged events lost.

Times are medians of interleaved runs on one thread; these machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from client_sdk import Recommender, RecommenderConfig, StoreConfig  # noqa: E402
from client_sdk.bundle import CatalogEntry  # noqa: E402
from model_export.export import SparseItemModel, export_bundle  # noqa: E402
from tests.client_sdk.shop import FixedClock, write_shop_bundle  # noqa: E402
from tests.client_sdk.test_store_crash import run_crash_trials  # noqa: E402
from tests.conftest import FIXED_NOW  # noqa: E402

N_ITEMS = 10_000
NEIGHBORS = 32
HISTORY_EVENTS = 1_000
DISMISSALS = 20


def build_bundle(out: Path, key: Ed25519PrivateKey) -> Path:
    """A synthetic 10k-item sparse model; variant groups of three, every fifth a consumable."""
    rng = np.random.default_rng(7)
    neighbor_index = rng.integers(0, N_ITEMS, size=(N_ITEMS, NEIGHBORS)).astype(np.int64)
    neighbor_weight = rng.random((N_ITEMS, NEIGHBORS)).astype(np.float32)
    base = (np.linspace(1.0, 0.0, N_ITEMS) * 1e-4).astype(np.float32)
    ids = tuple(f"sku-{i:05d}" for i in range(N_ITEMS))
    model = SparseItemModel(
        item_ids=ids,
        neighbor_index=neighbor_index,
        neighbor_weight=neighbor_weight,
        base_score=base,
        event_weights={"view": 0.25, "cart": 0.5, "purchase": 1.0},
    )
    catalog = [
        CatalogEntry(item, f"Item {i}", f"c{i % 40}", f"g{i // 3}", i % 5 == 0)
        for i, item in enumerate(ids)
    ]
    histories = [
        (rng.choice(N_ITEMS, 50, replace=False).astype(np.int64), np.ones(50, np.float32))
        for _ in range(20)
    ]
    path, _ = export_bundle(
        model,
        out,
        catalog=catalog,
        model_version=1,
        signing_keys=[key],
        sample_histories=histories,
        now=FIXED_NOW,
    )
    return path


def time_records(
    bundle: Path, key: Ed25519PrivateKey, store: Path | None, sync: str
) -> list[float]:
    config = RecommenderConfig(store=StoreConfig(synchronous=sync))
    with Recommender.open(
        bundle,
        trusted_keys=[key.public_key()],
        store=store,
        store_key=bytes(32) if store else None,
        clock=FixedClock(),
        config=config,
    ) as rec:
        times = []
        for i in range(2_000):
            start = time.perf_counter()
            rec.record("view", f"sku-{i % N_ITEMS:05d}")
            times.append(time.perf_counter() - start)
    return times


def time_recommend(
    bundle: Path, key: Ed25519PrivateKey, store: Path, runs: int
) -> dict[str, float]:
    """Median ms of recommend(k=10) and of bare scoring of the same history, interleaved."""
    rng = random.Random(3)
    clock = FixedClock()
    kinds = ["view"] * 6 + ["search"] * 2 + ["cart", "purchase"]
    with Recommender.open(
        bundle, trusted_keys=[key.public_key()], store=store, store_key=bytes(32), clock=clock
    ) as rec:
        for _ in range(HISTORY_EVENTS):
            at = FIXED_NOW - timedelta(days=rng.uniform(0, 60))
            rec.record(rng.choice(kinds), f"sku-{rng.randrange(N_ITEMS):05d}", at=at)
        for _ in range(DISMISSALS):
            rec.dismiss(
                f"sku-{rng.randrange(N_ITEMS):05d}",
                rng.choice(["not_interested", "bought_elsewhere"]),
            )
        state, scorer = rec._state, rec._scorer
        history = state.log.history(
            rec._event_weights, max_items=500, now=FIXED_NOW, interest=rec._config.interest
        )
        exclude = np.flatnonzero(state.log.touched()).astype(np.int64)
        bare, full, in_view = [], [], []
        for _ in range(runs):
            start = time.perf_counter()
            scorer.score(history.index, history.weight, exclude=exclude, k=10)
            bare.append(time.perf_counter() - start)
            start = time.perf_counter()
            result = rec.recommend(k=10)
            full.append(time.perf_counter() - start)
            start = time.perf_counter()
            rec.recommend(k=10, in_view="sku-04242")
            in_view.append(time.perf_counter() - start)
        assert len(result) == 10
    return {
        "history items": float(history.index.size),
        "bare": statistics.median(bare) * 1e3,
        "recommend": statistics.median(full) * 1e3,
        "in_view": statistics.median(in_view) * 1e3,
    }


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values) * 1e3, q))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args(argv)
    key = Ed25519PrivateKey.generate()
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bundle = build_bundle(work / "bundle10k", key)
        for label, store, sync in (
            ("encrypted file (default)", work / "rec-normal.db", "normal"),
            ("encrypted file, synchronous=full", work / "rec-full.db", "full"),
            ("in memory", None, "normal"),
        ):
            t = time_records(bundle, key, store, sync)
            rows.append(
                (
                    f"record() {label}",
                    f"p50 {pct(t, 50):.3f} ms, p90 {pct(t, 90):.3f} ms",
                    "p50 < 1 ms",
                )
            )
        r = time_recommend(bundle, key, work / "reco.db", args.runs)
        rows.append(("bare scoring, 10k items, k=10", f"{r['bare']:.3f} ms", ""))
        rows.append(
            (
                f"recommend(k=10), {HISTORY_EVENTS} events ({r['history items']:.0f} items)",
                f"{r['recommend']:.3f} ms",
                "",
            )
        )
        rows.append(("store + controls overhead", f"{r['recommend'] - r['bare']:.3f} ms", "< 1 ms"))
        rows.append(("recommend(k=10, in_view=...)", f"{r['in_view']:.3f} ms", ""))
        shop = write_shop_bundle(work / "shop", key)
        public = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        start = time.perf_counter()
        report = run_crash_trials(
            shop, work / "crash.db", bytes(range(32)), public, kills=args.kills, seed=11
        )
        rows.append(
            (
                f"crash test: {report.kills} SIGKILLs ({time.perf_counter() - start:.0f} s)",
                f"{report.acknowledged} acknowledged, {report.lost} lost",
                "0 lost",
            )
        )
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'result':<36}  target")
    print(f"{'-' * width}  {'-' * 36}  {'-' * 10}")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:<36}  {target}")
    return 0 if report.lost == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
