"""The reference Flax checkpoint (Kaggle ``2b``, ``9b``...): an orbax `PyTreeCheckpointer` directory.

The stored root is the bare parameter tree or `{"params": tree}` (both occur, reference-facts
§7.1). orbax-checkpoint is an optional dependency (`pip install 'hybrid_seq[flax]'`); the
`recurrentgemma` package is not needed. Leaves are restored as host numpy arrays in the
checkpoint's dtype and released as soon as the model has taken them, so the peak is about
one copy of the checkpoint plus the leaf being converted.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hybrid_seq.io.flax import to_flax_params
from hybrid_seq.io.flax_layout import FlaxLeaf, get_path, unwrap_params
from hybrid_seq.io.source import LayoutSource, shape_struct
from hybrid_seq.model import Model

#: Files any orbax PyTree checkpoint directory has (one of them suffices).
MARKERS = ("_METADATA", "_CHECKPOINT_METADATA", "manifest.ocdbt", "checkpoint")


def _orbax() -> Any:
    try:
        import orbax.checkpoint as ocp
    except ImportError:
        raise ImportError(
            "reading or writing the reference Flax (orbax) checkpoint format needs orbax-checkpoint: "
            "pip install 'hybrid_seq[flax]'"
        ) from None
    return ocp


def _plain(tree: Any) -> Any:
    """orbax metadata as nested plain dicts."""
    if isinstance(tree, Mapping):
        return {key: _plain(value) for key, value in tree.items()}
    return tree


def orbax_source(directory: Path) -> LayoutSource:
    """An orbax checkpoint directory as a `LayoutSource` (restored on the first read)."""
    ocp = _orbax()
    checkpointer = ocp.PyTreeCheckpointer()
    try:
        metadata = checkpointer.metadata(directory)
    except Exception as error:
        raise ValueError(f"{directory}: not a readable orbax checkpoint: {error}") from None
    item = getattr(metadata, "item_metadata", metadata)
    tree = _plain(getattr(item, "tree", item))
    wrapped = isinstance(tree, Mapping) and set(tree) == {"params"}
    shapes = _map(unwrap_params(tree), lambda leaf: shape_struct(leaf.shape, leaf.dtype))
    restored: dict[str, Any] = {}
    uses: dict[tuple[str, ...], int] = {}

    def fetch(where: FlaxLeaf) -> np.ndarray:
        if not restored:
            restore_args = _map(tree, lambda _: ocp.RestoreArgs(restore_type=np.ndarray))
            try:
                restored.update(unwrap_params(checkpointer.restore(directory, restore_args=restore_args)))
            except Exception as error:
                raise ValueError(f"{directory}: the orbax checkpoint cannot be restored: {error}") from None
        try:
            value = get_path(restored, where.path)
        except KeyError as error:
            raise ValueError(f"{directory}: {error.args[0]}") from None
        uses[where.path] = uses.get(where.path, 0) + 1
        if uses[where.path] == (1 if where.index is None else 2):
            del get_path(restored, where.path[:-1])[where.path[-1]]
        return value if where.index is None else value[where.index]

    def name(where: FlaxLeaf) -> str:
        return "/".join((("params",) if wrapped else ()) + where.path)

    return LayoutSource(str(directory), "flax", shapes, fetch, name)


def _map(tree: Any, fn: Any) -> Any:
    if isinstance(tree, Mapping):
        return {key: _map(value, fn) for key, value in tree.items()}
    return fn(tree)


def save_orbax(model: Model, directory: Path) -> None:
    """Write `model`'s bare Flax parameter tree (the Kaggle layout) as an orbax checkpoint at `directory`.

    `directory` must not exist yet (orbax creates it).
    """
    ocp = _orbax()
    ocp.PyTreeCheckpointer().save(directory.absolute(), to_flax_params(model))
