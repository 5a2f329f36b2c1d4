"""Step "score -> controls": one request, from the shopper's state to an explained list.

- `Ranker.plan` (under the Recommender's lock): the decayed history, everything that must not be
  shown — history items, dismissed items and their variants, the item in view and its variants,
  `exclude` / outside `candidates` — and the reasons of the controls that shaped the list;
- `Ranker.rank` (outside it): score with the bundle's model with those items excluded in the
  graph, before its top k, so k items come back while that many remain; over-fetch a little
  and keep one item per variant group; explain each result from the model's contributions.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

from .bundle import BundleCatalog
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
_MAX_REASONS = 3


@dataclass(frozen=True, slots=True)
class Reason:
    """Why an item was suggested, or a control that shaped the list."""

    kind: str
    """"history" (`item_id` contributed `share` of the score), "popular", or "control"."""
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
    ) -> None:
        self._catalog = catalog
        self._scorer = scorer
        self._state = state
        self._event_weights = event_weights
        self._max_history_items = max_history_items
        self._interest = interest
        self._variant_slack = 2

    def plan(
        self,
        now: datetime,
        *,
        gift: bool,
        exclude: Collection[str],
        candidates: Collection[str] | None,
        in_view: str | None,
    ) -> RequestPlan:
        """The request for the shopper's state now (call under the state's lock)."""
        index, n = self._catalog.index, len(self._catalog)
        controls: list[Reason] = []
        if gift:
            history = HistoryVector(np.zeros(0, np.int64), np.zeros(0, np.float32), ())
            masked = np.zeros(n, bool)
            controls.append(Reason("control", "gift mode: your own history is not used"))
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
        if candidates is not None:
            allowed = np.zeros(n, bool)
            allowed[[index[c] for c in candidates if c in index]] = True
            masked |= ~allowed
        masked[[index[e] for e in exclude if e in index]] = True
        excluded = np.flatnonzero(masked).astype(np.int64)
        return RequestPlan(history, excluded, n - excluded.size, tuple(controls))

    def rank(self, plan: RequestPlan, k: int) -> list[Recommendation]:
        """The best `k` of a plan (fewer if fewer remain), one per variant group, explained.

        Raises:
            ClientError: onnxruntime failed while scoring.
        """
        want = min(k, plan.available)
        if want <= 0:
            return []
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

    def _reasons(
        self, sources: list[int], shares: list[float], history: HistoryVector
    ) -> list[Reason]:
        reasons = []
        for h, share in zip(sources, shares, strict=True):
            source = self._catalog.entries[int(history.index[h])]
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
