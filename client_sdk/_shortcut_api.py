"""The Recommender's reorder-shortcut methods (a mixin: the shopper's one-tap reorders)."""

from __future__ import annotations

import threading
from datetime import date, datetime
from typing import TYPE_CHECKING

from ._shortcut_desk import ShortcutDesk, check_position
from ._shortcut_desk import check_k as check_shortcut_k
from .features import check_item_id
from .shortcut_state import ReorderPayload
from .shortcuts import Shortcut

__all__ = ["ShortcutControls"]


class ShortcutControls:
    """`shortcuts`, `reorder`, `pin`, `unpin` and `snooze`, over the owner's `ShortcutDesk`,
    under the owner's lock."""

    _lock: threading.Lock
    _intent: str
    _shortcuts: ShortcutDesk

    if TYPE_CHECKING:  # provided by the Recommender this is mixed into

        def _now(self, now: datetime | None, *, name: str = "now") -> datetime: ...

        def _check_open(self) -> None: ...

        def _maybe_prune(self, now: datetime) -> None: ...

        def _learning(self) -> bool: ...

    def shortcuts(self, k: int = 5, *, now: datetime | None = None) -> list[Shortcut]:
        """Dash-style reorder shortcuts: pinned items first, in the shopper's order, then the
        items most likely bought within the window (`ShortcutConfig.window_days`), each with
        its expected date, confidence and reason ("you buy this about every 12 days; last
        bought 11 days ago").

        Due-ness is learned on the device from the purchases in the store (recorded, reordered,
        or bought elsewhere), blended with the bundle's reorder priors. Never shown unless
        pinned: durable goods bought once (catalog items not marked consumable, when the catalog
        marks any; else items the priors say are rarely bought again), snoozed items, items
        dismissed as "not interested". Pinned items always show, even beyond `k`. In "gift"
        intent the list is empty: nothing shaped by the shopper's own history is shown. While
        learning is paused the list still shows what was learned before.

        Raises:
            TypeError: k is not an int.
            ValueError: k is outside [1, 10000], or a bad `now`.
        """
        check_shortcut_k(k)
        when = self._now(now)
        with self._lock:
            self._check_open()
            self._maybe_prune(when)
            if self._intent == "gift":
                return []
            desk = self._shortcuts
            snapshot = desk.snapshot(when)
        return desk.due(snapshot, k, when)

    def reorder(self, item_id: str, *, now: datetime | None = None) -> ReorderPayload:
        """One-tap reorder: what the host app should order, the item and the shopper's usual
        quantity (the median of their recent purchase days; the shop's usual one for an item
        never bought here). It is recorded as a purchase, which restarts the item's clock and
        clears its snooze and "bought elsewhere" mark.

        While learning is paused, or in "gift" intent, nothing is recorded or changed; in "gift"
        intent the quantity is the shop's usual one, not the shopper's.

        Raises:
            TypeError, ValueError: a bad `item_id` or `now`.
            StoreFullError, StoreError: the purchase was not recorded; nothing changed.
        """
        check_item_id(item_id)
        when = self._now(now)
        with self._lock:
            self._check_open()
            gift = self._intent == "gift"
            return self._shortcuts.reorder(item_id, when, gift=gift, learning=self._learning())

    def pin(self, item_id: str, *, position: int | None = None) -> None:
        """Pin a reorder shortcut: it always shows, before the due ones, in the shopper's order
        (at the end, or at `position`; pinning a pinned item moves it). Kept across restarts.

        Raises:
            TypeError, ValueError: a bad `item_id` or `position`, or over 100 pinned items.
            StoreError: not saved.
        """
        check_item_id(item_id)
        check_position(position)
        with self._lock:
            self._check_open()
            self._shortcuts.pin(item_id, position)

    def unpin(self, item_id: str) -> bool:
        """Unpin a shortcut (it may still show when due); False if it was not pinned.

        Raises:
            TypeError, ValueError: a bad `item_id`.
            StoreError: not saved.
        """
        check_item_id(item_id)
        with self._lock:
            self._check_open()
            return self._shortcuts.unpin(item_id)

    def snooze(self, item_id: str, days: int, *, now: datetime | None = None) -> date:
        """Leave an item out of the due shortcuts for `days` days (a pinned one still shows);
        returns the first day it shows again. Kept across restarts.

        Raises:
            TypeError, ValueError: a bad `item_id` or `now`; `days` outside [1, 366].
            StoreError: not saved.
        """
        check_item_id(item_id)
        when = self._now(now)
        with self._lock:
            self._check_open()
            return self._shortcuts.snooze(item_id, days, when)
