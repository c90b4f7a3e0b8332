"""The reference's Flax parameter tree: our leaf <-> its path, and config inference from shapes.

The Flax tree (reference-facts §7.1) is a nested dict with literal-dot block keys
(``"blocks.0"``). Every leaf of our `Model` maps to one Flax leaf, or to one slice of it
(the MLP's gate and up projections share ``ffw_up/w [2, D, E]`` and ``ffw_up/b [2, 1, 1, E]``).
Other formats (PyTorch, HuggingFace) are defined as renamings of these paths.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax

from hybrid_seq.blocks.reference_names import ReferenceLeaf, ReferenceNames
from hybrid_seq.pattern import temporal_kind

FlaxPath = tuple[str, ...]

#: The layer's own leaves (its pre-norms), our path under a layer -> the Flax path; the
#: mixers' leaves are named by their kinds (`reference_names`).
_LAYER_NORMS = {
    ("temporal_pre_norm", "scale"): ("temporal_pre_norm", "scale"),
    ("channel_pre_norm", "scale"): ("channel_pre_norm", "scale"),
}


@dataclasses.dataclass(frozen=True)
class FlaxLeaf:
    """Where one of our leaves lives in the Flax tree: `tree[path][index]` (index None: whole leaf)."""

    path: FlaxPath
    index: tuple[int, ...] | None


def leaf_path(path: tuple[Any, ...]) -> tuple[str | int, ...]:
    """A `tree_flatten_with_path` key path as plain names and indices."""
    out: list[str | int] = []
    for key in path:
        if isinstance(key, jax.tree_util.GetAttrKey):
            out.append(key.name)
        elif isinstance(key, jax.tree_util.SequenceKey):
            out.append(key.idx)
        elif isinstance(key, jax.tree_util.DictKey):
            out.append(key.key)
        else:
            raise TypeError(f"unexpected key {key!r} in a model path")
    return tuple(out)


def reference_names(model: Any, layer: int, field: str) -> ReferenceNames:
    """The reference names of `model.blocks[layer].<field>` (its mixer), declared by its kind."""
    module = getattr(model.blocks[layer], field)
    names = getattr(type(module), "reference_names", None)
    if names is None:
        raise ValueError(
            f"layer {layer}'s {field} is a {type(module).__name__}, which RecurrentGemma's checkpoint formats "
            "(flax, pytorch, huggingface) cannot hold; save it in the hybrid_seq format"
        )
    return names


def mixer_leaf(model: Any, path: tuple[str | int, ...]) -> tuple[ReferenceNames, ReferenceLeaf] | None:
    """For our leaf `blocks.<i>.<field>.<rest>` of a mixer: its kind's names and the leaf's; None otherwise."""
    if len(path) < 4 or path[0] != "blocks" or (path[2], *path[3:]) in _LAYER_NORMS:
        return None
    names = reference_names(model, path[1], path[2])
    if tuple(path[3:]) not in names.leaves:
        raise ValueError(f"model leaf {'.'.join(map(str, path))} has no place in the reference checkpoint layout")
    return names, names.leaves[tuple(path[3:])]


def flax_leaf(model: Any, path: tuple[str | int, ...]) -> FlaxLeaf:
    """The Flax location of the leaf at `path` (as given by `leaf_path`) of `model` (or its skeleton)."""
    if path == ("embedder", "weight"):
        return FlaxLeaf(("embedder", "input_embedding"), None)
    if path == ("final_norm", "scale"):
        return FlaxLeaf(("final_norm", "scale"), None)
    if len(path) >= 3 and path[0] == "blocks":
        block = f"blocks.{path[1]}"
        if tuple(path[2:]) in _LAYER_NORMS:
            return FlaxLeaf((block, *_LAYER_NORMS[tuple(path[2:])]), None)
        found = mixer_leaf(model, path)
        if found is not None:
            names, leaf = found
            return FlaxLeaf((block, names.flax_block, *leaf.flax), leaf.index)
    raise ValueError(f"model leaf {'.'.join(map(str, path))} has no place in the reference Flax tree")


def unwrap_params(tree: Mapping[str, Any]) -> Mapping[str, Any]:
    """The bare parameter tree, whether or not it is wrapped as `{"params": ...}`."""
    if not isinstance(tree, Mapping):
        raise TypeError(f"expected a (nested) dict of parameters, got {type(tree).__name__}")
    if set(tree) == {"params"}:
        return tree["params"]
    return tree


class MissingParameter(KeyError):
    """A Flax parameter absent from a tree; `path` is the full path asked for."""

    def __init__(self, message: str, path: FlaxPath):
        super().__init__(message)
        self.path = path


def get_path(tree: Mapping[str, Any], path: FlaxPath) -> Any:
    node: Any = tree
    for depth, name in enumerate(path):
        if not isinstance(node, Mapping) or name not in node:
            raise MissingParameter(
                f"parameter {'/'.join(path)} is missing (no {name!r} under {'/'.join(path[:depth]) or 'root'})", path
            )
        node = node[name]
    return node


def infer_architecture(tree: Mapping[str, Any]) -> dict[str, Any]:
    """The config fields that the shapes of a Flax parameter tree determine.

    Walks `blocks.0, blocks.1, ...`; every block must agree on the MLP width, head count,
    LRU width and convolution taps (the reference takes them from whichever block it saw
    last, unchecked).
    """
    tree = unwrap_params(tree)
    vocab_size, width = get_path(tree, ("embedder", "input_embedding")).shape
    kinds: list[str] = []
    found: dict[str, dict[int, Any]] = {
        "mlp_expanded_width": {}, "num_heads": {}, "lru_width": {}, "conv1d_temporal_width": {}
    }
    while f"blocks.{len(kinds)}" in tree:
        layer = len(kinds)
        name = f"blocks.{layer}"
        block = tree[name]
        found["mlp_expanded_width"][layer] = get_path(tree, (name, "mlp_block", "ffw_up", "w")).shape[-1]
        if "recurrent_block" in block:
            kinds.append("recurrent")
            heads, block_width, _ = get_path(tree, (name, "recurrent_block", "rg_lru", "a_gate", "w")).shape
            found["num_heads"][layer] = heads
            found["lru_width"][layer] = heads * block_width
            found["conv1d_temporal_width"][layer] = get_path(tree, (name, "recurrent_block", "conv_1d", "w")).shape[0]
        elif "attention_block" in block:
            kinds.append("attention")
            head_dim = get_path(tree, (name, "attention_block", "proj_k", "kernel")).shape[1]
            found["num_heads"][layer] = width // head_dim
        else:
            raise ValueError(f"blocks.{layer} has neither a recurrent_block nor an attention_block: {sorted(block)}")
    if not kinds:
        raise ValueError("the parameter tree has no blocks (expected keys 'blocks.0', 'blocks.1', ...)")
    fields: dict[str, Any] = {"vocab_size": int(vocab_size), "width": int(width)}
    for name, per_layer in found.items():
        values = set(per_layer.values())
        if len(values) > 1:
            raise ValueError(f"layers disagree on {name}: {dict(sorted(per_layer.items()))}")
        if values:
            fields[name] = int(values.pop())
    fields.setdefault("lru_width", None)
    fields["block_pattern"] = _shortest_unit(kinds)
    return fields


def _shortest_unit(kinds: list[str]) -> dict[str, Any]:
    """The shortest unit whose cycle gives `kinds` (Griffin's 26 layers -> RRA cycled)."""
    for size in range(1, len(kinds) + 1):
        unit = kinds[:size]
        if all(kind == unit[i % size] for i, kind in enumerate(kinds)):
            return {"unit": [temporal_kind(k).name for k in unit], "num_layers": len(kinds)}
    raise AssertionError("unreachable: the whole list is always a unit")
