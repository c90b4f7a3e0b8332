"""`hybrid-seq generate`: the no-download demo and argument errors."""

from __future__ import annotations

import pytest

from hybrid_seq.cli import main


def test_generate_demo_runs_without_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "hello", "--max-new-tokens", "3"]) == 0
    captured = capsys.readouterr()
    assert "random-weights" in captured.err
    assert captured.out.endswith("\n")


def test_generate_reports_missing_tokenizer(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "hi", "--checkpoint", str(tmp_path), "--tokenizer", str(tmp_path / "none.model")])
    assert exit_info.value.code == 2 and "not found" in capsys.readouterr().err
