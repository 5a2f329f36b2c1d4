"""Errors raised by model_export."""

from __future__ import annotations


class ExportError(Exception):
    """Base class for every error raised by model_export."""


class ParityError(ExportError):
    """The exported model's scores disagree with the numpy reference beyond the tolerance."""
