"""Benchmark: reorder timing on the Complete Journey sample, and shortcuts() latency.

Part 1 converts the dunnhumby "Complete Journey" receipt sample (../shared/datasets/
completejourney_sample, see its README) to the interactions and catalog formats in a temporary
directory (`benchmarks/datasets.py`) and runs `facetwo evaluate-reorder` on it (EVALUATION.md
§2, baselines in the same run).

Part 2 times `client_sdk.shortcuts.shortcuts()` on five years of a heavy shopper's history
(synthetic: real product ids and priors of the sample, purchase rhythms from daily to yearly),
median of repeated calls; and the one-off cost of building the history from raw purchases.

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

from benchmarks.datasets import (
    COMPLETE_JOURNEY,
    convert_complete_journey,
    convert_complete_journey_catalog,
)
from client_sdk.priors import encode_priors, parse_priors
from client_sdk.shortcuts import PurchaseHistory, estimate_due, shortcuts
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


def latency(interactions: Path, catalog: Path, repeats: int) -> dict[str, float]:
    days = collapse_purchase_days(load_interactions(interactions))
    categories = categories_from_catalog(load_catalog(catalog))
    priors = parse_priors(encode_priors(compute_priors(days, categories=categories)))
    popular = np.argsort(-np.bincount(days.item, minlength=len(days.items)), kind="stable")
    purchases = heavy_shopper([days.items[i] for i in popular])
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
    print()
    print(f"shortcuts() latency, heavy shopper over 5 years ({args.repeats} calls, medians)")
    for key, value in numbers.items():
        print(
            f"  {key:<30}{value:>12.3f}" if isinstance(value, float) else f"  {key:<30}{value:>12}"
        )
    if args.json is not None:
        args.json.write_text(
            json.dumps({"evaluate_reorder": quality, "latency": numbers}, indent=2) + "\n",
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
