"""`facetwo evaluate`: offline quality on the protocol of EVALUATION.md §1.

facetwo is trained on the training users only, exported, signed and quantised into a real
bundle, and every held-out user is scored through `client_sdk.Recommender` on onnxruntime,
exactly as a device would. Popularity, item-kNN and EASE are trained on the same split in the
same run. Nothing here tunes on the targets: every model's hyper-parameters are chosen on a
validation split carved from the training users.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client_sdk import Recommender
from client_sdk.bundle import MODEL_FILE

from .baselines import Baseline, Popularity, fit_ease, fit_item_knn, rank_top_k
from .data import EVENT_KINDS, Interactions
from .errors import TrainingError
from .metrics import ndcg_at_k, recall_at_k
from .pipeline import export_trained
from .splits import (
    HeldOutUser,
    Positives,
    Split,
    collapse_positives,
    strong_split,
    temporal_split,
)
from .training import Progress, TrainingConfig, train_model

PROTOCOLS = ("strong", "temporal")
SKIPPABLE = ("item-knn", "ease")
"""Reference baselines a benchmark may leave out of a run (popularity always runs)."""


@dataclass(frozen=True)
class ModelResult:
    """One model's metrics on one split."""

    name: str
    metrics: dict[str, float]
    train_seconds: float
    model_bytes: int
    extra: dict[str, Any] = field(default_factory=dict)
    per_user_ndcg: tuple[float, ...] = field(default=(), repr=False, compare=False)
    """NDCG at the largest k for each evaluated user, in the split's order (for paired
    comparisons between models; not written to `--json`)."""


@dataclass(frozen=True)
class EvaluationReport:
    """Every model of one run, on one split."""

    protocol: str
    source: str
    split: dict[str, int]
    models: tuple[ModelResult, ...]
    ks: tuple[int, ...]
    held_out_users: tuple[int, ...] = field(default=(), repr=False, compare=False)
    """Each evaluated user's index, in the order of every model's `per_user_ndcg`."""

    def to_json(self) -> dict[str, Any]:
        """The `--json` object: metrics keyed by name, one entry per model, and the split."""
        return {
            "protocol": self.protocol,
            "source": self.source,
            "split": self.split,
            "models": {
                m.name: {
                    **m.metrics,
                    "train_seconds": round(m.train_seconds, 3),
                    "model_bytes": m.model_bytes,
                    **m.extra,
                }
                for m in self.models
            },
        }

    def table(self) -> str:
        """A fixed-width table for people."""
        keys = [f"{metric}@{k}" for metric in ("recall", "ndcg") for k in self.ks]
        keys.append(f"coverage@{max(self.ks)}")
        header = f"{'model':<12}" + "".join(f"{key:>12}" for key in keys)
        header += f"{'train s':>10}{'model bytes':>14}"
        lines = [
            f"protocol={self.protocol}  users: train {self.split['train_users']}, "
            f"evaluated {self.split['evaluated_users']}  items {self.split['items']}",
            header,
            "-" * len(header),
        ]
        for m in self.models:
            row = f"{m.name:<12}" + "".join(f"{m.metrics[key]:>12.4f}" for key in keys)
            lines.append(row + f"{m.train_seconds:>10.2f}{m.model_bytes:>14,}")
        return "\n".join(lines)


def evaluate(
    interactions: Interactions,
    *,
    protocol: str = "strong",
    ks: Sequence[int] = (10, 20),
    seed: int = 0,
    config: TrainingConfig | None = None,
    extra_baselines: Sequence[Callable[[Positives], Baseline]] = (),
    skip: Sequence[str] = (),
    part: tuple[int, int] | None = None,
    progress: Progress | None = None,
) -> EvaluationReport:
    """Run the protocol and score facetwo (through the SDK) and the baselines on one split.

    `extra_baselines` are more reference models (trained on the split's training positives),
    for example outside libraries in the benchmarks. `skip` leaves out reference baselines
    named in `SKIPPABLE` (EASE's dense inverse dominates a run on a large catalogue); the
    protocol of EVALUATION.md runs them all. `part=(i, k)` (strong protocol) holds out the
    i-th of k disjoint parts of the eligible users, shuffled by `seed` (`strong_split`).

    Raises:
        ValueError: unknown protocol, bad k or an unknown name in `skip`.
        TrainingError: the split leaves no user to evaluate.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}; found {protocol!r}")
    if not ks or any(k < 1 for k in ks):
        raise ValueError(f"k must be >= 1, found {list(ks)}")
    unknown = sorted(set(skip) - set(SKIPPABLE))
    if unknown:
        raise ValueError(f"skip: unknown baseline(s) {unknown}; expected some of {SKIPPABLE}")
    say = progress or (lambda _message: None)
    positives = collapse_positives(interactions)
    split = (
        strong_split(positives, seed=seed, part=part)
        if protocol == "strong"
        else temporal_split(positives)
    )
    if not split.held_out:
        raise TrainingError(
            f"{interactions.source}: no user has the 5+ items the {protocol} protocol needs"
        )
    say(
        f"{protocol} split: {len(np.unique(split.train.user))} training users, "
        f"{len(split.held_out)} evaluated users, {positives.n_items} items"
    )
    k_max = max(ks)
    results = [_evaluate_facetwo(interactions, split, ks, config, say)]
    baselines: list[Baseline] = [Popularity.fit(split.train)]
    if "item-knn" not in skip:
        baselines.append(fit_item_knn(split.train))
    l2 = 0.0
    if "ease" not in skip:
        ease, l2 = fit_ease(split.train, seed=seed)
        baselines.append(ease)
    for fit in extra_baselines:
        say("training an extra baseline")
        baselines.append(fit(split.train))
    for model in baselines:
        say(f"scoring {model.name}")
        ranked = [rank_top_k(model.scores(u.history), u.history, k_max) for u in split.held_out]
        extra = {"l2": round(l2, 4)} if model.name == "ease" else {}
        results.append(
            ModelResult(
                model.name,
                _metrics(ranked, split.held_out, ks, positives.n_items),
                model.train_seconds,
                model.model_bytes,
                extra,
                _per_user_ndcg(ranked, split.held_out, k_max),
            )
        )
    return EvaluationReport(
        protocol=protocol,
        source=interactions.source,
        split={
            "train_users": int(np.unique(split.train.user).size),
            "evaluated_users": len(split.held_out),
            "items": positives.n_items,
            "train_positives": len(split.train),
        },
        models=tuple(results),
        ks=tuple(ks),
        held_out_users=tuple(u.user for u in split.held_out),
    )


def _evaluate_facetwo(
    interactions: Interactions,
    split: Split,
    ks: Sequence[int],
    config: TrainingConfig | None,
    say: Progress,
) -> ModelResult:
    # As `facetwo build` trains it: gift rows say little about the buyer (they feed the gift
    # prior), so the model learns from the others; the baselines see every positive.
    train_rows = _subset(interactions, split.training_rows(interactions)).without_gifts()
    started = time.perf_counter()
    training = train_model(train_rows, config, progress=say)
    key = Ed25519PrivateKey.generate()
    with tempfile.TemporaryDirectory(prefix="facetwo-eval-") as tmp:
        bundle, _parity = export_trained(
            training, train_rows, Path(tmp) / "bundle", catalog=None, model_version=1,
            signing_keys=[key],
        )  # fmt: skip
        seconds = time.perf_counter() - started
        model_bytes = (bundle / MODEL_FILE).stat().st_size
        say(f"scoring facetwo through the client SDK ({len(split.held_out)} devices)")
        code = {item_id: i for i, item_id in enumerate(interactions.items)}
        ranked = [
            _score_on_device(bundle, key, user, interactions.items, code, max(ks))
            for user in split.held_out
        ]
    return ModelResult(
        "facetwo",
        _metrics(ranked, split.held_out, ks, len(interactions.items)),
        seconds,
        model_bytes,
        {
            "form": training.choice.form,
            "size": training.choice.size,
            "l2_factor": training.choice.l2_factor,
            "popularity_weight": training.choice.popularity,
            "popularity_half_life_days": training.choice.popularity_half_life,
            "residual_neighbors": training.choice.neighbors,
            "residual_l2_factor": training.choice.residual_l2_factor,
        },
        _per_user_ndcg(ranked, split.held_out, max(ks)),
    )


def _score_on_device(
    bundle: Path,
    key: Ed25519PrivateKey,
    user: HeldOutUser,
    item_ids: Sequence[str],
    code: dict[str, int],
    k: int,
) -> npt.NDArray[np.int64]:
    """One held-out user as one device: open the bundle, record the history, recommend.

    Each history item's events are recorded by kind at their last time (interest decay works
    from those), and the device's clock stands just after the last of them, where a real device
    would be when it shows the list.
    """
    seen = user.history_last_seen
    last = float(seen[np.isfinite(seen)].max())
    clock = _FixedClock(datetime.fromtimestamp(int(last) + 1, tz=timezone.utc))
    with Recommender.open(bundle, trusted_keys=[key.public_key()], clock=clock) as rec:
        for item, times in zip(user.history, seen, strict=True):
            for kind, when in zip(EVENT_KINDS, times, strict=True):
                if np.isfinite(when):
                    at = datetime.fromtimestamp(int(when), tz=timezone.utc)
                    rec.record(kind, item_ids[int(item)], at=at)
        recommendations = rec.recommend(k=k)
    return np.array([code[r.item_id] for r in recommendations], np.int64)


@dataclass(frozen=True)
class _FixedClock:
    moment: datetime

    def now(self) -> datetime:
        return self.moment


def _subset(interactions: Interactions, rows: npt.NDArray[np.bool_]) -> Interactions:
    return interactions.subset(rows)


def _metrics(
    ranked: Sequence[npt.NDArray[np.int64]],
    users: Sequence[HeldOutUser],
    ks: Sequence[int],
    n_items: int,
) -> dict[str, float]:
    out: dict[str, float] = {}
    for k in ks:
        out[f"recall@{k}"] = float(
            np.mean([recall_at_k(r, u.targets, k) for r, u in zip(ranked, users, strict=True)])
        )
        out[f"ndcg@{k}"] = float(
            np.mean([ndcg_at_k(r, u.targets, k) for r, u in zip(ranked, users, strict=True)])
        )
    k_max = max(ks)
    seen = np.unique(np.concatenate([r[:k_max] for r in ranked])) if ranked else np.zeros(0)
    out[f"coverage@{k_max}"] = float(seen.size) / max(n_items, 1)
    return out


def _per_user_ndcg(
    ranked: Sequence[npt.NDArray[np.int64]], users: Sequence[HeldOutUser], k: int
) -> tuple[float, ...]:
    return tuple(float(ndcg_at_k(r, u.targets, k)) for r, u in zip(ranked, users, strict=True))


def write_json(report: EvaluationReport, path: Path) -> None:
    """Write the `--json` object."""
    path.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
