"""`hybrid-seq train --mesh` and `hybrid-seq finetune --mesh`, in one process and in two that train together.

The two-process run launches two `hybrid-seq finetune` processes on localhost, 4 CPU
devices each, joined by `jax.distributed` (gloo collectives) into one 8-device mesh; its
printed losses, its final model and its sharded checkpoint equal those of the same command
in this process, which has 8 devices.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import hybrid_seq as hs
from hybrid_seq import io as hio
from hybrid_seq.cli import main

ROOT = Path(__file__).resolve().parents[2]
MESH = "data=2,fsdp=2,tensor=2"
DOCUMENTS = [
    "The quick brown fox jumps over the lazy dog.",
    "A second document, a little longer than the first one, about nothing at all.",
    "Third.",
    "Hybrid models mix recurrences with local attention; they train on CPUs too.",
]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = hs.ModelConfig(
        vocab_size=261, width=16, mlp_expanded_width=32, num_heads=2, block_pattern="RA", attention_window_size=8
    )
    return hio.save(hs.Model(config, key=jax.random.key(0)), tmp_path_factory.mktemp("ckpt") / "tiny")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    path.write_text("".join(json.dumps({"text": d, "id": i}) + "\n" for i, d in enumerate(DOCUMENTS)))
    return path


def _finetune_args(checkpoint: Path, corpus: Path, out: Path) -> list[str]:
    return ["finetune", str(checkpoint), str(corpus), "--tokenizer", "byte", "--out", str(out), "--steps", "3",
            "--seq-len", "16", "--batch-size", "8", "--log-every", "1", "--lr", "1e-3", "--checkpoint-every", "3",
            "--mesh", MESH]


def _losses(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"finetune step \d+: loss ([0-9.]+)", text)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_finetune_in_two_processes_equals_one_process(tmp_path: Path, checkpoint: Path, corpus: Path, capsys) -> None:
    assert main(_finetune_args(checkpoint, corpus, tmp_path / "one")) == 0
    want = _losses(capsys.readouterr().out)
    assert len(want) == 3

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"} | {"PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "hybrid_seq.cli", *_finetune_args(checkpoint, corpus, tmp_path / "two"),
             "--cpu-devices", "4", "--coordinator", f"localhost:{port}", "--num-processes", "2", "--process-id", str(i)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
        )
        for i in range(2)
    ]
    outputs = [child.communicate(timeout=240) for child in children]
    for child, (_, err) in zip(children, outputs):
        assert child.returncode == 0, err[-3000:]
    printed = outputs[0][0]
    assert "fine-tuning on a mesh of 8 devices: data=2,fsdp=2,tensor=2" in printed
    np.testing.assert_allclose(_losses(printed), want, rtol=1e-5, atol=1e-5)
    assert _losses(outputs[1][0]) == []  # only the first process prints
    logged = [json.loads(line)["loss"] for line in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    np.testing.assert_allclose(logged, want, rtol=1e-5, atol=1e-5)
    one, two = hio.load(tmp_path / "one" / "model"), hio.load(tmp_path / "two" / "model")
    for a, b in zip(jax.tree_util.tree_leaves(one), jax.tree_util.tree_leaves(two)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
    # The two processes wrote one sharded checkpoint together.
    assert sorted(p.name for p in (tmp_path / "two" / "checkpoints" / "finetune").iterdir()) == ["3"]


def test_train_with_a_mesh_logs_the_single_device_losses(tmp_path: Path, capsys) -> None:
    common = ["train", "--patterns", "RA:2", "--steps", "2", "--width", "16", "--seq-len", "16", "--num-pairs", "3",
              "--vocab-size", "32", "--batch-size", "8", "--eval-every", "1"]
    assert main([*common, "--out", str(tmp_path / "one")]) == 0
    assert main([*common, "--out", str(tmp_path / "mesh"), "--mesh", "fsdp=2,seq=2,tensor=2"]) == 0
    assert "training on a mesh of 8 devices: fsdp=2,seq=2,tensor=2" in capsys.readouterr().out

    def logged(run: str) -> list[tuple[str, float]]:
        lines = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        return [(e["split"], e["loss"]) for e in map(json.loads, lines)]

    one, mesh = logged("one"), logged("mesh")
    assert [split for split, _ in one] == [split for split, _ in mesh] == ["train", "eval", "train", "eval"]
    np.testing.assert_allclose([loss for _, loss in mesh], [loss for _, loss in one], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("extra", "wanted"),
    [
        (["--mesh", "data=3"], "mesh data=3 needs 3 devices but 8 are given"),
        (["--mesh", "model=8"], "argument --mesh: mesh 'model=8': unknown axis 'model'"),
        (["--coordinator", "localhost:1"], "missing: number of processes, process id"),
    ],
)
def test_bad_mesh_and_process_flags_are_one_error_line(
    tmp_path: Path, checkpoint: Path, corpus: Path, extra: list[str], wanted: str, capsys
) -> None:
    args = [a for a in _finetune_args(checkpoint, corpus, tmp_path / "out") if a not in ("--mesh", MESH)]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, *extra])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("hybrid-seq: error: ") and err.count("\n") == 1 and wanted in err, err


def test_finetune_needs_a_tokenizer_it_can_find(tmp_path: Path, checkpoint: Path, corpus: Path, capsys) -> None:
    args = _finetune_args(checkpoint, corpus, tmp_path / "out")
    args.remove("--tokenizer")
    args.remove("byte")
    with pytest.raises(SystemExit):
        main(args)
    assert "no tokenizer.model next to the checkpoint; pass the SentencePiece file with --tokenizer" in capsys.readouterr().err
