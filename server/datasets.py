"""Dataset uploads for training jobs (the "load" step, reached over the admin API).

An upload is streamed to a private temporary file under a size limit, validated whole with the
same loaders as ``facetwo build`` (:func:`server.data.load_interactions` / ``load_catalog``),
and only then stored as a blob with a ``datasets`` row. A bad row is refused with the file name,
line and field, and nothing is stored.
"""

from __future__ import annotations

import logging
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

from server.data import load_catalog, load_interactions
from server.db import transaction
from server.errors import DataError, NotFoundError, PayloadTooLargeError
from server.registry import Registry

__all__ = ["DATASET_KINDS", "Dataset", "get_dataset", "list_datasets", "save_dataset"]

logger = logging.getLogger(__name__)

DATASET_KINDS = ("interactions", "catalog")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_CHUNK_BYTES = 1 << 20
_COLUMNS = "id, kind, name, sha256, size, rows, uploaded_at"


@dataclass(frozen=True, slots=True)
class Dataset:
    """A validated, stored upload.

    Attributes:
        id: Its number, used to start jobs.
        kind: ``interactions`` or ``catalog``.
        name: The file name given at upload.
        sha256: Digest of the stored bytes.
        size: Size in bytes.
        rows: Data rows (interactions) or items (catalog).
        uploaded_at: Upload time (UTC).
    """

    id: int
    kind: str
    name: str
    sha256: str
    size: int
    rows: int
    uploaded_at: datetime

    def to_json(self) -> dict[str, Any]:
        """The JSON form used by the admin API."""
        return {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "sha256": self.sha256,
            "size": self.size,
            "rows": self.rows,
            "uploaded_at": self.uploaded_at.isoformat(),
        }


def save_dataset(
    registry: Registry,
    stream: BinaryIO,
    *,
    kind: str,
    name: str,
    max_bytes: int,
    now: datetime | None = None,
) -> Dataset:
    """Stream, validate and store one dataset upload.

    Args:
        registry: Where the dataset is stored.
        stream: The request body.
        kind: ``interactions`` or ``catalog``.
        name: A flat file name (``[A-Za-z0-9][A-Za-z0-9._-]*``); it names the file in errors.
        max_bytes: The largest upload accepted.
        now: Upload time (timezone-aware); the current time when None.

    Returns:
        The stored dataset.

    Raises:
        ValueError: Unknown ``kind`` or a bad ``name``.
        PayloadTooLargeError: More than ``max_bytes``; nothing stored.
        DataError: The file is invalid (``name:line: field ...``); nothing stored.
    """
    if kind not in DATASET_KINDS:
        raise ValueError(f"kind: expected one of {', '.join(DATASET_KINDS)}, got {kind!r}")
    if _NAME.fullmatch(name) is None or ".." in name:
        raise ValueError(f"name: expected a flat [A-Za-z0-9._-] file name, got {name!r}")
    uploaded_at = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    scratch = registry.data_dir / "tmp"
    scratch.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch, prefix="upload-") as temp:
        path = Path(temp) / name
        _copy_capped(stream, path, max_bytes)
        try:
            loaded = load_interactions(path) if kind == "interactions" else load_catalog(path)
        except DataError as exc:
            raise DataError(str(exc).replace(str(path), name)) from None
        rows = len(loaded)
        digest = registry.blobs.put_file(path)
        size = path.stat().st_size
    with registry.database.connect() as conn, transaction(conn):
        cursor = conn.execute(
            "INSERT INTO datasets (kind, name, sha256, size, rows, uploaded_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (kind, name, digest, size, rows, uploaded_at.isoformat()),
        )
        dataset_id = int(cursor.lastrowid or 0)
    logger.info("stored %s dataset #%d: %d rows, %d bytes", kind, dataset_id, rows, size)
    return Dataset(dataset_id, kind, name, digest, size, rows, uploaded_at)


def get_dataset(registry: Registry, dataset_id: int) -> Dataset:
    """Return one dataset.

    Raises:
        NotFoundError: No dataset has this id.
    """
    rows = registry.database.read(f"SELECT {_COLUMNS} FROM datasets WHERE id = ?", (dataset_id,))  # noqa: S608 - constant columns
    if not rows:
        raise NotFoundError(f"no dataset #{dataset_id}")
    return _dataset(rows[0])


def list_datasets(registry: Registry) -> list[Dataset]:
    """Return every dataset, newest first."""
    rows = registry.database.read(f"SELECT {_COLUMNS} FROM datasets ORDER BY id DESC")  # noqa: S608 - constant columns
    return [_dataset(row) for row in rows]


def _dataset(row: tuple[Any, ...]) -> Dataset:
    id_, kind, name, sha256, size, rows, uploaded_at = row
    return Dataset(id_, kind, name, sha256, size, rows, datetime.fromisoformat(uploaded_at))


def _copy_capped(stream: BinaryIO, path: Path, max_bytes: int) -> None:
    written = 0
    with path.open("wb") as out:
        while chunk := stream.read(_CHUNK_BYTES):
            written += len(chunk)
            if written > max_bytes:
                raise PayloadTooLargeError(f"upload is larger than the limit of {max_bytes} bytes")
            out.write(chunk)
