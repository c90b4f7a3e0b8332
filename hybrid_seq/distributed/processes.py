"""Many processes: `jax.distributed.initialize`, from arguments or the usual environment variables.

One process per host (or per accelerator group) runs the same program; together they
see every device, and a mesh spans them all. Values come from the arguments, else from
``JAX_COORDINATOR_ADDRESS`` (JAX's own), ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``;
with `auto=True` JAX detects what is missing from the cluster (SLURM, Open MPI,
Kubernetes, Cloud TPU). On CPU the processes talk through gloo collectives.
"""

from __future__ import annotations

import os

import jax

COORDINATOR_ENV, NUM_PROCESSES_ENV, PROCESS_ID_ENV = "JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"


def initialize(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    auto: bool = False,
    cpu_devices: int | None = None,
) -> bool:
    """Join a multi-process run (True), or stay a single process when nothing asks for one (False).

    `cpu_devices` makes the CPU platform show that many devices in this process (to try a
    mesh on a laptop; each process of a CPU run gets its own). Call it before anything
    touches a JAX device.
    """
    if cpu_devices is not None:
        if cpu_devices < 1:
            raise ValueError(f"cpu_devices must be >= 1, got {cpu_devices}")
        jax.config.update("jax_num_cpu_devices", cpu_devices)
    coordinator = coordinator or os.environ.get(COORDINATOR_ENV)
    num_processes = num_processes if num_processes is not None else _env_int(NUM_PROCESSES_ENV)
    process_id = process_id if process_id is not None else _env_int(PROCESS_ID_ENV)
    if not auto and coordinator is None and num_processes is None and process_id is None:
        return False
    if not auto and None in (coordinator, num_processes, process_id):
        missing = [name for name, value in (("coordinator address", coordinator), ("number of processes", num_processes),
                                            ("process id", process_id)) if value is None]
        raise ValueError(
            f"a multi-process run needs a coordinator address, the number of processes and this process's id; "
            f"missing: {', '.join(missing)} (flags --coordinator/--num-processes/--process-id, or "
            f"{COORDINATOR_ENV}/{NUM_PROCESSES_ENV}/{PROCESS_ID_ENV}; --distributed lets JAX detect a cluster)"
        )
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id)
    return True


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {value!r}") from None
