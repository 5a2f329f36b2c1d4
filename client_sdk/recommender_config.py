"""The limits and switches of one `Recommender` (and kiosk session)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .bundle import DEFAULT_MAX_FILE_BYTES
from .features import InterestConfig
from .ranking import POPULAR_CONTEXTS
from .shortcuts import ShortcutConfig
from .store import StoreConfig

__all__ = ["RecommenderConfig"]


@dataclass(frozen=True, slots=True)
class RecommenderConfig:
    """Limits of one Recommender. Validated; safe defaults."""

    threads: int = 1
    max_history_items: int = 500
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    interest: InterestConfig | None = None
    """How interest fades and how long events are kept; None takes the half-lives the bundle's
    training tuned (`model.history_half_life_days` in the manifest), else the defaults."""
    store: StoreConfig = field(default_factory=StoreConfig)
    shortcuts: ShortcutConfig = field(default_factory=ShortcutConfig)
    """How reorder shortcuts are chosen (the due window, the durable-goods rule)."""
    popular_contexts: tuple[str, ...] = POPULAR_CONTEXTS
    """What an empty session's popular list depends on when the bundle ships a context prior:
    "month", "part_of_day", both (the default) or neither (the model's global prior)."""
    replaced_days: float = 365.0
    """For how long after buying a durable item (or saying it was bought elsewhere) the other
    items of its kind (the catalogue's `kind`: another camera after a camera) are left out of
    the shopper's lists; 0 shows them. Consumables are never left out this way."""

    def __post_init__(self) -> None:
        unknown = set(self.popular_contexts) - set(POPULAR_CONTEXTS)
        if unknown or not isinstance(self.popular_contexts, tuple):
            raise ValueError(
                f"popular_contexts must be a tuple of {POPULAR_CONTEXTS}, "
                f"found {self.popular_contexts!r}"
            )
        days = self.replaced_days
        if isinstance(days, bool) or not isinstance(days, (int, float)) or not 0 <= days <= 3650:
            raise ValueError(f"replaced_days must be in [0, 3650], found {days!r}")
        if not 1 <= self.threads <= 64:
            raise ValueError(f"threads must be in [1, 64], found {self.threads}")
        if not 1 <= self.max_history_items <= 100_000:
            raise ValueError(
                f"max_history_items must be in [1, 100000], found {self.max_history_items}"
            )
        if self.max_file_bytes < 1:
            raise ValueError(f"max_file_bytes must be >= 1, found {self.max_file_bytes}")
