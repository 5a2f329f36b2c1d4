"""Positives, the strong split and the ranking metrics, with known answers."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from server.data import load_interactions
from server.metrics import ndcg_at_k, recall_at_k
from server.splits import collapse_positives, strong_split


def _write(path: Path, rows: list[tuple[str, str, int, str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "item_id", "timestamp", "event"])
        writer.writerows(rows)
    return path


def test_repeats_collapse_to_the_first_time_with_the_strongest_event(tmp_path: Path) -> None:
    rows = [
        ("u1", "x", 300, "purchase"),
        ("u1", "x", 100, "view"),
        ("u1", "y", 200, "view"),
        ("u2", "x", 50, "cart"),
    ]
    positives = collapse_positives(load_interactions(_write(tmp_path / "i.csv", rows)))
    assert len(positives) == 3
    by_pair = {
        (int(u), int(i)): (int(t), float(s))
        for u, i, t, s in zip(
            positives.user, positives.item, positives.first_time, positives.strength, strict=True
        )
    }
    # users: u1=0, u2=1; items: x=0, y=1
    assert by_pair[(0, 0)] == (100, 1.0)
    assert by_pair[(0, 1)] == (200, 0.25)
    assert by_pair[(1, 0)] == (50, 0.5)


def test_strong_split_holds_out_whole_users_in_time_order(tmp_path: Path) -> None:
    rows = []
    for u in range(40):
        for t in range(10):
            rows.append((f"u{u}", f"i{(u + t) % 12}", 1000 * u + t, "purchase"))
    positives = collapse_positives(load_interactions(_write(tmp_path / "i.csv", rows)))
    split = strong_split(positives, held_out_fraction=0.1, seed=3)
    assert len(split.held_out) == 4
    trained_users = set(split.train.user.tolist())
    assert len(trained_users) == 36
    for user in split.held_out:
        assert user.history.size == 8 and user.targets.size == 2
        assert not set(user.history.tolist()) & set(user.targets.tolist())
    again = strong_split(positives, held_out_fraction=0.1, seed=3)
    assert [u.targets.tolist() for u in again.held_out] == [
        u.targets.tolist() for u in split.held_out
    ]


def test_disjoint_parts_evaluate_every_eligible_user_once(tmp_path: Path) -> None:
    rows = [
        (f"u{u}", f"i{(u + t) % 12}", 1000 * u + t, "purchase")
        for u in range(43)
        for t in range(10)
    ]
    rows += [("short", "i1", 1, "purchase"), ("short", "i2", 2, "purchase")]  # under 5 items
    positives = collapse_positives(load_interactions(_write(tmp_path / "i.csv", rows)))
    held = [
        [u.user for u in strong_split(positives, seed=7, part=(i, 10)).held_out] for i in range(10)
    ]
    assert sorted(len(h) for h in held) == [4] * 7 + [5] * 3  # 43 users in 10 near-equal parts
    every = sorted(u for h in held for u in h)
    short = positives.n_users - 1  # "short" appears last
    assert every == [u for u in range(positives.n_users) if u != short]
    assert held != [
        [u.user for u in strong_split(positives, seed=8, part=(i, 10)).held_out] for i in range(10)
    ]  # another seed shuffles differently
    for bad in ((10, 10), (-1, 10), (0, 0)):
        with pytest.raises(ValueError, match=r"part must be \(i, k\)"):
            strong_split(positives, part=bad)


def test_items_unknown_to_training_are_dropped(tmp_path: Path) -> None:
    rows = [(f"u{u}", f"i{t}", t, "purchase") for u in range(10) for t in range(5)]
    rows += [("u0", "only-u0", 99, "purchase")]
    positives = collapse_positives(load_interactions(_write(tmp_path / "i.csv", rows)))
    split = strong_split(positives, held_out_fraction=0.5, seed=0)
    only = 5  # item code of "only-u0" (order of first appearance)
    for user in split.held_out:
        assert only not in user.targets.tolist() and only not in user.history.tolist()


def test_metrics_known_answers() -> None:
    ranked = np.array([5, 1, 7, 3], np.int64)
    targets = np.array([7, 9], np.int64)
    assert recall_at_k(ranked, targets, 2) == 0.0
    assert recall_at_k(ranked, targets, 3) == 0.5
    expected = (1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert ndcg_at_k(ranked, targets, 3) == pytest.approx(expected)
    assert ndcg_at_k(np.array([7, 9]), targets, 20) == pytest.approx(1.0)
    assert ndcg_at_k(np.array([], np.int64), targets, 20) == 0.0
    with pytest.raises(ValueError, match="empty"):
        recall_at_k(ranked, np.array([], np.int64), 3)
