"""What left the device: every network request the SDK made, readable by the shopper.

`LedgerFetcher` wraps any `Fetcher` (the updater's injection point) and writes an entry to the
`NetworkLedger` *before* each request goes out, then completes it with the bytes received, so a
request can never happen without its entry: if the entry cannot be written, the request is not
made. Entries are sealed in the private store like everything else.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone

from .errors import FetchError, StoreError
from .features import Clock, SystemClock
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
        if not isinstance(url, str) or not url:
            raise ValueError("url must be a non-empty str")
        if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 0:
            raise ValueError(f"nbytes must be an int >= 0, found {nbytes!r}")
        if not isinstance(at, datetime) or at.utcoffset() is None:
            raise TypeError("at must be a timezone-aware datetime")
        if status not in LEDGER_STATUSES:
            raise ValueError(
                f"status must be one of {', '.join(LEDGER_STATUSES)}, found {status!r}"
            )
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
                out.append(
                    LedgerEntry(
                        url=str(row["u"]),
                        nbytes=int(row["n"]),
                        at=datetime.fromtimestamp(float(row["t"]), timezone.utc),
                        status=str(row["s"]),
                    )
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise StoreError(f"ledger record {_id} is malformed") from exc
        return out


class LedgerFetcher:
    """A `Fetcher` that writes every request it makes into a `NetworkLedger`."""

    def __init__(
        self, inner: Fetcher, ledger: NetworkLedger, *, clock: Clock | None = None
    ) -> None:
        self._inner = inner
        self._ledger = ledger
        self._clock = clock or SystemClock()

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
