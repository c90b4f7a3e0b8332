"""`hybrid-seq bench generate`: the reference Sampler is set up without JAX's donated-buffer warning."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import pytest

from hybrid_seq import Model, ModelConfig
from hybrid_seq.bench import generate
from hybrid_seq.bench.reference import reference_griffin
from hybrid_seq.io import to_flax_params
from hybrid_seq.sampling import ByteTokenizer

rg = pytest.importorskip("recurrentgemma.jax")


def _lower_prompt_step(sampler) -> None:
    """Lower (not compile) the reference's prompt step as its `__call__` does: JAX checks donations while lowering."""
    tokens = jnp.ones((2, 6), jnp.int32)
    sampler.prompt_processing_fn.lower(sampler.params, tokens, None, jnp.array([6, 4]), 4, False, False)


@pytest.fixture(scope="module")
def reference() -> rg.Sampler:
    config = ModelConfig(vocab_size=260, width=32, mlp_expanded_width=48, num_heads=2, block_pattern="RA",
                         attention_window_size=8)
    params = jax.eval_shape(lambda: to_flax_params(Model(config, key=jax.random.key(0))))  # lowering needs shapes only
    return rg.Sampler(model=reference_griffin(config), vocab=generate._RefVocab(ByteTokenizer()), params=params)


def test_the_unpatched_reference_warns(reference) -> None:
    with pytest.warns(UserWarning, match="donated buffers were not usable"):
        _lower_prompt_step(reference)


def test_the_benchmarks_reference_sampler_does_not_warn(reference) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _lower_prompt_step(generate._reference_sampler(reference))
