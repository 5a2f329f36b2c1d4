"""The quality benchmark's pooling: paired differences with a cluster bootstrap over users."""

from __future__ import annotations

import pytest

from benchmarks.bench_quality import paired, pool
from server.evaluation import EvaluationReport, ModelResult

METRICS = {"recall@10": 0.0, "recall@20": 0.0, "ndcg@10": 0.0, "ndcg@20": 0.0, "coverage@20": 0.0}


def test_the_mean_difference_is_over_rows() -> None:
    result = paired({"facetwo": [1.0, 0.0, 1.0, 0.5], "other": [0.0, 0.0, 0.5, 0.5]}, [0, 1, 2, 3])
    assert result["other"]["mean"] == pytest.approx(0.375)
    assert result["other"]["low"] <= 0.375 <= result["other"]["high"]


def test_a_user_evaluated_in_two_folds_does_not_narrow_the_interval() -> None:
    """The same users pooled twice (two folds that drew them both) carry no more evidence: the
    cluster bootstrap gives the very same interval, where resampling rows would narrow it."""
    own = [0.9, 0.1, 0.5, 0.7, 0.0, 0.3, 0.8, 0.2]
    other = [0.5, 0.3, 0.4, 0.2, 0.1, 0.3, 0.6, 0.4]
    users = list(range(8))
    once = paired({"facetwo": own, "other": other}, users)["other"]
    twice = paired({"facetwo": own * 2, "other": other * 2}, users * 2)["other"]
    assert twice == pytest.approx(once)


def _report(users: tuple[int, ...], per_user: dict[str, tuple[float, ...]]) -> EvaluationReport:
    models = tuple(ModelResult(name, dict(METRICS), 0.0, 0, {}, v) for name, v in per_user.items())
    split = {"train_users": 10, "evaluated_users": len(users), "items": 5, "train_positives": 9}
    return EvaluationReport("strong", "test", split, models, (10, 20), users)


def test_pool_counts_distinct_users_and_refuses_misaligned_rows() -> None:
    first = _report((1, 2), {"facetwo": (1.0, 0.0), "ease": (0.0, 0.0)})
    second = _report((2, 3), {"facetwo": (0.0, 1.0), "ease": (0.0, 1.0)})
    pooled = pool([first, second])
    assert (pooled["evaluated_users"], pooled["distinct_users"]) == (4, 3)
    assert pooled["facetwo_minus"]["ease"]["mean"] == pytest.approx(0.25)
    short = _report((4, 5), {"facetwo": (1.0, 0.0), "ease": (0.0,)})
    with pytest.raises(ValueError, match="ease: 1 per-user values for 2 evaluated users"):
        pool([first, short])
    missing = _report((4, 5), {"facetwo": (1.0, 0.0)})
    with pytest.raises(ValueError, match=r"the models \['facetwo'\], the first one"):
        pool([first, missing])
