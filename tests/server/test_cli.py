"""The `facetwo` command line: exit codes and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.cli import EXIT_FAILED, EXIT_USAGE, main


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("demo", "keygen", "build", "evaluate", "evaluate-reorder", "serve", "publish"):
        assert command in out


def test_no_command_is_a_usage_error() -> None:
    assert main([]) == EXIT_USAGE


def test_build_with_a_bad_row_names_file_line_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keygen", "--out", str(tmp_path / "keys")]) == 0
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,item_id,timestamp\nu1,i1,2025-01-01\nu2,i2,yesterday\n")
    status = main(
        [
            "build",
            "--interactions", str(bad),
            "--signing-key", str(tmp_path / "keys" / "signing.key"),
            "--out", str(tmp_path / "bundle"),
        ]
    )  # fmt: skip
    assert status == EXIT_FAILED
    err = capsys.readouterr().err
    assert f"{bad}:3" in err and "timestamp" in err
    assert err.count("\n") == 1
    assert not (tmp_path / "bundle").exists()


def test_keygen_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keygen", "--out", str(tmp_path)]) == 0
    assert main(["keygen", "--out", str(tmp_path)]) == EXIT_FAILED
    assert "refusing to overwrite" in capsys.readouterr().err


def test_build_with_a_missing_key_fails_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "i.csv"
    data.write_text("user_id,item_id,timestamp\nu1,i1,2025-01-01\n")
    status = main(
        ["build", "--interactions", str(data), "--signing-key", str(tmp_path / "nope.key"),
         "--out", str(tmp_path / "b")]
    )  # fmt: skip
    assert status == EXIT_FAILED
    assert "cannot read signing key" in capsys.readouterr().err


def test_evaluate_prints_a_table_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from server.sample_store import generate_sample_store

    shop = generate_sample_store(tmp_path / "shop", n_items=120, n_shoppers=400, seed=3)
    out = tmp_path / "eval.json"
    args = ["evaluate", "--interactions", str(shop.interactions), "--json", str(out)]
    assert main(args) == 0
    table = capsys.readouterr().out
    for model in ("facetwo", "popularity", "item-knn", "ease"):
        assert model in table
    report = json.loads(out.read_text())
    assert report["protocol"] == "strong"
    assert report["split"]["evaluated_users"] > 0
    for name in ("facetwo", "popularity", "item-knn", "ease"):
        metrics = report["models"][name]
        for key in ("recall@10", "recall@20", "ndcg@10", "ndcg@20", "coverage@20"):
            assert 0.0 <= metrics[key] <= 1.0
        assert metrics["model_bytes"] > 0 and metrics["train_seconds"] >= 0
