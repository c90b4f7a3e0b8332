"""DeepMind's reference model (`pip install recurrentgemma`) configured like one of ours.

Benchmarks and parity tests compare against it; weights move across with
`hybrid_seq.io.to_flax_params`.
"""

from __future__ import annotations

from typing import Any

from hybrid_seq.config import ModelConfig


def reference_config(config: ModelConfig, **overrides: Any) -> Any:
    """The reference `GriffinConfig` with the same architecture as `config`."""
    import recurrentgemma.jax as rg

    kinds = {"recurrent": rg.TemporalBlockType.RECURRENT, "attention": rg.TemporalBlockType.ATTENTION}
    unsupported = sorted(set(config.layer_kinds) - set(kinds))
    if unsupported:
        raise ValueError(f"the reference has no {', '.join(unsupported)} blocks")
    fields = dict(
        vocab_size=config.vocab_size,
        width=config.width,
        mlp_expanded_width=config.mlp_expanded_width,
        num_heads=config.num_heads,
        lru_width=config.lru_width,
        block_types=tuple(kinds[k] for k in config.layer_kinds),
        embeddings_scale_by_sqrt_dim=config.embeddings_scale_by_sqrt_dim,
        attention_window_size=config.attention_window_size,
        logits_soft_cap=config.logits_soft_cap,
    )
    return rg.GriffinConfig(**{**fields, **overrides})


def reference_griffin(config: ModelConfig, *, config_overrides: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """The reference `recurrentgemma.jax.Griffin` for `config` (`kwargs` go to its constructor)."""
    import recurrentgemma.jax as rg

    return rg.Griffin(reference_config(config, **(config_overrides or {})), **kwargs)
