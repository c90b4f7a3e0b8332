"""Choosing the next token from logits: greedy, temperature, top-k, top-p (all in fp32)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Float32, Int, Int32, UInt32


def filter_logits(
    logits: Float[Array, "B V"], top_k: Int[Array, ""] | int = 0, top_p: Float[Array, ""] | float = 1.0
) -> Float32[Array, "B V"]:
    """fp32 logits with everything outside the top-k and the top-p nucleus set to -inf.

    `top_k=0` and `top_p>=1` disable the filters. Top-k keeps the `top_k` largest logits
    (ties at the boundary are all kept). Top-p keeps the smallest set of most probable
    tokens (after top-k) whose probability sums to at least `top_p`; the most probable
    token is always kept.
    """
    logits = logits.astype(jnp.float32)
    vocab = logits.shape[-1]
    ordered = -jnp.sort(-logits, axis=-1)
    top_k = jnp.asarray(top_k, jnp.int32)
    rank = jnp.arange(vocab, dtype=jnp.int32)
    in_top_k = (top_k <= 0) | (rank < top_k)
    ordered = jnp.where(in_top_k, ordered, -jnp.inf)
    probs = jax.nn.softmax(ordered, axis=-1)
    mass_before = jnp.cumsum(probs, axis=-1) - probs
    keep = in_top_k & ((mass_before < top_p) | (rank == 0))
    cutoff = jnp.min(jnp.where(keep, ordered, jnp.inf), axis=-1, keepdims=True)
    return jnp.where(logits >= cutoff, logits, -jnp.inf)


def row_keys(seeds: Int[Array, " B"]) -> UInt32[Array, "B 2"]:
    """One raw PRNG key per row (`jax.random.PRNGKey(seed)`), so a row's samples do not depend on its batch."""
    return jax.vmap(jax.random.PRNGKey)(seeds.astype(jnp.uint32))


def choose(
    logits: Float[Array, "B V"],
    keys: UInt32[Array, "B 2"],
    step: Int32[Array, ""],
    *,
    greedy: bool,
    temperature: Float[Array, ""] | float = 1.0,
    top_k: Int[Array, ""] | int = 0,
    top_p: Float[Array, ""] | float = 1.0,
) -> tuple[Int32[Array, " B"], Float32[Array, " B"]]:
    """Next token per row and its log-probability under the model (fp32, unscaled, unfiltered).

    Greedy takes the argmax. Otherwise the logits are divided by `temperature`, filtered
    (`filter_logits`) and sampled with the row's key folded with `step`.
    """
    logits = logits.astype(jnp.float32)
    if greedy:
        tokens = jnp.argmax(logits, axis=-1).astype(jnp.int32)
    else:
        scaled = filter_logits(logits / jnp.asarray(temperature, jnp.float32), top_k, top_p)
        step_keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, step)
        tokens = jax.vmap(jax.random.categorical)(step_keys, scaled).astype(jnp.int32)
    logprobs = jnp.take_along_axis(jax.nn.log_softmax(logits, axis=-1), tokens[:, None], axis=-1)[:, 0]
    return tokens, logprobs


def is_stop(tokens: Int32[Array, " B"], stop_ids: Int32[Array, " S"]) -> Bool[Array, " B"]:
    """Whether each token is one of `stop_ids` (entries < 0 are padding)."""
    return jnp.any((tokens[:, None] == stop_ids[None, :]) & (stop_ids[None, :] >= 0), axis=-1)
