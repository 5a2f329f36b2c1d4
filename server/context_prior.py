"""Contextual popularity priors from aggregate timestamps: who buys what, when in the year and
when in the day.

Step "train" for cold start. From the interaction log it counts, per item, the distinct buyers
in all, in each month of the year and in each part of the day (morning, afternoon, evening,
night, in the shop's local time), and the same per context over all items (the context's
volume). The result is a `client_sdk.context_prior.ContextPrior`, shipped as
`context_prior.json` in the signed bundle; a device with an empty session ranks by it.

k-anonymity: an item is listed only with at least `min_users` distinct buyers, and each of its
month and part-of-day cells is published only with at least `min_users` distinct buyers (else
0), so no cell describes a handful of people; a context's volume over all items is published
under the same floor. Only counts leave the server: no user, time or
basket.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from client_sdk.context_prior import (
    MONTH_NAMES,
    PARTS_OF_DAY,
    ContextPrior,
    encode_context_prior,
    part_of_day,
)

from .data import EVENT_KINDS, Interactions

__all__ = ["ContextPriorConfig", "compute_context_prior", "context_prior_file", "gift_prior_file"]

logger = logging.getLogger(__name__)

_HOUR_PART = np.array([part_of_day(h) for h in range(24)], np.int64)
_PURCHASE = EVENT_KINDS.index("purchase")


@dataclass(frozen=True, slots=True)
class ContextPriorConfig:
    """How the context prior is computed. Validated; safe defaults.

    Attributes:
        min_users: the k of k-anonymity: a cell with fewer distinct buyers is not published.
        smoothing: the device's pseudo-count a in the lift (count + a) / (expected + a).
        utc_offset_minutes: the shop's offset from UTC; timestamps are binned in local time.
            Logs written in local time without an offset are read as UTC: leave it at 0.
        purchases_only: count purchases only (when the log has any), not views or carts.
    """

    min_users: int = 10
    smoothing: float = 10.0
    utc_offset_minutes: int = 0
    purchases_only: bool = True

    def __post_init__(self) -> None:
        if not 2 <= self.min_users <= 1_000_000:
            raise ValueError(f"min_users must be in [2, 1000000], found {self.min_users}")
        if not (math.isfinite(self.smoothing) and 0.0 < self.smoothing <= 1e6):
            raise ValueError(f"smoothing must be in (0, 1e6], found {self.smoothing!r}")
        if not -1440 < self.utc_offset_minutes < 1440:
            raise ValueError(
                f"utc_offset_minutes must be in (-1440, 1440), found {self.utc_offset_minutes}"
            )


def compute_context_prior(
    interactions: Interactions,
    config: ContextPriorConfig | None = None,
    *,
    rows: npt.NDArray[np.bool_] | None = None,
) -> ContextPrior:
    """Count distinct buyers per item in all, per month and per part of the day.

    Args:
        interactions: the validated log.
        config: floor, smoothing, local offset.
        rows: use only these rows (for example a training split); default all.

    Returns:
        The prior, every published count at least `min_users`.
    """
    config = config or ContextPriorConfig()
    keep = np.ones(len(interactions), bool) if rows is None else rows.copy()
    if config.purchases_only:
        bought = interactions.event == _PURCHASE
        if np.any(bought & keep):
            keep &= bought
    user, item = interactions.user[keep], interactions.item[keep]
    local = interactions.timestamp[keep] + config.utc_offset_minutes * 60
    month = (local.astype("datetime64[s]").astype("datetime64[M]").astype(np.int64)) % 12
    part = _HOUR_PART[(local // 3600) % 24]
    n_items, n_users = len(interactions.items), max(len(interactions.users), 1)
    totals = _distinct_buyers(item, user, np.zeros_like(item), 1, n_items, n_users)[:, 0]
    by_month = _distinct_buyers(item, user, month, len(MONTH_NAMES), n_items, n_users)
    by_part = _distinct_buyers(item, user, part, len(PARTS_OF_DAY), n_items, n_users)
    floor = config.min_users
    listed = np.flatnonzero(totals >= floor)
    cells = np.concatenate([totals[:, None], by_month, by_part], axis=1)
    cells[:, 1:] = np.where(cells[:, 1:] >= floor, cells[:, 1:], 0)
    items = {
        interactions.items[i]: tuple(int(c) for c in cells[i].tolist()) for i in listed.tolist()
    }
    prior = ContextPrior(
        min_users=floor,
        smoothing=float(config.smoothing),
        utc_offset_minutes=config.utc_offset_minutes,
        month_totals=_floored(by_month.sum(axis=0), floor),
        part_totals=_floored(by_part.sum(axis=0), floor),
        items=items,
    )
    published = int(np.count_nonzero(cells[listed, 1:]))
    logger.info(
        "context prior: %d of %d items listed, %d context cells published (floor %d buyers)",
        listed.size,
        n_items,
        published,
        floor,
    )
    return prior


def _floored(totals: npt.NDArray[np.int64], floor: int) -> tuple[int, ...]:
    """A context's volume is published only when it reaches the floor too (else 0): a month
    with one gift in the whole shop must not say so."""
    return tuple(int(t) if t >= floor else 0 for t in totals.tolist())


def _distinct_buyers(
    item: npt.NDArray[np.int64],
    user: npt.NDArray[np.int64],
    context: npt.NDArray[np.int64],
    n_contexts: int,
    n_items: int,
    n_users: int,
) -> npt.NDArray[np.int64]:
    """[n_items, n_contexts]: distinct users per (item, context)."""
    cell = item * n_contexts + context
    pairs = np.unique(cell * n_users + user)
    counts = np.bincount(pairs // n_users, minlength=n_items * n_contexts)
    return counts.reshape(n_items, n_contexts).astype(np.int64)


def context_prior_file(
    interactions: Interactions,
    config: ContextPriorConfig | None = None,
    *,
    rows: npt.NDArray[np.bool_] | None = None,
) -> bytes:
    """The `context_prior.json` bytes for a release, for `export_bundle(extra_files=...)`."""
    return encode_context_prior(compute_context_prior(interactions, config, rows=rows))


def gift_prior_file(
    interactions: Interactions,
    config: ContextPriorConfig | None = None,
    *,
    rows: npt.NDArray[np.bool_] | None = None,
) -> bytes | None:
    """The `gift_prior.json` bytes: the context prior of the rows bought as gifts.

    What people buy *as gifts*, per month and part of the day, under the same k-anonymity floor
    (`config.min_users` distinct gift buyers per item and per cell). None when the log has no
    `gift` column or no item reaches the floor: a bundle then ships no gift prior, and the
    device's gift mode says it falls back to what is popular now.
    """
    if interactions.gift is None:
        return None
    gifts = interactions.gift if rows is None else interactions.gift & rows
    if not gifts.any():
        return None
    prior = compute_context_prior(interactions, config, rows=gifts)
    if not prior.items:
        logger.info("gift prior: no item bought as a gift by enough shoppers; none shipped")
        return None
    return encode_context_prior(prior)
