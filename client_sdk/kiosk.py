"""Kiosk sessions: a stranger's visit, held in memory only and forgotten when they walk away.

Step "controls" for an in-store kiosk. `Recommender.ephemeral(...)` opens a `KioskSession`, a
`Recommender` whose private store is SQLite ":memory:" under a random key. Guarantees:

- nothing is written to disk during a session: the bundle is only read, the store lives in
  memory, and nothing else opens a file (`tests/client_sdk/test_kiosk.py` proves it under an
  audit hook and with directory snapshots);
- the session is wiped by `end_session()`, after `idle_timeout` seconds without a call (checked
  against the injectable clock on every call, and by an optional watcher thread so an abandoned
  kiosk forgets without waiting for the next visitor), by `close()`, and at process exit (a
  weakref finalizer, which also runs atexit). Wiping closes the in-memory store, which frees its
  pages, and starts a fresh one under a new random key; the verified model stays loaded, so the
  next visitor waits for nothing;
- store rules (`KioskRules`) apply at scoring time, before the top k: only what the store stocks,
  never what it excludes (age-restricted, out of stock), so k items still come back while that
  many remain; "also bought" (`also_bought`) follows them too.
"""

from __future__ import annotations

import logging
import math
import threading
import weakref
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ._crypto import PublicKeyLike
from .features import Clock, check_item_id
from .ranking import Recommendation
from .recommender import Recommender
from .recommender_config import RecommenderConfig
from .store import PrivateStore

__all__ = ["IdleWaiter", "KioskRules", "KioskSession"]

logger = logging.getLogger(__name__)

IdleWaiter = Callable[[float], bool]
"""Waits up to the given seconds between idle checks; returns True to stop the watcher."""
_MIN_CHECK_SECONDS = 0.05
_MAX_CHECK_SECONDS = 5.0
_JOIN_SECONDS = 2.0


@dataclass(frozen=True)
class KioskRules:
    """What this store may show, applied at scoring time before the top k.

    Attributes:
        stocked: the items this store stocks (None: every item of the bundle).
        excluded: items never shown here: age-restricted, out of stock, recalled.
    """

    stocked: frozenset[str] | None = None
    excluded: frozenset[str] = frozenset()
    _allowed: frozenset[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("stocked", "excluded"):
            value = getattr(self, name)
            if value is None and name == "stocked":
                continue
            if isinstance(value, (str, bytes)) or not isinstance(value, Collection):
                raise TypeError(f"{name} must be a collection of item ids, not {type(value)}")
            ids = frozenset(value)
            bad = next((i for i in ids if not isinstance(i, str)), None)
            if bad is not None:
                raise TypeError(f"{name} must hold str item ids, found {type(bad).__name__}")
            object.__setattr__(self, name, ids)
        allowed = None if self.stocked is None else self.stocked - self.excluded
        object.__setattr__(self, "_allowed", allowed)

    def allows(self, item_id: str) -> bool:
        """True when this store may show the item."""
        stocked = self.stocked is None or item_id in self.stocked
        return stocked and item_id not in self.excluded

    def layer(
        self, exclude: Collection[str], candidates: Collection[str] | None
    ) -> tuple[Collection[str], Collection[str] | None]:
        """A request's `exclude` / `candidates` with these rules laid over them.

        Without request arguments the rules' own frozensets come back, so the ranker keeps
        their masks between requests.
        """
        if self._allowed is None:
            if candidates is not None:
                return (), frozenset(candidates) - self.excluded
            return (self.excluded | frozenset(exclude) if exclude else self.excluded), None
        allowed = self._allowed
        if candidates is not None:
            allowed = allowed & frozenset(candidates)
        if exclude:
            allowed = allowed - frozenset(exclude)
        return (), allowed


class _StoreBox:
    """The session's current store, for the finalizer (which must not hold the session)."""

    def __init__(self, store: PrivateStore) -> None:
        self.store = store
        self.watcher: _IdleWatcher | None = None


def _shutdown(box: _StoreBox) -> None:
    """Stop the watcher and drop the session's data: on close, collection or process exit."""
    if box.watcher is not None:
        box.watcher.stop()
    box.store.close()


class _IdleWatcher:
    """A daemon thread that asks the session to check its idle time every `interval` seconds."""

    def __init__(
        self, session: KioskSession, interval: float, waiter: IdleWaiter | None = None
    ) -> None:
        self._session = weakref.ref(session)
        self._interval = interval
        self._stopped = threading.Event()
        self._waiter = waiter or self._stopped.wait
        self._thread = threading.Thread(target=self._run, name="facetwo-kiosk-idle", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(_JOIN_SECONDS)

    def _run(self) -> None:
        while not self._waiter(self._interval) and not self._stopped.is_set():
            session = self._session()
            if session is None:
                return
            session.check_idle()
            del session


class KioskSession(Recommender):
    """A memory-only Recommender for one visitor at a time (open with `Recommender.ephemeral`).

    Everything a `Recommender` offers works here; in addition the session is wiped by
    `end_session()`, by `idle_timeout` and at exit, and `KioskRules` filter every list.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Wire the parts together as `Recommender` does (use `Recommender.ephemeral`).

        Raises:
            ValueError: the store is not in memory.
        """
        super().__init__(*args, **kwargs)
        if not self._store.in_memory:
            self._store.close()
            raise ValueError("a kiosk session needs an in-memory store (store=None)")
        self._wiring = (args, kwargs)
        self._rules = KioskRules()
        self._idle_timeout: float | None = None
        self._last_call = self._clock.now()
        self._generation = 0
        self._box = _StoreBox(self._store)
        self._finalizer = weakref.finalize(self, _shutdown, self._box)

    @classmethod
    def start(
        cls,
        bundle_dir: Path | str,
        *,
        trusted_keys: Sequence[PublicKeyLike],
        idle_timeout: float | None = 120.0,
        rules: KioskRules | None = None,
        now: datetime | None = None,
        config: RecommenderConfig | None = None,
        clock: Clock | None = None,
        watch_idle: bool = True,
        idle_waiter: IdleWaiter | None = None,
    ) -> KioskSession:
        """Verify and load the bundle, and start an empty session (see `Recommender.ephemeral`).

        Raises:
            BundleError: the bundle must not be used.
            TypeError, ValueError: a bad `idle_timeout` or `rules`.
        """
        if idle_timeout is not None and (
            isinstance(idle_timeout, bool)
            or not isinstance(idle_timeout, (int, float))
            or not (math.isfinite(idle_timeout) and idle_timeout > 0)
        ):
            raise ValueError(f"idle_timeout must be seconds > 0 or None, found {idle_timeout!r}")
        if rules is not None and not isinstance(rules, KioskRules):
            raise TypeError(f"rules must be KioskRules or None, not {type(rules).__name__}")
        session = cls.open(
            bundle_dir, trusted_keys=trusted_keys, store=None, now=now, config=config, clock=clock
        )
        if not isinstance(session, KioskSession):  # pragma: no cover - open() builds cls
            raise TypeError("Recommender.open did not build a KioskSession")
        session._idle_timeout = None if idle_timeout is None else float(idle_timeout)
        session._rules = rules or KioskRules()
        if watch_idle and idle_timeout is not None:
            interval = min(max(idle_timeout / 4, _MIN_CHECK_SECONDS), _MAX_CHECK_SECONDS)
            watcher = _IdleWatcher(session, interval, idle_waiter)
            session._box.watcher = watcher
            watcher.start()
        return session

    # -- the session -----------------------------------------------------------------------

    @property
    def rules(self) -> KioskRules:
        """The store rules every list follows."""
        return self._rules

    def set_rules(self, rules: KioskRules) -> None:
        """Replace the store rules (stock changed); the visitor's session is kept.

        Raises:
            TypeError: not KioskRules.
        """
        if not isinstance(rules, KioskRules):
            raise TypeError(f"rules must be KioskRules, not {type(rules).__name__}")
        with self._lock:
            self._rules = rules

    @property
    def idle_timeout(self) -> float | None:
        """Seconds without a call after which the session is wiped (None: never)."""
        return self._idle_timeout

    @property
    def generation(self) -> int:
        """How many sessions have been wiped so far (0 during the first)."""
        return self._generation

    def end_session(self) -> None:
        """Wipe the visitor's session: events, dismissals, intent, pause; the model stays.

        Raises:
            ValueError: the session is closed.
        """
        with self._lock:
            super()._check_open()
            self._wipe("ended")

    def check_idle(self) -> bool:
        """Wipe the session if it has been idle for `idle_timeout`; True if it was wiped.

        The watcher thread calls this; hosts with their own scheduler may too.
        """
        with self._lock:
            if self._closed or not self._idle_since(self._clock.now()):
                return False
            self._wipe("idle")
            return True

    # -- lists under the store rules -------------------------------------------------------

    def recommend(
        self,
        k: int = 10,
        *,
        exclude: Collection[str] = (),
        candidates: Collection[str] | None = None,
        in_view: str | None = None,
        now: datetime | None = None,
    ) -> list[Recommendation]:
        """`Recommender.recommend` within the store rules (stocked, not excluded).

        Raises:
            TypeError, ValueError: as `Recommender.recommend`.
        """
        if exclude and candidates is not None:
            raise ValueError("give exclude or candidates, not both")
        exclude, candidates = self._rules.layer(exclude, candidates)
        return super().recommend(
            k, exclude=exclude, candidates=candidates, in_view=in_view, now=now
        )

    def also_bought(
        self, item_id: str, k: int = 6, *, now: datetime | None = None
    ) -> list[Recommendation]:
        """What shoppers who bought `item_id` also bought, within the store rules: never the
        item nor its variants, nor dismissed items. The visitor's history neither shapes nor
        filters it. Only items the model links to `item_id` come back, so maybe fewer than k.

        Raises:
            TypeError, ValueError: a bad `item_id`, `k` or `now`.
        """
        if isinstance(k, bool) or not isinstance(k, int):
            raise TypeError(f"k must be int, not {type(k).__name__}")
        if k < 0:
            raise ValueError(f"k must be >= 0, found {k}")
        check_item_id(item_id)
        when = self._now(now)
        with self._lock:
            self._check_open()
            exclude, candidates = self._rules.layer((), None)
            plan = self._ranker.plan(
                when,
                gift=False,
                exclude=exclude,
                candidates=candidates,
                in_view=item_id,
                crowd=True,
            )
        return self._ranker.rank(plan, k)

    def set_intent(self, intent: str) -> None:
        """As `Recommender.set_intent`; an idle session is wiped first.

        Raises:
            ValueError: not one of INTENTS, or the session is closed.
        """
        with self._lock:
            self._check_open()
        super().set_intent(intent)

    def close(self) -> None:
        """Wipe the session, stop the watcher and release the model."""
        super().close()
        self._finalizer()

    def __enter__(self) -> KioskSession:
        return self

    # -- internals -------------------------------------------------------------------------

    def _check_open(self) -> None:
        # Every call that touches the visitor's data comes here under the lock: an idle
        # session is wiped before the call sees it.
        super()._check_open()
        now = self._clock.now()
        if self._idle_since(now):
            self._wipe("idle")
        self._last_call = now

    def _idle_since(self, now: datetime) -> bool:
        timeout = self._idle_timeout
        return timeout is not None and (now - self._last_call).total_seconds() >= timeout

    def _wipe(self, why: str) -> None:
        """Replace the store and all state with fresh ones (call under the lock)."""
        old, lock = self._store, self._lock
        args, kwargs = self._wiring
        # Re-run the base wiring, so every piece of state it builds starts empty.
        Recommender.__init__(self, *args, **{**kwargs, "store": None, "owns_store": True})
        self._lock = lock
        self._box.store = self._store
        old.close()
        self._last_call = self._clock.now()
        self._generation += 1
        logger.info("kiosk session %d wiped (%s)", self._generation, why)
