"""Step "quantize": float weights -> int8 with one scale per row.

Per-row scales keep every item's neighbour list at full relative precision: the largest
weight of each row maps to +-127, so the error of any weight is at most scale/2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class QuantizedRows:
    """int8 values and the float32 scale of each row: w ~= values * scale[:, None]."""

    values: npt.NDArray[np.int8]
    scale: npt.NDArray[np.float32]

    def dequantize(self) -> npt.NDArray[np.float32]:
        """The float32 weights these int8 values stand for."""
        return (self.values.astype(np.float32) * self.scale[:, None]).astype(np.float32)


def quantize_rows(weights: npt.NDArray[np.floating]) -> QuantizedRows:
    """Quantise a 2-D float matrix to int8 with a symmetric scale per row.

    Raises:
        ValueError: the matrix is not 2-D or holds a NaN or infinity.
    """
    if weights.ndim != 2:
        raise ValueError(f"weights must be 2-D, found shape {weights.shape}")
    if not np.all(np.isfinite(weights)):
        raise ValueError("weights hold NaN or infinity")
    w = weights.astype(np.float32, copy=False)
    peak = np.abs(w).max(axis=1) if w.shape[1] else np.zeros(w.shape[0], np.float32)
    scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    values = np.clip(np.rint(w / scale[:, None]), -127, 127).astype(np.int8)
    return QuantizedRows(values=values, scale=scale)
