"""Sharded train-state checkpoints with orbax: each process writes its own shards, and a restore reshards onto any mesh.

A checkpoint is `<directory>/<step>/` of an orbax `CheckpointManager`, holding two items:
``state``, every array of the saved tree (model and optimizer state) keyed by its leaf
path, and ``meta``, JSON (the step, the data position, the model config, the mesh it was
saved from, anything else the caller adds). Restoring reads each array straight onto the
sharding the caller asks for, whatever mesh wrote it, so a run saved on `data=8` resumes
on `fsdp=2,tensor=4`.

Crash safety is orbax's atomic commit: a checkpoint is written into a temporary folder
and renamed to its step only once every process has finished writing (the commit). A crash
before that leaves only the temporary folder, which `steps`/`latest_step` never list and
a restore never reads (it is deleted the next time a `Checkpoints` opens the directory); a
crash after it leaves a complete checkpoint.
"""

from __future__ import annotations

import pathlib
from typing import Any

import equinox as eqx
import jax

from hybrid_seq.distributed.layout import is_array_like, key_name


class Checkpoints:
    """The sharded checkpoints of one run in `directory`, keeping the newest `keep`."""

    def __init__(self, directory: str | pathlib.Path, *, keep: int | None = 2):
        import orbax.checkpoint as ocp

        self._ocp = ocp
        self.directory = pathlib.Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, enable_async_checkpointing=False, cleanup_tmp_directories=True, create=True
        )
        handlers = {"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}
        self._manager = ocp.CheckpointManager(self.directory, options=options, item_handlers=handlers)

    def steps(self) -> list[int]:
        """The steps with a complete (committed) checkpoint, oldest first."""
        self._manager.reload()
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        """The newest complete checkpoint's step, or None."""
        steps = self.steps()
        return steps[-1] if steps else None

    def path(self, step: int) -> pathlib.Path:
        """The folder of the checkpoint of `step`."""
        return self.directory / str(step)

    def save(self, step: int, tree: Any, metadata: dict) -> pathlib.Path:
        """Write every array of `tree` and `{"step": step, **metadata}` as the checkpoint of `step` (all processes call it)."""
        ocp = self._ocp
        arrays = _by_path(tree)
        self._manager.save(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardSave(arrays), meta=ocp.args.JsonSave({"step": step, **metadata})),
            force=True,
        )
        self._manager.wait_until_finished()
        return self.path(step)

    def metadata(self, step: int) -> dict:
        """The JSON item of the checkpoint of `step`, without reading any array."""
        ocp = self._ocp
        return self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

    def restore(self, step: int, like: Any, shardings: Any) -> tuple[Any, dict]:
        """The tree saved at `step`, in the structure of `like` (concrete or abstract), each array on the
        sharding of the same leaf of `shardings`; and its metadata.

        A ValueError names the first leaf the checkpoint lacks, or whose shape or dtype differs.
        """
        ocp = self._ocp
        wanted = _by_path(like)
        placed = _by_path(shardings, is_leaf=lambda x: isinstance(x, jax.sharding.Sharding))
        stored = self._manager.item_metadata(step)["state"]
        for name, leaf in wanted.items():
            if name not in stored:
                raise ValueError(f"{self.path(step)}: the checkpoint has no array {name!r}")
            have = stored[name]
            if tuple(have.shape) != tuple(leaf.shape) or have.dtype != leaf.dtype:
                raise ValueError(
                    f"{self.path(step)}: {name} is {have.dtype}{list(have.shape)} in the checkpoint but "
                    f"{leaf.dtype}{list(leaf.shape)} here"
                )
        abstract = {
            name: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=placed[name]) for name, leaf in wanted.items()
        }
        out = self._manager.restore(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()),
        )
        arrays, static = eqx.partition(like, is_array_like)
        leaves = [out["state"][name] for name in wanted]
        restored = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(arrays), leaves)
        return eqx.combine(restored, static), out["meta"]

    def close(self) -> None:
        """Release orbax's manager (its background threads)."""
        self._manager.close()


def _by_path(tree: Any, is_leaf: Any = None) -> dict[str, Any]:
    """The array leaves of `tree` by their dotted path (`model.blocks.0.mlp.up.weight`), in flattening order."""
    if is_leaf is None:
        tree = eqx.filter(tree, is_array_like)
    leaves = jax.tree_util.tree_leaves_with_path(tree, is_leaf=is_leaf)
    return {".".join(str(key_name(k)) for k in path): leaf for path, leaf in leaves}
