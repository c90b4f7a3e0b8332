"""A checkpoint seen through the reference Flax layout: shapes for inference, lazy reads per leaf.

The reference PyTorch and HuggingFace formats are renamings (and transposes) of the Flax
tree, so each reader only has to say, for a Flax leaf, which tensor of the file holds it
and how to turn it into the Flax layout. Config inference, preset checks and the
memory-conscious model build are then shared.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from hybrid_seq.io.assemble import ShardingSpec, model_from_leaves, resolve_config
from hybrid_seq.io.flax_layout import FlaxLeaf, MissingParameter, infer_architecture
from hybrid_seq.model import Model


@dataclasses.dataclass
class LayoutSource:
    """One checkpoint on disk, in Flax terms.

    Attributes:
        path: the file or directory, for messages.
        format: detected format name.
        shapes: nested dict in the Flax layout whose leaves are `jax.ShapeDtypeStruct`s.
        fetch: a Flax leaf (sliced by its index) as a numpy array, read lazily.
        name: how the file names the tensor holding a Flax leaf.
        settings: non-inferable config fields stated by the file itself (e.g. HF config.json).
        unused: tensors of the file that no Flax leaf claims (reported as an error).
    """

    path: str
    format: str
    shapes: dict[str, Any]
    fetch: Callable[[FlaxLeaf], np.ndarray]
    name: Callable[[FlaxLeaf], str]
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    unused: tuple[str, ...] = ()

    @property
    def dtype(self) -> np.dtype:
        """The checkpoint's dtype (that of the embedding table)."""
        return np.dtype(self.shapes["embedder"]["input_embedding"].dtype)

    def inferred(self) -> dict[str, Any]:
        """The config fields that the tensor shapes determine."""
        try:
            return infer_architecture(self.shapes)
        except MissingParameter as error:
            raise ValueError(f"{self.path}: tensor {self._file_name(error.path)} is missing") from None

    def _file_name(self, path: tuple[str, ...]) -> str:
        """The file's name for the Flax leaf at `path` (its first slice for the shared `ffw_up`)."""
        for index in (None, (0,), (0, 0, 0)):
            try:
                return self.name(FlaxLeaf(path, index))
            except KeyError:
                continue
        return "/".join(path)


def shape_struct(shape: tuple[int, ...], dtype: Any) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(tuple(int(n) for n in shape), np.dtype(dtype))


def insert(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """Set `tree[path[0]][path[1]]... = value`, creating dicts on the way."""
    node = tree
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value


def load_source(
    source: LayoutSource,
    *,
    preset: str | None,
    dtype: Any,
    sharding: ShardingSpec,
    overrides: dict[str, Any],
) -> Model:
    """Build the Model held by `source` (config from shapes + preset + file settings + overrides)."""
    label = f"{source.path} ({source.format})"
    if source.unused:
        raise ValueError(f"{label}: tensors with no place in the model: {', '.join(source.unused)}")
    config = resolve_config(
        source.inferred(), preset=preset, overrides={**source.settings, **overrides}, source=label
    )
    return model_from_leaves(
        config, source.fetch, dtype=dtype or source.dtype, source=label, name=source.name, sharding=sharding
    )
