"""Per-device memory: parameters and optimizer state from shardings of abstract arrays, activations from XLA."""

from __future__ import annotations

import hybrid_seq as hs
from hybrid_seq.cli import main
from hybrid_seq.distributed import Layout
from hybrid_seq.distributed.memory import abstract_mesh, abstract_model, state_bytes, step_temp_bytes
from hybrid_seq.training import OptimConfig, StepConfig, make_optimizer


def test_bytes_per_device_of_recurrentgemma_2b_on_64_devices_without_allocating() -> None:
    model = abstract_model(hs.presets.get("recurrentgemma-2b"))
    weights = 4 * hs.param_count(hs.presets.get("recurrentgemma-2b")).total
    optimizer = make_optimizer(OptimConfig())
    replicated = state_bytes(model, optimizer, Layout(abstract_mesh("data=64", 64)))
    assert replicated.params == weights
    assert 2 * weights <= replicated.optimizer <= 2 * weights + 64  # mu, nu and a step count
    sharded = state_bytes(model, optimizer, Layout(abstract_mesh("fsdp=64", 64)))
    assert weights / 64 <= sharded.params <= 1.01 * weights / 64  # all but the RG-LRU's small leaves split
    assert sharded.optimizer <= 2.02 * weights / 64
    hybrid = state_bytes(model, optimizer, Layout(abstract_mesh("data=8,fsdp=4,tensor=2", 64)))
    assert weights / 8 <= hybrid.params <= 1.01 * weights / 8


def test_compiled_step_temporaries_and_the_bench_table(capsys) -> None:
    model = abstract_model(hs.presets.get("griffin-tiny"))
    temp = step_temp_bytes(
        model, make_optimizer(OptimConfig()), Layout.from_spec("data=2,fsdp=2,tensor=2"), batch=8, seq_len=32,
        step_config=StepConfig(compute_dtype="bfloat16", checkpoint_blocks=True),
    )
    assert 0 < temp < 2**30
    assert main(["bench", "memory", "--presets", "griffin-tiny", "--devices", "8", "--no-activations"]) == 0
    table = capsys.readouterr().out
    assert "| griffin-tiny | 8 | `fsdp=8` |" in table and "XLA:CPU temporaries" in table
