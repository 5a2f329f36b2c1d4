"""Step "score -> controls": one request, from the shopper's state to an explained list.

- `Ranker.plan` (under the Recommender's lock): the decayed history, everything that must not be
  shown — history items, dismissed items and their variants, the item in view and its variants,
  `exclude` / outside `candidates` — and the reasons of the controls that shaped the list;
- `Ranker.rank` (outside it): score with the bundle's model with those items excluded in the
  graph, before its top k, so k items come back while that many remain; over-fetch a little
  and keep one item per variant group; explain each result from the model's contributions.

Cold start: with no history and no item in view, a bundle's context prior (`context_prior.py`)
ranks what is popular in this month and part of the day, then the model's global prior fills
up; gift mode ranks by the bundle's gift prior (what people buy as gifts, in this context) when
it ships one, else by the context prior, and says so; "also bought" (`crowd=True`) scores the
item in view alone, as the crowd bought it, and keeps only items the model links to it.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

from .bundle import BundleCatalog
from .context_prior import ContextPopularity
from .controls import ShopperState, one_per_group
from .extras import BundleExtras
from .features import EventLog, HistoryVector, InterestConfig
from .scoring import Scorer

_VERB = {
    "view": "viewed",
    "cart": "added to your cart",
    "purchase": "bought",
    "search": "searched for",
    "in_view": "are looking at",
}
_CROWD = "crowd"
"""The history kind of the item in view in an "also bought" request."""
_MAX_REASONS = 3
POPULAR_CONTEXTS = ("month", "part_of_day")
"""What an empty session's popularity may depend on (when the bundle ships a context prior)."""


@dataclass(frozen=True, slots=True)
class Reason:
    """Why an item was suggested, or a control that shaped the list."""

    kind: str
    """"history" (`item_id` contributed `share` of the score), "also_bought" (bought with
    `item_id`, the item in view), "popular" (the crowd's choice, maybe in this context), or
    "control"."""
    text: str
    item_id: str | None = None
    share: float = 0.0


_POPULAR = Reason("popular", "popular with other shoppers")
"""The reason of a result no history item explains (shared: reasons are immutable)."""


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One suggestion, best first in the list `recommend()` returns."""

    item_id: str
    title: str
    score: float
    reasons: tuple[Reason, ...]


@dataclass(frozen=True, slots=True)
class RequestPlan:
    """What one request scores, what it must not show, and which controls shaped it."""

    history: HistoryVector
    exclude: npt.NDArray[np.int64]
    available: int
    controls: tuple[Reason, ...]
    when: datetime | None = None
    """the request's local time: the context of an empty session."""
    crowd: bool = False
    """"also bought": only items the model links to the item in view."""
    gift: bool = False
    """gift mode: an empty session ranks by the gift prior."""


_Standing = tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64], int, tuple["Reason", ...]]
"""A request's standing exclusion: mask, indices, dismissal-only count, reasons of kinds."""


class Ranker:
    """Plans and ranks requests for one catalog, model and shopper."""

    def __init__(
        self,
        catalog: BundleCatalog,
        scorer: Scorer,
        state: ShopperState,
        event_weights: Mapping[str, float],
        *,
        max_history_items: int,
        interest: InterestConfig,
        extras: BundleExtras | None = None,
        contexts: Collection[str] = POPULAR_CONTEXTS,
        replaced_days: float = 0.0,
    ) -> None:
        self._catalog = catalog
        self._scorer = scorer
        self._state = state
        self._event_weights = event_weights
        self._max_history_items = max_history_items
        self._interest = interest
        self._variant_slack = 2
        self._extras = extras or BundleExtras.of()
        self._contexts_on = bool(contexts)
        self._replaced_days = replaced_days if catalog.kind_names else 0.0
        self._context_month = "month" in contexts
        self._context_part = "part_of_day" in contexts
        self._masks: dict[str, tuple[frozenset[str], npt.NDArray[np.bool_]]] = {}
        self._standing: (
            tuple[EventLog | None, tuple[int, float], npt.NDArray[np.bool_], _Standing] | None
        ) = None

    def plan(
        self,
        now: datetime,
        *,
        gift: bool,
        exclude: Collection[str],
        candidates: Collection[str] | None,
        in_view: str | None,
        crowd: bool = False,
    ) -> RequestPlan:
        """The request for the shopper's state now (call under the state's lock).

        With `crowd`, the list is what shoppers who bought `in_view` also bought: the shopper's
        history neither shapes nor filters it (dismissals, `exclude` and `candidates` do).
        """
        index, n = self._catalog.index, len(self._catalog)
        controls: list[Reason] = []
        if crowd:
            return self._crowd_plan(now, exclude, candidates, in_view)
        if gift:
            history = HistoryVector(np.zeros(0, np.int64), np.zeros(0, np.float32), ())
            controls.append(Reason("control", "gift mode: your own history is not used"))
            if self._extras.gifts is None:
                controls.append(
                    Reason("control", "this model has no gift data: showing what is popular")
                )
        else:
            history = self._state.log.history(
                self._event_weights,
                max_items=self._max_history_items,
                now=now,
                interest=self._interest,
            )
            if history.faded:
                controls.append(Reason("control", f"{history.faded} older interests have faded"))
        masked, excluded, hidden, replaced = self._standing_exclusion(gift, now)
        if hidden:
            controls.append(Reason("control", f"{hidden} dismissed items and variants hidden"))
        controls.extend(replaced)
        view_index = index.get(in_view) if in_view is not None else None
        if view_index is None and not exclude and candidates is None:
            return RequestPlan(
                history, excluded, n - excluded.size, tuple(controls), now, gift=gift
            )
        masked = masked.copy()
        if view_index is not None:
            masked |= self._state.group_mask(view_index)
            title = self._catalog.titles[view_index]
            controls.append(Reason("control", f"{title} (in view) and its variants left out"))
            if view_index not in history.index:
                history = HistoryVector(
                    np.append(history.index, view_index).astype(np.int64),
                    np.append(history.weight, self._event_weights["view"]).astype(np.float32),
                    (*history.kind, "in_view"),
                    history.faded,
                )
        self._mask_outside(masked, exclude, candidates)
        excluded = np.flatnonzero(masked).astype(np.int64)
        return RequestPlan(history, excluded, n - excluded.size, tuple(controls), now, gift=gift)

    def _standing_exclusion(self, gift: bool, now: datetime) -> _Standing:
        """What every request leaves out until the shopper's state changes: the items in the
        history (unless `gift`), the dismissed items and their variants, and (unless `gift`)
        the other items of each kind the shopper bought a durable of lately. As a read-only
        mask, as indices, how many of them only a dismissal hides, and the reasons of the kinds
        left out. Kept while the event log, the dismissals and the day stay the same, so a
        plain request does no O(catalogue) work."""
        suppressed = self._state.suppressed_mask()
        log = None if gift else self._state.log
        version = -1 if log is None else log.version
        cached = self._standing
        # Fresh while the log and the dismissals are the same and no left-out kind is back.
        if (
            cached is not None
            and cached[0] is log
            and cached[1][0] == version
            and cached[2] is suppressed
            and now.timestamp() < cached[1][1]
        ):
            return cached[3]
        replaced: tuple[Reason, ...] = ()
        until = math.inf
        if gift:
            masked = suppressed.copy()
            hidden = int(np.count_nonzero(suppressed))
        else:
            touched = self._state.log.touched()
            hidden = int(np.count_nonzero(suppressed & ~touched))
            masked = touched | suppressed
            if self._replaced_days:
                replaced, until = self._mask_replaced(masked, now)
        masked.setflags(write=False)
        excluded = np.flatnonzero(masked).astype(np.int64)
        excluded.setflags(write=False)
        standing = (masked, excluded, hidden, replaced)
        self._standing = (log, (version, until), suppressed, standing)
        return standing

    def _mask_replaced(
        self, masked: npt.NDArray[np.bool_], now: datetime
    ) -> tuple[tuple[Reason, ...], float]:
        """Mask, in place, the other items of each kind of which the shopper bought a durable
        item within `replaced_days` (or said they bought it elsewhere): a second camera is
        not what the buyer of a camera needs. Returns one reason per kind left out, and when
        (Unix seconds) the first of those purchases leaves the window."""
        kind_of = self._catalog.kind_of
        assert kind_of is not None  # noqa: S101 - replaced_days is 0 without kinds
        items, at = self._state.log.purchased()
        elsewhere = self._state.bought_elsewhere()
        items = np.concatenate([items, elsewhere[0]])
        at = np.concatenate([at, elsewhere[1]])
        recent = (now.timestamp() - at <= self._replaced_days * 86_400) & (kind_of[items] >= 0)
        recent &= ~self._catalog.consumable[items]
        if not recent.any():
            return (), math.inf
        items, at = items[recent], at[recent]
        until = float(at.min()) + self._replaced_days * 86_400
        latest: dict[int, int] = {}
        for item in items[np.argsort(at, kind="stable")].tolist():
            latest[int(kind_of[item])] = item  # the most recent purchase names its kind
        same_kind = np.isin(kind_of, np.fromiter(latest, np.int64))
        reasons = []
        for item in latest.values():
            left_out = int(np.count_nonzero((kind_of == kind_of[item]) & ~masked))
            if left_out:
                title = self._catalog.titles[item]
                text = f"{left_out} other items like {title} left out: you bought one"
                reasons.append(Reason("control", text))
        masked |= same_kind
        return tuple(reasons), until

    def _crowd_plan(
        self,
        now: datetime,
        exclude: Collection[str],
        candidates: Collection[str] | None,
        in_view: str | None,
    ) -> RequestPlan:
        view_index = self._catalog.index.get(in_view) if in_view is not None else None
        empty = HistoryVector(np.zeros(0, np.int64), np.zeros(0, np.float32), ())
        if view_index is None:
            return RequestPlan(empty, np.zeros(0, np.int64), 0, (), now, crowd=True)
        masked = self._state.suppressed_mask() | self._state.group_mask(view_index)
        self._mask_outside(masked, exclude, candidates)
        history = HistoryVector(np.array([view_index], np.int64), np.ones(1, np.float32), (_CROWD,))
        excluded = np.flatnonzero(masked).astype(np.int64)
        n = len(self._catalog)
        return RequestPlan(history, excluded, n - excluded.size, (), now, crowd=True)

    def _mask_outside(
        self,
        masked: npt.NDArray[np.bool_],
        exclude: Collection[str],
        candidates: Collection[str] | None,
    ) -> None:
        """Mask `exclude` and everything outside `candidates`, in place. A frozenset's mask is
        kept, so a kiosk's fixed store rules cost one lookup per request, not a catalog scan."""
        if candidates is not None:
            masked |= ~self._mask_of("candidates", candidates)
        if exclude:
            masked |= self._mask_of("exclude", exclude)

    def _mask_of(self, role: str, ids: Collection[str]) -> npt.NDArray[np.bool_]:
        cached = self._masks.get(role)
        if cached is not None and cached[0] is ids:
            return cached[1]
        index = self._catalog.index
        mask = np.zeros(len(self._catalog), bool)
        mask[[index[i] for i in ids if i in index]] = True
        if isinstance(ids, frozenset):
            self._masks[role] = (ids, mask)
        return mask

    def rank(self, plan: RequestPlan, k: int) -> list[Recommendation]:
        """The best `k` of a plan (fewer if fewer remain), one per variant group, explained.

        Raises:
            ClientError: onnxruntime failed while scoring.
        """
        want = min(k, plan.available)
        if want <= 0:
            return []
        empty = plan.history.index.size == 0 and plan.when is not None
        popularity = self._popularity(plan) if empty else None
        if popularity is not None:
            return self._rank_in_context(plan, want, popularity)
        # Over-fetch for the variants one_per_group drops, by about as many as the last list
        # dropped: the graph's cost grows with k (its contributions are k x history).
        fetch = min(plan.available, want + self._variant_slack)
        while True:
            result = self._scorer.score(
                plan.history.index, plan.history.weight, exclude=plan.exclude, k=fetch
            )
            kept, dropped = one_per_group(result.indices, self._state.group_code, want)
            if len(kept) == want or fetch >= plan.available:
                break
            fetch = min(plan.available, 4 * fetch)
        self._variant_slack = min(max(2, dropped + 1), 256)
        controls = plan.controls
        if dropped:
            controls += (Reason("control", f"one variant per product: {dropped} left out"),)
        if plan.crowd:  # "also bought": only what the model links to the item in view
            kept = [p for p in kept if result.contributions[p, 0] > 0]
        sources, shares = top_contributors(result.contributions[np.asarray(kept, np.int64)])
        ids, titles = self._catalog.item_ids, self._catalog.titles
        items, scores = result.indices.tolist(), result.scores.tolist()
        explained = self._reasons(sources, shares, plan.history)
        return [
            Recommendation(ids[items[p]], titles[items[p]], scores[p], (*reasons, *controls))
            for p, reasons in zip(kept, explained, strict=True)
        ]

    def _popularity(self, plan: RequestPlan) -> ContextPopularity | None:
        """What ranks an empty session: the gift prior in gift mode (when shipped), else the
        context prior (when shipped and switched on)."""
        gifts = self._extras.gifts if plan.gift else None
        if gifts is not None:
            return gifts
        return self._extras.context if self._contexts_on else None

    def _rank_in_context(
        self, plan: RequestPlan, want: int, popularity: ContextPopularity
    ) -> list[Recommendation]:
        """An empty session: what is popular (or given as a gift) in this month and part of the
        day, then, for items the prior does not list, the model's global prior."""
        assert plan.when is not None  # noqa: S101 - checked by the caller
        ranking = popularity.rank(plan.when, month=self._context_month, part=self._context_part)
        masked = np.zeros(len(self._catalog), bool)
        masked[plan.exclude] = True
        allowed = ~masked[ranking.index]
        order, scores, codes = ranking.index[allowed], ranking.score[allowed], ranking.code[allowed]
        kept, dropped = one_per_group(order, self._state.group_code, want)
        picked = [(int(order[p]), float(scores[p]), ranking.reason[codes[p]]) for p in kept]
        if len(picked) < want:
            masked[ranking.index] = True
            fill, skipped = self._fill_globally(
                masked, {i for i, _, _ in picked}, want - len(picked)
            )
            picked += fill
            dropped += skipped
        controls = plan.controls
        if dropped:
            controls += (Reason("control", f"one variant per product: {dropped} left out"),)
        ids, titles = self._catalog.item_ids, self._catalog.titles
        return [
            Recommendation(ids[item], titles[item], score, (Reason("popular", text), *controls))
            for item, score, text in picked
        ]

    def _fill_globally(
        self, masked: npt.NDArray[np.bool_], picked: set[int], need: int
    ) -> tuple[list[tuple[int, float, str]], int]:
        """Up to `need` unmasked items by the model's global prior, skipping the variant groups
        of `picked`; and how many variants were skipped."""
        taken = set(self._state.group_code[sorted(picked)].tolist())
        exclude = np.flatnonzero(masked).astype(np.int64)
        available = masked.size - exclude.size
        fetch = min(available, need + len(taken) + self._variant_slack)
        while True:
            result = self._scorer.score(
                np.zeros(0, np.int64), np.zeros(0, np.float32), exclude=exclude, k=fetch
            )
            out: list[tuple[int, float, str]] = []
            seen, skipped = set(taken), 0
            for item, score in zip(result.indices.tolist(), result.scores.tolist(), strict=True):
                group = int(self._state.group_code[item])
                if group in seen:
                    skipped += 1
                    continue
                seen.add(group)
                out.append((item, score, "popular with other shoppers"))
                if len(out) == need:
                    return out, skipped
            if fetch >= available:
                return out, skipped
            fetch = min(available, 4 * fetch)

    def _reasons(
        self, sources: list[list[int]], shares: list[list[float]], history: HistoryVector
    ) -> list[list[Reason]]:
        """Each result row's reasons: the history items that added most, with their shares."""
        ids, titles = self._catalog.item_ids, self._catalog.titles
        items = history.index.tolist()
        labels: dict[int, tuple[str, str, str]] = {}  # history position -> kind, text, item_id
        out = []
        for row_sources, row_shares in zip(sources, shares, strict=True):
            reasons = []
            for h, share in zip(row_sources, row_shares, strict=True):
                label = labels.get(h)
                if label is None:
                    source, kind = items[h], history.kind[h]
                    if kind == _CROWD:
                        text = f"people who bought {titles[source]} also bought this"
                        label = ("also_bought", text, ids[source])
                    else:
                        verb = _VERB.get(kind, "chose")
                        label = ("history", f"because you {verb} {titles[source]}", ids[source])
                    labels[h] = label
                reasons.append(Reason(*label, share))
            out.append(reasons or [_POPULAR])
        return out


def top_contributors(
    contributions: npt.NDArray[np.float32],
) -> tuple[list[list[int]], list[list[float]]]:
    """For each result row: the history positions that added most (best first, positive only,
    at most three) and their shares of the row's positive total."""
    k, h = contributions.shape
    if h == 0:
        return [[] for _ in range(k)], [[] for _ in range(k)]
    # One small sort and a few whole-array steps, then plain lists: a request explains about
    # 20 x 50 contributions, where numpy's per-call overhead, not arithmetic, is the cost.
    top = np.argsort(-contributions, axis=1, kind="stable")[:, :_MAX_REASONS]
    values = np.take_along_axis(contributions, top, axis=1).astype(np.float64)
    total = np.maximum(contributions, 0).sum(axis=1, dtype=np.float64)
    share = (values / np.where(total > 0, total, 1.0)[:, None]).tolist()
    positive = np.count_nonzero(values > 0, axis=1).tolist()  # sorted best first: they lead
    rows = zip(top.tolist(), share, positive, strict=True)
    sources, shares = [], []
    for row_top, row_share, n in rows:
        sources.append(row_top[:n])
        shares.append(row_share[:n])
    return sources, shares
