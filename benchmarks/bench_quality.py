"""Recommendation quality on real data: facetwo (through the SDK) beside baselines and peers.

    .venv/bin/python -m benchmarks.bench_quality [--dataset ml-100k|cj|all] [--folds 5]

Runs `server.evaluation.evaluate` (EVALUATION.md §1) on each dataset and protocol. The strong
protocol is run with `--folds` seeds (different held-out users) and pooled, weighting each fold
by its evaluated users; the temporal protocol has one split. Outside peers (implicit's ALS and
BPR, LightFM-WARP) join when the `bench` extra is installed. Prints one table per dataset and
protocol; `--json OUT` writes them all.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # implicit asks for it; set before numpy

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.datasets import (
    COMPLETE_JOURNEY,
    ML_100K,
    convert_complete_journey,
    convert_ml_100k,
)
from server.baselines import Baseline
from server.data import load_interactions
from server.evaluation import SKIPPABLE, EvaluationReport, evaluate
from server.splits import Positives

METRICS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20", "coverage@20")
DATASETS = {
    "ml-100k": (ML_100K, convert_ml_100k),
    "cj": (COMPLETE_JOURNEY, convert_complete_journey),
}


def peers() -> list[Callable[[Positives], Baseline]]:
    """implicit's ALS and BPR and LightFM, when installed (`pip install -e '.[bench]'`)."""
    try:
        from benchmarks.peers import fit_als, fit_bpr, fit_lightfm
    except ImportError as exc:
        print(f"(peers skipped: {exc})", file=sys.stderr)
        return []
    return [fit_als, fit_bpr, fit_lightfm]


def pool(reports: Sequence[EvaluationReport]) -> dict[str, Any]:
    """Metrics pooled over folds, weighted by each fold's evaluated users, and facetwo's paired
    differences to every other model (`paired`).

    Raises:
        ValueError: the folds hold different models, or a model's per-user NDCG does not cover
            its fold's evaluated users.
    """
    weights = [r.split["evaluated_users"] for r in reports]
    total = sum(weights)
    models: dict[str, dict[str, float]] = {}
    choices: list[dict[str, Any]] = []
    per_user: dict[str, list[float]] = {}
    users: list[int] = []
    names = [m.name for m in reports[0].models] if reports else []
    for report, weight in zip(reports, weights, strict=True):
        if [m.name for m in report.models] != names:
            found = [m.name for m in report.models]
            raise ValueError(f"a fold holds the models {found}, the first one {names}")
        choices += [m.extra for m in report.models if m.name == "facetwo"]
        users += report.held_out_users
        for model in report.models:
            if len(model.per_user_ndcg) != len(report.held_out_users):
                raise ValueError(
                    f"{model.name}: {len(model.per_user_ndcg)} per-user values for "
                    f"{len(report.held_out_users)} evaluated users"
                )
            per_user.setdefault(model.name, []).extend(model.per_user_ndcg)
            entry = models.setdefault(model.name, {key: 0.0 for key in METRICS})
            for key in METRICS:
                entry[key] += model.metrics[key] * weight / total
            entry["train_seconds"] = entry.get("train_seconds", 0.0) + model.train_seconds / len(
                reports
            )
            entry["model_bytes"] = float(model.model_bytes)
    return {
        "folds": len(reports),
        "evaluated_users": total,
        "distinct_users": len(set(users)),
        "models": models,
        "facetwo_choices": choices,
        "paired_k": max(reports[0].ks) if reports else 0,
        "facetwo_minus": paired(per_user, users),
    }


def paired(
    per_user: Mapping[str, Sequence[float]], users: Sequence[int], rounds: int = 2000
) -> dict[str, dict[str, float]]:
    """facetwo's per-user NDCG minus each other model's, over the same (fold, user) rows: the
    pooled mean difference and its 95% interval by a cluster bootstrap over distinct users.

    Strong-protocol folds draw their held-out users independently, so one user can be evaluated
    in several folds with the same history and targets; those rows are not independent, and
    resampling them one by one would make the interval too narrow. Each bootstrap round draws
    distinct users with replacement and takes all of their rows.
    """
    own = np.array(per_user.get("facetwo", ()), np.float64)
    ids = np.array(users, np.int64)
    if own.size == 0 or own.size != ids.size:
        return {}
    _, cluster = np.unique(ids, return_inverse=True)
    counts = np.bincount(cluster).astype(np.float64)
    draws = np.random.default_rng(0).integers(0, counts.size, size=(rounds, counts.size))
    out: dict[str, dict[str, float]] = {}
    for name, values in per_user.items():
        if name == "facetwo":
            continue
        diff = own - np.array(values, np.float64)
        sums = np.bincount(cluster, weights=diff)
        means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
        low, high = np.quantile(means, [0.025, 0.975])
        out[name] = {"mean": float(diff.mean()), "low": float(low), "high": float(high)}
    return out


def table(title: str, pooled: dict[str, Any]) -> str:
    header = (
        f"{'model':<12}" + "".join(f"{k:>12}" for k in METRICS) + f"{'train s':>9}{'bytes':>15}"
    )
    users = f"{pooled['evaluated_users']} users"
    if pooled.get("distinct_users", pooled["evaluated_users"]) != pooled["evaluated_users"]:
        users = f"{pooled['evaluated_users']} user-folds, {pooled['distinct_users']} distinct users"
    lines = [f"### {title} ({pooled['folds']} fold(s), {users})", ""]
    lines += ["```", header, "-" * len(header)]
    for name, m in pooled["models"].items():
        row = f"{name:<12}" + "".join(f"{m[k]:>12.4f}" for k in METRICS)
        lines.append(row + f"{m['train_seconds']:>9.1f}{int(m['model_bytes']):>15,}")
    lines.append("```")
    for name, d in pooled.get("facetwo_minus", {}).items():
        lines.append(
            f"facetwo - {name}: NDCG@{pooled['paired_k']} {d['mean']:+.4f} (95% CI "
            f"{d['low']:+.4f} to "
            f"{d['high']:+.4f})"
        )
    for number, choice in enumerate(pooled.get("facetwo_choices", ())):
        lines.append(f"facetwo, split {number + 1}: {describe_choice(choice)}")
    return "\n".join(lines)


def describe_choice(choice: dict[str, Any]) -> str:
    """What facetwo's validation search chose, from its `--json` entry."""
    size = f"d={choice['size']}" if "low-rank" in choice["form"] else f"m={choice['size']}"
    if choice["form"] == "low-rank+sparse":
        size += f" + m={choice['residual_neighbors']} (l2 {choice['residual_l2_factor']:g}x)"
    days = choice.get("popularity_half_life_days")
    recency = "all time" if days is None else f"half-life {days:g} days"
    return (
        f"{choice['form']} {size}, l2 {choice['l2_factor']:g}x, popularity "
        f"{choice['popularity_weight']:g} ({recency})"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=(*DATASETS, "all"), default="all")
    parser.add_argument("--protocol", choices=("strong", "temporal", "both"), default="both")
    parser.add_argument("--folds", type=int, default=5, help="strong-protocol seeds to pool")
    parser.add_argument("--no-peers", action="store_true", help="skip implicit and LightFM")
    parser.add_argument(
        "--skip",
        nargs="*",
        choices=SKIPPABLE,
        default=[],
        help="leave out these reference baselines (EASE's dense inverse takes most of a run)",
    )
    parser.add_argument("--first-seed", type=int, default=0, help="the first strong-protocol seed")
    parser.add_argument(
        "--disjoint",
        action="store_true",
        help="strong folds hold out disjoint parts of the users (k-fold: each user once), "
        "shuffled by --first-seed",
    )
    parser.add_argument("--json", type=Path, help="write every pooled table as JSON")
    args = parser.parse_args(argv)
    extra = [] if args.no_peers else peers()
    results: dict[str, Any] = {}
    names = list(DATASETS) if args.dataset == "all" else [args.dataset]
    protocols = ("strong", "temporal") if args.protocol == "both" else (args.protocol,)
    with tempfile.TemporaryDirectory(prefix="facetwo-bench-") as tmp:
        for name in names:
            source, convert = DATASETS[name]
            if not source.exists():
                print(f"{name}: {source} not found; skipped", file=sys.stderr)
                continue
            interactions = load_interactions(convert(Path(tmp) / f"{name}.csv"))
            for protocol in protocols:
                first = args.first_seed
                seeds = range(first, first + args.folds) if protocol == "strong" else range(1)
                started = time.perf_counter()
                reports = [
                    evaluate(
                        interactions,
                        protocol=protocol,
                        seed=first if args.disjoint else seed,
                        extra_baselines=extra,
                        skip=args.skip,
                        part=(seed - first, args.folds)
                        if args.disjoint and protocol == "strong"
                        else None,
                    )
                    for seed in seeds
                ]
                pooled = pool(reports)
                results[f"{name}/{protocol}"] = pooled
                print(table(f"{name}, {protocol} protocol", pooled))
                print(f"({time.perf_counter() - started:.0f} s)\n", flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
