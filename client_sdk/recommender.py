"""The SDK's front door: open a verified bundle and the private store, record private events,
recommend with reasons, and hand the shopper their controls.

Everything recorded here stays on this device, sealed in an encrypted file (`store=path`) or held
in memory (`store=None`). The Recommender opens no socket; the only network traffic is the
updater's, and a fetcher from `ledger_fetcher()` writes each of its requests into the shopper's
network ledger.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from ._crypto import PublicKeyLike
from ._shortcut_api import ShortcutControls
from ._shortcut_desk import ShortcutDesk
from .bundle import MODEL_FILE, BundleCatalog, read_bundle, run_beside
from .controls import DISMISS_REASONS, INTENTS, ShopperState
from .errors import StoreError
from .extras import BundleExtras
from .features import (
    Clock,
    LocalContext,
    SystemClock,
    bundle_interest,
    check_id_collection,
    check_item_id,
    local_context,
    resolve_event_weights,
    validate_event,
)
from .ledger import LedgerEntry, LedgerFetcher, NetworkLedger
from .ranking import Ranker, Recommendation
from .recommender_config import RecommenderConfig
from .scoring import Scorer, load_session
from .store import PrivateStore
from .updater import Fetcher, HttpFetcher
from .verify import Manifest

if TYPE_CHECKING:
    from .kiosk import IdleWaiter, KioskRules, KioskSession

logger = logging.getLogger(__name__)

_PRUNE_EVERY = timedelta(hours=1)


class Recommender(ShortcutControls):
    """Scores a verified bundle against this device's private history, under the shopper's
    controls. Use `Recommender.open(...)`; it is a context manager that closes on exit."""

    def __init__(
        self,
        manifest: Manifest,
        catalog: BundleCatalog,
        scorer: Scorer,
        config: RecommenderConfig,
        *,
        store: PrivateStore | None = None,
        owns_store: bool = True,
        clock: Clock | None = None,
        extras: BundleExtras | None = None,
    ) -> None:
        """Wire the parts together (use `open`). Loads and authenticates the store's records.

        `extras` are the bundle's reorder, context and gift priors, maybe still loading (None:
        the default reorder priors, no context or gift prior).

        Raises:
            StoreUnreadableError, StoreError: the store's records cannot be used.
        """
        self._manifest = manifest
        self._catalog = catalog
        self._scorer = scorer
        self._config = config
        self._clock: Clock = clock or SystemClock()
        self._store = store or PrivateStore.open(None, config=config.store)
        self._owns_store = owns_store or store is None
        self._event_weights = resolve_event_weights(
            {
                str(kind): float(w)
                for kind, w in dict(manifest.model.get("event_weights", {})).items()
            }
        )
        self._lock = threading.Lock()
        self._closed = False
        self._intent = "for_me"
        self._state = ShopperState(self._store, catalog)
        self._interest = config.interest or bundle_interest(manifest.model)
        self._ranker = Ranker(
            catalog,
            scorer,
            self._state,
            self._event_weights,
            max_history_items=config.max_history_items,
            interest=self._interest,
            extras=extras,
            contexts=config.popular_contexts,
            replaced_days=float(config.replaced_days),
        )
        self._extras = extras or BundleExtras.of()
        self._shortcuts = ShortcutDesk(
            catalog, self._state, self._extras, config.shortcuts, self._clock
        )
        self._last_prune: datetime | None = None
        self._maybe_prune(self._clock.now())

    @classmethod
    def open(
        cls,
        bundle_dir: Path | str,
        *,
        trusted_keys: Sequence[PublicKeyLike],
        store: Path | str | PrivateStore | None = None,
        store_key: bytes | None = None,
        now: datetime | None = None,
        config: RecommenderConfig | None = None,
        clock: Clock | None = None,
    ) -> Recommender:
        """Verify the bundle in `bundle_dir`, load it, then open the private store.

        Signature, format, expiry, and every file's size and sha256 are checked on raw bytes
        before the catalog is parsed or the model is handed to onnxruntime.

        Args:
            bundle_dir: the installed bundle.
            trusted_keys: the Ed25519 public keys a bundle must be signed by.
            store: the encrypted store file (created if absent), an open `PrivateStore` (left
                open on close), or None to keep everything in memory.
            store_key: the 32-byte key from the host's keystore; required with a path.
            now: when to check the bundle's expiry (default: the clock's time).
            config: limits, interest decay, store durability.
            clock: the time source for events, decay and retention (default: the system's).

        Raises:
            BundleError: the bundle must not be used (SignatureError, DigestMismatchError,
                ExpiredBundleError, FormatError ...).
            StoreUnreadableError: wrong store key or a tampered store (left untouched).
            StoreError: the store cannot be opened (StoreBusyError: in use elsewhere).
            TypeError, ValueError: a bad `store_key` or a key without a store path.
        """
        config = config or RecommenderConfig()
        if now is None and clock is not None:
            now = clock.now()
        bundle = read_bundle(
            bundle_dir, trusted_keys, now=now, max_file_bytes=config.max_file_bytes
        )
        # onnxruntime builds the session without the GIL: parse the catalogue meanwhile.
        session, catalog = run_beside(
            lambda: load_session(bundle.files[MODEL_FILE], threads=config.threads),
            bundle.catalog,
            name="facetwo-open",
        )
        extras = BundleExtras.load(bundle, catalog)  # parsed in the background, see below
        scorer = Scorer(session, len(catalog))
        if isinstance(store, PrivateStore):
            if store_key is not None:
                raise ValueError("store_key must be None when store is an open PrivateStore")
            private, owns = store, False
        else:
            private = PrivateStore.open(store, store_key, config=config.store)
            owns = True
        try:
            rec = cls(
                bundle.manifest,
                catalog,
                scorer,
                config,
                store=private,
                owns_store=owns,
                clock=clock,
                extras=extras,
            )
        except BaseException:
            if owns:
                private.close()
            raise
        logger.info(
            "opened bundle v%d (%s), %d items, %s store",
            bundle.manifest.model_version,
            bundle.manifest.digest[:12],
            len(catalog),
            "in-memory" if private.in_memory else "file",
        )
        extras.start()  # last: the parse thread does not slow down the rest of open
        return rec

    @property
    def model_version(self) -> int:
        """The verified model version in use."""
        return self._manifest.model_version

    @property
    def catalog(self) -> BundleCatalog:
        """The items this model knows, in model-index order."""
        return self._catalog

    # -- events ----------------------------------------------------------------------------

    def record(
        self, kind: str, item_id: str, *, quantity: float = 1, at: datetime | None = None
    ) -> None:
        """Record a private event: "view", "cart", "purchase" or "search". It never leaves the
        device. Once this returns, the event is durable in the store.

        Unknown item ids are kept (a later model may know them) but not scored. While learning
        is paused or the intent is "gift", events are dropped, not recorded.

        Raises:
            TypeError, ValueError: an argument is invalid; the message names it.
            StoreFullError: the disk is full; the event was not recorded.
            StoreError: the event could not be written.
        """
        event = validate_event(kind, item_id, quantity, at, now=self._clock.now())
        with self._lock:
            self._check_open()
            if not self._learning():
                return
            self._state.add_event(event)

    # -- recommendations -------------------------------------------------------------------

    def recommend(
        self,
        k: int = 10,
        *,
        exclude: Collection[str] = (),
        candidates: Collection[str] | None = None,
        in_view: str | None = None,
        now: datetime | None = None,
    ) -> list[Recommendation]:
        """The k best items for this shopper now, best first, each with its reasons.

        Never shown: items in the history, dismissed items and their variants, the item in
        view and its variants, and a second variant of any group. `exclude` removes items;
        `candidates` restricts the list to those items. All of this happens before the top k,
        so k items come back while that many remain. In "gift" intent the shopper's history
        neither shapes nor filters the list: it is the model's popular choices (or, with
        `in_view`, what is bought with that item).

        Raises:
            TypeError: k is not an int.
            ValueError: k < 0, both `exclude` and `candidates`, a bad `in_view` or `now`.
        """
        if isinstance(k, bool) or not isinstance(k, int):
            raise TypeError(f"k must be int, not {type(k).__name__}")
        if k < 0:
            raise ValueError(f"k must be >= 0, found {k}")
        check_id_collection(exclude, "exclude")
        if candidates is not None:
            check_id_collection(candidates, "candidates")
        if exclude and candidates is not None:
            raise ValueError("give exclude or candidates, not both")
        if in_view is not None:
            check_item_id(in_view, "in_view")
        when = self._now(now)
        with self._lock:
            self._check_open()
            self._maybe_prune(when)
            plan = self._ranker.plan(
                when,
                gift=self._intent == "gift",
                exclude=exclude,
                candidates=candidates,
                in_view=in_view,
            )
        return self._ranker.rank(plan, k)

    # -- controls --------------------------------------------------------------------------

    def dismiss(
        self, item_id: str, reason: str = "not_interested", *, at: datetime | None = None
    ) -> None:
        """Stop suggesting an item and its variants, durably (undo with `undismiss`).

        `reason="bought_elsewhere"` of a consumable also counts as a purchase (the reorder
        clock resets), unless learning is paused or the intent is "gift". Of anything else, or
        while paused, it restarts the item's reorder clock without a purchase; in "gift" intent
        it leaves the shopper's own clock alone. "not_interested" also removes the item from the
        reorder shortcuts unless it is pinned.

        Raises:
            TypeError, ValueError: a bad argument; the message names it.
            StoreError: not recorded.
        """
        check_item_id(item_id)
        if reason not in DISMISS_REASONS:
            raise ValueError(
                f"reason must be one of {', '.join(DISMISS_REASONS)}; found {reason!r}"
            )
        when = self._now(at, name="at")
        with self._lock:
            self._check_open()
            self._state.dismiss(
                item_id, reason, when, learning=self._learning(), for_me=self._intent == "for_me"
            )

    def undismiss(self, item_id: str) -> bool:
        """Take a dismissal back (and the purchase it recorded); False if there was none.

        Raises:
            StoreError: nothing was changed.
        """
        check_item_id(item_id)
        with self._lock:
            self._check_open()
            return self._state.undismiss(item_id)

    def pause(self) -> None:
        """Stop learning: `record()` drops events until `resume()`. Kept across restarts.

        Raises:
            StoreError: the switch could not be saved.
        """
        with self._lock:
            self._check_open()
            self._state.set_paused(True)

    def resume(self) -> None:
        """Learn again after `pause()`.

        Raises:
            StoreError: the switch could not be saved.
        """
        with self._lock:
            self._check_open()
            self._state.set_paused(False)

    @property
    def paused(self) -> bool:
        """True while learning is paused."""
        return self._state.paused

    @property
    def intent(self) -> str:
        """ "for_me" (the default) or "gift" (this session neither learns nor uses the history)."""
        return self._intent

    def set_intent(self, intent: str) -> None:
        """Switch the session's intent; it is not saved, a new session starts "for_me".

        In "gift" intent nothing is learned and the shopper's history neither shapes nor filters
        the list. A gift list is what people buy as gifts in this month and part of the day
        (the bundle's gift prior, learned from purchases flagged as gifts), or, with
        `recommend(in_view=...)`, what the model links to the item in view. A bundle without a
        gift prior shows what is popular now and says so in the list's reasons.

        Raises:
            ValueError: not one of INTENTS.
        """
        if intent not in INTENTS:
            raise ValueError(f"intent must be one of {', '.join(INTENTS)}; found {intent!r}")
        with self._lock:
            self._intent = intent

    def context(self, now: datetime | None = None) -> LocalContext:
        """The local time and time zone of a request (context features; unused by this model)."""
        return local_context(self._now(now))

    # -- the shopper's data ----------------------------------------------------------------

    def export_data(self, now: datetime | None = None) -> str:
        """Everything held about the shopper, as readable JSON: events, dismissals, settings,
        reorder shortcut pins, snoozes and "bought elsewhere" marks, and the network ledger.

        Raises:
            StoreError: the store cannot be read.
        """
        when = self._now(now)
        with self._lock:
            self._check_open()
            return json.dumps(self._state.export(when), indent=2, ensure_ascii=False)

    def forget(self, item_id: str | None = None) -> None:
        """Erase one item's events, dismissal and shortcut pin, snooze and mark, or (None) all
        of them and every ledger entry. Erased records are overwritten in the file and the WAL
        is truncated.

        Raises:
            TypeError, ValueError: a bad `item_id`.
            StoreError: nothing was erased.
        """
        if item_id is not None:
            check_item_id(item_id)
        with self._lock:
            self._check_open()
            self._state.forget(item_id)

    def network_ledger(self) -> list[LedgerEntry]:
        """Every network request made through `ledger_fetcher()`: URL, bytes, time, outcome.

        Raises:
            StoreError: the store cannot be read.
        """
        with self._lock:
            self._check_open()
            return NetworkLedger(self._store).entries()

    def ledger_fetcher(self, inner: Fetcher | None = None) -> LedgerFetcher:
        """A fetcher for the `Updater` that writes each request into this shopper's ledger."""
        return LedgerFetcher(inner or HttpFetcher(), NetworkLedger(self._store), clock=self._clock)

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the store (if this Recommender opened it) and forget the in-memory state."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._owns_store:
                self._store.close()

    def _learning(self) -> bool:
        return self._intent == "for_me" and not self._state.paused

    def _maybe_prune(self, now: datetime) -> None:
        if self._last_prune is not None and now - self._last_prune < _PRUNE_EVERY:
            return
        self._last_prune = now
        try:
            self._state.prune(now, self._interest)
        except StoreError:
            logger.warning("retention pruning failed; expired events stay until the next try")

    def _now(self, now: datetime | None, *, name: str = "now") -> datetime:
        if now is None:
            return self._clock.now()
        if not isinstance(now, datetime):
            raise TypeError(f"{name} must be a datetime or None, not {type(now).__name__}")
        if now.utcoffset() is None:
            raise ValueError(f"{name} must be timezone-aware")
        return now

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("this Recommender is closed")

    def __enter__(self) -> Recommender:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- sessions (kiosks) -----------------------------------------------------------------

    @classmethod
    def ephemeral(
        cls,
        bundle_dir: Path | str,
        *,
        trusted_keys: Sequence[PublicKeyLike],
        idle_timeout: float | None = 120.0,
        clock: Clock | None = None,
        rules: KioskRules | None = None,
        now: datetime | None = None,
        config: RecommenderConfig | None = None,
        watch_idle: bool = True,
        idle_waiter: IdleWaiter | None = None,
    ) -> KioskSession:
        """A kiosk session: verified like `open`, held in memory only, wiped when it ends.

        Nothing is written to disk. The session is wiped by `end_session()`, after
        `idle_timeout` seconds without a call (checked on every call, and every few seconds by
        a watcher thread unless `watch_idle=False`), by `close()` and at process exit. `rules`
        restrict every list to what the store stocks and may show.

        Args:
            bundle_dir: the installed bundle.
            trusted_keys: the Ed25519 public keys a bundle must be signed by.
            idle_timeout: seconds without a call before the session is wiped (None: never).
            clock: the time source for events and the idle timeout (default: the system's).
            rules: the store's `KioskRules` (default: every item, nothing excluded).
            now: when to check the bundle's expiry (default: the clock's time).
            config: limits, interest decay, popular contexts.
            watch_idle: run the watcher thread.
            idle_waiter: how the watcher waits between checks (tests drive it; returns True to
                stop); default a timed wait.

        Raises:
            BundleError: the bundle must not be used.
            TypeError, ValueError: a bad `idle_timeout` or `rules`.
        """
        from .kiosk import KioskSession

        return KioskSession.start(
            bundle_dir,
            trusted_keys=trusted_keys,
            idle_timeout=idle_timeout,
            rules=rules,
            now=now,
            config=config,
            clock=clock,
            watch_idle=watch_idle,
            idle_waiter=idle_waiter,
        )

    def end_session(self) -> None:
        """End the shopper's session: the intent returns to "for_me". A persistent store keeps
        its data (`forget()` erases it); a session from `ephemeral()` is wiped whole.

        Raises:
            ValueError: this Recommender is closed.
        """
        with self._lock:
            self._check_open()
            self._intent = "for_me"
