"""The SDK's front door: open a verified bundle, record private events, recommend with reasons.

Everything recorded here stays in this process (and, with the private store, in an encrypted
file on this device). Nothing is sent anywhere; the Recommender opens no socket.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType

import numpy as np
import numpy.typing as npt

from ._crypto import PublicKeyLike
from .bundle import DEFAULT_MAX_FILE_BYTES, MODEL_FILE, BundleCatalog, read_bundle
from .features import Event, HistoryVector, build_history, validate_event
from .scoring import Scorer
from .verify import Manifest

logger = logging.getLogger(__name__)

_VERB = {"view": "viewed", "cart": "added to your cart", "purchase": "bought"}
_MAX_REASONS = 3


@dataclass(frozen=True, slots=True)
class RecommenderConfig:
    """Limits of one Recommender. Validated; safe defaults."""

    threads: int = 1
    max_history_items: int = 500
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES

    def __post_init__(self) -> None:
        if not 1 <= self.threads <= 64:
            raise ValueError(f"threads must be in [1, 64], found {self.threads}")
        if not 1 <= self.max_history_items <= 100_000:
            raise ValueError(
                f"max_history_items must be in [1, 100000], found {self.max_history_items}"
            )
        if self.max_file_bytes < 1:
            raise ValueError(f"max_file_bytes must be >= 1, found {self.max_file_bytes}")


@dataclass(frozen=True, slots=True)
class Reason:
    """Why an item was suggested: a history item that contributed, or popularity."""

    kind: str
    """"history" (`item_id` contributed `share` of the score) or "popular"."""
    text: str
    item_id: str | None = None
    share: float = 0.0


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One suggestion, best first in the list `recommend()` returns."""

    item_id: str
    title: str
    score: float
    reasons: tuple[Reason, ...]


class Recommender:
    """Scores a verified bundle against this device's private history.

    Use `Recommender.open(...)`; it is a context manager that closes on exit.
    """

    def __init__(
        self, manifest: Manifest, catalog: BundleCatalog, scorer: Scorer, config: RecommenderConfig
    ) -> None:
        self._manifest = manifest
        self._catalog = catalog
        self._scorer = scorer
        self._config = config
        self._event_weights = {
            str(kind): float(weight)
            for kind, weight in dict(manifest.model.get("event_weights", {})).items()
        }
        self._events: list[Event] = []
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def open(
        cls,
        bundle_dir: Path | str,
        *,
        trusted_keys: Sequence[PublicKeyLike],
        now: datetime | None = None,
        config: RecommenderConfig | None = None,
    ) -> Recommender:
        """Verify the bundle in `bundle_dir`, then load it.

        Signature, format, expiry, and every file's size and sha256 are checked on raw bytes
        before the catalog is parsed or the model is handed to onnxruntime.

        Raises:
            BundleError: the bundle must not be used (SignatureError, DigestMismatchError,
                ExpiredBundleError, FormatError ...).
        """
        config = config or RecommenderConfig()
        bundle = read_bundle(
            bundle_dir, trusted_keys, now=now, max_file_bytes=config.max_file_bytes
        )
        catalog = bundle.catalog()
        scorer = Scorer(bundle.files[MODEL_FILE], len(catalog), threads=config.threads)
        logger.info(
            "opened bundle v%d (%s), %d items",
            bundle.manifest.model_version,
            bundle.manifest.digest[:12],
            len(catalog),
        )
        return cls(bundle.manifest, catalog, scorer, config)

    @property
    def model_version(self) -> int:
        """The verified model version in use."""
        return self._manifest.model_version

    @property
    def catalog(self) -> BundleCatalog:
        """The items this model knows, in model-index order."""
        return self._catalog

    def record(
        self, kind: str, item_id: str, *, quantity: float = 1, at: datetime | None = None
    ) -> None:
        """Record a private event ("view", "cart" or "purchase"). It never leaves the device.

        Unknown item ids are kept (a later model may know them) but not scored.

        Raises:
            TypeError, ValueError: an argument is invalid; the message names it.
        """
        event = validate_event(kind, item_id, quantity, at, now=datetime.now(timezone.utc))
        with self._lock:
            self._check_open()
            self._events.append(event)

    def recommend(
        self,
        k: int = 10,
        *,
        exclude: Collection[str] = (),
        candidates: Collection[str] | None = None,
    ) -> list[Recommendation]:
        """The k best items for this shopper now, best first, each with its reasons.

        Items already in the history are not suggested. `exclude` removes items;
        `candidates` restricts the list to those items. Asking for more than exists returns
        what exists.

        Raises:
            TypeError: k is not an int.
            ValueError: k < 0, or both `exclude` and `candidates` are given.
        """
        if isinstance(k, bool) or not isinstance(k, int):
            raise TypeError(f"k must be int, not {type(k).__name__}")
        if k < 0:
            raise ValueError(f"k must be >= 0, found {k}")
        if exclude and candidates is not None:
            raise ValueError("give exclude or candidates, not both")
        with self._lock:
            self._check_open()
            history = build_history(
                self._events,
                self._catalog.index,
                self._event_weights,
                max_items=self._config.max_history_items,
            )
        excluded = self._excluded(history, exclude, candidates)
        result = self._scorer.score(history.index, history.weight, exclude=excluded, k=k)
        return [
            self._explain(int(index), float(score), contributions, history)
            for index, score, contributions in zip(
                result.indices, result.scores, result.contributions, strict=True
            )
        ]

    def _excluded(
        self,
        history: HistoryVector,
        exclude: Collection[str],
        candidates: Collection[str] | None,
    ) -> npt.NDArray[np.int64]:
        index = self._catalog.index
        masked = np.zeros(len(self._catalog), bool)
        masked[history.index] = True
        if candidates is not None:
            allowed = np.zeros_like(masked)
            allowed[[index[c] for c in candidates if c in index]] = True
            masked |= ~allowed
        masked[[index[e] for e in exclude if e in index]] = True
        return np.flatnonzero(masked).astype(np.int64)

    def _explain(
        self,
        item_index: int,
        score: float,
        contributions: npt.NDArray[np.float32],
        history: HistoryVector,
    ) -> Recommendation:
        entry = self._catalog.entries[item_index]
        reasons: list[Reason] = []
        total = float(contributions[contributions > 0].sum())
        if total > 0:
            for h in np.argsort(-contributions, kind="stable")[:_MAX_REASONS]:
                if contributions[h] <= 0:
                    break
                source = self._catalog.entries[int(history.index[h])]
                reasons.append(
                    Reason(
                        kind="history",
                        text=f"because you {_VERB.get(history.kind[h], 'chose')} {source.title}",
                        item_id=source.item_id,
                        share=float(contributions[h]) / total,
                    )
                )
        else:
            reasons.append(Reason(kind="popular", text="popular with other shoppers"))
        return Recommendation(entry.item_id, entry.title, score, tuple(reasons))

    def close(self) -> None:
        """Forget the in-memory history and release the model."""
        with self._lock:
            self._events.clear()
            self._closed = True

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
