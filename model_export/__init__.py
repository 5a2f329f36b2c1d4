"""Trained weights -> ONNX scoring graph -> quantized, parity-checked, signed bundle."""

from __future__ import annotations
