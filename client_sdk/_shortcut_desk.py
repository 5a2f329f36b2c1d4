"""The plumbing behind `Recommender`'s reorder-shortcut methods (step "controls").

Private to `client_sdk.recommender`. `ShortcutDesk` joins the shopper's state (`ShopperState`),
the bundle's reorder priors and `ShortcutConfig` to the pure functions of `shortcuts.py` and
`shortcut_state.py`. It takes no lock and checks no intent or pause switch: the `Recommender`
holds its lock around every call that reads or writes the state and decides what may be learned.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime

from .bundle import BundleCatalog
from .controls import ShopperState
from .extras import BundleExtras
from .features import Clock, validate_event
from .purchases import PurchaseHistory
from .shortcut_state import ReorderPayload, ShortcutState
from .shortcut_state import pin as pin_shortcut
from .shortcut_state import snooze as snooze_shortcut
from .shortcut_state import unpin as unpin_shortcut
from .shortcuts import MAX_K as MAX_SHORTCUTS
from .shortcuts import Shortcut, ShortcutConfig
from .shortcuts import reorder as reorder_shortcut
from .shortcuts import shortcuts as due_shortcuts

# What `ShortcutDesk.due` needs, read under the lock: history, shortcut state, exclusions.
Snapshot = tuple[PurchaseHistory, ShortcutState, frozenset[str]]


def check_k(k: int) -> None:
    """Check the `k` of `Recommender.shortcuts`.

    Raises:
        TypeError: k is not an int.
        ValueError: k is outside [1, MAX_K].
    """
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k must be int, not {type(k).__name__}")
    if not 1 <= k <= MAX_SHORTCUTS:
        raise ValueError(f"k must be in [1, {MAX_SHORTCUTS}], found {k}")


def check_position(position: int | None) -> None:
    """Check the `position` of `Recommender.pin`.

    Raises:
        TypeError: position is neither an int nor None.
        ValueError: position is negative.
    """
    if position is not None:
        if isinstance(position, bool) or not isinstance(position, int):
            raise TypeError(f"position must be int or None, not {type(position).__name__}")
        if position < 0:
            raise ValueError(f"position must be >= 0, found {position}")


class ShortcutDesk:
    """One shopper's reorder shortcuts over a `ShopperState`; call under the owner's lock."""

    def __init__(
        self,
        catalog: BundleCatalog,
        state: ShopperState,
        extras: BundleExtras,
        config: ShortcutConfig,
        clock: Clock,
    ) -> None:
        self._catalog = catalog
        self._clock = clock
        self._state = state
        self._extras = extras
        self._config = config
        # A catalog that marks no item consumable says nothing about which goods are durable.
        self._marks_consumables = bool(catalog.consumable.any())
        self._bought_once: tuple[PurchaseHistory, frozenset[str]] | None = None

    def snapshot(self, when: datetime) -> Snapshot:
        """What `due` reads from the state (call under the lock)."""
        history = self._state.purchase_history(when.date())
        return history, self._state.shortcut_state, self._exclusions(history)

    def due(self, snapshot: Snapshot, k: int, when: datetime) -> list[Shortcut]:
        """The pinned and due shortcuts of a snapshot, titled (no lock needed)."""
        history, state, exclude = snapshot
        found = due_shortcuts(
            history, self._extras.priors, state, k=k, now=when, config=self._config, exclude=exclude
        )
        return [replace(s, title=self._state.title_of(s.item_id)) for s in found]

    def reorder(
        self, item_id: str, when: datetime, *, gift: bool, learning: bool
    ) -> ReorderPayload:
        """The reorder payload; recorded as a purchase only when `learning`.

        Raises:
            StoreFullError, StoreError: the purchase was not recorded; nothing changed.
        """
        history = PurchaseHistory() if gift else self._state.purchase_history(when.date())
        payload, _history, state = reorder_shortcut(
            history, self._state.shortcut_state, self._extras.priors, item_id, now=when
        )
        if learning:
            purchase = validate_event("purchase", item_id, payload.quantity, when, now=when)
            self._state.set_shortcut_state(state, when, purchase=purchase)
        return payload

    def pin(self, item_id: str, position: int | None) -> None:
        """Pin an item (at the end, or at `position`) and save the state at the clock's time.

        Raises:
            ValueError: over 100 pinned items.
            StoreError: not saved.
        """
        state = pin_shortcut(self._state.shortcut_state, item_id, position=position)
        self._state.set_shortcut_state(state, self._clock.now())

    def unpin(self, item_id: str) -> bool:
        """Unpin an item and save the state at the clock's time; False if it was not pinned.

        Raises:
            StoreError: not saved.
        """
        if item_id not in self._state.shortcut_state.pinned:
            return False
        state = unpin_shortcut(self._state.shortcut_state, item_id)
        self._state.set_shortcut_state(state, self._clock.now())
        return True

    def snooze(self, item_id: str, days: int, when: datetime) -> date:
        """Snooze an item for `days` days and save the state; the first day it shows again.

        Raises:
            TypeError, ValueError: `days` outside [1, 366].
            StoreError: not saved.
        """
        state = snooze_shortcut(self._state.shortcut_state, item_id, days, now=when)
        self._state.set_shortcut_state(state, when)
        return state.snoozed_until[item_id]

    def _exclusions(self, history: PurchaseHistory) -> frozenset[str]:
        """Items not to offer unless pinned: durables bought once, "not interested" items."""
        cached = self._bought_once
        if cached is None or cached[0] is not history:
            once: frozenset[str] = frozenset()
            if self._marks_consumables:
                consumable, index = self._catalog.consumable, self._catalog.index
                once = frozenset(
                    item_id
                    for item_id, record in history.items.items()
                    if record.purchase_days == 1
                    and item_id in index
                    and not consumable[index[item_id]]
                )
            cached = self._bought_once = (history, once)
        dismissed = self._state.dismissals
        if not dismissed:
            return cached[1]
        return cached[1] | {i for i, (_, d) in dismissed.items() if d.reason == "not_interested"}
