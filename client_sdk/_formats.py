"""Shared opening of the bundle's versioned JSON side files (priors, context prior)."""

from __future__ import annotations

import json
from typing import Any

from .errors import FormatError


def load_versioned_json(data: bytes, file: str, name: str, version: int) -> dict[str, Any]:
    """Parse verified bytes as a JSON object tagged `{"format": name, "version": version}`.

    Raises:
        FormatError: not UTF-8 JSON, JSON nested deeper than the decoder allows (about 1000
            levels), not an object, or another format or version.
    """
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormatError(f"{file}: not UTF-8 JSON") from exc
    except RecursionError as exc:
        raise FormatError(f"{file}: JSON nested too deeply") from exc
    if not isinstance(raw, dict):
        raise FormatError(f"{file}: expected an object, found {type(raw).__name__}")
    if raw.get("format") != name or raw.get("version") != version:
        raise FormatError(
            f"{file}: expected format {name!r} version {version}, "
            f"found {raw.get('format')!r} version {raw.get('version')!r}"
        )
    return raw
