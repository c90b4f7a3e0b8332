"""Mamba-2: our layer stack against HuggingFace's PyTorch implementation (same weights), and our matrix-scan backends.

The model is a `Mamba2ForCausalLM` built by transformers with random weights, saved and
loaded into ours with `hybrid_seq.io`. Each implementation runs its full-sequence forward in
a fresh subprocess, so compile time and peak RSS belong to that call alone; HF runs its
pure-PyTorch path (what a CPU user has without the CUDA kernels). A second table times our
`matrix_scan` backends (`chunked`, `sequential`) on one shape, forward and forward+backward,
interleaved in one process.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hybrid_seq.bench.timing import in_child, interleaved, progress_bar, timed
from hybrid_seq.cli.args import int_at_least

#: The stack: width 512, 6 Mamba-2 layers (16 heads of 64, state 64, one group), vocab 4096.
HF_CONFIG = dict(vocab_size=4096, hidden_size=512, num_hidden_layers=6, num_heads=16, head_dim=64, expand=2,
                 state_size=64, n_groups=1, conv_kernel=4, chunk_size=256, tie_word_embeddings=True)
IMPLEMENTATIONS = ("ours", "ours:sequential", "hf")


def write_checkpoint(directory: str) -> None:
    """A random-weight HF Mamba2 checkpoint of `HF_CONFIG` in `directory` (needs torch + transformers)."""
    import torch
    import transformers

    torch.manual_seed(0)
    model = transformers.Mamba2ForCausalLM(transformers.Mamba2Config(**HF_CONFIG)).eval()
    model.save_pretrained(directory)


def measure(which: str, directory: str, length: int, reps: int) -> dict[str, Any]:
    """Compile (first call) time and median forward time of one implementation, in this process."""
    tokens = np.random.default_rng(0).integers(0, HF_CONFIG["vocab_size"], (1, length))
    if which == "hf":
        import torch
        import transformers

        model = transformers.Mamba2ForCausalLM.from_pretrained(directory).eval()
        ids = torch.as_tensor(tokens)

        def forward() -> Any:
            with torch.no_grad():
                return model(ids, use_cache=False).logits.numpy()
    else:
        import equinox as eqx

        import hybrid_seq.io as hio

        model = hio.load(directory)
        if which == "ours:sequential":
            model = model.with_scan_backend("sequential")
        params, static = eqx.partition(model, eqx.is_array)
        compiled = jax.jit(lambda p, t, s: eqx.combine(p, static)(t, s)[0])
        args = (params, jnp.asarray(tokens, jnp.int32), jnp.arange(length, dtype=jnp.int32)[None])

        def forward() -> Any:
            return compiled(*args)
    timing = interleaved({which: forward}, reps, progress=False)[which]
    return {"implementation": which, "length": length, "first_call_s": timing.first_call_s, "run_s": timing.median,
            "tokens_per_s": length / timing.median}


def scan_table(shape: tuple[int, int, int, int, int], reps: int) -> list[dict[str, Any]]:
    """Our matrix-scan backends on `(B, T, H, K, V)` (scalar decay, one group), forward and forward+backward."""
    from hybrid_seq import matrix_scan

    batch, length, heads, keys, values = shape
    rng = np.random.default_rng(0)
    q, k = (jnp.asarray(rng.standard_normal((batch, length, 1, keys)), jnp.float32) for _ in range(2))
    v = jnp.asarray(rng.standard_normal((batch, length, heads, values)), jnp.float32)
    log_decay = jnp.asarray(-rng.uniform(0.001, 0.1, (batch, length, heads)), jnp.float32)
    contenders = {}
    for name in ("chunked", "sequential"):
        scan = matrix_scan.get(name)
        contenders[f"{name} fwd"] = (lambda s: jax.jit(lambda *a: s(*a)[0]))(scan)
        contenders[f"{name} fwd+bwd"] = (lambda s: jax.jit(jax.grad(lambda *a: s(*a)[0].sum(), argnums=(0, 1, 2, 3))))(scan)
    timings = interleaved({n: (lambda f=f: f(q, k, v, log_decay)) for n, f in contenders.items()}, reps, desc="matrix scan")
    return [{"contender": name, "ms": t.median * 1e3, "first_call_s": t.first_call_s} for name, t in timings.items()]


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as directory:
        timed(lambda: write_checkpoint(directory))
        rows = []
        jobs = progress_bar([(w, n) for n in args.lengths for w in IMPLEMENTATIONS], desc="mamba2", unit="process")
        for which, length in jobs:
            jobs.set_postfix_str(f"{which} T={length}")
            row, peak = in_child("hybrid_seq.bench.mamba2:measure", which=which, directory=directory, length=length,
                                 reps=args.reps)
            rows.append({**row, "peak_rss_bytes": peak})
    shape = tuple(args.scan_shape)
    scans = scan_table(shape, args.reps)
    print(f"Mamba-2 stack forward: width {HF_CONFIG['hidden_size']}, {HF_CONFIG['num_hidden_layers']} layers, "
          f"{HF_CONFIG['num_heads']} heads x {HF_CONFIG['head_dim']}, state {HF_CONFIG['state_size']}, batch 1, fp32, "
          f"{jax.devices()[0].platform}; medians of {args.reps}")
    print(format_rows(rows))
    print(f"\nmatrix scan (B, T, H, K, V) = {shape}, scalar decay, fp32")
    for r in scans:
        print(f"  {r['contender']:<22} {r['ms']:10.1f} ms   first call {r['first_call_s']:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"forward": rows, "matrix_scan": scans}, indent=2))
    return 0


def format_rows(rows: list[dict[str, Any]]) -> str:
    hf = {r["length"]: r["tokens_per_s"] for r in rows if r["implementation"] == "hf"}
    header = f"{'impl':<16} {'T':>6} {'first call s':>13} {'run s':>8} {'tok/s':>9} {'x HF':>6} {'peak RSS MiB':>13}"
    lines = [header, "-" * len(header)]
    for r in rows:
        ratio = r["tokens_per_s"] / hf[r["length"]] if r["length"] in hf else float("nan")
        lines.append(
            f"{r['implementation']:<16} {r['length']:>6} {r['first_call_s']:>13.2f} {r['run_s']:>8.3f} "
            f"{r['tokens_per_s']:>9.0f} {ratio:>6.2f} {r['peak_rss_bytes'] / 2**20:>13.1f}"
        )
    return "\n".join(lines)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("mamba2", help="Mamba-2 stack forward vs HF transformers; matrix-scan backends")
    parser.add_argument("--lengths", type=int_at_least(1), nargs="+", default=[4096], help="sequence lengths")
    parser.add_argument("--reps", type=int_at_least(1), default=3, help="timed repetitions per measurement")
    parser.add_argument("--scan-shape", type=int_at_least(1), nargs=5, default=[2, 2048, 8, 64, 64],
                        metavar=("B", "T", "H", "K", "V"), help="shape of the matrix-scan table")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.set_defaults(func=run)
