"""The benchmarks behind `hybrid-seq bench TARGET`, all timed by `hybrid_seq.bench.timing`.

Targets: `forward`, `scan`, `generate`, `train` (each against DeepMind's reference, same
weights, in one run) and `load` (peak RSS of loading a 2B-layout checkpoint).
"""
