"""The export pipeline: trained weights -> quantised ONNX graph -> parity check -> signed bundle.

`SparseItemModel` is the hand-over point from training: what the server trained, in model-index
order, with no user in it. `export_bundle` turns it into a bundle a device can verify and run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client_sdk.bundle import (
    CATALOG_FILE,
    MANIFEST_FILE,
    MODEL_FILE,
    SIGNATURE_FILE,
    CatalogEntry,
)
from client_sdk.scoring import Scorer

from .errors import ExportError
from .graph import (
    build_hybrid_scoring_graph,
    build_lowrank_scoring_graph,
    build_sparse_scoring_graph,
)
from .parity import ParityReport, check_parity
from .quantize import quantize_rows
from .writer import encode_catalog, write_bundle

logger = logging.getLogger(__name__)


PARITY_ATOL = {"sparse-item-item": 3e-2, "low-rank": 1e-1, "low-rank+sparse": 2e-1}
"""Largest score difference allowed against the float32 reference, relative to the history's
largest score. Sparse: int8 weights alone (each within 1/254 of its row's largest). Low-rank:
int8 factors times an 8-bit quantised user vector, where dot products that nearly cancel carry
a larger relative error. Low-rank plus sparse: the same error, measured against a score the
sparse part (negative weights among it) may have shrunk; on a Complete Journey model the
difference was under 0.01 for half of 1,800 histories and reached 0.11 on one. Ranking
agreement (top-20 overlap >= 0.9) is checked for all."""


@dataclass(frozen=True)
class SparseItemModel:
    """Item-item weights kept sparse: every item's m strongest neighbours.

    score[j] = base_score[j] + sum over history items i of x_i * weight[i, r] where
    neighbor_index[i, r] == j.
    """

    item_ids: tuple[str, ...]
    neighbor_index: npt.NDArray[np.int64]
    neighbor_weight: npt.NDArray[np.float32]
    base_score: npt.NDArray[np.float32]
    event_weights: Mapping[str, float] = field(default_factory=dict)
    info: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.item_ids)
        if self.neighbor_index.ndim != 2 or self.neighbor_index.shape[0] != n:
            raise ExportError(f"neighbor_index shape {self.neighbor_index.shape} != ({n}, m)")
        if self.neighbor_weight.shape != self.neighbor_index.shape:
            raise ExportError(
                f"neighbor_weight shape {self.neighbor_weight.shape} != "
                f"neighbor_index shape {self.neighbor_index.shape}"
            )
        if self.base_score.shape != (n,):
            raise ExportError(f"base_score shape {self.base_score.shape} != ({n},)")

    def reference_scores(
        self, history_index: npt.NDArray[np.int64], history_weight: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.float32]:
        """float32 scores of every item for one history, in numpy (the parity reference)."""
        scores: npt.NDArray[np.float32] = np.array(self.base_score, dtype=np.float32, copy=True)
        rows = self.neighbor_weight[history_index] * history_weight[:, None]
        np.add.at(scores, self.neighbor_index[history_index].ravel(), rows.ravel())
        return scores


@dataclass(frozen=True)
class LowRankModel:
    """Item factors A: score[j] = base_score[j] + sum over history items i of x_i * A_i . A_j."""

    item_ids: tuple[str, ...]
    factors: npt.NDArray[np.float32]
    base_score: npt.NDArray[np.float32]
    event_weights: Mapping[str, float] = field(default_factory=dict)
    info: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.item_ids)
        if self.factors.ndim != 2 or self.factors.shape[0] != n:
            raise ExportError(f"factors shape {self.factors.shape} != ({n}, d)")
        if self.base_score.shape != (n,):
            raise ExportError(f"base_score shape {self.base_score.shape} != ({n},)")

    def reference_scores(
        self, history_index: npt.NDArray[np.int64], history_weight: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.float32]:
        """float32 scores of every item for one history, in numpy (the parity reference)."""
        user = (self.factors[history_index] * history_weight[:, None]).sum(axis=0)
        scores: npt.NDArray[np.float32] = (self.factors @ user + self.base_score).astype(np.float32)
        return scores


@dataclass(frozen=True)
class LowRankSparseModel:
    """Low-rank factors plus sparse weights (either sign): score = the low-rank form's score
    plus sum over history items i of x_i * neighbor_weight[i, r] at neighbor_index[i, r]."""

    item_ids: tuple[str, ...]
    factors: npt.NDArray[np.float32]
    neighbor_index: npt.NDArray[np.int64]
    neighbor_weight: npt.NDArray[np.float32]
    base_score: npt.NDArray[np.float32]
    event_weights: Mapping[str, float] = field(default_factory=dict)
    info: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        LowRankModel(self.item_ids, self.factors, self.base_score)
        SparseItemModel(self.item_ids, self.neighbor_index, self.neighbor_weight, self.base_score)

    def reference_scores(
        self, history_index: npt.NDArray[np.int64], history_weight: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.float32]:
        """float32 scores of every item for one history, in numpy (the parity reference)."""
        low_rank = LowRankModel(self.item_ids, self.factors, self.base_score)
        scores = low_rank.reference_scores(history_index, history_weight)
        rows = self.neighbor_weight[history_index] * history_weight[:, None]
        np.add.at(scores, self.neighbor_index[history_index].ravel(), rows.ravel())
        return scores


TrainedModel = SparseItemModel | LowRankModel | LowRankSparseModel
"""What training hands to export: one of the compact forms of the linear autoencoder."""


def build_graph(model: TrainedModel) -> tuple[bytes, dict[str, Any]]:
    """Quantise the model's weights, build its graph; return the ONNX bytes and model facts."""
    if isinstance(model, SparseItemModel):
        graph = build_sparse_scoring_graph(
            model.neighbor_index, quantize_rows(model.neighbor_weight), model.base_score
        )
        facts: dict[str, Any] = {
            "kind": "sparse-item-item",
            "neighbors_per_item": int(model.neighbor_index.shape[1]),
        }
    elif isinstance(model, LowRankModel):
        graph = build_lowrank_scoring_graph(quantize_rows(model.factors), model.base_score)
        facts = {"kind": "low-rank", "rank": int(model.factors.shape[1])}
    else:
        graph = build_hybrid_scoring_graph(
            quantize_rows(model.factors),
            model.neighbor_index,
            quantize_rows(model.neighbor_weight),
            model.base_score,
        )
        facts = {
            "kind": "low-rank+sparse",
            "rank": int(model.factors.shape[1]),
            "neighbors_per_item": int(model.neighbor_index.shape[1]),
        }
    return graph.SerializeToString(), facts


def export_bundle(
    model: TrainedModel,
    out_dir: Path,
    *,
    catalog: Sequence[CatalogEntry],
    model_version: int,
    signing_keys: Sequence[Ed25519PrivateKey],
    sample_histories: Sequence[tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]],
    valid_for: timedelta = timedelta(days=90),
    now: datetime | None = None,
    extra_files: Mapping[str, bytes] | None = None,
) -> tuple[Path, ParityReport]:
    """Quantise, build the graph, check parity on `sample_histories`, write the signed bundle.

    `extra_files` (name -> bytes, for example `reorder_priors.json`) are written beside the
    model and signed with it; devices verify them like every listed file.

    Raises:
        ExportError: the catalog does not match the model, the graph is invalid, or an extra
            file would replace a bundle file.
        ParityError: the exported model scores differently from the float32 reference.
    """
    if tuple(entry.item_id for entry in catalog) != model.item_ids:
        raise ExportError("catalog entries must list the model's items in model-index order")
    model_bytes, facts = build_graph(model)
    report = check_parity(
        model.reference_scores,
        Scorer(model_bytes, len(model.item_ids)),
        sample_histories,
        atol=PARITY_ATOL[facts["kind"]],
    )
    logger.info(
        "parity on %d histories: max rel diff %.2e, mean top-20 overlap %.3f",
        report.histories,
        report.max_abs_diff,
        report.mean_top_k_overlap,
    )
    info = {
        **facts,
        "n_items": len(model.item_ids),
        "weights": "int8-per-row",
        "event_weights": dict(model.event_weights),
        "parity": {
            "histories": report.histories,
            "max_rel_diff": round(report.max_abs_diff, 6),
            "mean_top_k_overlap": round(report.mean_top_k_overlap, 4),
        },
        **dict(model.info),
    }
    files = {MODEL_FILE: model_bytes, CATALOG_FILE: encode_catalog(catalog)}
    for name, data in (extra_files or {}).items():
        if name in files or name in (MANIFEST_FILE, SIGNATURE_FILE):
            raise ExportError(f"extra file {name!r} would replace a bundle file")
        files[name] = bytes(data)
    path = write_bundle(
        out_dir,
        files=files,
        model_version=model_version,
        signing_keys=signing_keys,
        model_info=info,
        valid_for=valid_for,
        now=now,
    )
    return path, report
