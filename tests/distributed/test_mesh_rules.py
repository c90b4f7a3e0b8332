"""Mesh specs, sharding rules and layouts, on abstract models (nothing compiled, nothing allocated)."""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
import pytest
from jax.sharding import AbstractMesh, PartitionSpec

import hybrid_seq as hs
from hybrid_seq.blocks import AbstractMixer, GatedMLPConfig, Linear, RecurrentConfig
from hybrid_seq.distributed import Layout, MeshSpec, Rules, make_mesh, partition_specs
from hybrid_seq.training import Batch, OptimConfig, make_optimizer

P = PartitionSpec


def _abstract(name: str, **overrides) -> hs.Model:
    return eqx.filter_eval_shape(hs.Model, hs.presets.get(name, **overrides), key=jax.random.key(0))


def _mesh(**sizes: int) -> AbstractMesh:
    """An abstract mesh of any size (no devices needed to compute specs)."""
    resolved = MeshSpec(tuple(sizes.items())).resolve(math.prod(sizes.values()))
    return AbstractMesh(tuple(resolved.values()), tuple(resolved))


def test_mesh_specs_parse_in_canonical_order_and_fill_the_rest() -> None:
    assert MeshSpec.parse("tensor=2,data=2,fsdp=2") == MeshSpec.parse("data=2, fsdp=2, tensor=2")
    assert MeshSpec.parse("tensor=2 x data=4").resolve(8) == {"data": 4, "fsdp": 1, "seq": 1, "tensor": 2}
    assert MeshSpec.parse("seq=-1,tensor=2").resolve(8)["seq"] == 4
    mesh = make_mesh("data=2,fsdp=2,tensor=2")
    assert dict(mesh.shape) == {"data": 2, "fsdp": 2, "seq": 1, "tensor": 2}
    assert mesh.devices.size == 8


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("data=2,model=4", "unknown axis 'model'; the axes are data, fsdp, seq, tensor"),
        ("data=2,data=4", "axis 'data' is given twice"),
        ("data=two", "the size of 'data' must be an integer, got 'two'"),
        ("data", "'data' is not AXIS=SIZE"),
        ("data=0", "must be >= 1"),
        ("data=-1,seq=-1", "only one axis may have size -1"),
        ("", "give at least one AXIS=SIZE"),
    ],
)
def test_bad_mesh_specs_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MeshSpec.parse(text)


def test_a_mesh_must_use_every_device_it_is_given() -> None:
    with pytest.raises(ValueError, match="mesh data=4 needs 4 devices but 8 are given.*--cpu-devices"):
        make_mesh("data=4")
    with pytest.raises(ValueError, match="8 devices do not split into 3 x data"):
        MeshSpec.parse("data=-1,tensor=3").resolve(8)
    assert make_mesh("data=4", devices=jax.devices()[:4]).devices.size == 4


def test_fsdp_and_tensor_rules_on_recurrentgemma_2b() -> None:
    model = _abstract("recurrentgemma-2b")
    specs = partition_specs(model, _mesh(data=2, fsdp=2, tensor=2))
    block, attention = specs.blocks[0], specs.blocks[2].temporal
    assert specs.embedder.weight == P("tensor", "fsdp")
    assert block.mlp.gate.weight == P("fsdp", "tensor") and block.mlp.down.weight == P("tensor", "fsdp")
    assert block.temporal.linear_x.weight == P("fsdp", "tensor") and block.temporal.linear_out.weight == P("tensor", "fsdp")
    # FSDP stores what has no embed axis split along its largest dimension that divides.
    assert block.temporal.conv_1d.weight == P(None, ("tensor", "fsdp"))
    assert block.temporal.rg_lru.a_param == P(("tensor", "fsdp"))
    assert block.temporal.rg_lru.input_gate.weight == P("tensor", "fsdp", None)
    assert attention.proj_q.weight == P("fsdp", "tensor") and attention.proj_final.weight == P("tensor", "fsdp")
    # The single key/value head of multi-query attention is never split over tensor.
    assert attention.proj_k.weight == P("fsdp", None) and attention.proj_v.weight == P("fsdp", None)
    assert block.temporal_pre_norm.scale == P("fsdp")


def test_ten_heads_split_over_two_and_stay_whole_over_four() -> None:
    model = _abstract("recurrentgemma-2b")
    over_four = partition_specs(model, _mesh(data=2, tensor=4))
    # 2560 columns divide by 4, but 10 heads (and 10 gate blocks) do not: replicated.
    assert over_four.blocks[2].temporal.proj_q.weight == P(None, None)
    assert over_four.blocks[0].temporal.linear_x.weight == P(None, None)
    assert over_four.blocks[0].temporal.rg_lru.input_gate.weight == P(None, None, None)
    assert over_four.blocks[0].mlp.up.weight == P(None, "tensor")  # 7680 hidden units divide
    with pytest.raises(ValueError, match=r"blocks\.0\.temporal\.linear_y\.weight: dimension 1 \('lru', size 2560, 10 units\)"):
        partition_specs(model, _mesh(data=2, tensor=4), Rules(indivisible="error"))
    assert partition_specs(model, _mesh(tensor=2)).blocks[2].temporal.proj_q.weight == P(None, "tensor")


def test_stacked_layers_keep_their_leading_axis_whole() -> None:
    model = eqx.filter_eval_shape(
        lambda: hs.Model(hs.presets.get("griffin-tiny", block_pattern="RRA:6"), key=jax.random.key(0)).stack_layers()
    )
    specs = partition_specs(model, _mesh(fsdp=2, tensor=2))
    assert specs.blocks[0].unit[0].mlp.up.weight == P(None, "fsdp", "tensor")
    # Never along the layer axis, even where FSDP has nothing else to split.
    assert specs.blocks[0].unit[0].temporal.rg_lru.input_gate.weight == P(None, "tensor", "fsdp", None)
    assert partition_specs(model, _mesh(fsdp=8)).blocks[0].unit[0].temporal_pre_norm.scale == P(None, "fsdp")


class Tagged(AbstractMixer):
    """A user's mixer with a logical axis no rule knows (`embed_out`)."""

    proj: Linear
    param_axes: ClassVar[dict] = {("proj", "weight"): ("embed", "embed_out")}

    def init_state(self, batch_size, max_length, dtype):
        return None

    def __call__(self, x, positions, state=None):
        return self.proj(x), None


@hs.register_kind
@dataclasses.dataclass(frozen=True)
class TaggedConfig(hs.KindConfig):
    kind: ClassVar[str] = "tests_distributed_tagged"
    role: ClassVar[str] = "temporal"

    def build(self, width, *, key, dtype, num_layers):
        return Tagged(Linear(width, width, use_bias=False, key=key, dtype=dtype))


def test_unknown_logical_names_are_replicated_unless_mapped() -> None:
    config = hs.HybridConfig(
        vocab_size=32, width=16, pattern="TR", kinds={"T": TaggedConfig(), "R": RecurrentConfig(num_heads=2)},
        channel=GatedMLPConfig(expanded_width=32),
    )
    model = eqx.filter_eval_shape(hs.Model, config, key=jax.random.key(0))
    mesh = _mesh(fsdp=2, tensor=4)
    assert partition_specs(model, mesh).blocks[0].temporal.proj.weight == P("fsdp", None)
    mapped = Rules().replace(embed_out="tensor")
    assert partition_specs(model, mesh, mapped).blocks[0].temporal.proj.weight == P("fsdp", "tensor")
    # A mesh axis splits one dimension of a leaf: the first one asking for it.
    both = Rules().replace(embed="tensor", embed_out="tensor")
    assert partition_specs(model, mesh, both).blocks[0].temporal.proj.weight == P("tensor", "fsdp")
    # 2 gate blocks stay whole over tensor=4; FSDP still stores them split, unless told not to.
    assert partition_specs(model, mesh).blocks[1].temporal.rg_lru.a_param == P("fsdp")
    assert partition_specs(model, mesh, Rules(storage=())).blocks[1].temporal.rg_lru.a_param == P(None)
    with pytest.raises(ValueError, match="rules map 'embed_out' to mesh axis 'expert', but the mesh has axes"):
        partition_specs(model, mesh, Rules().replace(embed_out="expert"))


def test_optimizer_state_follows_the_parameters() -> None:
    model = _abstract("griffin-tiny")
    layout = Layout(make_mesh("data=2,fsdp=2,tensor=2"))
    opt_state = jax.eval_shape(make_optimizer(OptimConfig()).init, model)
    shardings = layout.state_shardings(opt_state, model)
    adam = shardings[1][0]
    assert isinstance(adam, optax.ScaleByAdamState)
    assert adam.mu.blocks[0].mlp.up.weight.spec == P("fsdp", "tensor") == adam.nu.blocks[0].mlp.up.weight.spec
    assert adam.count.spec == P()


def test_batches_split_rows_and_time_and_refuse_what_does_not_divide() -> None:
    layout = Layout(make_mesh("data=2,fsdp=2,seq=2"))
    assert layout.batch_sharding().spec == P(("data", "fsdp"), "seq")
    rows = jnp.zeros((4, 6), jnp.int32)
    batch = Batch(tokens=rows, positions=rows, targets=rows, loss_mask=rows.astype(bool))
    placed = layout.shard_batch(batch)
    assert {s.data.shape for s in placed.tokens.addressable_shards} == {(1, 3)}
    bad = Batch(tokens=rows[:3], positions=rows[:3], targets=rows[:3], loss_mask=rows[:3].astype(bool))
    with pytest.raises(ValueError, match=r"batch\.tokens has shape \(3, 6\).*B divisible by 4.*T divisible by 2"):
        layout.shard_batch(bad)
