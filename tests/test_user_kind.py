"""A user's own kind, defined here (outside the package) with its own config and state size, is first-class.

`Echo` mixes each token with an exponential moving average (run through a scan backend,
so `with_scan_backend` must reach it) and with the token `lag` steps back in its
document, read from a cache that grows with the sequence and is preallocated to the
`max_length` the state interface gives. It is used in a pattern, saved and loaded,
counted, switched to another backend, and sampled from with a prompt longer than any
power-of-two bucket below its cache.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jaxtyping import Array, Float, Float32, Int, Int32

import hybrid_seq as hs
from hybrid_seq import io as hio
from hybrid_seq import scan
from hybrid_seq.blocks import (
    AbstractChannelMixer,
    AbstractMixer,
    AbstractScanning,
    GatedMLPConfig,
    Linear,
    RecurrentConfig,
)
from hybrid_seq.blocks.axes import logical_axes
from hybrid_seq.sampling import ByteTokenizer, Sampler


class EchoState(eqx.Module):
    ema: Float32[Array, "B D"]
    history: Float[Array, "B N D"]
    count: Int32[Array, " B"]


class Echo(AbstractMixer, AbstractScanning):
    """`y_t = proj(ema_t) + x_{t - lag}` (the lagged term only inside the document)."""

    proj: Linear
    decay: Float[Array, " D"]
    lag: int = eqx.field(static=True)
    scan_backend: str = eqx.field(static=True)

    param_axes: ClassVar[dict] = {("proj", "weight"): ("embed", "embed_out"), ("decay",): ("embed",)}

    def init_state(self, batch_size: int, max_length: int | None, dtype) -> EchoState:
        if max_length is None:
            raise ValueError("Echo keeps every token: give init_state a max_length")
        width = self.decay.shape[0]
        return EchoState(
            ema=jnp.zeros((batch_size, width), jnp.float32),
            history=jnp.zeros((batch_size, max_length, width), dtype),
            count=jnp.zeros((batch_size,), jnp.int32),
        )

    def state_capacity(self, state: EchoState) -> int:
        return state.history.shape[1]

    def __call__(self, x: Float[Array, "B T D"], positions: Int[Array, "B T"], state: EchoState | None = None):
        batch, length, _ = x.shape
        if state is None:
            state = self.init_state(batch, length, x.dtype)
        state = eqx.error_if(state, state.count + length > state.history.shape[1], "Echo: the cache is full")
        a = jnp.broadcast_to(jax.nn.sigmoid(self.decay), x.shape) * (positions != 0)[..., None]
        ema, ema_last = scan.get(self.scan_backend)(x * (1 - a), a, state.ema)
        index = state.count[:, None] + jnp.arange(length)
        rows = jnp.arange(batch)[:, None]
        history = state.history.at[rows, index].set(x.astype(state.history.dtype))
        lagged = jnp.take_along_axis(history, jnp.maximum(index - self.lag, 0)[..., None], axis=1)
        y = self.proj(ema.astype(x.dtype)) + jnp.where((positions >= self.lag)[..., None], lagged, 0)
        return y, EchoState(ema=ema_last, history=history, count=state.count + length)


@hs.register_kind
@dataclasses.dataclass(frozen=True)
class EchoConfig(hs.KindConfig):
    kind: ClassVar[str] = "test_user_echo"
    role: ClassVar[str] = "temporal"
    lag: int = 2

    def build(self, width, *, key, dtype, num_layers):
        k_proj, k_decay = jax.random.split(key)
        return Echo(
            proj=Linear(width, width, use_bias=False, key=k_proj, dtype=dtype),
            decay=jax.random.normal(k_decay, (width,), dtype),
            lag=self.lag,
            scan_backend="auto",
        )


class SquareMLP(AbstractChannelMixer):
    up: Linear
    down: Linear

    param_axes: ClassVar[dict] = {("up", "weight"): ("embed", "mlp"), ("up", "bias"): ("mlp",), ("down", "weight"): ("mlp", "embed")}

    def __call__(self, x):
        return self.down(jnp.square(self.up(x)))


@hs.register_kind
@dataclasses.dataclass(frozen=True)
class SquareMLPConfig(hs.KindConfig):
    kind: ClassVar[str] = "test_user_square_mlp"
    role: ClassVar[str] = "channel"
    hidden: int = 8

    def build(self, width, *, key, dtype, num_layers):
        k_up, k_down = jax.random.split(key)
        return SquareMLP(
            Linear(width, self.hidden, use_bias=True, key=k_up, dtype=dtype),
            Linear(self.hidden, width, use_bias=False, key=k_down, dtype=dtype),
        )


WIDTH, MLP, VOCAB = 16, 24, ByteTokenizer.vocab_size
CONFIG = hs.HybridConfig(
    vocab_size=VOCAB,
    width=WIDTH,
    pattern="ER",
    kinds={"E": EchoConfig(lag=3), "R": RecurrentConfig(num_heads=2)},
    channel=GatedMLPConfig(expanded_width=MLP),
    logits_soft_cap=30.0,
)


@pytest.fixture(scope="module")
def model() -> hs.Model:
    return hs.Model(CONFIG, key=jax.random.key(0))


def batch(length: int, seed: int = 0):
    tokens = jax.random.randint(jax.random.key(seed), (2, length), 0, VOCAB, jnp.int32)
    positions = jnp.asarray([np.arange(length), np.r_[-1, -1, np.arange(4), np.arange(length - 6)]], jnp.int32)
    return tokens, positions


def test_the_kind_builds_with_its_own_settings_and_chunks_exactly(model):
    assert isinstance(model.blocks[0].temporal, Echo) and model.blocks[0].temporal.lag == 3
    tokens, positions = batch(12)
    whole, _ = model(tokens, positions)
    cache = model.init_cache(2, max_length=12)
    first, cache = model(tokens[:, :5], positions[:, :5], cache)
    second, cache = model(tokens[:, 5:], positions[:, 5:], cache)
    np.testing.assert_allclose(np.concatenate([first, second], 1), whole, atol=2e-5)
    assert cache[0].history.shape == (2, 12, WIDTH)
    with pytest.raises(Exception, match="Echo: the cache is full"):
        model(tokens[:, :1], positions[:, :1] + 12, cache)


def test_save_then_load_keeps_the_kind_config_and_the_logits(model, tmp_path):
    path = hio.save(model, tmp_path / "echo")
    loaded = hio.load(path)
    assert loaded.config == CONFIG and loaded.config.binding("E").temporal == EchoConfig(lag=3)
    tokens, positions = batch(10)
    np.testing.assert_array_equal(np.asarray(loaded(tokens, positions)[0]), np.asarray(model(tokens, positions)[0]))


def test_the_kind_config_changes_what_loads(model, tmp_path):
    path = hio.save(model, tmp_path / "echo")
    other = hio.load(path, kinds={"E": EchoConfig(lag=1), "R": RecurrentConfig(num_heads=2)})
    assert other.blocks[0].temporal.lag == 1
    with pytest.raises(ValueError, match="num_heads=3 must divide lru_width=16"):
        hio.load(path, kinds={"E": EchoConfig(lag=3), "R": RecurrentConfig(num_heads=3)})


def test_parameter_count_is_exact(model):
    echo = WIDTH * WIDTH + WIDTH
    recurrent = 3 * WIDTH * WIDTH + 2 * WIDTH + WIDTH + 5 * WIDTH + WIDTH + 2 * (WIDTH * WIDTH // 2 + WIDTH)
    mlp = 3 * WIDTH * MLP + 2 * MLP + WIDTH
    norms = 2 * WIDTH
    expected = VOCAB * WIDTH + WIDTH + (echo + mlp + norms) + (recurrent + mlp + norms)
    assert hs.param_count(CONFIG).total == expected
    assert hs.param_count(model) == hs.param_count(CONFIG)
    assert hs.param_count(model).embedding == VOCAB * WIDTH


def test_the_kind_names_its_parameter_axes(model):
    axes = logical_axes(model)
    assert axes[("blocks", 0, "temporal", "proj", "weight")] == ("embed", "embed_out")
    assert axes[("blocks", 0, "temporal", "decay")] == ("embed",)


def test_with_scan_backend_reaches_the_user_kind(model):
    switched = model.with_scan_backend("associative")
    assert switched.blocks[0].temporal.scan_backend == "associative"
    assert switched.blocks[1].temporal.rg_lru.scan_backend == "associative"
    assert switched.blocks[0].temporal.proj.weight is model.blocks[0].temporal.proj.weight
    tokens, positions = batch(9)
    np.testing.assert_allclose(switched(tokens, positions)[0], model(tokens, positions)[0], atol=1e-5)
    with pytest.raises(ValueError, match="unknown backend 'nope'"):
        model.with_scan_backend("nope")


def test_sampling_a_prompt_longer_than_every_bucket_below_the_cache(model):
    tokenizer = ByteTokenizer()
    prompt = "x" * 80  # BOS + 80 bytes = 81 tokens, padded to a bucket of 128
    out = Sampler(model, tokenizer)(prompt, 12, stop_token_ids=[])
    ids = tokenizer.encode(prompt, add_bos=True)
    # Greedy by full passes over one fixed-length row (causal: the zeros after a token do not
    # change its logits), so one compilation serves every step.
    full = eqx.filter_jit(lambda row: model(row[None], jnp.arange(row.shape[0])[None])[0][0])
    for _ in range(12):
        row = jnp.zeros(81 + 12, jnp.int32).at[: len(ids)].set(jnp.asarray(ids))
        ids.append(int(jnp.argmax(full(row)[len(ids) - 1])))
    assert out.tokens[0] == ids[81:]


def test_swapping_the_channel_mixer_saves_loads_and_counts(model, tmp_path):
    config = CONFIG.replace(channel=SquareMLPConfig(hidden=8))
    swapped = model.with_config(config, key=jax.random.key(1))
    assert isinstance(swapped.blocks[0].mlp, SquareMLP) and swapped.config == config
    assert swapped.blocks[0].temporal.proj.weight is model.blocks[0].temporal.proj.weight
    loaded = hio.load(hio.save(swapped, tmp_path / "swapped"))
    tokens, positions = batch(8)
    np.testing.assert_array_equal(np.asarray(loaded(tokens, positions)[0]), np.asarray(swapped(tokens, positions)[0]))
    square = WIDTH * 8 + 8 + 8 * WIDTH
    gated = 3 * WIDTH * MLP + 2 * MLP + WIDTH
    assert hs.param_count(swapped).total == hs.param_count(model).total - 2 * gated + 2 * square
    assert hs.param_count(loaded) == hs.param_count(config)


def test_a_module_swapped_in_by_hand_is_refused_by_save_with_the_way_out(model, tmp_path):
    square = SquareMLPConfig(hidden=8).build(WIDTH, key=jax.random.key(2), dtype=jnp.float32, num_layers=2)
    by_hand = eqx.tree_at(lambda m: m.blocks[0].mlp, model, square)
    assert hs.param_count(by_hand).total != hs.param_count(model).total
    with pytest.raises(ValueError, match=r"blocks\.0\.mlp.*Model\.with_config"):
        hio.save(by_hand, tmp_path / "by_hand")
    assert not (tmp_path / "by_hand").exists()
