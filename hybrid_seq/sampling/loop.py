"""The compiled decode loop: sample a token, feed it back, repeat, in one `lax.while_loop` on the device."""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Float32, Int32, UInt32

from hybrid_seq.model import Cache, Model
from hybrid_seq.sampling.buckets import power_of_two, stop_id_slots
from hybrid_seq.sampling.options import SamplingOptions
from hybrid_seq.sampling.rules import choose, is_stop, row_keys


class LoopSettings(eqx.Module):
    """The sampling settings inside the loop.

    Values are traced (changing them does not recompile); what is static is greedy or not,
    which filters are on (None: off, so the loop does no filtering work) and top-k's bucket.
    """

    temperature: Float32[Array, ""]
    top_k: Int32[Array, ""] | None
    top_p: Float32[Array, ""] | None
    stop_ids: Int32[Array, " S"]
    greedy: bool = eqx.field(static=True)
    top_k_bound: int = eqx.field(static=True)

    @classmethod
    def of(cls, options: SamplingOptions, stop_ids: Sequence[int]) -> LoopSettings:
        """Device values of `options`; the stop ids padded with -1 to a bucketed length."""
        padding = [-1] * (stop_id_slots(len(stop_ids)) - len(stop_ids))
        return cls(
            temperature=jnp.float32(max(options.temperature, 1e-6)),
            top_k=jnp.int32(options.top_k) if options.top_k > 0 else None,
            top_p=jnp.float32(options.top_p) if options.top_p < 1 else None,
            stop_ids=jnp.asarray([*stop_ids, *padding], jnp.int32),
            greedy=options.greedy,
            top_k_bound=power_of_two(options.top_k),
        )


class Carry(eqx.Module):
    """The loop's state. `logits` are those of the next token to sample; row buffers hold `N`
    slots, of which the first `step` are written (pad / 0 once a row is done)."""

    cache: Cache
    logits: Float32[Array, "B V"]
    position: Int32[Array, " B"]
    step: Int32[Array, ""]
    done: Bool[Array, " B"]
    tokens: Int32[Array, "B N"]
    logprobs: Float32[Array, "B N"]
    keys: UInt32[Array, "B 2"]


def start(
    cache: Cache, logits: Float[Array, "B V"], positions: Sequence[int], seeds: Sequence[int], slots: int, pad_id: int
) -> Carry:
    """The carry before the first token (new buffers): `positions` is each row's next document position."""
    return _start(cache, logits, np.asarray(positions, np.int32), np.asarray(seeds, np.int32), slots, pad_id)


@eqx.filter_jit
def _start(
    cache: Cache, logits: Float[Array, "B V"], positions: Int32[Array, " B"], seeds: Int32[Array, " B"], slots: int,
    pad_id: int,
) -> Carry:
    batch = positions.shape[0]
    return Carry(
        cache=cache,
        logits=logits.astype(jnp.float32),
        position=positions,
        step=jnp.int32(0),
        done=jnp.zeros((batch,), bool),
        tokens=jnp.full((batch, slots), pad_id, jnp.int32),
        logprobs=jnp.zeros((batch, slots), jnp.float32),
        keys=row_keys(seeds),
    )


def decode(model: Model, carry: Carry, limit: Int32[Array, ""], settings: LoopSettings, pad_id: int) -> Carry:
    """Sample tokens until `step == limit` or every row is done; `carry` is consumed (use the returned one).

    Each iteration samples from `carry.logits`, writes the token (pad for finished rows),
    then runs the model on it to get the next logits. The carry's buffers are donated, so
    the loop writes its result in place of them: without that, every call (every segment
    of a call with stop strings, every streamed token) copied the whole state, 64 MiB for
    griffin-small at batch 16.
    """
    return _decode((model, settings, limit), carry, pad_id)


@eqx.filter_jit(donate="all-except-first")
def _decode(kept: tuple[Model, LoopSettings, Int32[Array, ""]], carry: Carry, pad_id: int) -> Carry:
    model, settings, limit = kept

    def cond(c: Carry) -> Bool[Array, ""]:
        return (c.step < limit) & ~jnp.all(c.done)

    def body(c: Carry) -> Carry:
        token, logprob = choose(
            c.logits, c.keys, c.step,
            greedy=settings.greedy,
            temperature=settings.temperature,
            top_k=0 if settings.top_k is None else settings.top_k,
            top_p=1.0 if settings.top_p is None else settings.top_p,
            top_k_bound=settings.top_k_bound,
        )
        token = jnp.where(c.done, pad_id, token)
        logprob = jnp.where(c.done, 0.0, logprob)
        logits, cache = model(token[:, None], c.position[:, None], c.cache)
        return Carry(
            cache=cache,
            logits=logits[:, 0].astype(jnp.float32),
            position=c.position + 1,
            step=c.step + 1,
            done=c.done | is_stop(token, settings.stop_ids),
            tokens=jax.lax.dynamic_update_index_in_dim(c.tokens, token, c.step, axis=1),
            logprobs=jax.lax.dynamic_update_index_in_dim(c.logprobs, logprob, c.step, axis=1),
            keys=c.keys,
        )

    return jax.lax.while_loop(cond, body, carry)


def finish_rows(carry: Carry, finished: Bool[Array, " B"]) -> Carry:
    """`carry` with the rows the host has ended (by a stop string) marked done."""
    return eqx.tree_at(lambda c: c.done, carry, carry.done | finished)
