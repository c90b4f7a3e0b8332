"""`hybrid-seq bench memory`: per-device bytes of parameters, optimizer state and activations under each sharding.

For each preset, device count and mesh: parameters (fp32 master weights) and AdamW's two
moments from the shardings of abstract arrays (exact, nothing allocated, any number of
devices); activations as the temporaries of the compiled train step (bf16 compute,
per-layer remat, one sequence of `--seq-len` tokens per device, so every mesh of a device
count trains the same global batch), from XLA's memory analysis in a child process with
that many fake CPU devices: XLA:CPU's figure, labelled so.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator

from hybrid_seq.bench.timing import in_child, progress_bar
from hybrid_seq.cli.args import int_at_least

PRESETS = ("recurrentgemma-2b", "recurrentgemma-9b")
LAYOUTS = {
    8: ("data=8", "fsdp=8", "tensor=8", "tensor=2 x data=4", "data=2,fsdp=2,tensor=2", "fsdp=4,seq=2"),
    64: ("data=64", "fsdp=64", "fsdp=8,tensor=8", "data=8,fsdp=4,tensor=2", "fsdp=16,seq=4"),
}
GIB = 2**30


def _optimizer():
    from hybrid_seq.training import OptimConfig, make_optimizer

    return make_optimizer(OptimConfig())


def state_rows(preset: str, devices: int, layouts: tuple[str, ...]) -> dict[str, dict[str, int]]:
    """Parameter and optimizer-state bytes per device for each layout (no devices needed)."""
    from hybrid_seq import presets
    from hybrid_seq.distributed.layout import Layout
    from hybrid_seq.distributed.memory import abstract_mesh, abstract_model, state_bytes

    model = abstract_model(presets.get(preset))
    rows = {}
    for spec in layouts:
        found = state_bytes(model, _optimizer(), Layout(abstract_mesh(spec, devices)))
        rows[spec] = {"params": found.params, "optimizer": found.optimizer}
    return rows


def activation_rows(preset: str, devices: int, layouts: list[str], seq_len: int) -> dict[str, int]:
    """Temporary bytes per device of the compiled train step for each layout (run where `devices` devices exist)."""
    from hybrid_seq import presets
    from hybrid_seq.distributed.layout import Layout
    from hybrid_seq.distributed.memory import abstract_model, step_temp_bytes
    from hybrid_seq.training import StepConfig

    model = abstract_model(presets.get(preset))
    config = StepConfig(compute_dtype="bfloat16", checkpoint_blocks=True)
    return {
        spec: step_temp_bytes(model, _optimizer(), Layout.from_spec(spec), batch=devices, seq_len=seq_len, step_config=config)
        for spec in layouts
    }


@contextlib.contextmanager
def _fake_devices(count: int) -> Iterator[None]:
    """Children started inside see `count` CPU devices."""
    saved = os.environ.get("XLA_FLAGS")
    os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={count}"
    try:
        yield
    finally:
        if saved is None:
            del os.environ["XLA_FLAGS"]
        else:
            os.environ["XLA_FLAGS"] = saved


def measure(presets: tuple[str, ...], device_counts: tuple[int, ...], seq_len: int, activations: bool) -> list[dict]:
    """One row per preset, device count and layout: bytes per device of each part."""
    rows = []
    jobs = [(p, d) for p in presets for d in device_counts]
    for preset, devices in progress_bar(jobs, desc="memory", unit="config"):
        layouts = LAYOUTS.get(devices) or (f"data={devices}", f"fsdp={devices}")
        states = state_rows(preset, devices, layouts)
        temps: dict[str, int] = {}
        if activations:
            with _fake_devices(devices):
                temps, _ = in_child(
                    "hybrid_seq.bench.memory:activation_rows", preset=preset, devices=devices, layouts=list(layouts),
                    seq_len=seq_len,
                )
        for spec in layouts:
            rows.append({"preset": preset, "devices": devices, "mesh": spec, **states[spec], "activations": temps.get(spec)})
    return rows


def format_table(rows: list[dict], seq_len: int) -> str:
    """A markdown table of GiB per device."""
    def gib(value: int | None) -> str:
        return "-" if value is None else f"{value / GIB:.2f}"

    lines = [
        f"GiB per device; fp32 weights + AdamW moments; activations: the temporaries of one bf16, remat train step, "
        f"1 x {seq_len} tokens per device (XLA:CPU memory analysis)",
        "",
        "| preset | devices | mesh | params | optimizer | activations (XLA:CPU temporaries) | total |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        total = row["params"] + row["optimizer"] + (row["activations"] or 0)
        lines.append(
            f"| {row['preset']} | {row['devices']} | `{row['mesh']}` | {gib(row['params'])} | {gib(row['optimizer'])} "
            f"| {gib(row['activations'])} | {gib(total)} |"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Measure and print the table."""
    presets = tuple(p.strip() for p in args.presets.split(",") if p.strip())
    device_counts = tuple(int(d) for d in args.devices.split(","))
    print(format_table(measure(presets, device_counts, args.seq_len, not args.no_activations), args.seq_len))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `memory` to the `hybrid-seq bench` targets."""
    parser = subparsers.add_parser(
        "memory", help="per-device bytes of parameters, optimizer state and activations under each sharding"
    )
    parser.add_argument("--presets", default=",".join(PRESETS), help="comma-separated preset names")
    parser.add_argument("--devices", default="8,64", help="comma-separated device counts")
    parser.add_argument("--seq-len", type=int_at_least(1), default=2048, help="tokens per sequence (one per device)")
    parser.add_argument("--no-activations", action="store_true", help="skip compiling (parameters and optimizer only)")
    parser.set_defaults(func=run)
