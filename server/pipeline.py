"""load -> train -> export -> sign: the `facetwo build` job as one function."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client_sdk.bundle import (
    CONTEXT_PRIOR_FILE,
    GIFT_PRIOR_FILE,
    REORDER_PRIORS_FILE,
    CatalogEntry,
)
from model_export.export import export_bundle
from model_export.parity import ParityReport

from .context_prior import ContextPriorConfig, context_prior_file, gift_prior_file
from .data import EVENT_KINDS, Catalog, Interactions, load_catalog, load_interactions
from .reorder_tuning import TuningConfig, reorder_priors_file
from .splits import collapse_positives
from .training import Progress, TrainingConfig, TrainingResult, train_model

logger = logging.getLogger(__name__)

_PARITY_HISTORIES = 200
DEFAULT_CONTEXT_PRIOR = ContextPriorConfig()
"""Every bundle ships a context prior (popular per month and part of day) unless told not to."""
DEFAULT_REORDER_TUNING = TuningConfig()
"""Every bundle ships reorder priors (from its purchases) unless told not to."""


@dataclass(frozen=True)
class BuildReport:
    """What `build_bundle` made and measured."""

    bundle_dir: Path
    model_version: int
    training: TrainingResult
    parity: ParityReport
    bundle_bytes: int
    seconds: float


def default_model_version(now: datetime | None = None) -> int:
    """A version that grows with time: the UTC build time as YYYYMMDDHHMMSS."""
    return int((now or datetime.now(timezone.utc)).strftime("%Y%m%d%H%M%S"))


def build_bundle(
    interactions_path: Path,
    out_dir: Path,
    *,
    signing_keys: Sequence[Ed25519PrivateKey],
    catalog_path: Path | None = None,
    model_version: int | None = None,
    config: TrainingConfig | None = None,
    valid_for: timedelta = timedelta(days=90),
    now: datetime | None = None,
    progress: Progress | None = None,
    extra_files: Mapping[str, bytes] | None = None,
    context_prior: ContextPriorConfig | None = DEFAULT_CONTEXT_PRIOR,
    reorder_priors: TuningConfig | None = DEFAULT_REORDER_TUNING,
) -> BuildReport:
    """Load and validate the CSVs, train, export, check parity and sign into `out_dir`.

    `extra_files` (name -> bytes, e.g. `reorder_priors.json`) are signed into the bundle too.
    `context_prior` computes `context_prior.json` from the interactions (None: none shipped),
    and, when the log flags gifts, `gift_prior.json` from the gift rows under the same
    settings. Gift rows say little about the buyer's own taste: the model and the reorder
    priors learn from the other rows.
    `reorder_priors` tunes the device's reorder blending on a validation cut of the purchases
    and computes `reorder_priors.json` from all of them (None, or a log without purchases: none
    shipped, and devices use the default priors).

    Raises:
        DataError: an input file is malformed (file, line and field named).
        TrainingError: the data cannot train a model.
        ExportError, ParityError: the export failed its checks; nothing is written.
    """
    started = time.perf_counter()
    say = progress or (lambda _message: None)
    interactions = load_interactions(interactions_path)
    catalog = load_catalog(catalog_path) if catalog_path is not None else None
    say(
        f"loaded {len(interactions)} interactions"
        + (f", {len(catalog)} catalog items" if catalog else "")
    )
    own = interactions.without_gifts()
    if own is not interactions:
        say(f"{len(interactions) - len(own)} gift rows feed the gift prior, not the model")
    training = train_model(own, config, progress=say)
    extra_files = dict(extra_files or {})
    if context_prior is not None and CONTEXT_PRIOR_FILE not in extra_files:
        extra_files[CONTEXT_PRIOR_FILE] = context_prior_file(interactions, context_prior)
    if context_prior is not None and GIFT_PRIOR_FILE not in extra_files:
        gifts = gift_prior_file(interactions, context_prior)
        if gifts is not None:
            extra_files[GIFT_PRIOR_FILE] = gifts
    if reorder_priors is not None and REORDER_PRIORS_FILE not in extra_files:
        priors = _reorder_priors_file(own, catalog, reorder_priors, say)
        if priors is not None:
            extra_files[REORDER_PRIORS_FILE] = priors
    version = model_version if model_version is not None else default_model_version(now)
    bundle_dir, parity = export_trained(
        training,
        own,
        out_dir,
        catalog=catalog,
        model_version=version,
        signing_keys=signing_keys,
        valid_for=valid_for,
        now=now,
        extra_files=extra_files,
    )
    size = sum(p.stat().st_size for p in bundle_dir.iterdir())
    say(
        f"bundle v{version}: {size / 1024:.0f} KiB, parity on {parity.histories} histories "
        f"(max relative score diff {parity.max_abs_diff:.1e}, "
        f"top-20 overlap {parity.mean_top_k_overlap:.3f})"
    )
    return BuildReport(bundle_dir, version, training, parity, size, time.perf_counter() - started)


def export_trained(
    training: TrainingResult,
    interactions: Interactions,
    out_dir: Path,
    *,
    catalog: Catalog | None,
    model_version: int,
    signing_keys: Sequence[Ed25519PrivateKey],
    valid_for: timedelta = timedelta(days=90),
    now: datetime | None = None,
    extra_files: Mapping[str, bytes] | None = None,
) -> tuple[Path, ParityReport]:
    """Export a trained model into a signed bundle, parity-checked on real training histories.

    Raises:
        ExportError, ParityError: the export failed its checks; nothing is written.
    """
    return export_bundle(
        training.model,
        out_dir,
        catalog=catalog_entries(training.model.item_ids, catalog),
        model_version=model_version,
        signing_keys=signing_keys,
        sample_histories=sample_histories(interactions, training, _PARITY_HISTORIES),
        valid_for=valid_for,
        now=now,
        extra_files=extra_files,
    )


def _reorder_priors_file(
    interactions: Interactions,
    catalog: Catalog | None,
    tuning: TuningConfig,
    say: Progress,
) -> bytes | None:
    """The reorder priors of a release, or None when the log holds no purchase."""
    if not (interactions.event == EVENT_KINDS.index("purchase")).any():
        say("no purchases in the log: no reorder priors (devices use the defaults)")
        return None
    started = time.perf_counter()
    data = reorder_priors_file(interactions, catalog, tuning=tuning)
    say(
        f"reorder priors: {len(data) / 1024:.0f} KiB, blending tuned on a validation cut "
        f"({time.perf_counter() - started:.1f}s)"
    )
    return data


def catalog_entries(item_ids: Sequence[str], catalog: Catalog | None) -> list[CatalogEntry]:
    """The bundle's catalog in model-index order; ids missing from the catalog keep their id."""
    entries = []
    for item_id in item_ids:
        item = catalog.get(item_id) if catalog is not None else None
        if item is None:
            entries.append(CatalogEntry(item_id=item_id, title=item_id, group=item_id))
        else:
            entries.append(
                CatalogEntry(
                    item_id=item_id,
                    title=item.title,
                    category=item.category,
                    group=item.group or item_id,
                    consumable=item.consumable,
                    kind=item.kind,
                )
            )
    return entries


def sample_histories(
    interactions: Interactions, training: TrainingResult, count: int
) -> list[tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]]:
    """Real histories of training users for the parity check (never shipped anywhere)."""
    positives = collapse_positives(interactions, training.model.event_weights)
    bounds = np.flatnonzero(np.diff(positives.user)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [positives.user.size]])
    rng = np.random.default_rng(0)
    picks = rng.choice(starts.size, size=min(count, starts.size), replace=False)
    return [
        (positives.item[starts[p] : ends[p]], positives.strength[starts[p] : ends[p]])
        for p in np.sort(picks)
    ]
