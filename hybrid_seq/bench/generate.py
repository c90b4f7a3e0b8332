"""Generation benchmark: our Sampler vs DeepMind's reference `recurrentgemma.jax` Sampler, same weights,
and our Sampler's whole call vs the compiled prefill + decode it runs.

Measures prefill tokens/s, decode tokens/s at batch 1 and 16, compile times, and tokens/s
against the generated length, next to the fixed state size and a same-width transformer's
KV cache (both exact, from the shapes). The `sampler` section times a whole Sampler call
against its own compiled stages (`Sampler.prefill` + one `loop.decode`, inputs prepared
beforehand) and against a model-only greedy loop, so what the call adds on the host shows.
The `prefix` section samples many continuations of one long prompt by prefilling every row
against sharing the prefix (`shared_prefix=`), with each mode's peak RSS from a fresh process.
Timings are medians of interleaved repetitions (ours, reference, ours, ...) so a shared
machine's drift hits both. No peak-memory figures here: both samplers share one process,
whose peak RSS cannot be reset between calls reliably; `hybrid-seq bench forward`
measures peak RSS with a fresh process per implementation.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from hybrid_seq.bench.reference import reference_griffin
from hybrid_seq.bench.timing import Timing, in_child, interleaved, timed
from hybrid_seq.cli.args import int_at_least, preset_name

PRESET = "griffin-small"
#: Sections of the benchmark (`--only`).
SECTIONS = ("reference", "sampler", "prefix")
#: Tokens generated per call in the `sampler` section (with --quick, and without).
SAMPLER_NEW_TOKENS = (64, 128)
#: (batch, prefix bytes, new tokens) of the `prefix` section (with --quick, and without).
PREFIX_SETTINGS = ((16, 500, 16), (16, 1000, 32))


@dataclasses.dataclass
class Result:
    name: str
    ours: float
    reference: float
    unit: str

    @property
    def ratio(self) -> float:
        return self.ours / self.reference if self.reference else float("nan")


class _RefVocab:
    """The SentencePiece methods the reference Sampler calls, on top of our byte tokenizer."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer

    def pad_id(self) -> int:
        return self.tokenizer.pad_id

    def bos_id(self) -> int:
        return self.tokenizer.bos_id

    def eos_id(self) -> int:
        return self.tokenizer.eos_id

    def EncodeAsIds(self, text: str) -> list[int]:  # noqa: N802 (reference's name)
        return self.tokenizer.encode(text)

    def DecodeIds(self, ids: Sequence[int]) -> str:  # noqa: N802
        return self.tokenizer.decode(ids)


def _setup(preset: str, *, reference: bool = True) -> dict[str, Any]:
    from hybrid_seq import presets
    from hybrid_seq.model import Model
    from hybrid_seq.sampling import ByteTokenizer, Sampler

    config = presets.get(preset)
    model = Model(config, key=jax.random.key(0), dtype=jnp.dtype(jnp.float32))
    tokenizer = ByteTokenizer()
    env = dict(config=config, model=model, sampler=Sampler(model, tokenizer, prefill_chunk_size=1 << 20))
    if reference:
        import recurrentgemma.jax as rg

        from hybrid_seq.io import to_flax_params

        params = to_flax_params(model)
        ref_model = reference_griffin(config)
        ref_sampler = _reference_sampler(rg.Sampler(model=ref_model, vocab=_RefVocab(tokenizer), params=params))
        env.update(params=params, ref_model=ref_model, ref_sampler=ref_sampler)
    return env


def _reference_sampler(sampler: Any) -> Any:
    """The reference Sampler with its prompt step jitted without donating the prompt tokens.

    The reference donates the `[B, T]` prompt tokens to its prompt-processing jit, but no
    output of that function has their shape, so XLA can never reuse the buffer and JAX warns
    "Some donated buffers were not usable" on every compile. The same jit without that one
    (useless) donation changes nothing else.
    """
    sampler._compiled_prompt_processing_fn = jax.jit(
        sampler._prompt_processing_fn, donate_argnums=[2, 3], static_argnums=[4, 5, 6]
    )
    return sampler


def _prefill_fns(env: dict[str, Any], length: int) -> tuple[Callable, Callable]:
    from hybrid_seq.sampling import prefill

    tokens = jax.random.randint(jax.random.key(1), (1, length), 0, env["config"].vocab_size, jnp.int32)
    positions = jnp.arange(length, dtype=jnp.int32)[None]
    model, ref_model, params = env["model"], env["ref_model"], env["params"]
    ref_apply = jax.jit(
        lambda p, t, s: (lambda out: (out[0][:, -1], out[1]))(ref_model.apply({"params": p}, t, s, return_cache=True))
    )
    return (lambda: prefill(model, tokens, positions)), (lambda: ref_apply(params, tokens, positions))


def _prompts(batch: int) -> list[str]:
    return [f"prompt number {i}: once upon a time" for i in range(batch)]


def _decode_fns(env: dict[str, Any], batch: int, new_tokens: int) -> tuple[Callable, Callable]:
    prompts = _prompts(batch)
    ours = lambda: env["sampler"](prompts, new_tokens, stop_token_ids=())  # noqa: E731
    ref = lambda: env["ref_sampler"](prompts, new_tokens, end_sampling_at_eos_token=False)  # noqa: E731
    return ours, ref


def sampler_contenders(sampler: Any, batch: int, new_tokens: int) -> dict[str, Callable[[], Any]]:
    """A whole Sampler call (greedy, with and without a stop string), the compiled prefill +
    decode it runs (host stage done beforehand), and a model-only greedy loop, same prompts.

    Each returns the generated tokens (`[B, new_tokens]` or per-row lists), so a caller can
    check that all of them do the same work.
    """
    from hybrid_seq.sampling import SamplingOptions, loop

    prompts = _prompts(batch)
    options = SamplingOptions(new_tokens, stop_token_ids=())
    with_stop = SamplingOptions(new_tokens, stop_token_ids=(), stop=("\n\n",))
    plan = sampler.plan(prompts, options)
    model, pad = sampler.model, sampler.tokenizer.pad_id

    def compiled() -> Any:
        carry = loop.decode(model, sampler.prefill(plan), jnp.int32(new_tokens), plan.settings, pad)
        return carry.tokens[:, :new_tokens]

    return {
        "sampler call": lambda: sampler(prompts, options=options).tokens,
        "sampler call, stop string": lambda: sampler(prompts, options=with_stop).tokens,
        "compiled prefill + decode": compiled,
        "model-only greedy loop": _model_loop(model, plan.tokens, plan.positions, [len(x) for x in plan.ids], new_tokens),
    }


def _model_loop(model: Any, tokens: Any, positions: Any, lengths: list[int], new_tokens: int) -> Callable[[], Any]:
    """Prefill and a greedy `fori_loop` of the model's one-token step in one jit: no sampler around it."""
    import equinox as eqx

    params, static = eqx.partition(model, eqx.is_array)
    batch, length = tokens.shape

    @jax.jit
    def run(params: Any, tokens: Any, positions: Any, next_position: Any) -> Any:
        model = eqx.combine(params, static)
        logits, cache = model(tokens, positions, model.init_cache(batch, length + new_tokens))

        def step(i: Any, carry: Any) -> Any:
            token, position, cache, out = carry
            logits, cache = model(token[:, None], position[:, None], cache)
            out = out.at[:, i].set(token)
            return jnp.argmax(logits[:, 0], axis=-1).astype(jnp.int32), position + 1, cache, out

        first = jnp.argmax(logits[:, -1], axis=-1).astype(jnp.int32)
        out = jnp.zeros((batch, new_tokens), jnp.int32)
        return jax.lax.fori_loop(0, new_tokens, step, (first, next_position, cache, out))[3]

    next_position = jnp.asarray(lengths, jnp.int32)
    return lambda: run(params, tokens, positions, next_position)


def sampler_overhead(sampler: Any, batches: Sequence[int], new_tokens: int, reps: int) -> list[dict[str, Any]]:
    """Median seconds of `sampler_contenders` at each batch size, all interleaved, with the ratio to the compiled stages."""
    per_batch = {batch: sampler_contenders(sampler, batch, new_tokens) for batch in batches}
    contenders = {f"{name} B={batch}": fn for batch, named in per_batch.items() for name, fn in named.items()}
    timings = interleaved(contenders, reps, desc="sampler vs its compiled stages")
    rows = []
    for batch, named in per_batch.items():
        base = timings[f"compiled prefill + decode B={batch}"].median
        for name in named:
            timing = timings[f"{name} B={batch}"]
            rows.append(dict(name=f"{name} B={batch}", seconds=timing.median, ratio=timing.median / base))
    return rows


def prefix_contenders(sampler: Any, batch: int, prefix_length: int, new_tokens: int) -> dict[str, Callable[[], Any]]:
    """`batch` continuations of one `prefix_length`-byte prompt, each row a different short suffix:
    prefilling every row's whole prompt, sharing the prefix as a text (prefilled in the call),
    and reusing a `Prefix` made beforehand. Each returns the generated tokens."""
    prefix = ("a long shared document. " * (prefix_length // 24 + 1))[:prefix_length]
    suffixes = _suffixes(batch)
    reused = sampler.prefix(prefix, room=_room(suffixes, new_tokens))
    return {
        "per-row prefill": lambda: sampler([prefix + s for s in suffixes], new_tokens, stop_token_ids=()).tokens,
        "shared prefix (text)": lambda: sampler(suffixes, new_tokens, shared_prefix=prefix, stop_token_ids=()).tokens,
        "shared prefix (Prefix reused)": lambda: sampler(
            suffixes, new_tokens, shared_prefix=reused, stop_token_ids=()
        ).tokens,
    }


def _suffixes(batch: int) -> list[str]:
    return [f" question {i}:{' more' * (i % 4)}" for i in range(batch)]


def _room(suffixes: Sequence[str], new_tokens: int) -> int:
    """Tokens that follow the prefix in `prefix_contenders` (bytes of the longest suffix + new tokens)."""
    return max(len(s.encode()) for s in suffixes) + new_tokens


def prefix_child(mode: str, preset: str, batch: int, prefix_length: int, new_tokens: int) -> dict[str, float]:
    """One `prefix_contenders` mode in this (fresh) process: first call and second call seconds (for peak RSS)."""
    from hybrid_seq import presets
    from hybrid_seq.model import Model
    from hybrid_seq.sampling import ByteTokenizer, Sampler

    model = Model(presets.get(preset), key=jax.random.key(0))
    contender = prefix_contenders(Sampler(model, ByteTokenizer()), batch, prefix_length, new_tokens)[mode]
    first, _ = timed(contender)
    second, _ = timed(contender)
    return {"first_s": first, "second_s": second}


def prefill_temp_bytes(model: Any, batch: int, length: int, max_length: int) -> int:
    """XLA's temporary buffers for one prefill call of `[batch, length]` tokens into a fresh state: its activation memory."""
    import equinox as eqx

    params, static = eqx.partition(model, eqx.is_array)

    def forward(params: Any, tokens: Any, positions: Any) -> Any:
        model = eqx.combine(params, static)
        logits, state = model(tokens, positions, model.init_cache(batch, max_length))
        return logits[:, -1], state

    shape = jax.ShapeDtypeStruct((batch, length), jnp.int32)
    return jax.jit(forward).lower(params, shape, shape).compile().memory_analysis().temp_size_in_bytes


def shared_prefix_rows(
    sampler: Any, preset: str, batch: int, prefix_length: int, new_tokens: int, reps: int
) -> list[dict[str, Any]]:
    """Median seconds of `prefix_contenders` (interleaved, in this process) and each one's peak RSS (a fresh process each)."""
    from hybrid_seq.sampling import buckets

    timings = interleaved(prefix_contenders(sampler, batch, prefix_length, new_tokens), reps, desc="shared prefix")
    longest = max(len(s.encode()) for s in _suffixes(batch))  # the largest chunk a suffix is fed in is its top bit
    whole = buckets.prompt_length(prefix_length + 1 + longest, sampler.prefill_chunk_size)
    alone = buckets.prompt_length(prefix_length + 1, sampler.prefill_chunk_size)
    temp = {
        "per-row prefill": prefill_temp_bytes(sampler.model, batch, min(whole, sampler.prefill_chunk_size), whole),
        "shared prefix": max(
            prefill_temp_bytes(sampler.model, 1, min(alone, sampler.prefill_chunk_size), alone),
            prefill_temp_bytes(sampler.model, batch, 1 << (longest.bit_length() - 1), alone + 2 * longest),
        ),
    }
    rows = []
    for mode, timing in timings.items():
        _, peak = in_child("hybrid_seq.bench.generate:prefix_child", mode=mode, preset=preset, batch=batch,
                           prefix_length=prefix_length, new_tokens=new_tokens)
        rows.append(dict(name=mode, seconds=timing.median, peak_rss_bytes=peak,
                         prefill_temp_bytes=temp[mode.split(" (")[0]]))
    return rows


def _interleaved(pairs: dict[str, tuple[Callable, Callable]], reps: int, desc: str) -> dict[str, tuple[Timing, Timing]]:
    """(ours, reference) timings per name, repetitions interleaved across all names and both sides."""
    sides = {f"{name} {side}": fn for name, pair in pairs.items() for side, fn in zip(("ours", "reference"), pair)}
    timings = interleaved(sides, reps, desc=desc)
    return {name: (timings[f"{name} ours"], timings[f"{name} reference"]) for name in pairs}


def run(args: argparse.Namespace) -> int:
    sections = args.only or list(SECTIONS)
    env = _setup(args.preset, reference="reference" in sections)
    config = env["config"]
    device = jax.devices()[0]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# generate benchmark: preset {args.preset} (width {config.width}, {config.num_layers} layers, "
          f"{''.join(k[0].upper() for k in config.layer_kinds)}, vocab {config.vocab_size}, "
          f"window {config.attention_window_size}), fp32, {device.platform} x{os.cpu_count()} cores, "
          f"load {load:.2f}, reps {args.reps} (medians, interleaved)")
    if "reference" in sections:
        _reference_section(env, args)
    if "sampler" in sections:
        new_tokens = SAMPLER_NEW_TOKENS[0 if args.quick else 1]
        print(f"\n## our Sampler vs the compiled prefill + decode it runs (greedy, {new_tokens} new tokens)")
        print(f"{'measure':44s} {'seconds':>9s} {'/compiled':>10s}")
        for row in sampler_overhead(env["sampler"], (1, 16), new_tokens, args.reps):
            print(f"{row['name']:44s} {row['seconds']:9.3f} {row['ratio']:10.3f}")
    if "prefix" in sections:
        from hybrid_seq.sampling import Sampler

        batch, prefix_length, new_tokens = PREFIX_SETTINGS[0 if args.quick else 1]
        sampler = Sampler(env["model"], env["sampler"].tokenizer)
        print(f"\n## {batch} continuations of one {prefix_length}-byte prompt ({new_tokens} new tokens each, "
              f"greedy; time: medians in this process; peak RSS of a fresh process running the mode; XLA temp of "
              f"its largest prefill program: the activation memory)")
        print(f"{'mode':36s} {'seconds':>9s} {'peak RSS MiB':>13s} {'prefill temp MiB':>17s}")
        for row in shared_prefix_rows(sampler, args.preset, batch, prefix_length, new_tokens, args.reps):
            print(f"{row['name']:36s} {row['seconds']:9.3f} {row['peak_rss_bytes'] / 2**20:13.0f} "
                  f"{row['prefill_temp_bytes'] / 2**20:17.1f}")
    return 0


def _reference_section(env: dict[str, Any], args: argparse.Namespace) -> None:
    from hybrid_seq.sampling import kv_cache_bytes, state_bytes

    quick = args.quick
    prefill_lengths = (256, 1024) if quick else (1024, 4096)
    decode_batches = (1, 16)
    decode_steps = 32 if quick else 128
    sweep = (64, 256, 1024) if quick else (64, 256, 1024, 4096, 16384)
    config = env["config"]
    results: list[Result] = []

    pairs: dict[str, tuple[Callable, Callable]] = {}
    for length in prefill_lengths:
        pairs[f"prefill T={length}"] = _prefill_fns(env, length)
    for batch in decode_batches:
        pairs[f"decode B={batch}"] = _decode_fns(env, batch, decode_steps)
    timings = _interleaved(pairs, args.reps, desc="prefill and decode")
    for name, (ours, ref) in timings.items():
        results.append(Result(f"first call (compile) {name}", ours.first_call_s, ref.first_call_s, "s"))
    for name, (ours, ref) in timings.items():
        kind, setting = name.split(" ")
        value = int(setting.split("=")[1])
        work = value if kind == "prefill" else value * decode_steps
        results.append(Result(f"{name} tokens/s", work / ours.median, work / ref.median, "tok/s"))

    rows = []
    for new in sweep:
        ours, ref = _decode_fns(env, 1, new)
        reps = max(1, args.reps // 2) if new >= 4096 else args.reps
        t_ours, t_ref = _interleaved({"decode": (ours, ref)}, reps, desc=f"decode {new} new tokens")["decode"]
        rows.append(dict(
            new=new, ours_tps=new / t_ours.median, ref_tps=new / t_ref.median,
            state=state_bytes(env["model"], 1), kv=kv_cache_bytes(config, new),
        ))

    print(f"\n## ours vs the reference Sampler\n{'measure':44s} {'ours':>12s} {'reference':>12s} {'ours/ref':>9s}")
    for r in results:
        print(f"{r.name:44s} {r.ours:12.2f} {r.reference:12.2f} {r.ratio:9.2f}  {r.unit}")
    print(f"\n{'new tokens':>10s} {'ours tok/s':>11s} {'ref tok/s':>10s} {'state MiB':>10s} {'transformer KV MiB':>19s}")
    for row in rows:
        print(f"{row['new']:10d} {row['ours_tps']:11.1f} {row['ref_tps']:10.1f} {row['state'] / 2**20:10.2f} "
              f"{row['kv'] / 2**20:19.1f}")
    if args.plot:
        _plot(rows, args.plot, args.preset)
        print(f"\nplot written to {args.plot}")


def _plot(rows: list[dict[str, float]], path: str, preset: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    new = [r["new"] for r in rows]
    fig, (speed, memory) = plt.subplots(1, 2, figsize=(11, 4))
    speed.plot(new, [r["ours_tps"] for r in rows], "o-", label="hybrid_seq Sampler")
    speed.plot(new, [r["ref_tps"] for r in rows], "s--", label="reference Sampler")
    speed.set(xscale="log", xlabel="generated tokens (batch 1)", ylabel="tokens/s", title=f"decode speed, {preset}")
    memory.plot(new, [r["state"] / 2**20 for r in rows], "o-", label="our state (fixed size)")
    memory.plot(new, [r["kv"] / 2**20 for r in rows], "s:", label="transformer KV cache, same width/depth")
    memory.set(xscale="log", yscale="log", xlabel="generated tokens (batch 1)", ylabel="MiB",
               title="decoding state size (exact, from the shapes)")
    for ax in (speed, memory):
        ax.legend(fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "generate", help="prefill/decode speed vs the reference Sampler; Sampler vs its compiled stages; state size"
    )
    parser.add_argument("--preset", type=preset_name, default=PRESET)
    parser.add_argument("--quick", action="store_true", help="smaller lengths (T 256/1024, up to 1024 new tokens)")
    parser.add_argument("--reps", type=int_at_least(1), default=5)
    parser.add_argument("--plot", default="bench_generate.png", help="PNG path ('' to skip)")
    parser.add_argument("--only", action="append", choices=SECTIONS,
                        help="run only this section (repeatable; default: all)")
    parser.set_defaults(func=run)
