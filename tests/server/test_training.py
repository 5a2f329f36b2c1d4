"""Training: EASE's closed form, pruning, l2 selection, and a known-answer checkerboard."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from model_export.export import LowRankModel, SparseItemModel
from server.data import load_interactions
from server.errors import TrainingError
from server.training import TrainingConfig, ease_weights, prune_top_m, train_model
from server.validation import popularity_prior


def write_checkerboard(path: Path, *, users_per_cluster: int = 60, seed: int = 0) -> Path:
    """Two clusters of five items; every user buys four items of one cluster, in time order."""
    rng = np.random.default_rng(seed)
    rows = []
    for cluster in ("a", "b"):
        for u in range(users_per_cluster):
            items = rng.permutation(5)[:4]
            for t, item in enumerate(items):
                rows.append((f"{cluster}-u{u}", f"{cluster}{item}", 1_700_000_000 + 86_400 * t))
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "item_id", "timestamp"])
        writer.writerows(rows)
    return path


def test_ease_weights_match_the_closed_form() -> None:
    rng = np.random.default_rng(0)
    x = (rng.random((40, 6)) < 0.4).astype(np.float64)
    gram = x.T @ x
    b = ease_weights(gram, 2.0)
    # EASE's B minimises ||X - XB||^2 + l2 ||B||^2 with diag(B) = 0: compare with the
    # column-wise least-squares solution without item j.
    for j in range(6):
        others = [i for i in range(6) if i != j]
        a = x[:, others]
        expected = np.linalg.solve(a.T @ a + 2.0 * np.eye(5), a.T @ x[:, j])
        np.testing.assert_allclose(b[others, j], expected, rtol=1e-4, atol=1e-6)
        assert b[j, j] == 0.0


def test_prune_keeps_each_rows_largest_weights_and_pads() -> None:
    w = np.array([[0, 3, 1, 2], [5, 0, -1, 4], [1, 1, 0, 0], [0, 0, 0, 0]], np.float32)
    idx, vals = prune_top_m(w, 2)
    assert idx[0].tolist() == [1, 3] and vals[0].tolist() == [3, 2]
    assert idx[1].tolist() == [0, 3] and vals[1].tolist() == [5, 4]
    idx, vals = prune_top_m(w, 6)  # more than n - 1: every other item, then padding with zeros
    assert idx.shape == (4, 6)
    assert vals[0].tolist() == [3, 2, 1, 0, 0, 0]
    assert not np.any(vals < 0)


def test_popularity_prior_orders_by_count_and_scales_with_its_weight() -> None:
    counts = np.array([0, 10, 100, 5], np.float64)
    tie_only = popularity_prior(counts, 0.0)
    assert np.argsort(-tie_only).tolist() == [2, 1, 3, 0]
    assert tie_only.max() <= 1e-6
    weighted = popularity_prior(counts, 0.5)
    np.testing.assert_allclose(weighted - tie_only, [0, 0.05, 0.5, 0.025], rtol=1e-5)


@pytest.mark.parametrize("form", ["sparse", "low-rank"])
def test_checkerboard_withheld_items_rank_first(tmp_path: Path, form: str) -> None:
    interactions = load_interactions(write_checkerboard(tmp_path / "i.csv"))
    config = TrainingConfig(forms=(form,), neighbors=(4,), ranks=(2,), max_bytes_ratio=1.0)
    result = train_model(interactions, config)
    model = result.model
    assert isinstance(model, SparseItemModel if form == "sparse" else LowRankModel)
    index = {item: i for i, item in enumerate(model.item_ids)}
    history = np.array([index["a0"], index["a1"], index["a2"]], np.int64)
    scores = model.reference_scores(history, np.ones(3, np.float32))
    scores[history] = -np.inf
    top2 = {model.item_ids[i] for i in np.argsort(-scores)[:2]}
    assert top2 == {"a3", "a4"}
    # Every grid point was measured on the validation split, and the best one was chosen.
    grid = TrainingConfig()
    assert len(result.searched) == len(grid.l2_grid)
    assert result.choice == max(result.searched, key=lambda c: c.ndcg)
    assert result.choice.ndcg > 0.5


def test_search_picks_the_better_form_and_respects_the_size_budget(tmp_path: Path) -> None:
    interactions = load_interactions(write_checkerboard(tmp_path / "i.csv"))
    config = TrainingConfig(neighbors=(2, 8), ranks=(2, 64), max_bytes_ratio=0.5)
    result = train_model(interactions, config)
    sizes = {(c.form, c.size) for c in result.searched}
    # n = 10 items: budget 0.5 * 4 * 100 = 200 bytes; m=2 costs 10*2*3+80 = 140, m=8 costs 320;
    # d=2 costs 10*(2+8) = 100, d=64 costs 720.
    assert sizes == {("sparse", 2), ("low-rank", 2)}


def test_progress_is_reported(tmp_path: Path) -> None:
    interactions = load_interactions(write_checkerboard(tmp_path / "i.csv"))
    messages: list[str] = []
    train_model(interactions, TrainingConfig(l2_grid=(5.0,)), progress=messages.append)
    assert any("positives" in m for m in messages)
    assert any(m.startswith("chose ") for m in messages)


def test_too_many_items_is_a_training_error(tmp_path: Path) -> None:
    interactions = load_interactions(write_checkerboard(tmp_path / "i.csv"))
    with pytest.raises(TrainingError, match="over max_items 5"):
        train_model(interactions, TrainingConfig(max_items=5))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"neighbors": (0,)}, "neighbors"),
        ({"forms": ("dense",)}, "forms"),
        ({"l2_grid": ()}, "l2_grid"),
        ({"popularity_grid": (-1.0,)}, "popularity_grid"),
        ({"max_bytes_ratio": 0.0}, "max_bytes_ratio"),
        ({"validation_fraction": 1.0}, "validation_fraction"),
        ({"event_weights": {"view": float("nan")}}, "event_weights"),
    ],
)
def test_config_errors_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        TrainingConfig(**kwargs)  # type: ignore[arg-type]
