"""The `facetwo` command line: exit codes and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.cli import EXIT_FAILED, EXIT_NOT_BUILT, EXIT_USAGE, main


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("demo", "keygen", "build", "evaluate", "evaluate-reorder", "serve", "publish"):
        assert command in out


def test_no_command_is_a_usage_error() -> None:
    assert main([]) == EXIT_USAGE


@pytest.mark.parametrize("command", ["evaluate", "evaluate-reorder", "publish"])
def test_commands_not_built_yet_say_so_and_fail(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, "--interactions", "x.csv"]) == EXIT_NOT_BUILT
    err = capsys.readouterr().err
    assert err.startswith(f"facetwo {command}: not built yet")
    assert err.count("\n") == 1


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
