"""Step "parity check": the exported model must score like the float32 numpy reference.

A quantised graph that drifted (a wrong scale, a broken op) fails the export instead of
shipping. Compared on sample histories: the largest score difference, and the overlap of the
top-k lists.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from client_sdk.scoring import Scorer

from .errors import ParityError

ReferenceScorer = Callable[
    [npt.NDArray[np.int64], npt.NDArray[np.float32]], npt.NDArray[np.float32]
]
"""(history indices, history weights) -> float32 scores of every item."""


@dataclass(frozen=True, slots=True)
class ParityReport:
    """What the parity check measured."""

    histories: int
    max_abs_diff: float
    min_top_k_overlap: float
    mean_top_k_overlap: float


def check_parity(
    reference: ReferenceScorer,
    scorer: Scorer,
    histories: Sequence[tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]],
    *,
    k: int = 20,
    atol: float = 3e-2,
    min_overlap: float = 0.9,
) -> ParityReport:
    """Score `histories` with both and fail when they disagree.

    `atol` is relative to the largest reference score of each history, so it holds for any scale.

    Raises:
        ParityError: a score differs by more than `atol` (relative), or the mean top-k overlap is
            under `min_overlap`.
    """
    if not histories:
        raise ParityError("no sample histories to check parity on")
    worst, overlaps, bad = 0.0, [], 0
    for index, weight in histories:
        expected = reference(index, weight)
        expected[index] = -np.inf
        kk = min(k, int(np.isfinite(expected).sum()))
        result = scorer.score(index, weight, exclude=index, k=kk)
        scale = max(float(np.max(np.abs(expected[np.isfinite(expected)]), initial=0.0)), 1e-12)
        diff = float(np.max(np.abs(result.scores - expected[result.indices]), initial=0.0)) / scale
        ref_top = set(np.argsort(-expected, kind="stable")[:kk].tolist())
        overlaps.append(len(ref_top & set(result.indices.tolist())) / max(kk, 1))
        worst = max(worst, diff)
        bad += diff > atol
    report = ParityReport(len(histories), worst, min(overlaps), float(np.mean(overlaps)))
    if bad or report.mean_top_k_overlap < min_overlap:
        raise ParityError(
            f"max abs diff {worst:.2e} (relative) > atol {atol:.0e} on {bad}/{len(histories)} "
            f"histories, or mean top-{k} overlap {report.mean_top_k_overlap:.3f} < {min_overlap}"
        )
    return report
