"""Releases as values, and the checks every registry write shares (channel names, versions
that only go up, UTC timestamps)."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any

from server.errors import ConflictError

__all__ = ["Release", "is_valid_channel"]

_CHANNEL_PATTERN = "[a-z][a-z0-9-]{0,31}"
_CHANNEL = re.compile(_CHANNEL_PATTERN)
Files = dict[str, tuple[str, int]]
"""file name -> (sha256 hex, size in bytes)"""


@dataclass(frozen=True, slots=True)
class Release:
    """One published bundle on one channel.

    Attributes:
        channel: The channel name.
        model_version: The manifest's ``model_version``.
        manifest_sha256: Digest of the exact ``manifest.json`` bytes.
        signature_sha256: Digest of the exact ``manifest.sig`` bytes.
        files: Name -> ``(sha256, size)`` for every file the manifest lists (read-only).
        published_at: When it was published (UTC).
    """

    channel: str
    model_version: int
    manifest_sha256: str
    signature_sha256: str
    files: Mapping[str, tuple[str, int]]
    published_at: datetime


def is_valid_channel(channel: object) -> bool:
    """Tell whether ``channel`` is a valid channel name (``[a-z][a-z0-9-]{0,31}``).

    Args:
        channel: Anything.

    Returns:
        True for a valid name.
    """
    return isinstance(channel, str) and _CHANNEL.fullmatch(channel) is not None


def make_release(
    channel: str, row: tuple[Any, ...], files: Mapping[str, tuple[str, int]]
) -> Release:
    """Build a Release from ``(model_version, manifest, signature, published_at)``."""
    version, manifest, signature, published_at = row
    published = datetime.fromisoformat(published_at)
    return Release(channel, version, manifest, signature, MappingProxyType(dict(files)), published)


def check_channel(channel: str) -> None:
    if not is_valid_channel(channel):
        raise ValueError(f"channel: expected {_CHANNEL_PATTERN}, got {channel!r}")


def check_newer(conn: sqlite3.Connection, channel: str, model_version: int) -> None:
    row = conn.execute(
        "SELECT MAX(model_version) FROM releases WHERE channel = ?", (channel,)
    ).fetchone()
    if row[0] is not None and model_version <= row[0]:
        raise ConflictError(
            f"channel {channel!r}: model_version {model_version} is not greater than the "
            f"latest published {row[0]}"
        )


def utc_text(now: datetime | None) -> str:
    if now is not None and now.utcoffset() is None:
        raise ValueError("now: must be timezone-aware")
    return (now or datetime.now(timezone.utc)).astimezone(timezone.utc).isoformat()
