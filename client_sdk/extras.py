"""The bundle's optional side files, parsed in the background so `Recommender.open` is quick.

`reorder_priors.json`, `context_prior.json` and `gift_prior.json` only refine shortcuts and
empty sessions; at 100k items they take longer to parse than the model and catalogue take to
load. `BundleExtras.load(...).start()` parses them (from bytes `read_bundle` already verified) in a
daemon thread and returns at once; the first call that needs one waits for it. Personalised
`recommend()` needs none of them.

An unreadable side file costs the bundle nothing else: the parsers log a warning and fall back
(default reorder priors, no context or gift prior), exactly as when the file is absent.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from .bundle import BundleCatalog, VerifiedBundle
from .context_prior import ContextPopularity, bundle_context_popularity, bundle_gift_popularity
from .priors import ReorderPriors, default_priors, usable_priors

__all__ = ["BundleExtras"]

logger = logging.getLogger(__name__)

_YIELD_SECONDS = 0.002


@dataclass(frozen=True, slots=True)
class _Parsed:
    priors: ReorderPriors
    context: ContextPopularity | None
    gifts: ContextPopularity | None


class BundleExtras:
    """Reorder priors, context prior and gift prior of one bundle, ready now or soon."""

    def __init__(self, parsed: _Parsed | None = None) -> None:
        """Hold already parsed side files (use `load` or `of`)."""
        self._parsed = parsed
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        if parsed is not None:
            self._ready.set()

    @classmethod
    def of(
        cls,
        priors: ReorderPriors | None = None,
        context: ContextPopularity | None = None,
        gifts: ContextPopularity | None = None,
    ) -> BundleExtras:
        """Side files given directly (None: the default priors, no context or gift prior)."""
        return cls(_Parsed(priors or default_priors(), context, gifts))

    @classmethod
    def load(cls, bundle: VerifiedBundle, catalog: BundleCatalog) -> BundleExtras:
        """The verified bundle's side files, to be parsed in a daemon thread once `start()` is
        called (after the rest of `open`, so the two do not share the interpreter's time)."""
        extras = cls()
        version = bundle.manifest.model_version
        extras._thread = threading.Thread(
            target=extras._parse, args=(bundle, catalog), name=f"facetwo-extras-v{version}"
        )
        extras._thread.daemon = True
        return extras

    def start(self) -> None:
        """Start parsing (no-op when the side files are given, or parsing already started)."""
        with self._start_lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.start()

    def _parse(self, bundle: VerifiedBundle, catalog: BundleCatalog) -> None:
        # Let `open` return first: the JSON decoder holds the interpreter for its whole run,
        # and `Thread.start` waits until the new thread has been scheduled once.
        time.sleep(_YIELD_SECONDS)
        try:
            self._parsed = _Parsed(
                usable_priors(bundle),
                bundle_context_popularity(bundle, catalog),
                bundle_gift_popularity(bundle, catalog),
            )
        except BaseException as exc:  # handed to the first caller, not lost in the thread
            logger.error("bundle v%d: side files failed to load", bundle.manifest.model_version)
            self._error = exc
        finally:
            self._ready.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the side files are parsed (at most `timeout` seconds); True if they are."""
        self.start()
        return self._ready.wait(timeout)

    @property
    def priors(self) -> ReorderPriors:
        """The reorder priors (the default ones when the bundle ships none it can read)."""
        return self._get().priors

    @property
    def context(self) -> ContextPopularity | None:
        """The context prior, or None."""
        return self._get().context

    @property
    def gifts(self) -> ContextPopularity | None:
        """The gift prior, or None."""
        return self._get().gifts

    def _get(self) -> _Parsed:
        self.start()  # a caller before `start()`: parse now rather than wait forever
        self._ready.wait()
        if self._error is not None:
            raise self._error
        assert self._parsed is not None  # noqa: S101 - set before _ready when no error
        return self._parsed
