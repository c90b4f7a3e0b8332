"""The optional hypothesis dependency, imported in one place with an error naming the extra.

The oracles and case records of `hybrid_seq.testing` are plain NumPy and import without
it; only the strategies need hypothesis, which ships in the ``test`` extra.
"""

try:
    from hypothesis import strategies as st
except ImportError as error:
    raise ImportError(
        "the hypothesis strategies of hybrid_seq.testing need hypothesis, which is in the test extra: "
        "pip install 'hybrid_seq[test]'"
    ) from error

__all__ = ["st"]
