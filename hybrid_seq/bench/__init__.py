"""Benchmarks that time this package against the reference implementation in one process."""
