"""`facetwo evaluate` on data with a known answer: clusters a model must find."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from server.data import load_interactions
from server.evaluation import evaluate
from server.training import TrainingConfig


def write_clusters(path: Path, *, clusters: int = 4, size: int = 8, users: int = 60) -> Path:
    """Each user buys 6 of the 8 items of one cluster, one a day; clusters differ in size of
    their audience so that popularity alone cannot find a user's cluster."""
    rng = np.random.default_rng(5)
    rows = []
    for c in range(clusters):
        for u in range(users * (c + 1) // 2):
            items = rng.permutation(size)[:6]
            for t, item in enumerate(items):
                rows.append((f"c{c}-u{u}", f"c{c}-i{item}", f"2025-01-{t + 1:02d}"))
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "item_id", "timestamp"])
        writer.writerows(rows)
    return path


@pytest.mark.parametrize("protocol", ["strong", "temporal"])
def test_facetwo_finds_the_cluster_and_popularity_does_not(tmp_path: Path, protocol: str) -> None:
    interactions = load_interactions(write_clusters(tmp_path / "i.csv"))
    config = TrainingConfig(l2_grid=(1.0,), popularity_grid=(0.0,), neighbors=(8,), ranks=(4,))
    report = evaluate(interactions, protocol=protocol, config=config)
    models = {m.name: m.metrics for m in report.models}
    assert set(models) == {"facetwo", "popularity", "item-knn", "ease"}
    # The two targets are among the cluster's 4 unseen items, which a model of the clusters
    # ranks in its first 4 places: recall@10 is exactly 1.
    assert models["facetwo"]["recall@10"] == pytest.approx(1.0)
    assert models["ease"]["recall@10"] == pytest.approx(1.0)
    assert models["popularity"]["recall@10"] < 0.7
    assert report.split["evaluated_users"] > 0
    table = report.table()
    assert table.splitlines()[1].split()[:3] == ["model", "recall@10", "recall@20"]


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    interactions = load_interactions(write_clusters(tmp_path / "i.csv"))
    with pytest.raises(ValueError, match="protocol"):
        evaluate(interactions, protocol="random")
    with pytest.raises(ValueError, match="k must be"):
        evaluate(interactions, ks=(0,))
    with pytest.raises(ValueError, match=r"skip: unknown baseline\(s\) \['als'\]"):
        evaluate(interactions, skip=("als",))


def test_skipped_baselines_and_per_user_ndcg(tmp_path: Path) -> None:
    """A benchmark may leave out the dense baselines; each model keeps its per-user NDCG@20,
    whose mean is the reported NDCG@20, for paired comparisons."""
    interactions = load_interactions(write_clusters(tmp_path / "i.csv"))
    config = TrainingConfig(l2_grid=(1.0,), popularity_grid=(0.0,), neighbors=(8,), ranks=(4,))
    report = evaluate(interactions, config=config, skip=("item-knn", "ease"))
    assert [m.name for m in report.models] == ["facetwo", "popularity"]
    for model in report.models:
        assert len(model.per_user_ndcg) == report.split["evaluated_users"]
        assert sum(model.per_user_ndcg) / len(model.per_user_ndcg) == pytest.approx(
            model.metrics["ndcg@20"]
        )
    users = report.held_out_users
    assert len(set(users)) == len(users) == report.split["evaluated_users"]
    assert min(users) >= 0
    facetwo = report.models[0].per_user_ndcg
    assert min(facetwo) > 0.5  # every user's 2 targets are in the cluster's top 4
