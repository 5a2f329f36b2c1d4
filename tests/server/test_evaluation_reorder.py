"""`facetwo evaluate-reorder` on EVALUATION.md §2: the split, the metrics, the baselines (issue 5).

The hand-made log (days after START, cutoff day 12, horizon 10, so the window is days 12-21):

    u1: milk 0, 4, 10 | 15      tea 5 | 30        due-list user; re-bought milk in the window
    u2: bread 0, 5    | jam 14                    due-list user; re-bought nothing
    u3: eggs 1, 2     |                           no purchase in the window
    u4: soap 3        | soap 13                   nothing bought on two days before the cut
    u5: milk 0, 8     | milk 40                   a next-date pair outside the window
"""

from __future__ import annotations

import csv
import json
import random
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from server.cli import EXIT_FAILED, EXIT_OK, main
from server.data import load_interactions
from server.evaluation_reorder import (
    DUE_MODELS,
    NEXT_DATE_MODELS,
    _baseline_dates,
    _baseline_rankings,
    _item_median_intervals,
    evaluate_reorder,
)
from server.reorder import EPOCH_ORDINAL, PurchaseDays, collapse_purchase_days
from server.reorder_protocol import (
    due_list_metrics,
    make_split,
    next_date_metrics,
    pair_table,
)

START = date(2025, 3, 3)
BASE = START.toordinal() - EPOCH_ORDINAL
LOG: dict[str, dict[str, tuple[int, ...]]] = {
    "u1": {"milk": (0, 4, 10, 15), "tea": (5, 30)},
    "u2": {"bread": (0, 5), "jam": (14,)},
    "u3": {"eggs": (1, 2)},
    "u4": {"soap": (3, 13)},
    "u5": {"milk": (0, 8, 40)},
}


def write_csv(path: Path, rows: list[tuple[str, str, date]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "item_id", "timestamp"])
        writer.writerows((user, item, day.isoformat()) for user, item, day in rows)
    return path


def hand_made(tmp_path: Path) -> PurchaseDays:
    rows = [
        (user, item, START + timedelta(days=d))
        for user, items in LOG.items()
        for item, days in items.items()
        for d in days
    ]
    return collapse_purchase_days(load_interactions(write_csv(tmp_path / "log.csv", rows)))


def names(days: PurchaseDays, codes: npt.NDArray[np.int64]) -> list[str]:
    return [days.items[c] for c in codes.tolist()]


def test_split_known_answers(tmp_path: Path) -> None:
    days = hand_made(tmp_path)
    split = make_split(days, BASE + 12, 10)
    assert [days.users[u] for u in split.due.users] == ["u1", "u2"]
    assert [names(days, t) for t in split.due.targets] == [["milk"], []]
    pairs = split.next_date
    assert [
        (days.users[u], days.items[i]) for u, i in zip(pairs.user, pairs.item, strict=True)
    ] == [
        ("u1", "milk"),
        ("u5", "milk"),
    ]
    assert (pairs.actual - BASE).tolist() == [15, 40]
    assert int(split.history.day.max()) == BASE + 10
    bounded = make_split(days, BASE + 12, 10, end=BASE + 20)
    assert (bounded.next_date.actual - BASE).tolist() == [15]  # nothing at or after `end`


def test_metrics_known_answers(tmp_path: Path) -> None:
    days = hand_made(tmp_path)
    split = make_split(days, BASE + 12, 10)
    code = {item: i for i, item in enumerate(days.items)}
    rankings = [np.array([code["tea"], code["milk"]]), np.array([code["bread"]])]
    metrics = due_list_metrics(split.due, rankings)
    assert metrics["precision@5"] == pytest.approx(0.1)  # (1/5 + 0) / 2
    assert metrics["recall@5"] == pytest.approx(1.0)  # u2 re-bought nothing: not counted
    assert metrics["ndcg@5"] == pytest.approx(1 / np.log2(3))
    dates = next_date_metrics(np.array([15, 40]), np.array([16.0, 30.0]))
    assert dates == {"mae_days": 5.5, "within_7_days": 0.5}
    assert next_date_metrics(np.array([], np.int64), np.array([])) == {
        "mae_days": None,
        "within_7_days": None,
    }


def test_baselines_known_answers(tmp_path: Path) -> None:
    days = hand_made(tmp_path)
    split = make_split(days, BASE + 12, 10)
    pairs, medians = pair_table(split.history), _item_median_intervals(split.history)
    code = {item: i for i, item in enumerate(days.items)}
    assert medians[code["milk"]] == 6.0 and medians[code["tea"]] == 5.0  # tea: all items' median
    ranked = _baseline_rankings(split, pairs, medians)
    assert [names(days, r) for r in ranked["recency"]] == [["milk", "tea"], ["bread"]]
    assert [names(days, r) for r in ranked["frequency"]] == [["milk", "tea"], ["bread"]]
    # milk is due on day 16 (4 days off the cut), tea on day 10 (2 days off)
    assert [names(days, r) for r in ranked["item-interval"]] == [["tea", "milk"], ["bread"]]
    predicted = _baseline_dates(split, pairs, medians)
    assert {k: (v - BASE).tolist() for k, v in predicted.items()} == {
        "last-interval": [16.0, 16.0],
        "mean-interval": [15.0, 16.0],
        "item-median": [16.0, 14.0],
    }


def regular_log(path: Path, *, users: int = 40, seed: int = 3) -> Path:
    """Shoppers with personal rhythms for a few staples, plus one-off purchases."""
    rng = random.Random(seed)
    rows = []
    for u in range(users):
        for item in rng.sample(range(12), 3):
            every, day = 5 + item * 3 + rng.randint(0, 4), rng.randint(0, 20)
            while day < 300:
                rows.append((f"u{u}", f"staple{item}", START + timedelta(days=day)))
                day += max(1, every + rng.randint(-2, 2))
        for _ in range(5):
            rows.append(
                (f"u{u}", f"oneoff{rng.randint(0, 200)}", START + timedelta(rng.randint(0, 300)))
            )
    return write_csv(path, rows)


def test_evaluate_reorder_reports_every_model_with_the_exact_keys(tmp_path: Path) -> None:
    report = evaluate_reorder(regular_log(tmp_path / "log.csv"), horizon_days=14)
    document = json.loads(json.dumps(report.to_json()))
    assert set(document["due_list"]) == set(DUE_MODELS)
    assert set(document["next_date"]) == set(NEXT_DATE_MODELS)
    for metrics in document["due_list"].values():
        assert set(metrics) == {"precision@5", "recall@5", "ndcg@5"}
        assert all(0.0 <= value <= 1.0 for value in metrics.values())
    for metrics in document["next_date"].values():
        assert set(metrics) == {"mae_days", "within_7_days"}
    assert document["horizon_days"] == 14 and document["sizes"]["due_list_users"] > 20
    assert document["validation"]["cutoff"] < document["cutoff"]
    # regular rhythms: the device's dates beat the shop-wide median of each item
    dates = document["next_date"]
    assert dates["facetwo"]["mae_days"] < dates["item-median"]["mae_days"]


def test_cli_prints_the_table_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log, out = regular_log(tmp_path / "log.csv", users=25), tmp_path / "out.json"
    argv = ["evaluate-reorder", "--interactions", str(log), "--json", str(out)]
    assert main([*argv, "--horizon-days", "21"]) == EXIT_OK
    table = capsys.readouterr().out
    for model in (*DUE_MODELS, *NEXT_DATE_MODELS):
        assert model in table
    assert json.loads(out.read_text("utf-8"))["horizon_days"] == 21
    assert main([*argv, "--horizon-days", "0"]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "--horizon-days must be in [1, 366], found 0" in err and err.count("\n") == 1


def test_a_log_without_repeat_purchases_reports_nothing_to_measure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [
        (f"u{u}", f"i{u}-{n}", START + timedelta(days=n * 7)) for u in range(20) for n in range(8)
    ]
    out = tmp_path / "out.json"
    argv = ["evaluate-reorder", "--interactions", str(write_csv(tmp_path / "once.csv", rows))]
    assert main([*argv, "--json", str(out)]) == EXIT_OK
    document = json.loads(out.read_text("utf-8"))
    assert document["due_list"]["facetwo"] == {
        "precision@5": None,
        "recall@5": None,
        "ndcg@5": None,
    }
    assert document["next_date"]["facetwo"]["mae_days"] is None
    assert " - " in capsys.readouterr().out


def test_a_log_of_one_purchase_fails_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from server.cli import main

    path = tmp_path / "one.csv"
    path.write_text("user_id,item_id,timestamp\nu1,i1,2025-01-01\n")
    assert main(["evaluate-reorder", "--interactions", str(path)]) == 1
    last = capsys.readouterr().err.splitlines()[-1]  # progress lines come first
    assert last == "facetwo evaluate-reorder: no purchases to compute reorder priors from"
