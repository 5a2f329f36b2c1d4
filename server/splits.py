"""Positives and evaluation splits (EVALUATION.md §1), shared by training and `facetwo evaluate`.

Implicit feedback: every (user, item) interaction is a positive, repeated interactions collapse
to one positive at the user's first interaction with the item. Its strength is the largest
event weight seen for the pair (a purchase outweighs a view).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .data import EVENT_KINDS, Interactions

DEFAULT_EVENT_WEIGHTS: Mapping[str, float] = {"view": 0.25, "cart": 0.5, "purchase": 1.0}


@dataclass(frozen=True)
class Positives:
    """One row per distinct (user, item), sorted by user then first time."""

    user: npt.NDArray[np.int64]
    item: npt.NDArray[np.int64]
    first_time: npt.NDArray[np.int64]
    strength: npt.NDArray[np.float32]
    n_users: int
    n_items: int
    last_seen: npt.NDArray[np.float64]
    """[rows, len(EVENT_KINDS)]: the last time of each event kind for the pair (-inf: never),
    what a device's interest decay works from."""

    def __len__(self) -> int:
        return int(self.user.size)

    def select(self, mask: npt.NDArray[np.bool_]) -> Positives:
        """The rows where `mask` holds (codes and sizes unchanged)."""
        return Positives(
            self.user[mask],
            self.item[mask],
            self.first_time[mask],
            self.strength[mask],
            self.n_users,
            self.n_items,
            self.last_seen[mask],
        )


@dataclass(frozen=True)
class HeldOutUser:
    """A user the model never saw: the private history it gets, and what it should find."""

    history: npt.NDArray[np.int64]
    history_strength: npt.NDArray[np.float32]
    history_time: npt.NDArray[np.int64]
    targets: npt.NDArray[np.int64]
    history_last_seen: npt.NDArray[np.float64]
    """[h, len(EVENT_KINDS)]: last time of each event kind per history item (-inf: never)."""
    user: int = -1
    """The user's index in the positives the split was made from (-1: not given)."""


@dataclass(frozen=True)
class Split:
    """Training positives and the held-out users scored against them."""

    train: Positives
    held_out: tuple[HeldOutUser, ...]
    test_pairs: npt.NDArray[np.int64]
    """user * n_items + item of every positive kept out of training."""

    def training_rows(self, interactions: Interactions) -> npt.NDArray[np.bool_]:
        """Which raw interaction rows belong to training (none of a test pair's events)."""
        keys = interactions.user * self.train.n_items + interactions.item
        return ~np.isin(keys, self.test_pairs)


def collapse_positives(
    interactions: Interactions, event_weights: Mapping[str, float] = DEFAULT_EVENT_WEIGHTS
) -> Positives:
    """Collapse interactions to one positive per (user, item) at the first interaction."""
    weight_of_kind = np.array([event_weights.get(kind, 1.0) for kind in EVENT_KINDS], np.float32)
    row_strength = weight_of_kind[interactions.event.astype(np.int64)]
    order = np.lexsort((interactions.timestamp, interactions.item, interactions.user))
    user, item = interactions.user[order], interactions.item[order]
    time, strength = interactions.timestamp[order], row_strength[order]
    new_pair = np.ones(user.size, bool)
    new_pair[1:] = (user[1:] != user[:-1]) | (item[1:] != item[:-1])
    starts = np.flatnonzero(new_pair)
    pair_strength = np.maximum.reduceat(strength, starts) if starts.size else strength[:0]
    kind = interactions.event[order].astype(np.int64)
    last_seen = np.full((starts.size, len(EVENT_KINDS)), -np.inf)
    if starts.size:
        for code in range(len(EVENT_KINDS)):
            times = np.where(kind == code, time.astype(np.float64), -np.inf)
            last_seen[:, code] = np.maximum.reduceat(times, starts)
    p_user, p_item, p_time = user[starts], item[starts], time[starts]
    by_user_time = np.lexsort((p_item, p_time, p_user))
    return Positives(
        p_user[by_user_time],
        p_item[by_user_time],
        p_time[by_user_time],
        pair_strength[by_user_time].astype(np.float32),
        len(interactions.users),
        len(interactions.items),
        last_seen[by_user_time],
    )


def strong_split(
    positives: Positives,
    *,
    held_out_fraction: float = 0.1,
    seed: int = 0,
    min_items: int = 5,
    fold_in_share: float = 0.8,
    part: tuple[int, int] | None = None,
) -> Split:
    """Hold out a share of users with at least `min_items` items; train on all other users.

    Each held-out user's items, in time order, split into the first `fold_in_share` (the
    history) and the rest (the targets, at least one). Items that never occur in training are
    dropped from both.

    `part=(i, k)` holds out the i-th of k disjoint, near-equal parts of the eligible users
    (shuffled by `seed`) instead of a random `held_out_fraction`: k such splits evaluate every
    eligible user exactly once (k-fold cross-validation over users).

    Raises:
        ValueError: a fraction is outside (0, 1), or `part` is not (i, k) with 0 <= i < k.
    """
    if not 0.0 < held_out_fraction < 1.0:
        raise ValueError(f"held_out_fraction must be in (0, 1), found {held_out_fraction}")
    if not 0.0 < fold_in_share < 1.0:
        raise ValueError(f"fold_in_share must be in (0, 1), found {fold_in_share}")
    if part is not None and not (len(part) == 2 and 0 <= part[0] < part[1]):
        raise ValueError(f"part must be (i, k) with 0 <= i < k, found {part}")
    counts = np.bincount(positives.user, minlength=positives.n_users)
    eligible = np.flatnonzero(counts >= min_items)
    rng = np.random.default_rng(seed)
    if part is not None:
        index, parts = part
        held = np.sort(np.array_split(rng.permutation(eligible), parts)[index])
    else:
        n_held = round(eligible.size * held_out_fraction)
        held = np.sort(rng.choice(eligible, size=n_held, replace=False)) if n_held else eligible[:0]
    is_held = np.zeros(positives.n_users, bool)
    is_held[held] = True
    in_test = is_held[positives.user]
    train = positives.select(~in_test)
    known = np.zeros(positives.n_items, bool)
    known[train.item] = True
    starts = np.searchsorted(positives.user, held, side="left")
    ends = np.searchsorted(positives.user, held, side="right")
    users = []
    for user, start, end in zip(held.tolist(), starts, ends, strict=True):
        items, strength = positives.item[start:end], positives.strength[start:end]
        times, seen = positives.first_time[start:end], positives.last_seen[start:end]
        cut = min(int(np.floor(items.size * fold_in_share)), items.size - 1)
        keep = known[items[:cut]]
        targets = items[cut:][known[items[cut:]]]
        if keep.any() and targets.size:
            users.append(
                HeldOutUser(
                    items[:cut][keep],
                    strength[:cut][keep],
                    times[:cut][keep],
                    targets,
                    seen[:cut][keep],
                    user,
                )
            )
    return Split(train=train, held_out=tuple(users), test_pairs=_pair_keys(positives, in_test))


def temporal_split(positives: Positives, *, min_items: int = 5, target_share: float = 0.2) -> Split:
    """For every user with at least `min_items` items, the last `target_share` by time are targets.

    Everything else, of all users, is training data; the user's own earlier items are the input
    history. Items that never occur in training are dropped from histories and targets.

    Raises:
        ValueError: `target_share` is outside (0, 1).
    """
    if not 0.0 < target_share < 1.0:
        raise ValueError(f"target_share must be in (0, 1), found {target_share}")
    counts = np.bincount(positives.user, minlength=positives.n_users)
    starts = np.searchsorted(positives.user, np.arange(positives.n_users), side="left")
    is_target = np.zeros(len(positives), bool)
    cuts: dict[int, int] = {}
    for user in np.flatnonzero(counts >= min_items):
        n = int(counts[user])
        n_targets = max(1, int(np.ceil(n * target_share)))
        start = int(starts[user])
        is_target[start + n - n_targets : start + n] = True
        cuts[int(user)] = start + n - n_targets
    train = positives.select(~is_target)
    known = np.zeros(positives.n_items, bool)
    known[train.item] = True
    users = []
    for held, cut in cuts.items():
        first, end = int(starts[held]), int(starts[held] + counts[held])
        history, strength = positives.item[first:cut], positives.strength[first:cut]
        targets = positives.item[cut:end]
        targets = targets[known[targets]]
        if history.size and targets.size:
            times, seen = positives.first_time[first:cut], positives.last_seen[first:cut]
            users.append(HeldOutUser(history, strength, times, targets, seen, held))
    return Split(train=train, held_out=tuple(users), test_pairs=_pair_keys(positives, is_target))


def _pair_keys(positives: Positives, mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    return np.sort(positives.user[mask] * positives.n_items + positives.item[mask])
