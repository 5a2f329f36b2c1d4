"""Reorder priors from aggregate purchase logs: how often, and how soon, items are bought again.

Step "train" for reorder shortcuts. From purchases collapsed to one per (user, item, day) it
computes, for each item, falling back to its category and then to the whole shop:

- the repeat probability: the share of buyers who bought it on two or more days (item-level
  values are shrunk towards the category's by `repeat_prior_strength` pseudo-buyers);
- the distribution of days between consecutive purchase days of one buyer, robustly: weighted
  quantiles of the intervals (each buyer weighs one in total, so a heavy buyer cannot drag it),
  summarised as a log-logistic (log median; scale from the interquartile range);
- the usual quantity: the median over buyers of the units bought per purchase day.

k-anonymity: an item or category gets its own entry only with at least `min_buyers` distinct
buyers, and its own interval distribution only with at least `min_buyers` distinct buyers who
bought again; otherwise it inherits the level above. The shop level follows the same rule and
otherwise ships a fixed default. The result is a `client_sdk.priors.ReorderPriors`, shipped as
`reorder_priors.json` in the signed bundle; the device blends it with the shopper's own rhythm.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt

from client_sdk.priors import (
    QUANTILE_LEVELS,
    DueParams,
    IntervalPrior,
    ItemPrior,
    ReorderPriors,
    default_interval,
)

from .data import EVENT_KINDS, Catalog, Interactions
from .errors import DataError

__all__ = [
    "EPOCH_ORDINAL",
    "PriorConfig",
    "PurchaseDays",
    "categories_from_catalog",
    "collapse_purchase_days",
    "compute_priors",
]

logger = logging.getLogger(__name__)

EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
"""add to a day number (days since 1970-01-01) to get `date.toordinal()`, as the device counts."""
_DAY_SECONDS = 86_400
_PURCHASE = EVENT_KINDS.index("purchase")
_LOGISTIC_IQR = 2.0 * math.log(3.0)  # interquartile range of a unit logistic
_MAX_INTERVAL_DAYS = 36_000


@dataclass(frozen=True, slots=True)
class PriorConfig:
    """How priors are computed. Validated; safe defaults.

    Attributes:
        min_buyers: the k of k-anonymity: fewer distinct buyers (or buyers who bought again, for
            an interval distribution) and a level inherits the one above.
        repeat_prior_strength: pseudo-buyers pulling an item's repeat probability towards its
            category's (or the shop's).
        min_log_scale: floor of an interval distribution's log scale (ties of whole days).
    """

    min_buyers: int = 10
    repeat_prior_strength: float = 10.0
    min_log_scale: float = 0.1

    def __post_init__(self) -> None:
        if not 2 <= self.min_buyers <= 1_000_000:
            raise ValueError(f"min_buyers must be in [2, 1000000], found {self.min_buyers}")
        if not 0.0 <= self.repeat_prior_strength <= 1e6:
            raise ValueError(
                f"repeat_prior_strength must be in [0, 1e6], found {self.repeat_prior_strength}"
            )
        if not 0.01 <= self.min_log_scale <= 2.0:
            raise ValueError(f"min_log_scale must be in [0.01, 2], found {self.min_log_scale}")


@dataclass(frozen=True, eq=False, repr=False)
class PurchaseDays:
    """One row per (user, item, day) with the units bought that day, sorted by user, item, day.

    `day` counts days since 1970-01-01 (UTC dates of the timestamps; naive times are read as
    UTC by the loader, so local-time logs keep their local dates).
    """

    users: tuple[str, ...]
    items: tuple[str, ...]
    user: npt.NDArray[np.int64]
    item: npt.NDArray[np.int64]
    day: npt.NDArray[np.int64]
    quantity: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.user.size)

    def __repr__(self) -> str:
        return f"PurchaseDays({len(self)} rows, {len(self.users)} users, {len(self.items)} items)"

    def select(self, mask: npt.NDArray[np.bool_]) -> PurchaseDays:
        """The rows where `mask` holds (codes unchanged, order kept)."""
        return PurchaseDays(
            self.users,
            self.items,
            self.user[mask],
            self.item[mask],
            self.day[mask],
            self.quantity[mask],
        )


def collapse_purchase_days(interactions: Interactions) -> PurchaseDays:
    """Keep purchases only and collapse them to one row per (user, item, day), units summed.

    Raises:
        DataError: the log holds no purchase.
    """
    keep = interactions.event == _PURCHASE
    if not keep.any():
        raise DataError(f"{interactions.source}: no purchase events (event = purchase)")
    user, item = interactions.user[keep], interactions.item[keep]
    day = interactions.timestamp[keep] // _DAY_SECONDS
    quantity = interactions.quantity[keep]
    order = np.lexsort((day, item, user))
    user, item, day, quantity = user[order], item[order], day[order], quantity[order]
    new = np.ones(user.size, bool)
    new[1:] = (user[1:] != user[:-1]) | (item[1:] != item[:-1]) | (day[1:] != day[:-1])
    starts = np.flatnonzero(new)
    return PurchaseDays(
        users=interactions.users,
        items=interactions.items,
        user=user[starts],
        item=item[starts],
        day=day[starts],
        quantity=np.add.reduceat(quantity, starts),
    )


def categories_from_catalog(catalog: Catalog) -> dict[str, str]:
    """item id -> category, for the catalog items that name one."""
    return {item.item_id: item.category for item in catalog.items if item.category}


def compute_priors(
    days: PurchaseDays,
    *,
    categories: Mapping[str, str] | None = None,
    config: PriorConfig | None = None,
    params: DueParams | None = None,
) -> ReorderPriors:
    """Compute the reorder priors of a purchase log (see the module docstring).

    Args:
        days: purchases collapsed by `collapse_purchase_days` (only the history to learn from).
        categories: item id -> category name (for example from the catalog); optional.
        config: thresholds; `PriorConfig()` by default.
        params: the device's blending parameters to ship (fitted by `server.reorder_tuning`).

    Returns:
        Priors the device can parse; no entry summarises fewer than `min_buyers` people.

    Raises:
        DataError: `days` is empty.
    """
    config = config or PriorConfig()
    if len(days) == 0:
        raise DataError("no purchases to compute reorder priors from")
    n_items = len(days.items)
    names = sorted({name for name in (categories or {}).values() if name})
    code = {name: i for i, name in enumerate(names)}
    item_category = np.array(
        [code.get((categories or {}).get(item_id, ""), -1) for item_id in days.items], np.int64
    )
    stats = _PairStats.of(days)
    shop_prior = _shop_prior(_level_priors(stats, np.zeros(n_items, np.int64), 1)[0], config)
    category_priors: dict[str, ItemPrior] = {}
    if names:
        rows = _level_priors(stats, item_category, len(names))
        for name, row in zip(names, rows, strict=True):
            prior = _child_prior(row, "category", shop_prior, config)
            if prior is not None:
                category_priors[name] = prior
    item_rows = _level_priors(stats, np.arange(n_items, dtype=np.int64), n_items)
    items: dict[str, ItemPrior] = {}
    links: dict[str, str] = {}
    for index, row in enumerate(item_rows):
        item_id = days.items[index]
        category = names[item_category[index]] if item_category[index] >= 0 else ""
        parent = category_priors.get(category, shop_prior)
        prior = _child_prior(row, "item", parent, config)
        if prior is not None:
            items[item_id] = prior
        elif category in category_priors:
            links[item_id] = category
    logger.info(
        "reorder priors: %d items, %d categories (min_buyers=%d), shop level %s",
        len(items),
        len(category_priors),
        config.min_buyers,
        shop_prior.level,
    )
    return ReorderPriors(
        min_buyers=config.min_buyers,
        params=params or DueParams(),
        shop=shop_prior,
        categories=category_priors,
        items=items,
        item_categories=links,
    )


@dataclass(frozen=True)
class _PairStats:
    """Per-row facts of `PurchaseDays`: the (user, item) pair and the interval before each day."""

    days: PurchaseDays
    pair_days: npt.NDArray[np.int64]  # purchase days of the row's pair
    first: npt.NDArray[np.bool_]  # the row opens its pair
    interval: npt.NDArray[np.int64]  # days since the pair's previous day (0 on first rows)

    @classmethod
    def of(cls, days: PurchaseDays) -> _PairStats:
        first = np.ones(len(days), bool)
        first[1:] = (days.user[1:] != days.user[:-1]) | (days.item[1:] != days.item[:-1])
        pair = np.cumsum(first) - 1
        pair_days = np.bincount(pair)[pair]
        interval = np.zeros(len(days), np.int64)
        interval[1:] = np.diff(days.day)
        interval[first] = 0
        return cls(days, pair_days, first, np.minimum(interval, _MAX_INTERVAL_DAYS))


@dataclass(frozen=True)
class _Row:
    """One group's raw statistics (before the k-anonymity rule)."""

    buyers: int
    repeaters: int
    pairs: int
    repeat_pairs: int
    usual_quantity: float
    quantiles: npt.NDArray[np.float64]  # interval days at QUANTILE_LEVELS (nan if none)


def _level_priors(
    stats: _PairStats, group_of_item: npt.NDArray[np.int64], n_groups: int
) -> list[_Row]:
    days = stats.days
    group = group_of_item[days.item]
    known = group >= 0
    n_users = max(len(days.users), 1)
    buyers = _distinct(group[known], days.user[known], n_groups, n_users)
    pairs = np.bincount(group[stats.first & known], minlength=n_groups)
    repeat_first = stats.first & known & (stats.pair_days >= 2)
    repeat_pairs = np.bincount(group[repeat_first], minlength=n_groups)
    is_interval = (~stats.first) & known
    repeaters = _distinct(group[is_interval], days.user[is_interval], n_groups, n_users)
    quantity = _grouped_quantiles(
        group[known],
        days.quantity[known],
        1.0 / stats.pair_days[known].astype(np.float64),
        n_groups,
        (0.5,),
    )[:, 0]
    interval_weight = 1.0 / (stats.pair_days[is_interval] - 1).astype(np.float64)
    quantiles = _grouped_quantiles(
        group[is_interval],
        stats.interval[is_interval].astype(np.float64),
        interval_weight,
        n_groups,
        QUANTILE_LEVELS,
    )
    return [
        _Row(
            int(buyers[g]),
            int(repeaters[g]),
            int(pairs[g]),
            int(repeat_pairs[g]),
            float(quantity[g]),
            quantiles[g],
        )
        for g in range(n_groups)
    ]


def _shop_prior(row: _Row, config: PriorConfig) -> ItemPrior:
    """The shop-wide prior, or the fixed default when fewer than min_buyers people bought."""
    if row.buyers < config.min_buyers:
        return ItemPrior("default", 0, 0.5, 1.0, default_interval())
    interval = _row_interval(row, "shop", config) or default_interval()
    repeat = row.repeat_pairs / row.pairs
    return ItemPrior("shop", row.buyers, repeat, max(row.usual_quantity, 1e-6), interval)


def _child_prior(row: _Row, level: str, parent: ItemPrior, config: PriorConfig) -> ItemPrior | None:
    """A category's or item's prior, None below min_buyers buyers; the interval distribution is
    inherited from `parent` below min_buyers repeaters."""
    if row.buyers < config.min_buyers:
        return None
    interval = _row_interval(row, level, config) or parent.interval
    strength = config.repeat_prior_strength
    repeat = (row.repeat_pairs + strength * parent.repeat_probability) / (row.pairs + strength)
    return ItemPrior(level, row.buyers, repeat, max(row.usual_quantity, 1e-6), interval)


def _row_interval(row: _Row, level: str, config: PriorConfig) -> IntervalPrior | None:
    """The group's own interval distribution: log-logistic from the median and the IQR."""
    if row.repeaters < config.min_buyers:
        return None
    q = row.quantiles
    scale = (math.log(q[3]) - math.log(q[1])) / _LOGISTIC_IQR
    return IntervalPrior(
        level=level,
        repeaters=row.repeaters,
        log_median=math.log(q[2]),
        log_scale=min(max(scale, config.min_log_scale), 5.0),
        quantiles_days=tuple(max(1.0, float(x)) for x in q),
    )


def _distinct(
    group: npt.NDArray[np.int64], user: npt.NDArray[np.int64], n_groups: int, n_users: int
) -> npt.NDArray[np.int64]:
    """How many distinct users each group has."""
    pairs = np.unique(group * n_users + user)
    counts: npt.NDArray[np.int64] = np.bincount(pairs // n_users, minlength=n_groups)
    return counts


def _grouped_quantiles(
    group: npt.NDArray[np.int64],
    value: npt.NDArray[np.float64],
    weight: npt.NDArray[np.float64],
    n_groups: int,
    levels: tuple[float, ...],
) -> npt.NDArray[np.float64]:
    """Weighted quantiles per group: the smallest value whose cumulative weight reaches the level.

    Returns an (n_groups, len(levels)) array, nan for groups without rows.
    """
    result = np.full((n_groups, len(levels)), np.nan)
    if group.size == 0:
        return result
    order = np.lexsort((value, group))
    group, value, weight = group[order], value[order], weight[order]
    cumulative = np.cumsum(weight)
    totals = np.bincount(group, weights=weight, minlength=n_groups)
    before = np.concatenate(([0.0], np.cumsum(totals)[:-1]))
    ends = np.cumsum(np.bincount(group, minlength=n_groups))
    starts = ends - np.bincount(group, minlength=n_groups)
    present = ends > starts
    for column, level in enumerate(levels):
        target = before + level * totals
        position = np.searchsorted(cumulative, target * (1 - 1e-12), side="left")
        position = np.clip(position, starts, np.maximum(ends - 1, starts))
        result[present, column] = value[np.minimum(position[present], value.size - 1)]
    return result
