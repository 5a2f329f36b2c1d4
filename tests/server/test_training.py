"""Training: EASE's closed form, pruning, l2 selection, and a known-answer checkerboard."""

from __future__ import annotations

import csv
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from threadpoolctl import threadpool_info, threadpool_limits

from model_export.export import LowRankModel, LowRankSparseModel, SparseItemModel
from server.baselines import ease_weights
from server.data import load_interactions
from server.errors import TrainingError
from server.gram import Gram, local_ridge, prune_rows
from server.search import run_search
from server.training import DEFAULT_HALF_LIVES, TrainingConfig, train_model
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


def test_prune_keeps_each_rows_largest_positive_weights_and_pads() -> None:
    w = sp.csr_matrix(np.array([[0, 3, 1, 2], [5, 0, -1, 4], [1, 1, 0, 0], [0, 0, 0, 0]], float))
    idx, vals = prune_rows(w, 2)
    assert idx[0].tolist() == [1, 3] and vals[0].tolist() == [3, 2]
    assert idx[1].tolist() == [0, 3] and vals[1].tolist() == [5, 4]
    idx, vals = prune_rows(w, 6)  # more than a row holds: padding with (self, 0)
    assert idx.shape == (4, 6)
    assert vals[0].tolist() == [3, 2, 1, 0, 0, 0] and idx[0, 3:].tolist() == [0, 0, 0]
    assert vals[3].tolist() == [0] * 6 and idx[3].tolist() == [3] * 6


@pytest.mark.parametrize("dense_max", [1000, 0])
def test_local_ridge_with_all_candidates_is_ease(dense_max: int) -> None:
    """With every other item as a candidate, each column's ridge is EASE's column exactly."""
    rng = np.random.default_rng(1)
    x = (rng.random((60, 7)) < 0.4).astype(np.float64)
    from server.splits import Positives

    user, item = np.nonzero(x)
    seen = np.full((user.size, 3), -np.inf)
    positives = Positives(
        user.astype(np.int64), item.astype(np.int64), np.zeros(user.size, np.int64),
        np.ones(user.size, np.float32), 60, 7, seen,
    )  # fmt: skip
    gram = Gram.build(positives, np.arange(7, dtype=np.int64), dense_max=dense_max)
    assert gram.is_dense == (dense_max > 0)
    local = local_ridge(gram, 2.0, candidates=6).toarray()
    ease = ease_weights(x.T @ x, 2.0)
    # Items that never co-occur with j are not candidates; EASE gives them (near) zero weight too.
    np.testing.assert_allclose(local, ease, atol=0.02)


def test_popularity_prior_orders_by_count_and_scales_with_its_weight() -> None:
    counts = np.array([0, 10, 100, 5], np.float64)
    tie_only = popularity_prior(counts, 0.0)
    assert np.argsort(-tie_only).tolist() == [2, 1, 3, 0]
    assert tie_only.max() <= 1e-6
    weighted = popularity_prior(counts, 0.5)
    np.testing.assert_allclose(weighted - tie_only, [0, 0.05, 0.5, 0.025], rtol=1e-5)


FORM_TYPES = {
    "sparse": SparseItemModel,
    "low-rank": LowRankModel,
    "low-rank+sparse": LowRankSparseModel,
}


@pytest.mark.parametrize("form", list(FORM_TYPES))
def test_checkerboard_withheld_items_rank_first(tmp_path: Path, form: str) -> None:
    interactions = load_interactions(write_checkerboard(tmp_path / "i.csv"))
    config = TrainingConfig(forms=(form,), neighbors=(4,), ranks=(2,), max_bytes_ratio=1.0)
    result = train_model(interactions, config)
    model = result.model
    assert isinstance(model, FORM_TYPES[form])
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
    sizes = {(c.form, c.size, c.neighbors) for c in result.searched}
    # n = 10 items: budget 0.5 * 4 * 100 = 200 bytes; m=2 costs 10*2*3+80 = 140, m=8 costs 320;
    # d=2 costs 10*(2+8) = 100, d=64 costs 720; d=2 plus m=2 costs 100 + 10*2*3+40 = 200.
    assert sizes == {("sparse", 2, 0), ("low-rank", 2, 0), ("low-rank+sparse", 2, 2)}
    assert result.choice == max(result.searched, key=lambda c: c.ndcg)


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
        ({"validation_folds": 0}, "validation_folds"),
        ({"popularity_half_lives": (0.0,)}, "popularity_half_lives"),
        ({"popularity_half_lives": ()}, "popularity_half_lives"),
        ({"dropout": -0.1}, "dropout"),
        ({"event_weights": {"view": float("nan")}}, "event_weights"),
    ],
)
def test_config_errors_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        TrainingConfig(**kwargs)  # type: ignore[arg-type]


def test_sparsified_gram_keeps_each_rows_strongest_pairs() -> None:
    from server.gram import _sparsify

    g = sp.csr_matrix(
        np.array([[5, 4, 1, 0], [4, 6, 0, 2], [1, 0, 3, 3], [0, 2, 3, 4]], dtype=float)
    )
    kept = _sparsify(g, 2).toarray()
    # Each row keeps its two largest entries, and every diagonal entry stays: row 0 keeps
    # (0,0)=5 and (0,1)=4; row 2 keeps (2,2)=3 and (2,3)=3, dropping (2,0)=1.
    np.testing.assert_array_equal(kept[0], [5, 4, 0, 0])
    np.testing.assert_array_equal(kept[2], [0, 0, 3, 3])
    np.testing.assert_array_equal(np.diag(kept), [5, 6, 3, 4])


def test_validation_pools_several_splits_on_a_small_log(tmp_path: Path) -> None:
    """120 users: a 15% split holds 18 of them; three splits are pooled (54 users), one when
    `validation_folds=1`."""
    interactions = load_interactions(write_checkerboard(tmp_path / "i.csv"))
    pooled = train_model(interactions, TrainingConfig(l2_grid=(5.0,)))
    single = train_model(interactions, TrainingConfig(l2_grid=(5.0,), validation_folds=1))
    assert pooled.model.info["validation_users"] == 54
    assert single.model.info["validation_users"] == 18


def test_base_score_counts_recent_users_more(tmp_path: Path) -> None:
    """Item "old" had 30 buyers a year ago, item "new" 10 buyers last week: all-time popularity
    ranks "old" first; with a 30-day half-life the prior ranks "new" first."""
    rows = []
    day = 86_400
    for u in range(40):
        recent = u >= 30
        when = 1_700_000_000 + (365 * day if recent else 0)
        rows.append((f"u{u}", "new" if recent else "old", when))
        rows.append((f"u{u}", f"filler{u % 5}", when + day))
    path = tmp_path / "shift.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "item_id", "timestamp"])
        writer.writerows(rows)
    interactions = load_interactions(path)
    for days, first in ((None, "old"), (30.0, "new")):
        config = TrainingConfig(popularity_grid=(1.0,), popularity_half_lives=(days,))
        model = train_model(interactions, config).model
        index = {item: i for i, item in enumerate(model.item_ids)}
        scores = {item: model.base_score[index[item]] for item in ("old", "new")}
        assert max(scores, key=scores.__getitem__) == first
        assert model.info["popularity_half_life_days"] == days


def test_decay_search_skips_kinds_the_log_does_not_hold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A purchase-only log: every purchase half-life is tried, views keep the grid's first."""
    import server.search

    tried: list[dict[str, float | None]] = []
    original = server.search.interest_of

    def recording(half_lives: dict[str, float | None]) -> object:
        tried.append(dict(half_lives))
        return original(half_lives)

    monkeypatch.setattr(server.search, "interest_of", recording)
    interactions = load_interactions(write_checkerboard(tmp_path / "i.csv"))
    config = TrainingConfig(l2_grid=(5.0,))
    train_model(interactions, config)
    searched = [h for h in tried if h != DEFAULT_HALF_LIVES]  # the search's starting point
    assert {h["view"] for h in searched} == {config.view_half_lives[0]}
    assert {h["purchase"] for h in searched} == set(config.purchase_half_lives)


def _blas_threads() -> set[int]:
    return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}


def test_a_dense_training_uses_one_blas_thread_and_restores_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import server.training

    interactions = load_interactions(write_checkerboard(tmp_path / "i.csv"))
    seen: list[set[int]] = []
    original = run_search

    def recording(*args: Any, **kwargs: Any) -> Any:
        seen.append(_blas_threads())
        if len(seen) == 2:
            raise RuntimeError("search failed")
        return original(*args, **kwargs)

    monkeypatch.setattr(server.training, "run_search", recording)
    with threadpool_limits(limits=2, user_api="blas"):
        train_model(interactions, TrainingConfig(l2_grid=(5.0,)))
        assert _blas_threads() == {2}
        with pytest.raises(RuntimeError, match="search failed"):
            train_model(interactions, TrainingConfig(l2_grid=(5.0,)))
        assert _blas_threads() == {2}
    assert seen == [{1}, {1}]


def test_overlapping_trainings_share_the_limit_and_the_last_restores_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two trainings in two threads (a JobRunner's): A starts, B starts, A ends, B ends. B keeps
    its one thread after A ends, and only B's end restores the original count."""
    import server.training

    interactions = load_interactions(write_checkerboard(tmp_path / "i.csv"))
    config = TrainingConfig(l2_grid=(5.0,))
    a_in, b_in, a_done = threading.Event(), threading.Event(), threading.Event()
    seen_by_b: list[set[int]] = []
    original = run_search

    def gated(*args: Any, **kwargs: Any) -> Any:
        if threading.current_thread().name == "A":
            a_in.set()
            assert b_in.wait(30)
        else:
            b_in.set()
            assert a_done.wait(30)
            seen_by_b.append(_blas_threads())
        return original(*args, **kwargs)

    monkeypatch.setattr(server.training, "run_search", gated)
    with threadpool_limits(limits=2, user_api="blas"):  # held by this (the main) thread
        a = threading.Thread(target=train_model, args=(interactions, config), name="A")
        b = threading.Thread(target=train_model, args=(interactions, config), name="B")
        a.start()
        assert a_in.wait(30)
        b.start()
        a.join(60)
        a_done.set()
        b.join(60)
        assert seen_by_b == [{1}]
        assert _blas_threads() == {2}


def test_trainings_on_long_lived_pool_threads_set_and_restore_the_limit() -> None:
    """A JobRunner's threads outlive their jobs: each job still gets its one thread, whichever
    thread set the limit before, and the last one out restores the count for good."""
    from server.training import _ONE_BLAS_THREAD

    seen: list[set[int]] = []
    a_in, b_in, a_out, first_done, release = (threading.Event() for _ in range(5))

    def job() -> None:
        with _ONE_BLAS_THREAD.held():
            seen.append(_blas_threads())

    def a() -> None:
        with _ONE_BLAS_THREAD.held():
            a_in.set()
            assert b_in.wait(10)
        a_out.set()

    def b() -> set[int]:
        with _ONE_BLAS_THREAD.held():
            b_in.set()
            assert a_out.wait(10)
            seen.append(_blas_threads())
        return _blas_threads()

    def first() -> None:
        job()
        first_done.set()
        assert release.wait(10)

    with threadpool_limits(limits=2, user_api="blas"), ThreadPoolExecutor(2) as pool:
        fa = pool.submit(a)
        assert a_in.wait(10)
        fb = pool.submit(b)
        fa.result()
        assert fb.result() == {2}  # B, last out, restored the count
        f = pool.submit(first)  # one pool thread stays alive after its job
        assert first_done.wait(10)
        pool.submit(job).result()  # a job on the other thread still gets its limit
        release.set()
        f.result()
        assert _blas_threads() == {2}
    assert seen == [{1}, {1}, {1}]
