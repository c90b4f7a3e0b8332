"""jaxtyping aliases shared across the package.

Dimension letters: B batch, T time, D model width, L lru width, H heads,
K head dim (key/value), W attention window slots, V vocabulary, E MLP width.
"""

from jaxtyping import Array, Float, Int

Tokens = Int[Array, "B T"]
Positions = Int[Array, "B T"]
Activations = Float[Array, "B T D"]
Logits = Float[Array, "B T V"]

__all__ = ["Activations", "Array", "Float", "Int", "Logits", "Positions", "Tokens"]
