"""Benchmark: does gift mode's gift prior find what people buy as gifts?

Gift mode ignores the shopper's history and ranks by the bundle's gift prior: distinct givers per
item, per month and part of the day, counted over purchases flagged in the log's `gift` column.
This compares it, on held-out gift purchases, with what a device would show otherwise: the
shopper's own personal list is excluded by design (a gift is not for them), so the comparison
is with the context prior of all purchases and with global popularity.

No public dataset flags gifts, so this runs on the sample shop (`server.sample_store`), whose
generator gives gifts from the gift kinds, mostly before Christmas: the numbers show the
mechanism works on data with a gift signal, not how strong the signal is in a real shop.

Protocol (user-disjoint): 10% of the givers (fixed seed) are held out per fold, 5 folds; every
prior is computed from the other shoppers' rows only (k = 10 distinct buyers per published
cell, smoothing 10); a visit is one held-out giver's gift purchases on one day, in the context
of its first one; HitRate@10, Recall@10, NDCG@10 over visits, with a bootstrap 95% interval of
the NDCG difference to global popularity (resampling givers).

    .venv/bin/python -m benchmarks.bench_gift
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_cold_start import METRICS, _bootstrap, score_visits, visits  # noqa: E402
from client_sdk.context_prior import ContextPopularity  # noqa: E402
from server.context_prior import compute_context_prior  # noqa: E402
from server.data import Interactions, load_interactions  # noqa: E402
from server.sample_store import generate_sample_store  # noqa: E402

MODELS = ("global popularity", "context prior (all purchases)", "gift prior (gift purchases)")
SIZES = ((1000, 2000), (2000, 20000))
"""(items, shoppers) of the sample shops."""


def evaluate(
    data: Interactions, *, folds: int = 5, seed: int = 0
) -> tuple[list[tuple[str, dict[str, float]]], int]:
    """Each model's metrics over the held-out gift visits, pooled over folds."""
    assert data.gift is not None
    index_of = {item_id: i for i, item_id in enumerate(data.items)}
    givers = np.unique(data.user[data.gift])
    order = np.random.default_rng(seed).permutation(givers)
    per_visit: dict[str, list[npt.NDArray[np.float64]]] = {name: [] for name in MODELS}
    users: list[int] = []
    for fold in range(folds):
        test_users = np.sort(order[fold::folds][: max(1, givers.size // 10)])
        train = ~np.isin(data.user, test_users)
        everyone = ContextPopularity(compute_context_prior(data, rows=train), index_of)
        gifts = ContextPopularity(compute_context_prior(data, rows=train & data.gift), index_of)
        trips = visits(data, test_users, data.gift)
        users += [user for user, _when, _items in trips]
        arms = (
            (everyone, False, False),
            (everyone, True, True),
            (gifts, True, True),
        )
        for name, (prior, month, part) in zip(MODELS, arms, strict=True):
            scores = score_visits(prior, trips, month=month, part=part)
            per_visit[name].append(np.stack([scores[m] for m in METRICS], axis=1))
    stacked = {name: np.concatenate(parts) for name, parts in per_visit.items()}
    baseline = stacked[MODELS[0]][:, 2]
    results = []
    for name in MODELS:
        low, high = _bootstrap(np.array(users), stacked[name][:, 2] - baseline, seed)
        metrics = dict(zip(METRICS, stacked[name].mean(axis=0).tolist(), strict=True))
        results.append((name, metrics | {"low": low, "high": high}))
    return results, len(users)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="facetwo-gift-") as tmp:
        for n_items, n_shoppers in SIZES:
            started = time.perf_counter()
            shop = generate_sample_store(
                Path(tmp) / f"shop-{n_shoppers}", n_items=n_items, n_shoppers=n_shoppers
            )
            data = load_interactions(shop.interactions)
            results, n = evaluate(data, seed=args.seed)
            gifts = int(data.gift.sum()) if data.gift is not None else 0
            print(
                f"\nSample shop, {n_items:,} items, {n_shoppers:,} shoppers, {gifts:,} gift "
                f"rows: {n} held-out gift visits ({time.perf_counter() - started:.0f} s)"
            )
            print("| model | hit@10 | recall@10 | ndcg@10 | ndcg@10 vs global (95% CI) |")
            print("|---|---|---|---|---|")
            for name, m in results:
                gain = m["ndcg@10"] - results[0][1]["ndcg@10"]
                print(
                    f"| {name} | {m['hit@10']:.4f} | {m['recall@10']:.4f} | {m['ndcg@10']:.4f} "
                    f"| {gain:+.4f} ({m['low']:+.4f} to {m['high']:+.4f}) |"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
