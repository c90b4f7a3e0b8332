"""Shape buckets: sizes rounded up to few distinct values, so calls of similar size reuse compiled code."""

from __future__ import annotations


def power_of_two(n: int, minimum: int = 16) -> int:
    """The next power of two >= max(n, minimum)."""
    return max(minimum, 1 << (max(n, 1) - 1).bit_length())


def prompt_length(longest: int, chunk_size: int) -> int:
    """Padded prompt length: a power of two (at least 16) up to `chunk_size`, then a multiple of it."""
    return power_of_two(longest) if longest <= chunk_size else -(-longest // chunk_size) * chunk_size


def output_slots(max_new_tokens: int) -> int:
    """Length of the device buffers that hold the generated tokens and log-probs."""
    return power_of_two(max_new_tokens)


def stop_id_slots(count: int) -> int:
    """Length of the padded stop-id list (always one padding entry, so the list is never empty)."""
    return power_of_two(count + 1, 4)
