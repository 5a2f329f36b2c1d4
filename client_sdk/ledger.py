"""What left the device: every network request the SDK made, readable by the shopper.

`LedgerFetcher` wraps any `Fetcher` (the updater's injection point) and writes an entry to a
ledger *before* each request goes out, then completes it with the bytes received, so a request
can never happen without its entry: if the entry cannot be written, the request is not made.

Two ledgers keep the same entries:

- `NetworkLedger`, sealed in the shopper's private store (`Recommender.ledger_fetcher()`);
- `FileLedger`, a JSON-lines file beside the installed bundles: the `Updater` keeps one by
  default, so its requests are in a ledger even when the host wires none. It holds only what
  every device sends alike (public bundle URLs, sizes, times), so it is not encrypted.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .errors import FetchError, StoreError
from .features import Clock, SystemClock

if TYPE_CHECKING:  # the updater imports this module
    from .store import PrivateStore
    from .updater import Fetcher

logger = logging.getLogger(__name__)

_TABLE = "ledger"
LEDGER_STATUSES = ("sent", "ok", "failed")


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One request: where to, how many bytes came back, when, and how it ended."""

    url: str
    nbytes: int
    at: datetime
    status: str
    """"ok", "failed", or "sent" (the app stopped before the answer came)."""


class Ledger(Protocol):
    """Where `LedgerFetcher` writes: `NetworkLedger` or `FileLedger`."""

    def record_request(self, url: str, nbytes: int, at: datetime, *, status: str = "ok") -> int:
        """Write one entry; return its id. Raises StoreError when it cannot be written."""
        ...

    def complete(self, entry_id: int, url: str, nbytes: int, at: datetime, *, ok: bool) -> None:
        """Finish an entry written with status "sent". Raises StoreError."""
        ...

    def entries(self) -> list[LedgerEntry]:
        """Every entry, oldest first. Raises StoreError."""
        ...


class NetworkLedger:
    """The log of network requests, kept in a `PrivateStore`."""

    def __init__(self, store: PrivateStore) -> None:
        self._store = store

    def record_request(self, url: str, nbytes: int, at: datetime, *, status: str = "ok") -> int:
        """Write one entry; returns its id (for `complete`).

        Raises:
            TypeError, ValueError: a bad argument (named in the message).
            StoreError: the entry could not be written.
        """
        _check_entry(url, nbytes, at, status)
        return self._store.add(_TABLE, _payload(url, nbytes, at, status))

    def complete(self, entry_id: int, url: str, nbytes: int, at: datetime, *, ok: bool) -> None:
        """Finish an entry written with status "sent".

        Raises:
            StoreError: the entry could not be written.
        """
        with self._store.transaction() as writer:
            writer.put(_TABLE, entry_id, _payload(url, nbytes, at, "ok" if ok else "failed"))

    def entries(self) -> list[LedgerEntry]:
        """Every entry, oldest first.

        Raises:
            StoreError: the store cannot be read.
        """
        out = []
        for _id, row in self._store.records(_TABLE):
            try:
                out.append(_entry(row))
            except (KeyError, TypeError, ValueError) as exc:
                raise StoreError(f"ledger record {_id} is malformed") from exc
        return out


class FileLedger:
    """A network ledger in a JSON-lines file: one line per request, one per completion.

    Each line is written with one `O_APPEND` write and fsynced before the request goes out.
    Entry ids are random, so two updaters sharing the file never reuse one. A line torn by a
    crash (or a full disk) at the end of the file is cut off before the next write, so it never
    runs into the next line; reading skips a torn last line, and names any other malformed
    line. Writing never depends on reading the file, so no old damage can stop an update.
    Past `max_entries` the file is rewritten (atomically) with the newest half.
    """

    def __init__(self, path: Path | str, *, max_entries: int = 10_000) -> None:
        """Use (or create on first write) the ledger file at `path`.

        Raises:
            ValueError: `max_entries` is below 2.
        """
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 2:
            raise ValueError(f"max_entries must be an int >= 2, found {max_entries!r}")
        self.path = Path(path)
        self._max = max_entries
        self._lock = threading.Lock()
        self._lines: int | None = None  # lines in the file, counted at the first write

    def record_request(self, url: str, nbytes: int, at: datetime, *, status: str = "ok") -> int:
        """Append one entry; returns its id (for `complete`).

        Raises:
            TypeError, ValueError: a bad argument (named in the message).
            StoreError: the file cannot be written.
        """
        _check_entry(url, nbytes, at, status)
        entry_id = secrets.randbits(62)
        with self._lock:
            self._append({"i": entry_id, **_payload(url, nbytes, at, status)})
            if self._lines is not None and self._lines > 2 * self._max:
                self._compact()
        return entry_id

    def complete(self, entry_id: int, url: str, nbytes: int, at: datetime, *, ok: bool) -> None:
        """Append the outcome of an entry written with status "sent".

        Raises:
            StoreError: the file cannot be written.
        """
        with self._lock:
            self._append({"i": entry_id, **_payload(url, nbytes, at, "ok" if ok else "failed")})

    def entries(self) -> list[LedgerEntry]:
        """Every entry, in the order they were first written (an entry's last line wins).

        Raises:
            StoreError: the file cannot be read, or a line other than a torn last one is
                malformed (the message names it).
        """
        with self._lock:
            return [_entry(row) for row in self._fold().values()]

    def _fold(self) -> dict[int, dict[str, object]]:
        try:
            lines = self.path.read_bytes().split(b"\n")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot read the network ledger: {exc}") from exc
        rows: dict[int, dict[str, object]] = {}
        last = len(lines) - 1 if lines[-1] else len(lines) - 2
        for number, line in enumerate(lines, start=1):
            if not line:
                continue
            try:
                row = json.loads(line)
                entry_id = row["i"]
                _entry(row)
                if type(entry_id) is not int:
                    raise TypeError("i")
            except (ValueError, KeyError, TypeError, RecursionError) as exc:
                if number - 1 == last:  # torn by a crash mid-write: the request never went out
                    logger.warning("%s: skipped a torn last line", self.path.name)
                    continue
                raise StoreError(f"{self.path}:{number}: malformed ledger line") from exc
            rows[entry_id] = row  # a later line updates the entry, which keeps its place
        return rows

    def _append(self, row: dict[str, object]) -> None:
        data = json.dumps(row, separators=(",", ":")).encode("utf-8") + b"\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                if self._lines is None:
                    self._lines = _count_lines(fd)
                _cut_torn_tail(fd, self.path.name)
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot write the network ledger: {exc}") from exc
        self._lines += 1

    def _compact(self) -> None:
        """Keep the newest half of the entries (called under the lock). Damage in the file
        only postpones this: it never stops a request."""
        try:
            rows = list(self._fold().values())[-(self._max // 2) :]
        except StoreError:
            logger.warning("%s: not compacted, it has a malformed line", self.path.name)
            return
        data = b"".join(
            json.dumps(row, separators=(",", ":")).encode("utf-8") + b"\n" for row in rows
        )
        temporary = self.path.with_name(self.path.name + ".tmp")
        try:
            with temporary.open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except OSError as exc:  # the entry is written: the request may go out all the same
            logger.warning("%s: not compacted: %s", self.path.name, exc)
            return
        self._lines = len(rows)


def _read_at(fd: int, size: int, offset: int) -> bytes:
    """`size` bytes at `offset` (portable, unlike os.pread; every write is O_APPEND)."""
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, size)


def _count_lines(fd: int) -> int:
    count, offset = 0, 0
    while block := _read_at(fd, 1 << 20, offset):
        count += block.count(b"\n")
        offset += len(block)
    return count


def _cut_torn_tail(fd: int, name: str) -> None:
    """Cut a line left unfinished by a crash or a full disk off the end of the file, so the
    next line does not run into it."""
    size = os.fstat(fd).st_size
    if size == 0 or _read_at(fd, 1, size - 1) == b"\n":
        return
    end = size
    while end > 0:
        start = max(0, end - 4096)
        newline = _read_at(fd, end - start, start).rfind(b"\n")
        if newline >= 0:
            os.ftruncate(fd, start + newline + 1)
            break
        end = start
    else:
        os.ftruncate(fd, 0)
    logger.warning("%s: cut off a torn last line (%d bytes)", name, size - os.fstat(fd).st_size)


class LedgerFetcher:
    """A `Fetcher` that writes every request it makes into a ledger."""

    def __init__(self, inner: Fetcher, ledger: Ledger, *, clock: Clock | None = None) -> None:
        self._inner = inner
        self._ledger = ledger
        self._clock = clock or SystemClock()

    @property
    def ledger(self) -> Ledger:
        """Where the requests are written."""
        return self._ledger

    def fetch(self, url: str, *, max_bytes: int) -> bytes:
        """Log the request, make it through the inner fetcher, log what came back.

        Raises:
            FetchError: the ledger entry could not be written (the request was not made), or
                the inner fetcher failed.
        """
        at = self._clock.now()
        try:
            entry = self._ledger.record_request(url, 0, at, status="sent")
        except StoreError as exc:
            raise FetchError(f"not fetching {url}: the network ledger cannot be written") from exc
        try:
            data = self._inner.fetch(url, max_bytes=max_bytes)
        except BaseException:
            self._complete(entry, url, 0, at, ok=False)
            raise
        self._complete(entry, url, len(data), at, ok=True)
        return data

    def _complete(self, entry: int, url: str, nbytes: int, at: datetime, *, ok: bool) -> None:
        try:
            self._ledger.complete(entry, url, nbytes, at, ok=ok)
        except StoreError:
            # The request is already in the ledger as "sent"; only its size is missing.
            logger.warning("could not complete network ledger entry %d", entry)


def _payload(url: str, nbytes: int, at: datetime, status: str) -> dict[str, object]:
    return {"u": url, "n": nbytes, "t": at.timestamp(), "s": status}


def _entry(row: dict[str, object]) -> LedgerEntry:
    """Raises KeyError, TypeError, ValueError: a malformed row."""
    status = str(row["s"])
    if status not in LEDGER_STATUSES:
        raise ValueError(f"status {status!r}")
    return LedgerEntry(
        url=str(row["u"]),
        nbytes=int(row["n"]),  # type: ignore[call-overload]
        at=datetime.fromtimestamp(float(row["t"]), timezone.utc),  # type: ignore[arg-type]
        status=status,
    )


def _check_entry(url: str, nbytes: int, at: datetime, status: str) -> None:
    if not isinstance(url, str) or not url:
        raise ValueError("url must be a non-empty str")
    if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 0:
        raise ValueError(f"nbytes must be an int >= 0, found {nbytes!r}")
    if not isinstance(at, datetime) or at.utcoffset() is None:
        raise TypeError("at must be a timezone-aware datetime")
    if status not in LEDGER_STATUSES:
        raise ValueError(f"status must be one of {', '.join(LEDGER_STATUSES)}, found {status!r}")
