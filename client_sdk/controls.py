"""Step "controls": what the shopper holds and decides, all local and reversible.

`ShopperState` is the shopper's private data — events, dismissals, the pause switch — written to
the `PrivateStore` first and mirrored in memory only once the write is durable, so memory never
holds what the file lost. It answers three questions for every request:

- what is suppressed: a dismissed item and every variant of its group (`suppressed_mask`);
- what to keep of a ranked list: one item per variant group (`one_per_group`);
- what the shopper may take or erase: `export` (readable JSON) and `forget` (one item or all;
  erased records are overwritten and the WAL truncated).

`dismiss(..., "bought_elsewhere")` of a consumable also records a purchase, which resets its
reorder clock; `undismiss` takes both back.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import numpy.typing as npt

from .bundle import BundleCatalog
from .errors import StoreError
from .features import EVENT_KINDS, Event, EventLog, InterestConfig, offset_minutes
from .ledger import NetworkLedger
from .store import PrivateStore

logger = logging.getLogger(__name__)

DISMISS_REASONS = ("not_interested", "bought_elsewhere")
INTENTS = ("for_me", "gift")
EXPORT_FORMAT = "facetwo-export/1"
_SETTINGS_ID = 1


@dataclass(frozen=True, slots=True)
class Dismissal:
    """The shopper said "not interested" or "bought elsewhere" about an item."""

    item_id: str
    reason: str
    at: datetime
    purchase_ids: tuple[int, ...] = ()
    """Purchases this dismissal recorded (bought elsewhere, consumables): undone with it."""


class ShopperState:
    """Events, dismissals and the pause switch, persisted and mirrored. Not thread-safe alone."""

    def __init__(self, store: PrivateStore, catalog: BundleCatalog) -> None:
        """Load (and so authenticate) every record of the store.

        Raises:
            StoreUnreadableError: a record does not authenticate.
            StoreError: a record is malformed.
        """
        self._store = store
        self._catalog = catalog
        self.log = EventLog(catalog.index, len(catalog))
        self.dismissals: dict[str, tuple[int, Dismissal]] = {}
        self.paused = False
        self._suppressed: npt.NDArray[np.bool_] | None = None
        _unique, codes = np.unique([e.group for e in catalog.entries], return_inverse=True)
        self.group_code: npt.NDArray[np.int64] = codes.astype(np.int64).reshape(-1)
        for record_id, row in store.records("event"):
            self.log.append(record_id, _event_from(row, record_id))
        for record_id, row in store.records("control"):
            dismissal = _dismissal_from(row, record_id)
            self.dismissals[dismissal.item_id] = (record_id, dismissal)
        for _record_id, row in store.records("setting"):
            self.paused = bool(row.get("paused", False))
        NetworkLedger(store).entries()  # authenticate the ledger too, before any write

    # -- events ----------------------------------------------------------------------------

    def add_event(self, event: Event) -> None:
        """Write one event; it is in memory once it is durable.

        Raises:
            StoreFullError, StoreError: not written (and not in memory).
        """
        record_id = self._store.add("event", _event_payload(event))
        self.log.append(record_id, event)

    def prune(self, now: datetime, interest: InterestConfig) -> int:
        """Delete events older than their kind's retention; returns how many.

        Raises:
            StoreError: the deletion failed (nothing was deleted).
        """
        expired = self.log.expired(now, interest)
        if expired:
            with self._store.transaction() as writer:
                writer.delete("event", expired)
            self.log.remove(expired)
            logger.info("retention: deleted %d expired events", len(expired))
        return len(expired)

    # -- controls --------------------------------------------------------------------------

    def dismiss(self, item_id: str, reason: str, at: datetime, *, learning: bool) -> None:
        """Suppress an item and its variants; for a consumable bought elsewhere, record a purchase.

        Raises:
            StoreFullError, StoreError: nothing was written.
        """
        previous = self.dismissals.get(item_id)
        purchases = list(previous[1].purchase_ids) if previous else []
        index = self._catalog.index.get(item_id)
        consumable = index is not None and self._catalog.entries[index].consumable
        purchase: Event | None = None
        if reason == "bought_elsewhere" and consumable and learning:
            purchase = Event(
                "purchase", item_id, 1.0, at.astimezone(timezone.utc), offset_minutes(at)
            )
        with self._store.transaction() as writer:
            if purchase is not None:
                purchases.append(writer.add("event", _event_payload(purchase)))
            dismissal = Dismissal(item_id, reason, at.astimezone(timezone.utc), tuple(purchases))
            if previous is not None:
                writer.delete("control", [previous[0]])
            control_id = writer.add("control", _dismissal_payload(dismissal))
        if purchase is not None:
            self.log.append(purchases[-1], purchase)
        self.dismissals[item_id] = (control_id, dismissal)
        self._suppressed = None

    def undismiss(self, item_id: str) -> bool:
        """Take a dismissal back, with any purchase it recorded; False if there was none.

        Raises:
            StoreError: nothing was changed.
        """
        found = self.dismissals.get(item_id)
        if found is None:
            return False
        control_id, dismissal = found
        with self._store.transaction() as writer:
            writer.delete("control", [control_id])
            writer.delete("event", dismissal.purchase_ids)
        self.log.remove(dismissal.purchase_ids)
        del self.dismissals[item_id]
        self._suppressed = None
        return True

    def set_paused(self, paused: bool) -> None:
        """Persist the pause switch.

        Raises:
            StoreError: not written.
        """
        with self._store.transaction() as writer:
            writer.put("setting", _SETTINGS_ID, {"paused": paused})
        self.paused = paused

    def suppressed_mask(self) -> npt.NDArray[np.bool_]:
        """Items never to show: every dismissed item and all variants of its group."""
        if self._suppressed is None:
            known = [self._catalog.index[i] for i in self.dismissals if i in self._catalog.index]
            if known:
                self._suppressed = np.isin(self.group_code, self.group_code[known])
            else:
                self._suppressed = np.zeros(len(self._catalog), bool)
        return self._suppressed

    def group_mask(self, item_index: int) -> npt.NDArray[np.bool_]:
        """The item and its variants."""
        mask: npt.NDArray[np.bool_] = self.group_code == self.group_code[item_index]
        return mask

    # -- the shopper's data ----------------------------------------------------------------

    def forget(self, item_id: str | None) -> None:
        """Erase one item's events and dismissal, or everything (events, dismissals, ledger).

        The pause switch is an instruction, not data about the shopper: it stays.

        Raises:
            StoreError: nothing was erased.
        """
        if item_id is None:
            with self._store.transaction() as writer:
                for table in ("event", "control", "ledger"):
                    writer.delete_all(table)
            self.log.remove(self.log.record_ids())
            self.dismissals.clear()
        else:
            events = self.log.record_ids(item_id)
            control = self.dismissals.get(item_id)
            with self._store.transaction() as writer:
                writer.delete("event", events)
                if control is not None:
                    writer.delete("control", [control[0]])
            self.log.remove(events)
            self.dismissals.pop(item_id, None)
        self._suppressed = None
        self._store.compact()

    def export(self, now: datetime) -> dict[str, Any]:
        """Everything held about the shopper, readable."""
        return {
            "format": EXPORT_FORMAT,
            "exported_at": now.isoformat(),
            "store": {
                "where": "memory" if self._store.in_memory else "encrypted file on this device",
                "schema_version": self._store.schema_version,
                "encryption": "AES-256-GCM, one sealed record each",
            },
            "settings": {"learning_paused": self.paused},
            "events": [self._event_json(e) for _rid, e in self.log.rows()],
            "dismissals": [self._dismissal_json(d) for _rid, d in self.dismissals.values()],
            "network_ledger": [
                {"url": e.url, "bytes": e.nbytes, "at": e.at.isoformat(), "status": e.status}
                for e in NetworkLedger(self._store).entries()
            ],
        }

    def title_of(self, item_id: str) -> str | None:
        """The catalog title, or None for an item this model does not know."""
        index = self._catalog.index.get(item_id)
        return None if index is None else self._catalog.entries[index].title

    def _event_json(self, event: Event) -> dict[str, Any]:
        local = event.at.astimezone(timezone(timedelta(minutes=event.utc_offset_minutes)))
        return {
            "kind": event.kind,
            "item_id": event.item_id,
            "title": self.title_of(event.item_id),
            "quantity": event.quantity,
            "at": local.isoformat(),
        }

    def _dismissal_json(self, dismissal: Dismissal) -> dict[str, Any]:
        return {
            "item_id": dismissal.item_id,
            "title": self.title_of(dismissal.item_id),
            "reason": dismissal.reason,
            "at": dismissal.at.isoformat(),
            "recorded_purchase": bool(dismissal.purchase_ids),
        }


def one_per_group(
    indices: npt.NDArray[np.int64], group_code: npt.NDArray[np.int64], k: int
) -> tuple[list[int], int]:
    """Positions of the first item of each variant group in a ranked list (at most k), and how
    many later variants were dropped on the way."""
    seen: set[int] = set()
    kept: list[int] = []
    dropped = 0
    for position, code in enumerate(group_code[indices].tolist()):
        if code in seen:
            dropped += 1
            continue
        seen.add(code)
        kept.append(position)
        if len(kept) == k:
            break
    return kept, dropped


def _event_payload(event: Event) -> dict[str, Any]:
    return {
        "k": event.kind,
        "i": event.item_id,
        "q": event.quantity,
        "t": event.at.timestamp(),
        "o": event.utc_offset_minutes,
    }


def _event_from(row: Mapping[str, Any], record_id: int) -> Event:
    try:
        kind = str(row["k"])
        if kind not in EVENT_KINDS:
            raise ValueError(kind)
        return Event(
            kind=kind,
            item_id=str(row["i"]),
            quantity=float(row["q"]),
            at=datetime.fromtimestamp(float(row["t"]), timezone.utc),
            utc_offset_minutes=int(row.get("o", 0)),
        )
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise StoreError(f"event record {record_id} is malformed") from exc


def _dismissal_payload(dismissal: Dismissal) -> dict[str, Any]:
    return {
        "i": dismissal.item_id,
        "r": dismissal.reason,
        "t": dismissal.at.timestamp(),
        "e": list(dismissal.purchase_ids),
    }


def _dismissal_from(row: Mapping[str, Any], record_id: int) -> Dismissal:
    try:
        reason = str(row["r"])
        if reason not in DISMISS_REASONS:
            raise ValueError(reason)
        return Dismissal(
            item_id=str(row["i"]),
            reason=reason,
            at=datetime.fromtimestamp(float(row["t"]), timezone.utc),
            purchase_ids=tuple(int(i) for i in row.get("e", [])),
        )
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise StoreError(f"dismissal record {record_id} is malformed") from exc
