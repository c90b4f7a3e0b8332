"""Every bad argument or input of `hybrid-seq` is one `hybrid-seq: error: ...` line and exit status 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybrid_seq.cli import main


def _fails(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The one error line that `hybrid-seq ARGV` prints, after checking exit status 2 and no traceback."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("hybrid-seq: error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize(
    ("flag", "value", "wanted"),
    [
        ("--max-new-tokens", "-3", ">= 0"),
        ("--max-new-tokens", "many", "expected an integer"),
        ("--temperature", "-1", ">= 0"),
        ("--temperature", "nan", ">= 0"),
        ("--top-p", "0", "in (0, 1]"),
        ("--top-p", "1.5", "in (0, 1]"),
        ("--top-k", "-1", ">= 0"),
        ("--preset", "nope", "unknown preset"),
    ],
)
def test_generate_rejects_a_bad_value(flag: str, value: str, wanted: str, capsys: pytest.CaptureFixture[str]) -> None:
    err = _fails(["generate", "hi", flag, value], capsys)
    assert f"argument {flag}: " in err and wanted in err and repr(value) in err


def test_generate_missing_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-such-checkpoint"
    err = _fails(["generate", "hi", "--checkpoint", str(missing), "--tokenizer", "byte"], capsys)
    assert "--checkpoint: " in err and str(missing) in err


@pytest.mark.parametrize(
    ("argv", "wanted"),
    [
        (["generate", "hi", "--checkpoint", "ckpt"], "--checkpoint needs --tokenizer"),
        (["generate", "hi", "--tokenizer", "byte"], "--tokenizer needs --checkpoint"),
        (["info", "nope"], "'nope' is neither a preset"),
        (["info", "--length", "0"], "argument --length: must be >= 1, got '0'"),
        (["convert", "a", "b", "--to", "hybrid_seq", "--set", "width"], "argument --set: expected FIELD=VALUE"),
        (["train", "--steps", "0"], "argument --steps: must be >= 1, got '0'"),
        (["train", "--lr", "0"], "argument --lr: must be > 0, got '0'"),
        (["bench", "forward", "--preset", "nope"], "argument --preset: unknown preset 'nope'"),
        (["bench", "scan", "--reps", "0"], "argument --reps: must be >= 1, got '0'"),
        (["bench", "load", "--set", "[1]"], "argument --set: expected a JSON object"),
        (["bench", "nope"], "argument target: invalid choice: 'nope'"),
        (["generate"], "the following arguments are required: prompt"),
    ],
)
def test_bad_arguments_are_one_line(argv: list[str], wanted: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert wanted in _fails(argv, capsys)


def test_library_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _fails(["convert", str(tmp_path / "missing"), str(tmp_path / "out"), "--to", "hybrid_seq"], capsys)
    assert "no such file" in err
