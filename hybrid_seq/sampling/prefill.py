"""Prefill: run prompts through the model into a state, in one pass or in fixed-size chunks."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from hybrid_seq.model import Cache, Model


@eqx.filter_jit
def _forward(
    model: Model, tokens: Int[Array, "B T"], positions: Int[Array, "B T"], state: Cache, all_logits: bool
) -> tuple[Float[Array, "B T V"] | Float[Array, "B V"], Cache]:
    logits, state = model(tokens, positions, state)
    return (logits if all_logits else logits[:, -1]), state


@eqx.filter_jit
def _empty_state(model: Model, batch_size: int, max_length: int) -> Cache:
    """`model.init_cache`, compiled (one program instead of one dispatch per state leaf)."""
    return model.init_cache(batch_size, max_length)


def prefill(
    model: Model,
    tokens: Int[Array, "B T"],
    positions: Int[Array, "B T"],
    state: Cache | None = None,
    chunk_size: int | None = None,
    *,
    all_logits: bool = False,
    max_length: int | None = None,
) -> tuple[Float[Array, "B V"] | Float[Array, "B T V"], Cache]:
    """Feed `tokens` (with document `positions`, -1 for padding) into `state`.

    Without a `state`, one is made for `max_length` tokens (default: these `T`), the room a
    growing cache preallocates for the tokens that will follow.

    Returns the logits of the last column `[B, V]` (or of every column `[B, T, V]` with
    `all_logits`) and the state after the last token. `chunk_size` splits the time axis
    into chunks of that many tokens, fed one after another through the state: the result
    equals one pass (up to float rounding) while activation memory is bounded by the chunk.
    Each distinct chunk shape compiles once (jitted with `eqx.filter_jit`).
    """
    tokens = jnp.asarray(tokens, jnp.int32)
    positions = jnp.asarray(positions, jnp.int32)
    if tokens.ndim != 2 or tokens.shape != positions.shape:
        raise ValueError(f"tokens and positions must both be [B, T], got {tokens.shape} and {positions.shape}")
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    length = tokens.shape[1]
    if max_length is not None and max_length < length:
        raise ValueError(f"max_length={max_length} is shorter than the {length} tokens to prefill")
    if state is None:
        state = _empty_state(model, tokens.shape[0], length if max_length is None else max_length)
    step = length if chunk_size is None else chunk_size
    pieces = []
    for start in range(0, length, step):
        logits, state = _forward(
            model, tokens[:, start : start + step], positions[:, start : start + step], state, all_logits
        )
        pieces.append(logits)
    if all_logits:
        return (pieces[0] if len(pieces) == 1 else jnp.concatenate(pieces, axis=1)), state
    return pieces[-1], state


def left_pad(
    sequences: list[list[int]], pad_id: int, length: int | None = None
) -> tuple[Int[Array, "B T"], Int[Array, "B T"]]:
    """Left-pad token lists to `length` (default: the longest): tokens and positions (-1 on pads).

    Every row's first real token gets position 0 (a document start, normally BOS), so the
    pads never influence the real tokens.
    """
    longest = max(len(s) for s in sequences)
    length = longest if length is None else length
    if length < longest:
        raise ValueError(f"length={length} is shorter than the longest sequence ({longest})")
    if min(len(s) for s in sequences) == 0:
        raise ValueError("cannot left-pad an empty sequence")
    tokens = np.full((len(sequences), length), pad_id, np.int32)
    positions = np.full((len(sequences), length), -1, np.int32)
    for row, sequence in enumerate(sequences):
        tokens[row, length - len(sequence) :] = sequence
        positions[row, length - len(sequence) :] = np.arange(len(sequence))
    return jnp.asarray(tokens), jnp.asarray(positions)
