"""`facetwo evaluate` on data with a known answer: clusters a model must find."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from server.data import load_interactions
from server.evaluation import evaluate
from server.training import TrainingConfig, train_model


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


def test_facetwo_trains_without_gift_rows_as_build_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Gift rows feed `facetwo build`'s gift prior, not its model: `evaluate` trains facetwo the
    same way, while the baselines see every positive."""
    import server.evaluation

    plain = write_clusters(tmp_path / "plain.csv")
    with plain.open(newline="") as handle:
        rows = list(csv.reader(handle))
    gifted = [[*rows[0], "gift"]] + [[*row, "false"] for row in rows[1:]]
    for number, row in enumerate(rows[1:]):
        if number % 3 == 0:  # a third of the users also bought the same toy as a gift
            gifted.append([row[0], "gift-toy", row[2], "true"])
    path = tmp_path / "gifts.csv"
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(gifted)
    interactions = load_interactions(path)
    seen: list[int] = []
    original = train_model

    def recording(rows: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(int(np.count_nonzero(np.asarray(rows.item) == toy)))
        assert rows.gift is None or not rows.gift.any()
        return original(rows, *args, **kwargs)

    toy = interactions.items.index("gift-toy")
    monkeypatch.setattr(server.evaluation, "train_model", recording)
    config = TrainingConfig(l2_grid=(1.0,), popularity_grid=(0.0,), neighbors=(8,), ranks=(4,))
    report = evaluate(interactions, config=config, skip=("item-knn", "ease"))
    assert seen == [0]
    assert report.split["train_positives"] > 0
