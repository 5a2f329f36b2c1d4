"""Context prior in personalised lists (issue 7, item 2): does time of year / day help?

    .venv/bin/python -m benchmarks.bench_context_personal [--dataset all|ml-100k|cj]

The bundle's context prior (`context_prior.json`: distinct buyers per item per month and per
part of the day) ranks an empty session today. Here it is tried as a feature of the
personalised lists, on the temporal protocol of EVALUATION.md §1: facetwo's score of every
item is re-ranked with the context log-lift at the time the list is shown,

    score' = score + beta * spread * (lift_month[item, month] + lift_part[item, part_of_day]),

(and with the month or the part of the day alone; and, as a diagnostic, with the lift of the
month *before* the list's), where `spread` is the model's median gap between the first and the
20th score of a list, so beta reads the same on every log. beta is chosen on a validation split
carved from the training rows (the last 20% of every training user's items, a second facetwo
model trained on the rest with the hyper-parameters the test model's own search chose; at most
`--max-validation-users` users scored), never on the test targets; the context prior of each
model is computed from that model's training rows only. The baseline arm is beta = 0: both arms
use the same scores.

Scores are the float32 numpy reference of the trained model (`reference_scores`), with the
history weighted as the device weighs it (tuned interest decay, clock just after the last
history event); the shipped int8 bundle ranks within its parity tolerance of it.

Two ways to show a list (the history is the protocol's fixed input history in both):

- **next visit**: one list per user in the context of their first target's time, scored against
  all their targets (the protocol's metric exactly);
- **each visit**: one list per target day, in the context of that day's first target, scored
  against that day's targets; a user's metric is the mean over their days.

Per user, the paired NDCG@20 difference (chosen beta against 0) gets a 95% bootstrap interval
(2,000 resamples of users); `*` marks an interval that excludes 0. Below the table: the change
at every beta on both splits, and the best arm on the test targets in hindsight (an optimistic
bound, never a result).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.datasets import (  # noqa: E402
    COMPLETE_JOURNEY,
    ML_100K,
    convert_complete_journey,
    convert_ml_100k,
)
from client_sdk.context_prior import PARTS_OF_DAY, ContextPopularity, part_of_day  # noqa: E402
from client_sdk.features import InterestConfig, resolve_event_weights  # noqa: E402
from model_export.export import TrainedModel  # noqa: E402
from server.context_prior import ContextPriorConfig, compute_context_prior  # noqa: E402
from server.data import EVENT_KINDS, Interactions, load_interactions  # noqa: E402
from server.metrics import ndcg_at_k, recall_at_k  # noqa: E402
from server.splits import (  # noqa: E402
    HeldOutUser,
    Positives,
    Split,
    collapse_positives,
    temporal_split,
)
from server.training import (  # noqa: E402
    TrainingConfig,
    TrainingResult,
    describe,
    interest_of,
    train_model,
)

K = 20
BETA_STEPS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0)
"""beta in units of the model's score spread (first minus 20th score of a list, median)."""
VARIANTS = {
    "month": ("month",),
    "part of day": ("part",),
    "month + part": ("month", "part"),
    "previous month": ("previous",),
}
"""Which log-lifts each variant adds. "previous month" is a diagnostic: the lift of the month
before the list's, which a bundle released at the start of the month could have known; the
protocol's training rows hold other shoppers' purchases of the list's own month (later ones
too), so a gain of "month" that "previous month" does not share is partly a concurrent trend."""
MODES = ("next visit", "each visit")
DATASETS = {
    "ml-100k": ("ml-100k (rating times)", ML_100K, convert_ml_100k),
    "cj": ("Complete Journey sample (receipt times)", COMPLETE_JOURNEY, convert_complete_journey),
}
_DAY = 86_400
_PART_HOUR = tuple(start for _name, start, _end in PARTS_OF_DAY)
Arm = tuple[str, float]
"""(variant, beta in spread units); ("none", 0.0) is the baseline."""
ARMS: tuple[Arm, ...] = (
    ("none", 0.0),
    *((variant, beta) for variant in VARIANTS for beta in BETA_STEPS),
)


@dataclass(frozen=True)
class Request:
    """One list shown to one evaluated user: its context and what it should find."""

    user: int
    """position in the split's held-out users."""
    month: int
    part: int
    targets: npt.NDArray[np.int64]


@dataclass(frozen=True)
class Measured:
    """Per-user NDCG@20 and Recall@20 of every arm, for one way of showing lists."""

    ndcg: npt.NDArray[np.float64]
    """[users, arms]"""
    recall: npt.NDArray[np.float64]
    spread: float


def target_times(positives: Positives, split: Split) -> list[npt.NDArray[np.int64]]:
    """The first time of each held-out user's targets, aligned with `split.held_out`.

    Rebuilt from the positives as `temporal_split` picks them, and checked item by item.

    Raises:
        RuntimeError: the rebuilt targets differ from the split's (splits.py changed).
    """
    n = positives.n_items
    is_target = np.isin(positives.user * n + positives.item, split.test_pairs)
    known = np.zeros(n, bool)
    known[split.train.item] = True
    out: list[npt.NDArray[np.int64]] = []
    for user in np.unique(positives.user[is_target]).tolist():
        rows = np.flatnonzero(positives.user == user)
        wanted = rows[is_target[rows] & known[positives.item[rows]]]
        if (~is_target[rows]).any() and wanted.size:
            out.append(positives.first_time[wanted])
            held = split.held_out[len(out) - 1]
            if not np.array_equal(held.targets, positives.item[wanted]):
                raise RuntimeError(f"targets of held-out user {len(out) - 1} do not line up")
    if len(out) != len(split.held_out):
        raise RuntimeError(
            f"rebuilt {len(out)} held-out users, the split has {len(split.held_out)}"
        )
    return out


def requests(
    users: Sequence[HeldOutUser], times: Sequence[npt.NDArray[np.int64]], mode: str, offset_s: int
) -> list[Request]:
    """The lists to show: one per user at their first target, or one per target day."""
    out = []
    for u, (user, when) in enumerate(zip(users, times, strict=True)):
        local = when + offset_s
        if mode == "next visit":
            groups = [np.ones(local.size, bool)]
        else:
            day = local // _DAY
            groups = [day == d for d in np.unique(day)]
        for group in groups:
            moment = datetime.fromtimestamp(int(local[group].min()), timezone.utc)
            out.append(Request(u, moment.month - 1, part_of_day(moment.hour), user.targets[group]))
    return out


def context_lifts(
    popularity: ContextPopularity, n_items: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """[12, n] month and [4, n] part-of-day log-lifts of every item (0: not in the prior),
    read through the device's public `ContextPopularity.rank`."""

    def lift(month: int, hour: int, by_month: bool) -> npt.NDArray[np.float64]:
        when = datetime(2001, month + 1, 15, hour, tzinfo=timezone.utc)
        plain = popularity.rank(when, month=False, part=False)
        lifted = popularity.rank(when, month=by_month, part=not by_month)
        out = np.zeros(n_items)
        out[lifted.index] = np.log(lifted.score.astype(np.float64))
        out[plain.index] -= np.log(plain.score.astype(np.float64))
        return out

    months = np.stack([lift(m, 12, True) for m in range(12)])
    parts = np.stack([lift(0, hour, False) for hour in _PART_HOUR])
    return months, parts


def history_weights(
    user: HeldOutUser, interest: InterestConfig, kind_weight: npt.NDArray[np.float64]
) -> npt.NDArray[np.float32]:
    """Each history item's weight as the device computes it: the strongest event kind after
    decay, the clock just after the last history event, 0 under `min_weight`."""
    seen = user.history_last_seen
    now = seen[np.isfinite(seen)].max() + 1.0
    half_life = np.array([interest.half_life_days(k) for k in EVENT_KINDS]) * _DAY
    retention = np.array([interest.retention_days(k) for k in EVENT_KINDS]) * _DAY
    age = np.where(np.isfinite(seen), now - seen, np.inf)
    age = np.where(age > retention[None, :], np.inf, age)
    best = (kind_weight[None, :] * np.exp2(-age / half_life[None, :])).max(axis=1)
    return np.where(best >= interest.min_weight, best, 0.0).astype(np.float32)


def measure(
    model: TrainedModel,
    popularity: ContextPopularity,
    users: Sequence[HeldOutUser],
    times: Sequence[npt.NDArray[np.int64]],
    offset_s: int,
) -> dict[str, Measured]:
    """Every arm's per-user metrics, for each way of showing lists."""
    n = len(model.item_ids)
    months, parts = context_lifts(popularity, n)
    interest = interest_of(model.info["history_half_life_days"])
    weights = resolve_event_weights(model.event_weights)
    kind_weight = np.array([weights[k] for k in EVENT_KINDS])
    by_mode = {mode: requests(users, times, mode, offset_s) for mode in MODES}
    scores: list[npt.NDArray[np.float64]] = []
    spreads = []
    for user in users:
        score = model.reference_scores(
            user.history, history_weights(user, interest, kind_weight)
        ).astype(np.float64)
        score[user.history] = -np.inf
        top = np.sort(np.partition(-score, K - 1)[:K])
        spreads.append(top[K - 1] - top[0])
        scores.append(score)
    spread = float(np.median(spreads))
    out = {}
    for mode, shown in by_mode.items():
        ndcg = np.zeros((len(shown), len(ARMS)))
        recall = np.zeros_like(ndcg)
        for r, req in enumerate(shown):
            terms = {
                "month": months[req.month],
                "part": parts[req.part],
                "previous": months[(req.month - 1) % 12],
            }
            lift = {name: sum(terms[c] for c in uses) for name, uses in VARIANTS.items()}
            for a, (variant, beta) in enumerate(ARMS):
                score = scores[req.user]
                if beta:
                    score = score + beta * spread * lift[variant]
                head = np.argpartition(-score, K - 1)[:K]
                ranked = head[np.argsort(-score[head], kind="stable")].astype(np.int64)
                ndcg[r, a] = ndcg_at_k(ranked, req.targets, K)
                recall[r, a] = recall_at_k(ranked, req.targets, K)
        owner = np.array([req.user for req in shown])
        out[mode] = Measured(_per_user(ndcg, owner), _per_user(recall, owner), spread)
    return out


def _per_user(
    values: npt.NDArray[np.float64], owner: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """Mean over each user's lists: [lists, arms] -> [users, arms]."""
    counts = np.bincount(owner).astype(np.float64)
    sums = np.stack(
        [np.bincount(owner, weights=values[:, a]) for a in range(values.shape[1])], axis=1
    )
    users = counts > 0
    means: npt.NDArray[np.float64] = sums[users] / counts[users, None]
    return means


def bootstrap(diff: npt.NDArray[np.float64], seed: int, rounds: int = 2000) -> tuple[float, float]:
    """95% interval of the mean of per-user paired differences, resampling users."""
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, diff.size, size=(rounds, diff.size))].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    return float(low), float(high)


@dataclass(frozen=True)
class Fitted:
    """One trained model with its context prior, and the users it is scored on."""

    model: TrainedModel
    popularity: ContextPopularity
    users: tuple[HeldOutUser, ...]
    times: tuple[npt.NDArray[np.int64], ...]
    listed_share: float
    """share of the users' targets the context prior lists (the rest get no lift)."""


def fit(
    data: Interactions,
    rows: npt.NDArray[np.bool_],
    split: Split,
    positives: Positives,
    cap: int | None,
    seed: int,
    config: TrainingConfig | None = None,
) -> tuple[Fitted, TrainingResult]:
    """Train facetwo and the context prior on `rows`; pick the users to score (at most `cap`)."""
    trained = train_model(data.subset(rows), config)
    model = trained.model
    _progress(
        f"  trained {describe(trained.choice)}, history half-lives "
        f"{model.info['history_half_life_days']}, in {trained.seconds:.1f}s"
    )
    prior = compute_context_prior(data, ContextPriorConfig(), rows=rows)
    popularity = ContextPopularity(prior, {item: i for i, item in enumerate(data.items)})
    times = target_times(positives, split)
    picked = np.arange(len(split.held_out))
    if cap is not None and picked.size > cap:
        picked = np.sort(np.random.default_rng(seed).choice(picked, size=cap, replace=False))
    users = tuple(split.held_out[i] for i in picked)
    listed = np.zeros(len(data.items), bool)
    listed[[i for i, item in enumerate(data.items) if item in prior.items]] = True
    targets = np.concatenate([u.targets for u in users])
    share = float(listed[targets].mean())
    return Fitted(model, popularity, users, tuple(times[i] for i in picked), share), trained


def fixed_config(trained: TrainingResult) -> TrainingConfig:
    """A search of one point: the form, sizes, l2, popularity and decays `trained` chose (a
    low-rank+sparse model searches its two l2 values, when they differ, both ways)."""
    choice, half_lives = trained.choice, trained.model.info["history_half_life_days"]
    l2s = {choice.l2_factor} | ({choice.residual_l2_factor} if choice.neighbors else set())
    config = TrainingConfig(
        forms=(choice.form,),
        l2_grid=tuple(sorted(l2s)),
        popularity_grid=(choice.popularity,),
        popularity_half_lives=(choice.popularity_half_life,),
        purchase_half_lives=(half_lives["purchase"],),
        view_half_lives=(half_lives["view"],),
    )
    if choice.form == "sparse":
        return replace(config, neighbors=(choice.size,))
    config = replace(config, ranks=(choice.size,))
    return replace(config, neighbors=(choice.neighbors,)) if choice.neighbors else config


def run(data: Interactions, *, max_validation_users: int, seed: int) -> list[str]:
    """Validation picks beta per mode and variant; the test split measures it. Table lines."""
    offset_s = ContextPriorConfig().utc_offset_minutes * 60
    positives = collapse_positives(data)
    test = temporal_split(positives)
    train_rows = test.training_rows(data)
    valid = temporal_split(test.train)
    valid_rows = train_rows & valid.training_rows(data)
    _progress(f"test: {len(test.held_out)} users; training searches hyper-parameters")
    t, trained = fit(data, train_rows, test, positives, None, seed)
    _progress(
        f"validation: {len(valid.held_out)} users (scoring at most {max_validation_users}); "
        "the same hyper-parameters"
    )
    v, _ = fit(
        data, valid_rows, valid, test.train, max_validation_users, seed, fixed_config(trained)
    )
    val = measure(v.model, v.popularity, v.users, v.times, offset_s)
    tst = measure(t.model, t.popularity, t.users, t.times, offset_s)
    lines = [
        f"temporal protocol: {len(t.users)} test users, {len(v.users)} validation users; "
        f"model {t.model.info['trainer']}; context prior lists "
        f"{len(t.popularity)} of {len(data.items)} items ({t.listed_share:.1%} of test targets); "
        f"score spread (1st - 20th) {val[MODES[0]].spread:.4g} valid, "
        f"{tst[MODES[0]].spread:.4g} test",
        "",
        "| lists | context | beta (x spread) | ndcg@20 | recall@20 | d ndcg@20 (95% CI) "
        "| valid d ndcg@20 |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode in MODES:
        chosen = _choose(val[mode])
        base_n, base_r = tst[mode].ndcg[:, 0], tst[mode].recall[:, 0]
        lines.append(f"| {mode} | off | 0 | {base_n.mean():.4f} | {base_r.mean():.4f} | | |")
        for variant, arm in chosen.items():
            diff = tst[mode].ndcg[:, arm] - base_n
            low, high = bootstrap(diff, seed)
            gain_val = val[mode].ndcg[:, arm].mean() - val[mode].ndcg[:, 0].mean()
            lines.append(
                f"| {mode} | {variant} | {ARMS[arm][1]:g} | {tst[mode].ndcg[:, arm].mean():.4f} "
                f"| {tst[mode].recall[:, arm].mean():.4f} | {diff.mean():+.4f} "
                f"({low:+.4f} to {high:+.4f}){_excludes_zero(low, high)} | {gain_val:+.4f} |"
            )
    lines += ["", *_sensitivity(val, tst, seed)]
    return lines


def _choose(measured: Measured) -> dict[str, int]:
    """Per variant, the arm of best validation NDCG@20 (beta 0 when nothing beats it)."""
    mean = measured.ndcg.mean(axis=0)
    chosen = {}
    for variant in VARIANTS:
        arms = [a for a, (name, _beta) in enumerate(ARMS) if name == variant]
        best = max(arms, key=lambda a: mean[a])
        chosen[variant] = best if mean[best] > mean[0] else 0
    return chosen


def _sensitivity(valid: dict[str, Measured], test: dict[str, Measured], seed: int) -> list[str]:
    """NDCG@20 change of every variant at every beta on both splits, and the best arm on the
    test targets in hindsight with its interval: read only, never used to choose (an
    optimistic bound on any gain)."""
    lines = [
        "d ndcg@20 by beta (x spread) " + " ".join(f"{b:g}" for b in BETA_STEPS),
        "(the test rows are not used to choose):",
    ]
    for mode in MODES:
        for variant in VARIANTS:
            arms = [a for a, (name, _beta) in enumerate(ARMS) if name == variant]
            for label, measured in (("valid", valid), ("test", test)):
                m = measured[mode].ndcg.mean(axis=0)
                steps = " ".join(f"{m[a] - m[0]:+.4f}" for a in arms)
                lines.append(f"  {mode:<10} {variant:<14} {label:<5} {steps}")
    lines.append("best arm on the test targets in hindsight (optimistic, not a result):")
    for mode in MODES:
        ndcg = test[mode].ndcg
        best = int(np.argmax(ndcg[:, 1:].mean(axis=0))) + 1
        low, high = bootstrap(ndcg[:, best] - ndcg[:, 0], seed)
        gain = ndcg[:, best].mean() - ndcg[:, 0].mean()
        variant, beta = ARMS[best]
        lines.append(
            f"  {mode}: {variant}, beta {beta:g}: {gain:+.4f} ({low:+.4f} to {high:+.4f})"
            + _excludes_zero(low, high)
        )
    return lines


def _excludes_zero(low: float, high: float) -> str:
    """A mark for an interval that excludes 0."""
    return " *" if low > 0 or high < 0 else ""


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--dataset", choices=("all", *DATASETS), default="all")
    parser.add_argument("--max-validation-users", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    names = list(DATASETS) if args.dataset == "all" else [args.dataset]
    for name in names:
        title, source, convert = DATASETS[name]
        if not source.is_file():
            print(f"\n{title}: skipped, {source} is absent")
            continue
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="facetwo-ctx-") as tmp:
            data = load_interactions(convert(Path(tmp) / "interactions.csv"))
        lines = run(data, max_validation_users=args.max_validation_users, seed=args.seed)
        print(f"\n{title} ({time.perf_counter() - started:.0f}s)")
        print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
