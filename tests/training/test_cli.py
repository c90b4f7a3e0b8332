"""`hybrid-seq train` runs end to end in a shrunk configuration and writes metrics, summary and plot."""

import argparse
import json

from hybrid_seq.cli import train as train_cli


def test_train_cli_default_patterns_shrunk(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    train_cli.register(parser.add_subparsers(dest="command"))
    out = tmp_path / "run"
    args = parser.parse_args(
        ["train", "--steps", "2", "--width", "16", "--seq-len", "16", "--num-pairs", "4", "--vocab-size", "32",
         "--batch-size", "4", "--eval-every", "1", "--out", str(out)]
    )
    assert args.func(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["results"]) == ["R:3", "RRA:3", "A:3", "M:3", "MMA:3"]
    counts = [r["params"] for r in summary["results"].values()]
    assert max(counts) - min(counts) < 0.05 * max(counts)
    assert all(len(r["accuracy"]) == 2 for r in summary["results"].values())
    entries = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {e["pattern"] for e in entries} == {"R:3", "RRA:3", "A:3", "M:3", "MMA:3"}
    assert (out / "accuracy.png").stat().st_size > 0
    assert "accuracy vs step" in capsys.readouterr().out


def test_train_cli_takes_any_pattern_of_registered_kinds(tmp_path):
    parser = argparse.ArgumentParser()
    train_cli.register(parser.add_subparsers(dest="command"))
    out = tmp_path / "run"
    kinds = '{"X": {"kind": "attention", "num_heads": 2, "num_kv_heads": 1, "rope_fraction": 0.5}}'
    args = parser.parse_args(
        ["train", "--patterns", "MX", "--kinds", kinds, "--steps", "1", "--width", "16", "--seq-len", "16",
         "--num-pairs", "4", "--vocab-size", "32", "--batch-size", "2", "--eval-every", "1", "--out", str(out)]
    )
    assert args.func(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["results"]) == ["MX"]
    assert summary["config"]["kinds"]["X"]["kind"] == "attention"
