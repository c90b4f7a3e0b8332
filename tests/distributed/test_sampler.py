"""The Sampler with a tensor-parallel model (weights placed from outside) gives the tokens of one device."""

from __future__ import annotations

import jax

import hybrid_seq as hs
from hybrid_seq.distributed import Layout
from hybrid_seq.sampling import ByteTokenizer, Sampler


def test_tensor_parallel_sampling_gives_the_same_tokens() -> None:
    config = hs.ModelConfig(
        vocab_size=261, width=32, mlp_expanded_width=64, num_heads=4, block_pattern="RRA", attention_window_size=16
    )
    model = hs.Model(config, key=jax.random.key(3))
    prompts = ["Hybrid models", "mix a recurrence with local attention"]
    tokenizer = ByteTokenizer()
    want = Sampler(model, tokenizer)(prompts, 12, temperature=0.8, seed=1, return_logprobs=True)
    layout = Layout.from_spec("data=2,tensor=4")
    placed = layout.shard_model(model)
    assert placed.blocks[2].temporal.proj_q.weight.sharding.spec == jax.sharding.PartitionSpec(None, "tensor")
    got = Sampler(placed, tokenizer)(prompts, 12, temperature=0.8, seed=1, return_logprobs=True)
    assert got.tokens == want.tokens and got.texts == want.texts
    for a, b in zip(got.logprobs, want.logprobs):
        assert max(abs(x - y) for x, y in zip(a, b)) < 1e-4
