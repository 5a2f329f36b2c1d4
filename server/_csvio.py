"""CSV plumbing for the loaders in `server.data`: open, iterate records, read the header.

Private to `server.data`, which owns the columns and the field rules. Every failure here is a
`DataError` naming the file and the 1-based physical line where the record starts (the header is
line 1): a missing or unopenable file, malformed CSV, bytes that are not UTF-8 (found by a slow
second pass, only after a decode error), a header without a required column or with a repeated one.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from .errors import DataError

Records = Iterator[tuple[int, list[str]]]  # (line where the record starts, its fields)


def show(raw: str) -> str:
    """Quote a raw field for a message, cut to 60 characters."""
    return repr(raw if len(raw) <= 60 else raw[:57] + "...")


def _undecodable_line(path: Path) -> tuple[int, str]:
    """Find the first physical line that is not UTF-8 (the slow path, after a decode error)."""
    number = 0
    with path.open("rb") as binary:
        for chunk in binary:
            for line in chunk.splitlines():  # the same breaks as universal newlines
                number += 1
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    return number, f"{exc.reason} (byte 0x{line[exc.start]:02x})"
    return number + 1, "truncated UTF-8 sequence at end of file"


def _iter_records(stream: IO[str], path: Path, source: str) -> Records:
    """Yield (start line, fields) for each non-blank record; read failures become DataError."""
    reader = csv.reader(stream, strict=True)
    end = 0
    try:
        for row in reader:
            start, end = end + 1, reader.line_num
            if row and (len(row) > 1 or row[0].strip()):
                yield start, row
    except csv.Error as exc:
        where = f" (detected on line {reader.line_num})" if reader.line_num > end + 1 else ""
        raise DataError(f"{source}:{end + 1}: malformed CSV{where}: {exc}") from exc
    except UnicodeDecodeError as exc:
        line, reason = _undecodable_line(path)
        raise DataError(f"{source}:{line}: not valid UTF-8: {reason}") from exc
    except OSError as exc:
        raise DataError(f"{source}: read failed: {exc}") from exc


@contextmanager
def open_records(path: Path, source: str) -> Iterator[Records]:
    """Open a UTF-8 CSV file (a BOM is accepted) and yield its non-blank records.

    Raises:
        DataError: the path is a directory, missing or unopenable; or, while iterating, the file
            is malformed CSV, not UTF-8 or fails to read.
    """
    if path.is_dir():
        raise DataError(f"{source}: is a directory, expected a CSV file")
    try:
        stream = path.open(encoding="utf-8-sig", newline="")
    except FileNotFoundError as exc:
        raise DataError(f"{source}: no such file") from exc
    except OSError as exc:
        raise DataError(f"{source}: cannot open: {exc.strerror or exc}") from exc
    with stream:
        yield _iter_records(stream, path, source)


def read_header(
    records: Records, source: str, columns: tuple[tuple[str, ...], ...]
) -> tuple[dict[str, int], int, list[str]]:
    """Read the header row: column positions, the number of fields and the unknown columns.

    Args:
        records: the file's records; the first one is consumed as the header.
        source: the file as named in messages.
        columns: the required column names, then the optional ones.

    Returns:
        Column name -> position (names stripped, lower-cased), the number of fields, and the
        names that are neither required nor optional, in file order.

    Raises:
        DataError: the file is empty, a column name repeats, or a required column is missing.
    """
    required, optional = columns
    first = next(records, None)
    if first is None:
        raise DataError(f"{source}: empty file; expected a header row {','.join(required)}")
    line, row = first
    names = [name.strip().lower() for name in row]
    index: dict[str, int] = {}
    for position, name in enumerate(names):
        if name in index:
            raise DataError(f"{source}:{line}: duplicate column {name!r}")
        if name:
            index[name] = position
    missing = [name for name in required if name not in index]
    if missing:
        found = ", ".join(show(name) for name in names[:20]) + (", ..." if len(names) > 20 else "")
        raise DataError(
            f"{source}:{line}: missing required column(s) {', '.join(missing)}; found: {found} "
            f"(the first row must be a header: {','.join(required)})"
        )
    unknown = [name for name in names if name not in required and name not in optional]
    return index, len(row), unknown


def width_error(source: str, line: int, width: int, row: list[str]) -> DataError:
    """The error for a record whose field count differs from the header's."""
    return DataError(f"{source}:{line}: expected {width} fields, found {len(row)}")
