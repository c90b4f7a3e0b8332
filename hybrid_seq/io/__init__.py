"""Checkpoint formats and conversion."""

from hybrid_seq.io.flax import from_flax_params, to_flax_params

__all__ = ["from_flax_params", "to_flax_params"]
