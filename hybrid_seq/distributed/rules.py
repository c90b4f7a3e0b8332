"""Sharding rules: the mesh axes each parameter dimension is split over, from its logical axis name.

Every parameter dimension has a logical name, declared by the kind that owns it
(`hybrid_seq.blocks.axes`). A `Rules` table maps each name to mesh axes, and the spec of
a leaf is built dimension by dimension, with three stated rules:

* **Unknown names are replicated.** A name the table does not map (a new kind's
  ``experts``, a user's ``embed_out``) is never split; map it with `Rules.replace`.
* **Whole units only.** A module may say how many indivisible units a logical axis holds
  (`axis_units()`: attention ``heads`` hold `num_heads` heads, the RG-LRU's ``lru``
  `num_heads` gate blocks); otherwise every element is a unit. A dimension is split over
  mesh axes of total size n only if n divides its units, else the table's axes are
  dropped from the last until they do: RecurrentGemma-2B's 10 heads split over tensor=2,
  and stay whole (replicated) over tensor=4. With ``indivisible="error"`` that is a
  ValueError naming the parameter, the dimension and the mesh axes instead.
* **A mesh axis splits one dimension of a leaf.** The first dimension (in order) asking
  for a mesh axis gets it; a later one asking for the same axis stays whole.
* **FSDP stores everything split.** A parameter the table leaves whole over a storage
  axis (`Rules.storage`, default ``fsdp``: it has no ``embed`` dimension, like the RG-LRU's
  gate blocks, or one that does not divide) is split over it along its largest dimension
  that divides, named or not, but never the layer axis of stacked layers. Storage splits
  change where a weight is kept, not the computation: XLA gathers it where it is used.

A mapped mesh axis the mesh lacks is size 1 for the standard axes of
`hybrid_seq.distributed.mesh` (a `data=8` mesh has no tensor split) and an error for any
other name, since only a user's table names those.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Literal

import jax
from jax.sharding import AbstractMesh, Mesh, PartitionSpec

from hybrid_seq.blocks.axes import EMBED, HEADS, KV, LRU, LRU_BLOCKS, MLP, VOCAB, Axes, logical_axes
from hybrid_seq.blocks.stack import LayerStack
from hybrid_seq.distributed.mesh import AXES, FSDP, TENSOR

#: The default table: FSDP splits the model width, tensor parallelism everything that is
#: per head, per channel of the recurrence, per hidden unit of the MLP, and the vocabulary.
DEFAULT_TABLE: Mapping[str, tuple[str, ...]] = {
    VOCAB: (TENSOR,),
    EMBED: (FSDP,),
    MLP: (TENSOR,),
    HEADS: (TENSOR,),
    KV: (TENSOR,),
    LRU: (TENSOR,),
    LRU_BLOCKS: (TENSOR,),
}

Indivisible = Literal["replicate", "error"]


@dataclasses.dataclass(frozen=True)
class Rules:
    """Logical name -> mesh axes (tried in order), what an indivisible dimension does, and the storage axes."""

    table: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=lambda: dict(DEFAULT_TABLE))
    indivisible: Indivisible = "replicate"
    storage: tuple[str, ...] = (FSDP,)

    def __post_init__(self) -> None:
        if self.indivisible not in ("replicate", "error"):
            raise ValueError(f"Rules.indivisible must be 'replicate' or 'error', got {self.indivisible!r}")
        for name, axes in self.table.items():
            if not isinstance(axes, tuple) or not all(isinstance(a, str) for a in axes):
                raise TypeError(f"Rules.table[{name!r}] must be a tuple of mesh axis names, got {axes!r}")

    def replace(self, **mapping: str | tuple[str, ...] | None) -> Rules:
        """These rules with some names remapped: `rules.replace(experts="data", vocab=None)` (None: replicate)."""
        table = dict(self.table)
        for name, axes in mapping.items():
            table[name] = () if axes is None else (axes,) if isinstance(axes, str) else tuple(axes)
        return dataclasses.replace(self, table=table)

    def check(self, mesh_shape: Mapping[str, int]) -> None:
        """A ValueError if the table names a non-standard mesh axis that the mesh lacks."""
        for name, axes in self.table.items():
            missing = [a for a in axes if a not in mesh_shape and a not in AXES]
            if missing:
                raise ValueError(f"sharding rules map {name!r} to mesh axis {missing[0]!r}, but the mesh has axes {list(mesh_shape)}")

    def leaf_spec(
        self,
        where: str,
        shape: tuple[int, ...],
        axes: Axes,
        units: Mapping[str, int],
        mesh_shape: Mapping[str, int],
        *,
        layer_dims: int = 0,
    ) -> PartitionSpec:
        """The spec of one parameter (`where` names it in errors; its first `layer_dims` dimensions
        index stacked layers); see the module docstring."""
        used: set[str] = set()
        entries: list[tuple[str, ...]] = []
        for dim, (name, size) in enumerate(zip(axes, shape)):
            wanted = () if name is None else tuple(
                a for a in self.table.get(name, ()) if mesh_shape.get(a, 1) > 1 and a not in used
            )
            count = units.get(name, size) if name is not None else size
            chosen = wanted
            while chosen and (count % _size(chosen, mesh_shape) or size % _size(chosen, mesh_shape)):
                chosen = chosen[:-1]
            if chosen != wanted and self.indivisible == "error":
                raise ValueError(
                    f"parameter {where}: dimension {dim} ({name!r}, size {size}, {count} units) cannot be split over "
                    f"mesh axes {wanted} of size {_size(wanted, mesh_shape)}"
                )
            used.update(chosen)
            entries.append(chosen)
        for axis in self.storage:
            size = mesh_shape.get(axis, 1)
            if size == 1 or axis in used:
                continue
            left = [(shape[d] // _size(entries[d], mesh_shape), d) for d in range(layer_dims, len(shape))]
            fits = [(n, -d) for n, d in left if n % size == 0]
            if fits:
                dim = -max(fits)[1]
                entries[dim] = (*entries[dim], axis)
                used.add(axis)
        return PartitionSpec(*(None if not e else e[0] if len(e) == 1 else e for e in entries))


def _size(axes: tuple[str, ...], mesh_shape: Mapping[str, int]) -> int:
    return math.prod(mesh_shape.get(a, 1) for a in axes)


def partition_specs(tree: Any, mesh: Mesh | AbstractMesh | Mapping[str, int], rules: Rules | None = None) -> Any:
    """The `PartitionSpec` of every array leaf of `tree` (a model, concrete or abstract), in `tree`'s structure.

    `mesh` is a `Mesh`, an `AbstractMesh` (no devices needed) or just the axis sizes.
    """
    rules = Rules() if rules is None else rules
    mesh_shape = dict(mesh.shape) if isinstance(mesh, (Mesh, AbstractMesh)) else dict(mesh)
    rules.check(mesh_shape)
    axes = logical_axes(tree)
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    specs = []
    for (path, names), leaf in zip(axes.items(), leaves):
        units, layer_dims = _along(tree, path)
        specs.append(
            rules.leaf_spec(".".join(map(str, path)), tuple(leaf.shape), names, units, mesh_shape, layer_dims=layer_dims)
        )
    return jax.tree_util.tree_unflatten(treedef, specs)


def _along(tree: Any, path: tuple[str | int, ...]) -> tuple[dict[str, int], int]:
    """What the modules above the leaf at `path` say: the indivisible units per logical axis they
    declare (`axis_units()`, inner ones win), and how many `LayerStack`s stack it."""
    units: dict[str, int] = {}
    stacks = 0
    node = tree
    for key in path:
        declare = getattr(node, "axis_units", None)
        if callable(declare):
            units.update(declare())
        stacks += isinstance(node, LayerStack)
        node = node[key] if isinstance(key, int) or isinstance(node, dict) else getattr(node, key)
    return units, stacks
