"""Choosing the next token from logits: greedy, temperature, top-k, top-p (all in fp32)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Float32, Int, Int32, UInt32


def filter_logits(
    logits: Float[Array, "B V"],
    top_k: Int[Array, ""] | int = 0,
    top_p: Float[Array, ""] | float = 1.0,
    *,
    top_k_bound: int | None = None,
) -> Float32[Array, "B V"]:
    """fp32 logits with everything outside the top-k and the top-p nucleus set to -inf.

    `top_k=0` and `top_p>=1` disable the filters. Top-k keeps the `top_k` largest logits
    (ties at the boundary are all kept). Top-p keeps the smallest set of most probable
    tokens (after top-k) whose probability sums to at least `top_p`; the most probable
    token is always kept.

    Only the filters that are on cost anything: a Python `top_k=0` / `top_p>=1` leaves its
    filter out of the traced program, so with both off nothing is sorted. Top-k takes the
    largest `top_k_bound` logits with `lax.top_k` (a Python `top_k` is its own bound; a
    traced one must lie in `[1, top_k_bound]`, or be anything with the default bound, the
    vocabulary), and top-p then works on those candidates; top-p alone sorts the vocabulary.
    """
    logits = logits.astype(jnp.float32)
    vocab = logits.shape[-1]
    static_k, static_p = _is_static(top_k), _is_static(top_p)
    use_k, use_p = not (static_k and top_k <= 0), not (static_p and top_p >= 1)
    if not (use_k or use_p):
        return logits
    if use_k:
        bound = min(top_k if static_k else vocab if top_k_bound is None else top_k_bound, vocab)
        ordered = jax.lax.top_k(logits, bound)[0]
    else:
        bound = vocab
        ordered = -jnp.sort(-logits, axis=-1)
    rank = jnp.arange(bound, dtype=jnp.int32)
    top_k = jnp.asarray(top_k, jnp.int32)
    in_top_k = (top_k <= 0) | (rank < top_k) if use_k else jnp.ones((bound,), bool)
    ordered = jnp.where(in_top_k, ordered, -jnp.inf)
    if use_p:
        probs = jax.nn.softmax(ordered, axis=-1)
        mass_before = jnp.cumsum(probs, axis=-1) - probs
        keep = in_top_k & ((mass_before < top_p) | (top_p >= 1) | (rank == 0))
    else:
        keep = in_top_k
    cutoff = jnp.min(jnp.where(keep, ordered, jnp.inf), axis=-1, keepdims=True)
    return jnp.where(logits >= cutoff, logits, -jnp.inf)


def _is_static(value: object) -> bool:
    """A Python or NumPy number (known when tracing), not an array."""
    return isinstance(value, (int, float, np.integer, np.floating))


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
    top_k_bound: int | None = None,
) -> tuple[Int32[Array, " B"], Float32[Array, " B"]]:
    """Next token per row and its log-probability under the model (fp32, unscaled, unfiltered).

    Greedy takes the argmax. Otherwise the logits are divided by `temperature`, filtered
    (`filter_logits`, which leaves out the filters given as off) and sampled with the row's
    key folded with `step`.
    """
    logits = logits.astype(jnp.float32)
    if greedy:
        tokens = jnp.argmax(logits, axis=-1).astype(jnp.int32)
    else:
        scaled = filter_logits(logits / jnp.asarray(temperature, jnp.float32), top_k, top_p, top_k_bound=top_k_bound)
        step_keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, step)
        tokens = jax.vmap(jax.random.categorical)(step_keys, scaled).astype(jnp.int32)
    logprobs = jnp.take_along_axis(jax.nn.log_softmax(logits, axis=-1), tokens[:, None], axis=-1)[:, 0]
    return tokens, logprobs


def is_stop(tokens: Int32[Array, " B"], stop_ids: Int32[Array, " S"]) -> Bool[Array, " B"]:
    """Whether each token is one of `stop_ids` (entries < 0 are padding)."""
    return jnp.any((tokens[:, None] == stop_ids[None, :]) & (stop_ids[None, :] >= 0), axis=-1)
