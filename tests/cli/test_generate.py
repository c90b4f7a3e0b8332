"""`hybrid-seq generate`: byte-tokenizer checkpoints, and a demo whose output is visibly sampled."""

from __future__ import annotations

from pathlib import Path

import jax
import pytest

from hybrid_seq import Model, presets
from hybrid_seq import io as hio
from hybrid_seq.cli import main
from hybrid_seq.sampling import ByteTokenizer


def test_generate_samples_a_byte_tokenizer_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # What examples/finetune.py writes by default: a model with the byte tokenizer's vocabulary.
    config = presets.get("griffin-tiny", vocab_size=ByteTokenizer.vocab_size, width=32, mlp_expanded_width=48,
                         num_heads=2, lru_width=32, block_pattern="RA")
    path = hio.save(Model(config, key=jax.random.key(0)), tmp_path / "model")
    assert main(["generate", "hi", "--checkpoint", str(path), "--tokenizer", "byte", "--max-new-tokens", "4"]) == 0
    captured = capsys.readouterr()
    assert captured.out.endswith("\n") and captured.err == ""


def test_demo_output_is_visibly_sampled(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "hello", "--max-new-tokens", "24"]) == 0
    captured = capsys.readouterr()
    assert "random-weights" in captured.err and "temperature" in captured.err
    assert len(set(captured.out.strip())) > 4, captured.out
    assert not any(c < " " for c in captured.out.strip()), "control characters reach the terminal"


def test_greedy_demo_says_why_it_repeats(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "hello", "--max-new-tokens", "8", "--temperature", "0"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "o" * 8 + "\n"
    assert "greedy decoding repeats the last character" in captured.err
