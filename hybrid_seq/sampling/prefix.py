"""A shared prompt prefix: prefilled once, forked across rows, each row then fed its own suffix.

Rows continue the prefix with suffixes of different lengths. Padding in the middle of a row
would run through the recurrences, so each row is fed exactly its own tokens: suffix lengths
are split into powers of two (13 = 8 + 4 + 1), and for each power, from the largest, the
rows whose length has it take their next chunk of that size. Each such step runs the whole
batch, the rows without a chunk standing in as copies of a row that has one, and keeps the
new state only where a row had its own chunk. So the only shapes compiled are the batch by
a power of two, however the lengths vary, and no row's state ever takes in a token that is
not its own (a growing cache never fills with padding). The price is up to one batch of
wasted work per power of two, the same order as left-padding every suffix to the longest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Float32

from hybrid_seq.model import Cache, Model
from hybrid_seq.sampling import snapshot
from hybrid_seq.sampling.prefill import prefill


@dataclasses.dataclass(frozen=True)
class Prefix:
    """A prompt prefix run through the model once: its ids, the logits after its last token, and its one-row state.

    `seen` counts the tokens its state has taken in (left padding included); `capacity` is
    the most that state can take in (kinds whose cache grows preallocate it; None: every
    kind's state is fixed-size, so any number of tokens may follow).
    """

    ids: tuple[int, ...]
    logits: Float32[Array, "1 V"]
    state: Cache
    seen: int
    capacity: int | None

    @property
    def room(self) -> int | None:
        """How many tokens may still follow (None: unbounded)."""
        return None if self.capacity is None else self.capacity - self.seen


def state_capacity(model: Model, state: Cache) -> int | None:
    """The fewest tokens any growing cache of `state` was made for (None: all fixed-size)."""
    capacities = [c for block, s in zip(model.blocks, state) if (c := block.state_capacity(s)) is not None]
    return min(capacities, default=None)


def feed(
    model: Model,
    state: Cache,
    logits: Float[Array, "B V"],
    suffixes: Sequence[Sequence[int]],
    starts: Sequence[int],
    *,
    chunk_size: int | None = None,
) -> tuple[Float32[Array, "B V"], Cache]:
    """Feed row `i` of `state` the tokens `suffixes[i]` at document positions `starts[i]`, `starts[i] + 1`, ...

    Returns each row's logits after its last token (`logits[i]` for an empty suffix) and the
    state. Chunks longer than `chunk_size` are prefilled in pieces of that size.
    """
    batch = snapshot.batch_size(state)
    if not len(suffixes) == len(starts) == batch:
        raise ValueError(f"need one suffix and one start per row ({batch}), got {len(suffixes)} and {len(starts)}")
    logits = jnp.asarray(logits, jnp.float32)
    lengths = np.asarray([len(s) for s in suffixes])
    offsets = np.zeros(batch, int)
    for bit in reversed(range(int(lengths.max(initial=0)).bit_length())):
        size = 1 << bit
        has = (lengths & size) > 0
        if not has.any():
            continue
        source = np.where(has, np.arange(batch), np.flatnonzero(has)[0])  # each row's own chunk, or a stand-in's
        tokens = np.stack([suffixes[row][offsets[row] : offsets[row] + size] for row in source]).astype(np.int32)
        positions = (np.asarray(starts)[source] + offsets[source])[:, None] + np.arange(size)
        chunk = chunk_size if chunk_size is not None and size > chunk_size else None
        rows = state if has.all() else snapshot.take(state, source)
        out, fed = prefill(model, jnp.asarray(tokens), jnp.asarray(positions, jnp.int32), rows, chunk_size=chunk)
        state = snapshot.where(has, fed, state)
        offsets[has] += size
        ended = has & (offsets == lengths)
        logits = jnp.where(jnp.asarray(ended)[:, None], out.astype(jnp.float32), logits)
    return logits, state
