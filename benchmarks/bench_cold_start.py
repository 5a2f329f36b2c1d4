"""Benchmark: does popularity in context beat global popularity for a stranger's first tap?

A kiosk meets a visitor it knows nothing about: before the first tap it can only show what is
popular. This compares, on real visits, the list ranked by global popularity (distinct buyers)
with the device's context prior (`client_sdk.context_prior`): popular this month, in this part of
the day, or both.

Protocol (user-disjoint, like EVALUATION.md's strong protocol):

- purchases only; 10% of the shoppers (fixed seed) are held out; the priors are computed from
  the other 90% only (`server.context_prior`, k = 10 distinct buyers per published cell);
- a visit is one held-out shopper's purchases on one day; its context is the time of its first
  purchase; its targets are the distinct items bought that day;
- every model ranks the same published items; metrics over visits: HitRate@10 (any target in
  the list), Recall@10 (hits / min(10, targets)), NDCG@10 (binary gains);
- the smoothing pseudo-count is chosen per model on a validation split carved from the training
  shoppers (10% of them), never on the held-out visits.

    .venv/bin/python -m benchmarks.bench_cold_start           # sample shop + Complete Journey
    .venv/bin/python -m benchmarks.bench_cold_start --dataset sample
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.datasets import COMPLETE_JOURNEY, convert_complete_journey  # noqa: E402
from client_sdk.context_prior import ContextPopularity, ContextPrior  # noqa: E402
from server.context_prior import compute_context_prior  # noqa: E402
from server.data import EVENT_KINDS, Interactions, load_interactions  # noqa: E402
from server.sample_store import generate_sample_store  # noqa: E402

K = 10
SMOOTHING_GRID = (1.0, 3.0, 10.0, 30.0, 100.0)
MODELS = {
    "global popularity": (False, False),
    "context: month": (True, False),
    "context: part of day": (False, True),
    "context: month + part of day": (True, True),
}
METRICS = ("hit@10", "recall@10", "ndcg@10")
_PURCHASE = EVENT_KINDS.index("purchase")


def split_users(
    n_users: int, share: float, seed: int, among: npt.NDArray[np.int64] | None = None
) -> npt.NDArray[np.int64]:
    """A random `share` of the users (of `among`, default all), sorted."""
    pool = np.arange(n_users) if among is None else among
    rng = np.random.default_rng(seed)
    picked = rng.choice(pool, size=max(1, round(share * pool.size)), replace=False)
    return np.sort(picked).astype(np.int64)


Visit = tuple[int, datetime, set[int]]
"""(user, time of the visit's first purchase, items bought)."""


def visits(
    data: Interactions,
    users: npt.NDArray[np.int64],
    rows: npt.NDArray[np.bool_] | None = None,
) -> list[Visit]:
    """One visit per (user, day) of `users`: its first purchase's time and the items bought
    (only the `rows` given, by default every purchase)."""
    chosen = data.event == _PURCHASE if rows is None else rows
    picked = np.flatnonzero(np.isin(data.user, users) & chosen)
    day = data.timestamp[picked] // 86_400
    order = np.lexsort((data.timestamp[picked], day, data.user[picked]))
    picked, day = picked[order], day[order]
    out: list[Visit] = []
    key = None
    for row, d in zip(picked.tolist(), day.tolist(), strict=True):
        if (data.user[row], d) != key:
            key = (data.user[row], d)
            when = datetime.fromtimestamp(int(data.timestamp[row]), timezone.utc)
            out.append((int(data.user[row]), when, set()))
        out[-1][2].add(int(data.item[row]))
    return out


def score_visits(
    popularity: ContextPopularity, trips: list[Visit], *, month: bool, part: bool
) -> dict[str, npt.NDArray[np.float64]]:
    """HitRate, Recall and NDCG at K of the ranking in each visit's context, per visit."""
    discounts = 1.0 / np.log2(np.arange(2, K + 2))
    out = {name: np.zeros(len(trips)) for name in ("hit@10", "recall@10", "ndcg@10")}
    for v, (_user, when, targets) in enumerate(trips):
        top = popularity.rank(when, month=month, part=part).index[:K].tolist()
        gains = np.array([item in targets for item in top], float)
        hits = gains.sum()
        out["hit@10"][v] = float(hits > 0)
        out["recall@10"][v] = hits / min(K, len(targets))
        ideal = discounts[: min(K, len(targets))].sum()
        out["ndcg@10"][v] = float(gains @ discounts[: gains.size]) / ideal
    return out


def _validation_ndcg(
    prior: ContextPrior,
    index_of: dict[str, int],
    trips: list[Visit],
    month: bool,
    part: bool,
    smoothing: float,
) -> float:
    popularity = ContextPopularity(replace(prior, smoothing=smoothing), index_of)
    return float(score_visits(popularity, trips, month=month, part=part)["ndcg@10"].mean())


def evaluate(
    data: Interactions, *, folds: int = 5, seed: int = 0
) -> tuple[list[tuple[str, dict[str, float]]], int]:
    """Each model's metrics over the held-out visits of `folds` user folds (pooled), with the
    paired difference to global popularity (95% interval of a bootstrap over shoppers); and
    the number of visits. Per fold, the smoothing is chosen on a validation split of its
    training shoppers."""
    index_of = {item_id: i for i, item_id in enumerate(data.items)}
    order = np.random.default_rng(seed).permutation(len(data.users))
    per_visit: dict[str, list[npt.NDArray[np.float64]]] = {name: [] for name in MODELS}
    chosen: dict[str, list[float]] = {name: [] for name in MODELS}
    users: list[int] = []
    for fold in range(folds):
        test_users = np.sort(order[fold::folds])
        train_users = np.setdiff1d(np.arange(len(data.users)), test_users)
        valid_users = split_users(len(data.users), 0.1, seed + 1 + fold, among=train_users)
        fit_users = np.setdiff1d(train_users, valid_users)
        fit_prior = compute_context_prior(data, rows=np.isin(data.user, fit_users))
        train_prior = compute_context_prior(data, rows=np.isin(data.user, train_users))
        valid_trips, test_trips = visits(data, valid_users), visits(data, test_users)
        users += [user for user, _when, _items in test_trips]
        for name, (month, part) in MODELS.items():
            best = max(
                SMOOTHING_GRID,
                key=partial(_validation_ndcg, fit_prior, index_of, valid_trips, month, part),
            )
            chosen[name].append(best)
            prior = ContextPopularity(replace(train_prior, smoothing=best), index_of)
            scores = score_visits(prior, test_trips, month=month, part=part)
            per_visit[name].append(np.stack([scores[m] for m in METRICS], axis=1))
    stacked = {name: np.concatenate(parts) for name, parts in per_visit.items()}
    baseline = stacked["global popularity"]
    results = []
    for name in MODELS:
        low, high = _bootstrap(np.array(users), stacked[name][:, 2] - baseline[:, 2], seed)
        metrics = dict(zip(METRICS, stacked[name].mean(axis=0).tolist(), strict=True))
        metrics |= {"smoothing": float(np.median(chosen[name])), "low": low, "high": high}
        results.append((name, metrics))
    return results, len(users)


def _bootstrap(
    users: npt.NDArray[np.int64], diff: npt.NDArray[np.float64], seed: int, rounds: int = 2000
) -> tuple[float, float]:
    """95% interval of the mean per-visit difference, resampling shoppers (their visits are
    not independent)."""
    codes, user_index = np.unique(users, return_inverse=True)
    sums = np.bincount(user_index, weights=diff, minlength=codes.size)
    counts = np.bincount(user_index, minlength=codes.size).astype(float)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, codes.size, size=(rounds, codes.size))
    means = sums[picks].sum(axis=1) / counts[picks].sum(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    return float(low), float(high)


def print_table(title: str, results: list[tuple[str, dict[str, float]]], n: int) -> None:
    print(f"\n{title}: {n} held-out visits")
    print("| model | hit@10 | recall@10 | ndcg@10 | ndcg@10 vs global (95% CI) | smoothing |")
    print("|---|---|---|---|---|---|")
    for name, m in results:
        gain = m["ndcg@10"] - results[0][1]["ndcg@10"]
        print(
            f"| {name} | {m['hit@10']:.4f} | {m['recall@10']:.4f} | {m['ndcg@10']:.4f} "
            f"| {gain:+.4f} ({m['low']:+.4f} to {m['high']:+.4f}) | {m['smoothing']:g} |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=("all", "sample", "complete-journey"), default="all")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="facetwo-cold-") as tmp:
        if args.dataset in ("all", "sample"):
            shop = generate_sample_store(Path(tmp) / "shop")
            results, n = evaluate(load_interactions(shop.interactions), seed=args.seed)
            print_table("Sample shop (1,000 items, 2,000 shoppers, 2025)", results, n)
        if args.dataset in ("all", "complete-journey"):
            if not COMPLETE_JOURNEY.is_file():
                print(f"\nComplete Journey: skipped, {COMPLETE_JOURNEY} is absent")
                return 0
            path = convert_complete_journey(Path(tmp) / "cj.csv")
            results, n = evaluate(load_interactions(path), seed=args.seed)
            print_table("Complete Journey sample (75,000 receipt lines, 2017)", results, n)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
