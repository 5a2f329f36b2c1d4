"""Benchmark: reorder timing on the Complete Journey sample, and shortcuts() latency.

Part 1 converts the dunnhumby "Complete Journey" receipt sample (../shared/datasets/
completejourney_sample, see its README) to the interactions and catalog formats in a temporary
directory (`benchmarks/datasets.py`) and runs `facetwo evaluate-reorder` on it (EVALUATION.md
§2, baselines in the same run).

Part 2 times `client_sdk.shortcuts.shortcuts()` on five years of a heavy shopper's history
(synthetic: real product ids and priors of the sample, purchase rhythms from daily to yearly),
median of repeated calls; and the one-off cost of building the history from raw purchases.

Part 3 times the same through the device's front door: every purchase recorded with
`Recommender.record` into an encrypted store file, the store closed and reopened, then
`Recommender.shortcuts(k=10)` (purchases read from the store, the bundle's signed
`reorder_priors.json`), with a pin, a snooze and a "bought elsewhere" in the store.

    .venv/bin/python -m benchmarks.bench_reorder [--without-catalog] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from benchmarks.datasets import (
    COMPLETE_JOURNEY,
    convert_complete_journey,
    convert_complete_journey_catalog,
)
from client_sdk import Recommender, generate_store_key
from client_sdk.bundle import REORDER_PRIORS_FILE, CatalogEntry
from client_sdk.priors import ReorderPriors, encode_priors, parse_priors
from client_sdk.shortcuts import PurchaseHistory, estimate_due, shortcuts
from model_export.export import SparseItemModel, export_bundle
from server.cli import main as facetwo
from server.data import load_catalog, load_interactions
from server.reorder import categories_from_catalog, collapse_purchase_days, compute_priors

Purchase = tuple[str, date, float]
DATASET = COMPLETE_JOURNEY.parent


def convert(dataset: Path, out: Path) -> tuple[Path, Path]:
    """The shared converters: transactions -> interactions, products -> catalog (categories)."""
    interactions = convert_complete_journey(
        out / "interactions.csv", dataset / "transactions_sample.csv"
    )
    catalog = convert_complete_journey_catalog(out / "catalog.csv", dataset / "products.csv")
    return interactions, catalog


def heavy_shopper(product_ids: list[str], *, years: int = 5, seed: int = 0) -> list[Purchase]:
    """Five years of a heavy shopper: staples every few days down to one-off purchases."""
    rng = np.random.default_rng(seed)
    start = date(2021, 1, 1)
    span = 365 * years
    tiers = ((40, 3, 10), (200, 14, 60), (400, 60, 365), (1000, 0, 0))  # (items, min, max days)
    purchases: list[Purchase] = []
    items = iter(product_ids)
    for count, low, high in tiers:
        for _ in range(count):
            item_id = next(items)
            if high == 0:
                purchases.append((item_id, start + timedelta(int(rng.integers(span))), 1.0))
                continue
            every = float(rng.uniform(low, high))
            day = float(rng.uniform(0, every))
            while day < span:
                quantity = float(rng.choice([1.0, 1.0, 2.0]))
                purchases.append((item_id, start + timedelta(days=int(day)), quantity))
                day += max(1.0, rng.normal(every, every * 0.2))
    return purchases


def timed(function: Callable[[], object], repeats: int) -> list[float]:
    """Wall-clock milliseconds of each call."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1000)
    return times


def shopper_and_priors(
    interactions: Path, catalog: Path
) -> tuple[list[Purchase], ReorderPriors, Path]:
    """Five years of a heavy shopper of the log's most bought items, and the log's priors."""
    days = collapse_purchase_days(load_interactions(interactions))
    categories = categories_from_catalog(load_catalog(catalog))
    priors = parse_priors(encode_priors(compute_priors(days, categories=categories)))
    popular = np.argsort(-np.bincount(days.item, minlength=len(days.items)), kind="stable")
    return heavy_shopper([days.items[i] for i in popular]), priors, catalog


def latency(interactions: Path, catalog: Path, repeats: int) -> dict[str, float]:
    purchases, priors, _catalog = shopper_and_priors(interactions, catalog)
    now = datetime.combine(date(2026, 1, 1), datetime.min.time(), tzinfo=timezone.utc)
    history = PurchaseHistory.from_purchases(purchases)
    item_level = sum(1 for item_id in history.items if item_id in priors.items)
    build = timed(lambda: PurchaseHistory.from_purchases(purchases), 5)
    calls = timed(lambda: shortcuts(history, priors, k=10, now=now), repeats)
    update = timed(lambda: history.with_purchase(purchases[0][0], now, 1.0), repeats)
    every = timed(lambda: estimate_due(history, priors, now=now), max(5, repeats // 10))
    return {
        "purchase_lines": len(purchases),
        "purchase_days": sum(r.purchase_days for r in history.items.values()),
        "distinct_items": len(history),
        "items_with_item_level_prior": item_level,
        "shortcuts_k10_median_ms": statistics.median(calls),
        "shortcuts_k10_p95_ms": float(np.percentile(calls, 95)),
        "with_purchase_median_ms": statistics.median(update),
        "estimate_due_all_median_ms": statistics.median(every),
        "build_history_median_ms": statistics.median(build),
    }


class _Clock:
    def __init__(self, now: datetime) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current


def device_bundle(
    out: Path, purchases: list[Purchase], priors: ReorderPriors, catalog: Path, now: datetime
) -> tuple[Path, Ed25519PrivateKey]:
    """A signed bundle of the shopper's items (a small random sparse model) with the priors.

    The one-offs of `heavy_shopper` are marked durable, every other item consumable.
    """
    item_ids = list(dict.fromkeys(item_id for item_id, _day, _quantity in purchases))
    rows = {row.item_id: row for row in load_catalog(catalog).items}
    n, rng, key = len(item_ids), np.random.default_rng(0), Ed25519PrivateKey.generate()
    days_of: dict[str, set[date]] = {}
    for item_id, day, _quantity in purchases:
        days_of.setdefault(item_id, set()).add(day)
    model = SparseItemModel(
        item_ids=tuple(item_ids),
        neighbor_index=rng.integers(0, n, size=(n, 8)).astype(np.int64),
        neighbor_weight=rng.random((n, 8)).astype(np.float32),
        base_score=(np.linspace(1.0, 0.0, n) * 1e-4).astype(np.float32),
        event_weights={"view": 0.25, "cart": 0.5, "purchase": 1.0},
    )
    entries = [
        CatalogEntry(
            item_id,
            rows[item_id].title if item_id in rows else item_id,
            rows[item_id].category if item_id in rows else "",
            item_id,
            len(days_of[item_id]) > 1,
        )
        for item_id in item_ids
    ]
    history = [(np.arange(20, dtype=np.int64), np.ones(20, np.float32))]
    path, _ = export_bundle(
        model,
        out,
        catalog=entries,
        model_version=1,
        signing_keys=[key],
        sample_histories=history,
        now=now,
        extra_files={REORDER_PRIORS_FILE: encode_priors(priors)},
    )
    return path, key


def device_latency(
    purchases: list[Purchase], priors: ReorderPriors, catalog: Path, scratch: Path, repeats: int
) -> dict[str, float]:
    """`Recommender.shortcuts()` with the history in an encrypted store file, after a reopen."""
    now = datetime.combine(date(2026, 1, 1), datetime.min.time(), tzinfo=timezone.utc)
    bundle, key = device_bundle(scratch / "bundle", purchases, priors, catalog, now)
    clock, store, store_key = _Clock(now), scratch / "shopper.db", generate_store_key()

    def session() -> Recommender:
        return Recommender.open(
            bundle, trusted_keys=[key.public_key()], store=store, store_key=store_key, clock=clock
        )

    started = time.perf_counter()
    with session() as rec:
        for item_id, day, quantity in sorted(purchases, key=lambda p: p[1]):
            at = datetime.combine(day, datetime.min.time(), tzinfo=timezone.utc)
            rec.record("purchase", item_id, quantity=quantity, at=at + timedelta(hours=12))
        record_seconds = time.perf_counter() - started
        rec.pin(purchases[-1][0])
        rec.snooze(purchases[0][0], 30)
        rec.dismiss(purchases[1][0], reason="bought_elsewhere")
    started = time.perf_counter()
    with session() as rec:
        opened = time.perf_counter() - started
        first = timed(lambda: rec.shortcuts(k=10), 1)[0]
        calls = timed(lambda: rec.shortcuts(k=10), repeats)
        staples = [s.item_id for s in rec.shortcuts(k=10)]

        def buy_then_list() -> None:
            rec.record("purchase", staples[-1])
            rec.shortcuts(k=10)

        after_purchase = timed(buy_then_list, max(5, repeats // 4))
        events = len(json.loads(rec.export_data())["events"])
    return {
        "events_in_store": events,
        "store_bytes": store.stat().st_size,
        "record_all_seconds": record_seconds,
        "reopen_ms": opened * 1000,
        "first_shortcuts_ms": first,
        "shortcuts_k10_median_ms": statistics.median(calls),
        "shortcuts_k10_p95_ms": float(np.percentile(calls, 95)),
        "record_then_shortcuts_median_ms": statistics.median(after_purchase),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset-dir", type=Path, default=DATASET)
    parser.add_argument("--json", type=Path, help="write both parts' numbers here")
    parser.add_argument("--repeats", type=int, default=200, help="shortcuts() calls timed")
    parser.add_argument(
        "--without-catalog", action="store_true", help="no categories: item and shop priors only"
    )
    args = parser.parse_args(argv)
    if not args.dataset_dir.is_dir():
        print(f"dataset not found: {args.dataset_dir} (see ../shared/datasets)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="bench-reorder-") as scratch:
        interactions, catalog = convert(args.dataset_dir, Path(scratch))
        metrics = Path(scratch) / "metrics.json"
        argv_eval = ["evaluate-reorder", "--interactions", str(interactions)]
        if not args.without_catalog:
            argv_eval += ["--catalog", str(catalog)]
        status = facetwo([*argv_eval, "--json", str(metrics)])
        if status != 0:
            return status
        quality = json.loads(metrics.read_text("utf-8"))
        numbers = latency(interactions, catalog, args.repeats)
        device = device_latency(
            *shopper_and_priors(interactions, catalog), Path(scratch), args.repeats
        )
    for title, table in (
        (
            f"shortcuts() latency, heavy shopper over 5 years ({args.repeats} calls, medians)",
            numbers,
        ),
        ("Recommender.shortcuts() through the encrypted store, after a reopen", device),
    ):
        print()
        print(title)
        for key, value in table.items():
            shown = f"{value:>12.3f}" if isinstance(value, float) else f"{value:>12}"
            print(f"  {key:<34}{shown}")
    if args.json is not None:
        document = {"evaluate_reorder": quality, "latency": numbers, "device": device}
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
