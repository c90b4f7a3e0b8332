"""Batched text generation in stages: encode and bucket, prefill, a compiled decode loop, host bookkeeping."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, Int32

from hybrid_seq.model import Model
from hybrid_seq.sampling import buckets, loop, snapshot
from hybrid_seq.sampling.bookkeeping import Rows, SamplerOutput, Streamer, StreamPiece, TokenizerLike
from hybrid_seq.sampling.chat import Message, format_chat
from hybrid_seq.sampling.options import SamplingOptions
from hybrid_seq.sampling.prefill import left_pad
from hybrid_seq.sampling.prefill import prefill as prefill_tokens
from hybrid_seq.sampling.prefix import Prefix, feed, state_capacity

Prompt = str | Sequence[Message]

#: Tokens decoded between two host checks of the stop strings.
STOP_CHECK_EVERY = 16


@dataclasses.dataclass(frozen=True)
class Plan:
    """A batch encoded and bucketed for the device: what the prefill and the decode loop are given.

    `ids` are each row's whole prompt. Without a shared prefix the rows are left-padded into
    `tokens` / `positions`; with one, `prefix_ids` start every row (already prefilled when
    `prefix` is given) and `suffixes` are what each row adds to it.
    """

    ids: list[list[int]]
    tokens: Int32[Array, "B T"] | None
    positions: Int32[Array, "B T"] | None
    chunk_size: int | None
    slots: int
    stop_ids: list[int]
    seeds: list[int]
    settings: loop.LoopSettings
    options: SamplingOptions
    prefix_ids: tuple[int, ...] | None = None
    prefix: Prefix | None = None
    suffixes: list[list[int]] | None = None

    @property
    def batch_size(self) -> int:
        return len(self.ids)


class Sampler:
    """Generate from prompts with a `Model` and a tokenizer.

    `sampler(prompts, max_new_tokens, **settings)` returns a `SamplerOutput` and
    `sampler.stream(prompt, max_new_tokens, **settings)` yields `StreamPiece`s as tokens are
    produced; the settings are the fields of `SamplingOptions` (or pass `options=`).
    Prompts are `[BOS] + encode(text)` (chat mode first applies the `<start_of_turn>`
    format), left-padded with positions -1, so each row gives exactly what it gives alone.
    Prompts longer than `prefill_chunk_size` are prefilled in chunks of that size (bounded
    activation memory). With `shared_prefix=` (a text, or a `Prefix` from `sampler.prefix`)
    every prompt continues one prefix whose prefill is paid once: its state is forked
    across the rows, which are then fed their own suffixes (`sampling.prefix.feed`).
    Decoding runs in a compiled `lax.while_loop`; finished rows write padding and stop
    contributing output. Prompt lengths and output buffers are bucketed
    (`hybrid_seq.sampling.buckets`) and the compiled functions are module-level, so
    repeated calls reuse compilations.

    The stages, each usable on its own: `plan` (validate, encode, bucket), `prefill`
    (prompt into the state), `loop.decode` (the compiled loop), `Rows` (host bookkeeping).
    """

    def __init__(self, model: Model, tokenizer: TokenizerLike, *, chat: bool = False, prefill_chunk_size: int = 1024):
        if prefill_chunk_size < 1:
            raise ValueError(f"prefill_chunk_size must be >= 1, got {prefill_chunk_size}")
        self.model = model
        self.tokenizer = tokenizer
        self.chat = chat
        self.prefill_chunk_size = prefill_chunk_size

    def encode_prompt(self, prompt: Prompt, *, chat: bool | None = None, add_bos: bool = True) -> list[int]:
        """`[BOS] + ids` of a prompt (formatted as a chat turn first in chat mode; no BOS for a
        continuation of a shared prefix)."""
        chat = self.chat if chat is None else chat
        if chat:
            text = format_chat(prompt)
        elif isinstance(prompt, str):
            text = prompt
        else:
            raise TypeError("a list of (role, text) messages needs chat mode (chat=True)")
        ids = self.tokenizer.encode(text, add_bos=add_bos)
        vocab = self.model.config.vocab_size
        if ids and max(ids) >= vocab:
            raise ValueError(f"the tokenizer produced id {max(ids)}, outside the model's vocabulary of {vocab}")
        return ids

    def default_stop_ids(self, chat: bool | None = None) -> list[int]:
        """EOS, plus `<end_of_turn>` in chat mode."""
        chat = self.chat if chat is None else chat
        ids = [self.tokenizer.eos_id]
        end_of_turn = self.tokenizer.end_of_turn_id
        if chat and end_of_turn is not None:
            ids.append(end_of_turn)
        return ids

    def __call__(
        self,
        prompts: Prompt | Sequence[Prompt],
        max_new_tokens: int | None = None,
        *,
        options: SamplingOptions | None = None,
        shared_prefix: str | Prefix | None = None,
        **settings: Any,
    ) -> SamplerOutput:
        """Generate up to `max_new_tokens` per prompt; `settings` are `SamplingOptions` fields.

        Keyword settings override those of `options`. Stop strings are checked on the host
        every `STOP_CHECK_EVERY` tokens; the output is cut exactly. With `shared_prefix`, row
        `i`'s prompt is the prefix's ids followed by `prompts[i]`'s (no BOS of its own).
        """
        options = SamplingOptions.resolve(options, max_new_tokens, settings)
        plan = self.plan([prompts] if _is_single(prompts) else list(prompts), options, shared_prefix)
        rows = Rows(self.tokenizer, plan.batch_size, plan.stop_ids, options.stop)
        segment = STOP_CHECK_EVERY if options.stop else options.max_new_tokens
        for _ in self._generate(plan, rows, segment):
            pass
        return rows.output(options.return_logprobs)

    def stream(
        self,
        prompt: Prompt,
        max_new_tokens: int | None = None,
        *,
        options: SamplingOptions | None = None,
        shared_prefix: str | Prefix | None = None,
        **settings: Any,
    ) -> Iterator[StreamPiece]:
        """Like calling the sampler on one prompt, yielding each token and its text as it is made.

        Text that could be the start of a stop string is held back until it is decided; the
        concatenated pieces equal the text `__call__` returns.
        """
        options = SamplingOptions.resolve(options, max_new_tokens, settings)
        plan = self.plan([prompt], options, shared_prefix)
        rows = Rows(self.tokenizer, 1, plan.stop_ids, options.stop, track_text=True)
        streamer = Streamer(rows)
        for _ in self._generate(plan, rows, segment=1):
            yield from streamer.pieces()
        yield from streamer.flush()

    def prefix(self, text: str, *, room: int | None = None) -> Prefix:
        """Prefill `[BOS] + encode(text)` once (no chat formatting), for `shared_prefix=`.

        `room` is how many tokens (suffix plus new tokens) may follow it where a kind's cache
        grows with the text; fixed-size states need none.
        """
        return self._prefill_prefix(tuple(self.encode_prompt(text, chat=False)), room or 0)

    def _prefill_prefix(self, ids: tuple[int, ...], room: int) -> Prefix:
        chunk = self.prefill_chunk_size
        padded = buckets.prompt_length(len(ids), chunk)
        tokens, positions = left_pad([list(ids)], self.tokenizer.pad_id, padded)
        logits, state = prefill_tokens(
            self.model, tokens, positions, chunk_size=chunk if padded > chunk else None, max_length=padded + room
        )
        capacity = state_capacity(self.model, state)
        return Prefix(ids=ids, logits=logits.astype(jnp.float32), state=state, seen=padded, capacity=capacity)

    def plan(self, prompts: Sequence[Prompt], options: SamplingOptions, shared_prefix: str | Prefix | None = None) -> Plan:
        """Validate and encode a batch, and bucket its shapes (host work only; a text prefix is prefilled later)."""
        if not prompts:
            raise ValueError("no prompts given")
        chunk = self.prefill_chunk_size
        slots = buckets.output_slots(options.max_new_tokens)
        stop_ids = list(self.default_stop_ids(options.chat) if options.stop_token_ids is None else options.stop_token_ids)
        common = dict(
            slots=slots, stop_ids=stop_ids, seeds=options.seeds(len(prompts)),
            settings=loop.LoopSettings.of(options, stop_ids), options=options,
        )
        if shared_prefix is None:
            ids = [self.encode_prompt(p, chat=options.chat) for p in prompts]
            padded = buckets.prompt_length(max(len(x) for x in ids), chunk)
            tokens, positions = left_pad(ids, self.tokenizer.pad_id, padded)
            return Plan(ids=ids, tokens=tokens, positions=positions, chunk_size=chunk if padded > chunk else None, **common)
        if isinstance(shared_prefix, Prefix):
            prefix, prefix_ids = shared_prefix, shared_prefix.ids
        elif isinstance(shared_prefix, str):
            prefix, prefix_ids = None, tuple(self.encode_prompt(shared_prefix, chat=False))
        else:
            raise TypeError(f"shared_prefix must be a str or a Prefix, got {type(shared_prefix).__name__}")
        suffixes = [self.encode_prompt(p, chat=options.chat, add_bos=False) for p in prompts]
        needed = max(len(x) for x in suffixes) + options.max_new_tokens
        if prefix is not None and prefix.room is not None and needed > prefix.room:
            raise ValueError(
                f"the prefix's state has room for {prefix.room} more tokens, but this call needs {needed} "
                f"(longest suffix + max_new_tokens); make it with sampler.prefix(text, room={needed}) or more"
            )
        return Plan(
            ids=[[*prefix_ids, *x] for x in suffixes], tokens=None, positions=None, chunk_size=chunk,
            prefix_ids=prefix_ids, prefix=prefix, suffixes=suffixes, **common,
        )

    def prefill(self, plan: Plan) -> loop.Carry:
        """Run the prompts into a fresh state (or fork the shared prefix's and feed the suffixes):
        the decode loop's starting carry."""
        starts = [len(x) for x in plan.ids]
        if plan.suffixes is None:
            # The state has room for the padded prompt and every decode step (growing caches preallocate it).
            logits, cache = prefill_tokens(
                self.model, plan.tokens, plan.positions, chunk_size=plan.chunk_size,
                max_length=plan.tokens.shape[1] + plan.slots,
            )
            return loop.start(cache, logits, starts, plan.seeds, plan.slots, self.tokenizer.pad_id)
        prefix = plan.prefix
        if prefix is None:
            longest = max(len(x) for x in plan.suffixes)
            prefix = self._prefill_prefix(plan.prefix_ids, buckets.power_of_two(longest, 1) + plan.slots)
        cache = snapshot.fork(prefix.state, plan.batch_size)
        logits = jnp.broadcast_to(prefix.logits, (plan.batch_size, prefix.logits.shape[-1]))
        logits, cache = feed(
            self.model, cache, logits, plan.suffixes, [len(prefix.ids)] * plan.batch_size, chunk_size=plan.chunk_size
        )
        return loop.start(cache, logits, starts, plan.seeds, plan.slots, self.tokenizer.pad_id)

    def _generate(self, plan: Plan, rows: Rows, segment: int) -> Iterator[None]:
        """Prefill, then decode in segments of `segment` tokens, adding each to `rows`; yields once per segment.

        One device-to-host copy per segment (the step and the small output buffers, sliced
        on the host), and the log-probs only when they are asked for.
        """
        total = plan.options.max_new_tokens
        if total == 0:
            return
        carry = self.prefill(plan)
        logprobs = plan.options.return_logprobs
        produced = 0
        while produced < total and not rows.finished.all():
            limit = min(total, produced + segment)
            carry = loop.decode(self.model, carry, jnp.int32(limit), plan.settings, self.tokenizer.pad_id)
            step, tokens, scores = jax.device_get((carry.step, carry.tokens, carry.logprobs if logprobs else None))
            rows.add(tokens[:, produced:step], None if scores is None else scores[:, produced:step])
            produced = int(step)
            finished = rows.finished
            if finished.any() and produced < total:
                carry = loop.finish_rows(carry, jnp.asarray(finished))
            yield


def _is_single(prompts: Any) -> bool:
    """A str, or a list of (role, text) pairs, is one prompt; anything else is a batch."""
    if isinstance(prompts, str):
        return True
    return bool(prompts) and all(
        isinstance(p, tuple) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in prompts
    )
