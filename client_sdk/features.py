"""Step "features": the shopper's private events -> the history arrays the model scores.

Held in memory for now (the encrypted store has its own module). A history item's weight is
the largest event weight among its events, the same rule the server trained with, so device
and training agree on what a view or a purchase is worth.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import numpy.typing as npt

EVENT_KINDS = ("view", "cart", "purchase")
MAX_ITEM_ID_CHARS = 256
MAX_QUANTITY = 1_000_000


@dataclass(frozen=True, slots=True)
class Event:
    """One private event, as recorded on the device."""

    kind: str
    item_id: str
    quantity: float
    at: datetime


def validate_event(
    kind: object, item_id: object, quantity: object, at: object, *, now: datetime
) -> Event:
    """Check every argument of `record()` and build the event.

    Raises:
        TypeError: an argument has the wrong type (named in the message).
        ValueError: an argument has a bad value (named in the message).
    """
    if not isinstance(kind, str):
        raise TypeError(f"kind must be str, not {type(kind).__name__}")
    if kind not in EVENT_KINDS:
        raise ValueError(f"kind must be one of {', '.join(EVENT_KINDS)}; found {kind[:40]!r}")
    if not isinstance(item_id, str):
        raise TypeError(f"item_id must be str, not {type(item_id).__name__}")
    if not item_id or len(item_id) > MAX_ITEM_ID_CHARS:
        raise ValueError(
            f"item_id must have 1 to {MAX_ITEM_ID_CHARS} characters, found {len(item_id)}"
        )
    if isinstance(quantity, bool) or not isinstance(quantity, (int, float)):
        raise TypeError(f"quantity must be a number, not {type(quantity).__name__}")
    if not math.isfinite(quantity) or not 0 < quantity <= MAX_QUANTITY:
        raise ValueError(f"quantity must be finite and in (0, {MAX_QUANTITY}], found {quantity!r}")
    if at is None:
        when = now
    elif isinstance(at, datetime):
        if at.tzinfo is None:
            raise ValueError("at must be timezone-aware (for example datetime.now(timezone.utc))")
        when = at.astimezone(timezone.utc)
    else:
        raise TypeError(f"at must be a datetime or None, not {type(at).__name__}")
    return Event(kind=kind, item_id=item_id, quantity=float(quantity), at=when)


@dataclass(frozen=True, slots=True)
class HistoryVector:
    """Distinct history items in model indices, their weights, and their strongest event kind."""

    index: npt.NDArray[np.int64]
    weight: npt.NDArray[np.float32]
    kind: tuple[str, ...]


def build_history(
    events: list[Event],
    index_of: Mapping[str, int],
    event_weights: Mapping[str, float],
    *,
    max_items: int,
) -> HistoryVector:
    """Aggregate events into one weight per known item (unknown ids are kept but not scored).

    Only the `max_items` most recently touched items count, bounding the cost of a request.
    """
    best: dict[int, tuple[float, str, datetime]] = {}
    for event in events:
        index = index_of.get(event.item_id)
        if index is None:
            continue
        weight = float(event_weights.get(event.kind, 1.0))
        previous = best.get(index)
        if previous is None:
            best[index] = (weight, event.kind, event.at)
        else:
            strongest = (weight, event.kind) if weight > previous[0] else previous[:2]
            best[index] = (strongest[0], strongest[1], max(previous[2], event.at))
    recent = sorted(best.items(), key=lambda pair: pair[1][2], reverse=True)[:max_items]
    return HistoryVector(
        index=np.array([i for i, _ in recent], np.int64),
        weight=np.array([v[0] for _, v in recent], np.float32),
        kind=tuple(v[1] for _, v in recent),
    )
