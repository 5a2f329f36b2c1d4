"""Shared opening of the bundle's versioned JSON side files (priors, context prior)."""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from .errors import FormatError


def load_versioned_json(
    data: bytes, file: str, name: str, version: int | Collection[int]
) -> dict[str, Any]:
    """Parse verified bytes as a JSON object tagged `{"format": name, "version": version}`
    (or any of several versions; a boolean is not a version).

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
    versions = (version,) if isinstance(version, int) else tuple(version)
    found = raw.get("version")
    if raw.get("format") != name or type(found) is not int or found not in versions:
        wanted = " or ".join(str(v) for v in versions)
        raise FormatError(
            f"{file}: expected format {name!r} version {wanted}, "
            f"found {raw.get('format')!r} version {found!r}"
        )
    return raw
