"""The flags that put a command on a mesh and across processes (`--mesh`, `--cpu-devices`, `--coordinator`, ...)."""

from __future__ import annotations

import argparse
from typing import Any

from hybrid_seq.cli.args import int_at_least


def mesh_spec(text: str) -> Any:
    """A mesh spec such as `data=2,fsdp=2,tensor=2` (see `hybrid_seq.distributed.mesh`)."""
    from hybrid_seq.distributed.mesh import MeshSpec

    try:
        return MeshSpec.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the mesh and process flags to a subcommand's parser."""
    group = parser.add_argument_group("devices and processes")
    group.add_argument(
        "--mesh", type=mesh_spec, default=None,
        help="train on a device mesh, e.g. data=2,fsdp=2,tensor=2 or data=2,seq=4 (axes data, fsdp, seq, tensor; "
             "one size may be -1 for the rest; default: one device, or data=-1 with several processes)",
    )
    group.add_argument("--cpu-devices", type=int_at_least(1), default=None,
                       help="show N CPU devices in this process, to try a mesh on one machine")
    group.add_argument("--coordinator", default=None, help="HOST:PORT of process 0 (or JAX_COORDINATOR_ADDRESS)")
    group.add_argument("--num-processes", type=int_at_least(1), default=None, help="(or JAX_NUM_PROCESSES)")
    group.add_argument("--process-id", type=int_at_least(0), default=None, help="(or JAX_PROCESS_ID)")
    group.add_argument("--distributed", action="store_true",
                       help="join a multi-process run, letting JAX detect the cluster (SLURM, Open MPI, Kubernetes, Cloud TPU)")


def layout(args: argparse.Namespace) -> Any:
    """Start the processes the flags ask for and return the `Layout` of `--mesh` (None: one device, one process)."""
    import jax

    from hybrid_seq.distributed.layout import Layout
    from hybrid_seq.distributed.mesh import MeshSpec
    from hybrid_seq.distributed.processes import initialize

    initialize(args.coordinator, args.num_processes, args.process_id, auto=args.distributed, cpu_devices=args.cpu_devices)
    spec = args.mesh
    if spec is None and jax.process_count() > 1:
        spec = MeshSpec.parse("data=-1")
    if spec is None:
        return None
    return Layout.from_spec(spec)


def shared_out(args: argparse.Namespace, default: str) -> str:
    """The output folder: `--out`, else `default`; several processes must be told one (`--out`)."""
    import jax

    if args.out is None and jax.process_count() > 1:
        raise ValueError("with several processes, give --out (one folder every process writes to)")
    return args.out or default
