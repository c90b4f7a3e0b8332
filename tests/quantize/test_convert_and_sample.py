"""`hybrid-seq convert --quantize int8` from our format and from HuggingFace's, and the Sampler on an int8 model."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hybrid_seq import Model, Sampler
from hybrid_seq import io as hio
from hybrid_seq.cli import UsageError, main
from hybrid_seq.quantize import quantization_of
from hybrid_seq.sampling.tokenizer import ByteTokenizer
from tests.quantize.helpers import forward


def _same_leaves(a: Model, b: Model) -> bool:
    left, right = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(left) == len(right) and all(
        x.dtype == y.dtype and np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(left, right)
    )


def test_convert_quantizes_any_format_into_ours(
    tmp_path: Path, saved: tuple[Path, Path], model: Model, quantized: Model, capsys: pytest.CaptureFixture[str]
) -> None:
    fp32, _ = saved
    hf = hio.save(model, tmp_path / "hf", format="huggingface")
    for source in (fp32, hf):
        out = tmp_path / f"int8-from-{source.name}"
        assert main(["convert", str(source), str(out), "--to", "hybrid_seq", "--quantize", "int8"]) == 0
        assert f"wrote {out} (hybrid_seq, int8)" in capsys.readouterr().out
        assert _same_leaves(hio.load(out), quantized)
    half = tmp_path / "int8-bf16"
    assert main(["convert", str(fp32), str(half), "--to", "hybrid_seq", "--quantize", "int8", "--dtype", "bfloat16"]) == 0
    loaded = hio.load(half)
    assert quantization_of(loaded) == "int8" and loaded.embedder.scale.dtype == jnp.bfloat16


def test_convert_refusals_are_one_line(tmp_path: Path, saved: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    fp32, int8 = saved
    for argv, message in (
        ([str(fp32), str(tmp_path / "a"), "--to", "huggingface", "--quantize", "int8"],
         "--quantize writes the hybrid_seq format only (it holds int8 weights), not huggingface"),
        ([str(int8), str(tmp_path / "b"), "--to", "hybrid_seq", "--quantize", "int8"],
         "the model is already quantized (int8); quantize the float model instead"),
        ([str(int8), str(tmp_path / "c"), "--to", "huggingface"],
         "the model to save is quantized (int8); only the hybrid_seq format holds quantized weights"),
    ):
        with pytest.raises(UsageError):
            main(["convert", *argv])
        assert capsys.readouterr().err == f"hybrid-seq: error: {message}\n"
    with pytest.raises(UsageError):
        main(["convert", str(fp32), str(tmp_path / "d"), "--to", "hybrid_seq", "--quantize", "int4"])
    assert "argument --quantize: invalid choice: 'int4'" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_sampler_runs_an_int8_model_greedily(quantized: Model) -> None:
    sampler = Sampler(quantized, ByteTokenizer())
    out = sampler(["the cat", "a"], 8, stop_token_ids=(), return_logprobs=True)
    assert [len(tokens) for tokens in out.tokens] == [8, 8]
    rows = [sampler.encode_prompt(p) + t for p, t in zip(["the cat", "a"], out.tokens)]
    width = max(len(r) for r in rows)
    tokens = jnp.asarray([r + [0] * (width - len(r)) for r in rows], jnp.int32)
    logits = forward(quantized, tokens, jnp.tile(jnp.arange(width, dtype=jnp.int32), (2, 1)))
    for row, prompt, generated in zip(logits, rows, out.tokens):
        start = len(prompt) - len(generated) - 1
        assert row[start : start + len(generated)].argmax(-1).tolist() == generated
