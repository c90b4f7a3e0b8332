"""Mesh specs: `"data=2,fsdp=2,tensor=2"` parsed, checked against the devices, and built into a `jax.sharding.Mesh`.

Four axes, each optional (size 1 when absent), always in this order so a spec means the
same mesh however it is written; the last axis gets neighbouring devices, so the axis
that talks most (tensor) is innermost:

* ``data``: batch split, parameters replicated (data parallel);
* ``fsdp``: batch split and parameters (and so optimizer state) split along their
  ``embed`` axis (fully sharded data parallel);
* ``seq``: the time axis split (sequence parallel; the name `hybrid_seq.scan`'s
  ``sharded`` backend splits over);
* ``tensor``: MLP, heads, RG-LRU channels and vocabulary split (tensor parallel).

Meshes use `AxisType.Auto`: XLA's partitioner places every intermediate, and the blocks
that need communication along time do it themselves with `jax.shard_map`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence

import jax
from jax.sharding import AxisType, Mesh

from hybrid_seq.scan.sharded import SEQUENCE_AXIS

DATA = "data"
FSDP = "fsdp"
SEQ = SEQUENCE_AXIS
TENSOR = "tensor"
#: Every axis a spec may name, in mesh order.
AXES = (DATA, FSDP, SEQ, TENSOR)
#: The axes that split the batch.
BATCH_AXES = (DATA, FSDP)


@dataclasses.dataclass(frozen=True)
class MeshSpec:
    """Axis sizes by name (`AXES`); one size may be -1, meaning the devices left over."""

    sizes: tuple[tuple[str, int], ...]

    @classmethod
    def parse(cls, text: str) -> MeshSpec:
        """`"data=2,fsdp=2,tensor=2"` (also `"tensor=2 x data=4"`; `"seq=-1"` takes the rest)."""
        sizes: dict[str, int] = {}
        for item in re.split(r",|\bx\b", text):
            item = item.strip()
            if not item:
                continue
            name, sep, value = item.partition("=")
            name = name.strip()
            if not sep:
                raise ValueError(f"mesh {text!r}: {item!r} is not AXIS=SIZE (axes: {', '.join(AXES)})")
            if name not in AXES:
                raise ValueError(f"mesh {text!r}: unknown axis {name!r}; the axes are {', '.join(AXES)}")
            if name in sizes:
                raise ValueError(f"mesh {text!r}: axis {name!r} is given twice")
            try:
                size = int(value)
            except ValueError:
                raise ValueError(f"mesh {text!r}: the size of {name!r} must be an integer, got {value.strip()!r}") from None
            if size < 1 and size != -1:
                raise ValueError(f"mesh {text!r}: the size of {name!r} must be >= 1 (or -1 for the rest), got {size}")
            sizes[name] = size
        if not sizes:
            raise ValueError(f"mesh {text!r}: give at least one AXIS=SIZE (axes: {', '.join(AXES)})")
        if list(sizes.values()).count(-1) > 1:
            raise ValueError(f"mesh {text!r}: only one axis may have size -1")
        return cls(tuple((name, sizes[name]) for name in AXES if name in sizes))

    def resolve(self, num_devices: int) -> dict[str, int]:
        """The size of every axis of `AXES` for `num_devices` devices (a ValueError if they do not multiply to it)."""
        sizes = dict(self.sizes)
        known = math.prod(size for size in sizes.values() if size != -1)
        for name, size in sizes.items():
            if size == -1:
                if num_devices % known:
                    raise ValueError(f"mesh {self}: {num_devices} devices do not split into {known} x {name}")
                sizes[name] = num_devices // known
        total = math.prod(sizes.values())
        if total != num_devices:
            raise ValueError(
                f"mesh {self} needs {total} devices but {num_devices} are given (jax sees {jax.device_count()}); "
                "on CPU, fake devices with --cpu-devices N or XLA_FLAGS=--xla_force_host_platform_device_count=N"
            )
        return {name: sizes.get(name, 1) for name in AXES}

    def make(self, devices: Sequence[jax.Device] | None = None) -> Mesh:
        """The mesh over `devices` (default: every device of every process), axes `AXES`, `AxisType.Auto`."""
        devices = list(jax.devices() if devices is None else devices)
        sizes = self.resolve(len(devices))
        return jax.make_mesh(
            tuple(sizes.values()), tuple(sizes), axis_types=(AxisType.Auto,) * len(sizes), devices=devices
        )

    def __str__(self) -> str:
        return ",".join(f"{name}={size}" for name, size in self.sizes)


def make_mesh(spec: str | MeshSpec, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """`MeshSpec.parse(spec).make(devices)`."""
    return (MeshSpec.parse(spec) if isinstance(spec, str) else spec).make(devices)
