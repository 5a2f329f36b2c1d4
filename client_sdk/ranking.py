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

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

from .bundle import BundleCatalog
from .context_prior import ContextPopularity
from .controls import ShopperState, one_per_group
from .features import HistoryVector, InterestConfig
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
        context: ContextPopularity | None = None,
        contexts: Collection[str] = POPULAR_CONTEXTS,
        gifts: ContextPopularity | None = None,
    ) -> None:
        self._catalog = catalog
        self._scorer = scorer
        self._state = state
        self._event_weights = event_weights
        self._max_history_items = max_history_items
        self._interest = interest
        self._variant_slack = 2
        self._context = context if contexts else None
        self._gifts = gifts
        self._context_month = "month" in contexts
        self._context_part = "part_of_day" in contexts
        self._masks: dict[str, tuple[frozenset[str], npt.NDArray[np.bool_]]] = {}

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
            masked = np.zeros(n, bool)
            controls.append(Reason("control", "gift mode: your own history is not used"))
            if self._gifts is None:
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
            masked = self._state.log.touched().copy()
            if history.faded:
                controls.append(Reason("control", f"{history.faded} older interests have faded"))
        suppressed = self._state.suppressed_mask()
        hidden = int(np.count_nonzero(suppressed & ~masked))
        if hidden:
            controls.append(Reason("control", f"{hidden} dismissed items and variants hidden"))
        masked |= suppressed
        view_index = index.get(in_view) if in_view is not None else None
        if view_index is not None:
            masked |= self._state.group_mask(view_index)
            title = self._catalog.entries[view_index].title
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
        popularity = self._gifts if plan.gift and self._gifts is not None else self._context
        if plan.history.index.size == 0 and popularity is not None and plan.when is not None:
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
        out = []
        for row, position in enumerate(kept):
            entry = self._catalog.entries[int(result.indices[position])]
            reasons = self._reasons(sources[row], shares[row], plan.history)
            out.append(
                Recommendation(
                    entry.item_id,
                    entry.title,
                    float(result.scores[position]),
                    (*reasons, *controls),
                )
            )
        return out

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
        return [
            Recommendation(
                self._catalog.entries[item].item_id,
                self._catalog.entries[item].title,
                score,
                (Reason("popular", text), *controls),
            )
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
        self, sources: list[int], shares: list[float], history: HistoryVector
    ) -> list[Reason]:
        reasons = []
        for h, share in zip(sources, shares, strict=True):
            source = self._catalog.entries[int(history.index[h])]
            if history.kind[h] == _CROWD:
                text = f"people who bought {source.title} also bought this"
                reasons.append(Reason("also_bought", text, source.item_id, share))
                continue
            verb = _VERB.get(history.kind[h], "chose")
            reasons.append(
                Reason("history", f"because you {verb} {source.title}", source.item_id, share)
            )
        return reasons or [Reason(kind="popular", text="popular with other shoppers")]


def top_contributors(
    contributions: npt.NDArray[np.float32],
) -> tuple[list[list[int]], list[list[float]]]:
    """For each result row: the history positions that added most (best first, positive only,
    at most three) and their shares of the row's positive total."""
    k, h = contributions.shape
    if h == 0:
        return [[] for _ in range(k)], [[] for _ in range(k)]
    r = min(_MAX_REASONS, h)
    top = np.argpartition(-contributions, r - 1, axis=1)[:, :r]
    values = np.take_along_axis(contributions, top, axis=1)
    order = np.argsort(-values, axis=1, kind="stable")
    top, values = np.take_along_axis(top, order, axis=1), np.take_along_axis(values, order, axis=1)
    total = np.where(contributions > 0, contributions, 0).sum(axis=1, dtype=np.float64)
    sources: list[list[int]] = []
    shares: list[list[float]] = []
    for row in range(k):
        keep = values[row] > 0
        sources.append(top[row][keep].tolist())
        shares.append((values[row][keep] / total[row]).tolist() if total[row] > 0 else [])
    return sources, shares
