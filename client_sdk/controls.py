"""Step "controls": what the shopper holds and decides, all local and reversible.

`ShopperState` is the shopper's private data — events, dismissals, the pause switch, the reorder
shortcut state (pins, snoozes, "bought elsewhere" marks) — written to the `PrivateStore` first and
mirrored in memory only once the write is durable, so memory never holds what the file lost. It
answers these questions for every request:

- what is suppressed: a dismissed item and every variant of its group (`suppressed_mask`);
- what to keep of a ranked list: one item per variant group (`one_per_group`);
- what the shopper may take or erase: `export` (readable JSON) and `forget` (one item or all;
  erased records are overwritten and the WAL truncated);
- what reorder shortcuts learn from: `purchase_history` (the stored purchase events per local
  calendar day, kept current incrementally) and `shortcut_state` (one sealed setting record).

`dismiss(..., "bought_elsewhere")` of a consumable also records a purchase, which resets its
reorder clock; of anything else it leaves a "bought elsewhere" mark that restarts the clock
without a purchase. `undismiss` takes either back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

import numpy as np
import numpy.typing as npt

from .bundle import BundleCatalog
from .errors import StoreError, StoreFullError
from .features import EVENT_KINDS, Event, EventLog, InterestConfig, offset_minutes
from .ledger import NetworkLedger
from .purchases import PurchaseHistory
from .shortcut_state import ShortcutState, forget_item, mark_bought_elsewhere
from .shortcut_state import prune as prune_shortcut_state
from .store import PrivateStore, StoreWriter

logger = logging.getLogger(__name__)

DISMISS_REASONS = ("not_interested", "bought_elsewhere")
INTENTS = ("for_me", "gift")
EXPORT_FORMAT = "facetwo-export/1"
_SETTINGS_ID = 1
_SHORTCUTS_ID = 2


@dataclass(frozen=True, slots=True)
class Dismissal:
    """The shopper said "not interested" or "bought elsewhere" about an item."""

    item_id: str
    reason: str
    at: datetime
    purchase_ids: tuple[int, ...] = ()
    """Purchases this dismissal recorded (bought elsewhere, consumables): undone with it."""
    own: bool = True
    """Bought elsewhere by the shopper for themselves while learning: not in gift intent or
    while paused (only such a dismissal may leave the item's kind out of their lists)."""


class ShopperState:
    """Events, dismissals, the pause switch and the shortcut state, persisted and mirrored.
    Not thread-safe alone."""

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
        self.shortcut_state = ShortcutState()
        self._purchases: PurchaseHistory | None = None  # built on first use, then kept current
        self._latest_purchase_day = 0
        self._suppressed: npt.NDArray[np.bool_] | None = None
        self.group_code: npt.NDArray[np.int64] = catalog.group_code  # read-only, shared
        for record_id, row in store.records("event"):
            self.log.append(record_id, _event_from(row, record_id))
        for record_id, row in store.records("control"):
            dismissal = _dismissal_from(row, record_id)
            self.dismissals[dismissal.item_id] = (record_id, dismissal)
        for record_id, row in store.records("setting"):
            if record_id == _SETTINGS_ID:
                self.paused = bool(row.get("paused", False))
            elif record_id == _SHORTCUTS_ID:
                self.shortcut_state = _shortcut_state_from(row, record_id)
        NetworkLedger(store).entries()  # authenticate the ledger too, before any write

    # -- events ----------------------------------------------------------------------------

    def add_event(self, event: Event) -> None:
        """Write one event; it is in memory once it is durable.

        Raises:
            StoreFullError, StoreError: not written (and not in memory).
        """
        record_id = self._store.add("event", _event_payload(event))
        self.log.append(record_id, event)
        self._note_purchase(event)

    def prune(self, now: datetime, interest: InterestConfig) -> int:
        """Delete events older than their kind's retention; returns how many.

        Raises:
            StoreError: the deletion failed (nothing was deleted).
        """
        expired = self.log.expired(now, interest)
        if expired:
            with self._store.transaction() as writer:
                writer.delete("event", expired)
            gone = set(expired)
            if any(e.kind == "purchase" for rid, e in self.log.rows() if rid in gone):
                self._purchases = None
            self.log.remove(expired)
            logger.info("retention: deleted %d expired events", len(expired))
        return len(expired)

    # -- controls --------------------------------------------------------------------------

    def dismiss(
        self, item_id: str, reason: str, at: datetime, *, learning: bool, for_me: bool = True
    ) -> None:
        """Suppress an item and its variants; for a consumable bought elsewhere, record a purchase
        (when `learning`), else restart its reorder clock with a mark (when `for_me`: a gift
        bought elsewhere says nothing about the shopper's own pantry).

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
        shortcut_state = self.shortcut_state
        if reason == "bought_elsewhere" and purchase is None and for_me:
            shortcut_state = mark_bought_elsewhere(shortcut_state, item_id, now=at)
        with self._store.transaction() as writer:
            if purchase is not None:
                purchases.append(writer.add("event", _event_payload(purchase)))
            dismissal = Dismissal(
                item_id,
                reason,
                at.astimezone(timezone.utc),
                tuple(purchases),
                own=for_me and learning,
            )
            if previous is not None:
                writer.delete("control", [previous[0]])
            control_id = writer.add("control", _dismissal_payload(dismissal))
            if shortcut_state is not self.shortcut_state:
                shortcut_state = self._put_shortcut_state(writer, shortcut_state, at)
        if purchase is not None:
            self.log.append(purchases[-1], purchase)
            self._note_purchase(purchase)
        self.dismissals[item_id] = (control_id, dismissal)
        self.shortcut_state = shortcut_state
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
        shortcut_state = self.shortcut_state
        if dismissal.reason == "bought_elsewhere" and item_id in shortcut_state.bought_elsewhere:
            marks = {k: v for k, v in shortcut_state.bought_elsewhere.items() if k != item_id}
            shortcut_state = ShortcutState(
                shortcut_state.pinned, shortcut_state.snoozed_until, marks
            )
        with self._store.transaction() as writer:
            writer.delete("control", [control_id])
            writer.delete("event", dismissal.purchase_ids)
            if shortcut_state is not self.shortcut_state:
                self._put_shortcut_state(writer, shortcut_state, None)
        if dismissal.purchase_ids:
            self.log.remove(dismissal.purchase_ids)
            self._purchases = None
        del self.dismissals[item_id]
        self.shortcut_state = shortcut_state
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

    # -- reorder shortcuts -----------------------------------------------------------------

    def purchase_history(self, today: date) -> PurchaseHistory:
        """The stored purchases per item and local calendar day, none after `today`.

        Built from the event log on first use, then kept current as purchases are recorded: a
        call costs O(1) unless a purchase is dated after `today` (a clock moved back).
        """
        if self._purchases is None:
            self._purchases, self._latest_purchase_day = _purchase_history(self.log.rows(), None)
        if self._latest_purchase_day <= today.toordinal():
            return self._purchases
        return _purchase_history(self.log.rows(), today)[0]

    def set_shortcut_state(
        self, state: ShortcutState, now: datetime, *, purchase: Event | None = None
    ) -> None:
        """Persist the shortcut state (ended snoozes and old marks dropped), with an optional
        purchase in the same transaction.

        Raises:
            StoreFullError: the state is over the store's record size; nothing was written.
            StoreError: nothing was written.
        """
        with self._store.transaction() as writer:
            record_id = None if purchase is None else writer.add("event", _event_payload(purchase))
            state = self._put_shortcut_state(writer, state, now)
        if purchase is not None and record_id is not None:
            self.log.append(record_id, purchase)
            self._note_purchase(purchase)
        self.shortcut_state = state

    def _put_shortcut_state(
        self, writer: StoreWriter, state: ShortcutState, now: datetime | None
    ) -> ShortcutState:
        if now is not None:
            state = prune_shortcut_state(state, now=now)
        if not (state.pinned or state.snoozed_until or state.bought_elsewhere):
            writer.delete("setting", [_SHORTCUTS_ID])
            return state
        try:
            writer.put("setting", _SHORTCUTS_ID, {"shortcuts": state.to_dict()})
        except ValueError as exc:  # over max_record_bytes: say so without the record
            raise StoreFullError(
                f"shortcut state of {len(state.pinned)} pins, {len(state.snoozed_until)} "
                f"snoozes and {len(state.bought_elsewhere)} marks is over the store's record size"
            ) from exc
        return state

    def _note_purchase(self, event: Event) -> None:
        if event.kind != "purchase" or self._purchases is None:
            return
        day = _local_day(event)
        self._purchases = self._purchases.with_purchase(event.item_id, day, event.quantity)
        self._latest_purchase_day = max(self._latest_purchase_day, day.toordinal())

    def bought_elsewhere(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """Known items the shopper said they bought elsewhere for themselves (not as a gift,
        not while paused), and when (Unix seconds)."""
        index = self._catalog.index
        found = [
            (index[item_id], dismissal.at.timestamp())
            for item_id, (_rid, dismissal) in self.dismissals.items()
            if dismissal.reason == "bought_elsewhere" and dismissal.own and item_id in index
        ]
        return (
            np.array([i for i, _ in found], np.int64),
            np.array([t for _, t in found], np.float64),
        )

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
        """Erase one item's events, dismissal and shortcut marks, or everything (events,
        dismissals, ledger, pins, snoozes and marks).

        The pause switch is an instruction, not data about the shopper: it stays.

        Raises:
            StoreError: nothing was erased.
        """
        if item_id is None:
            with self._store.transaction() as writer:
                for table in ("event", "control", "ledger"):
                    writer.delete_all(table)
                writer.delete("setting", [_SHORTCUTS_ID])
            self.log.remove(self.log.record_ids())
            self.dismissals.clear()
            self.shortcut_state = ShortcutState()
        else:
            events = self.log.record_ids(item_id)
            control = self.dismissals.get(item_id)
            shortcut_state = forget_item(self.shortcut_state, item_id)
            with self._store.transaction() as writer:
                writer.delete("event", events)
                if control is not None:
                    writer.delete("control", [control[0]])
                if shortcut_state is not self.shortcut_state:
                    self._put_shortcut_state(writer, shortcut_state, None)
            self.log.remove(events)
            self.dismissals.pop(item_id, None)
            self.shortcut_state = shortcut_state
        self._purchases = None
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
            "reorder_shortcuts": self._shortcuts_json(),
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

    def _shortcuts_json(self) -> dict[str, Any]:
        state = self.shortcut_state
        return {
            "pinned": [{"item_id": i, "title": self.title_of(i)} for i in state.pinned],
            "snoozed": [
                {"item_id": i, "title": self.title_of(i), "until": day.isoformat()}
                for i, day in state.snoozed_until.items()
            ],
            "bought_elsewhere": [
                {"item_id": i, "title": self.title_of(i), "on": day.isoformat()}
                for i, day in state.bought_elsewhere.items()
            ],
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
        "o": dismissal.own,
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
            own=bool(row.get("o", True)),
        )
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise StoreError(f"dismissal record {record_id} is malformed") from exc


def _local_day(event: Event) -> date:
    """The shopper's calendar day of an event, in the offset it was recorded with."""
    return (event.at + timedelta(minutes=event.utc_offset_minutes)).date()


def _purchase_history(
    rows: Iterable[tuple[int, Event]], until: date | None
) -> tuple[PurchaseHistory, int]:
    """The purchases of `rows` (none after `until`) and the ordinal of the latest day."""
    purchases = []
    latest = 0
    for _record_id, event in rows:
        if event.kind != "purchase":
            continue
        day = _local_day(event)
        if until is not None and day > until:
            continue
        purchases.append((event.item_id, day, event.quantity))
        latest = max(latest, day.toordinal())
    return PurchaseHistory.from_purchases(purchases), latest


def _shortcut_state_from(row: Mapping[str, Any], record_id: int) -> ShortcutState:
    try:
        return ShortcutState.from_dict(row["shortcuts"])
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreError(f"setting record {record_id} is malformed") from exc
