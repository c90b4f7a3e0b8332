"""Batched text generation: left-padded prefill, then a compiled decode loop on a fixed-size state."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float32, Int32, UInt32

from hybrid_seq.model import Cache, Model
from hybrid_seq.sampling.chat import Message, format_chat
from hybrid_seq.sampling.prefill import left_pad, prefill
from hybrid_seq.sampling.rules import choose, is_stop, row_keys

Prompt = str | Sequence[Message]


@runtime_checkable
class TokenizerLike(Protocol):
    """What the sampler needs from a tokenizer (`Tokenizer` and `ByteTokenizer` both fit)."""

    bos_id: int
    eos_id: int
    pad_id: int

    def encode(self, text: str, *, add_bos: bool = False) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    @property
    def end_of_turn_id(self) -> int | None: ...


class Options(eqx.Module):
    """Sampling settings as traced values (changing them does not recompile), except `greedy`."""

    temperature: Float32[Array, ""]
    top_k: Int32[Array, ""]
    top_p: Float32[Array, ""]
    stop_ids: Int32[Array, " S"]
    greedy: bool = eqx.field(static=True)


class Carry(eqx.Module):
    """The decode loop's state. `logits` are those of the next token to sample; row buffers
    hold `N` slots, of which the first `step` are written (pad / 0 once a row is done)."""

    cache: Cache
    logits: Float32[Array, "B V"]
    position: Int32[Array, " B"]
    step: Int32[Array, ""]
    done: Bool[Array, " B"]
    tokens: Int32[Array, "B N"]
    logprobs: Float32[Array, "B N"]
    keys: UInt32[Array, "B 2"]


@eqx.filter_jit
def _decode(model: Model, carry: Carry, limit: Int32[Array, ""], options: Options, pad_id: int) -> Carry:
    """Sample tokens until `step == limit` or every row is done, in one `lax.while_loop`.

    Each iteration samples from `carry.logits`, writes the token (pad for finished rows),
    then runs the model on it to get the next logits.
    """

    def cond(c: Carry) -> Bool[Array, ""]:
        return (c.step < limit) & ~jnp.all(c.done)

    def body(c: Carry) -> Carry:
        token, logprob = choose(
            c.logits, c.keys, c.step,
            greedy=options.greedy, temperature=options.temperature, top_k=options.top_k, top_p=options.top_p,
        )
        token = jnp.where(c.done, pad_id, token)
        logprob = jnp.where(c.done, 0.0, logprob)
        logits, cache = model(token[:, None], c.position[:, None], c.cache)
        return Carry(
            cache=cache,
            logits=logits[:, 0].astype(jnp.float32),
            position=c.position + 1,
            step=c.step + 1,
            done=c.done | is_stop(token, options.stop_ids),
            tokens=jax.lax.dynamic_update_index_in_dim(c.tokens, token, c.step, axis=1),
            logprobs=jax.lax.dynamic_update_index_in_dim(c.logprobs, logprob, c.step, axis=1),
            keys=c.keys,
        )

    return jax.lax.while_loop(cond, body, carry)


@dataclasses.dataclass(frozen=True)
class SamplerOutput:
    """Per prompt: generated text and token ids (stop token / stop string excluded from the
    text; a stop string's last token is kept in `tokens`), log-probs of those tokens under the
    model (fp32, before temperature/filtering) when requested, and why generation ended
    (`"stop_token"`, `"stop_string"` or `"length"`)."""

    texts: list[str]
    tokens: list[list[int]]
    logprobs: list[list[float]] | None
    finish_reasons: list[str]


@dataclasses.dataclass(frozen=True)
class StreamPiece:
    """One streamed step: the new token id (None for the final flush) and the text it adds."""

    token: int | None
    text: str


@dataclasses.dataclass
class _Row:
    """Host-side bookkeeping for one prompt."""

    tokens: list[int] = dataclasses.field(default_factory=list)
    logprobs: list[float] = dataclasses.field(default_factory=list)
    text: str = ""
    finish: str | None = None


def _bucket(n: int, minimum: int = 16) -> int:
    """The next power of two >= max(n, minimum): shapes fall in few buckets, so few compilations."""
    return max(minimum, 1 << (n - 1).bit_length())


class Sampler:
    """Generate from prompts with a `Model` and a tokenizer.

    `sampler(prompts, max_new_tokens, ...)` returns a `SamplerOutput`; `sampler.stream(prompt,
    ...)` yields `StreamPiece`s as tokens are produced. Prompts are `[BOS] + encode(text)`
    (chat mode first applies the `<start_of_turn>` format), left-padded with positions -1, so
    each row gives exactly what it gives alone. Prompts longer than `prefill_chunk_size` are
    prefilled in chunks of that size (bounded activation memory). Decoding runs in a compiled
    `lax.while_loop`; finished rows write padding and stop contributing output. Prompt
    lengths and output buffers are bucketed to powers of two (or chunk multiples) and the
    compiled functions are module-level, so repeated calls reuse compilations.
    """

    def __init__(self, model: Model, tokenizer: TokenizerLike, *, chat: bool = False, prefill_chunk_size: int = 1024):
        if prefill_chunk_size < 1:
            raise ValueError(f"prefill_chunk_size must be >= 1, got {prefill_chunk_size}")
        self.model = model
        self.tokenizer = tokenizer
        self.chat = chat
        self.prefill_chunk_size = prefill_chunk_size

    def encode_prompt(self, prompt: Prompt, *, chat: bool | None = None) -> list[int]:
        """`[BOS] + ids` of a prompt (formatted as a chat turn first in chat mode)."""
        chat = self.chat if chat is None else chat
        if chat:
            text = format_chat(prompt)
        elif isinstance(prompt, str):
            text = prompt
        else:
            raise TypeError("a list of (role, text) messages needs chat mode (chat=True)")
        ids = self.tokenizer.encode(text, add_bos=True)
        vocab = self.model.config.vocab_size
        if max(ids) >= vocab:
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
        max_new_tokens: int,
        *,
        temperature: float = 0.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int | Sequence[int] = 0,
        stop: Sequence[str] = (),
        stop_token_ids: Sequence[int] | None = None,
        chat: bool | None = None,
        return_logprobs: bool = False,
    ) -> SamplerOutput:
        """Generate up to `max_new_tokens` per prompt.

        `temperature=0` is greedy; otherwise sample at that temperature, keeping the `top_k`
        most likely tokens (0: all) and the `top_p` nucleus (1: all). `seed` is an int (row
        `i` uses `seed + i`) or one seed per prompt. A row stops at a token in
        `stop_token_ids` (default `default_stop_ids`) or when its text contains one of the
        `stop` strings (checked every 16 tokens on the host; output is cut exactly).
        """
        batch = [prompts] if self._is_single(prompts) else list(prompts)
        rows = [_Row() for _ in batch]
        for _ in self._run(batch, rows, max_new_tokens, temperature, top_k, top_p, seed, stop, stop_token_ids, chat):
            pass
        return SamplerOutput(
            texts=[row.text for row in rows],
            tokens=[row.tokens for row in rows],
            logprobs=[row.logprobs for row in rows] if return_logprobs else None,
            finish_reasons=[row.finish or "length" for row in rows],
        )

    def stream(
        self,
        prompt: Prompt,
        max_new_tokens: int,
        *,
        temperature: float = 0.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int = 0,
        stop: Sequence[str] = (),
        stop_token_ids: Sequence[int] | None = None,
        chat: bool | None = None,
    ) -> Iterator[StreamPiece]:
        """Like calling the sampler on one prompt, yielding each token and its text as it is made.

        Text that could be the start of a stop string is held back until it is decided; the
        concatenated pieces equal the text `__call__` returns.
        """
        row = _Row()
        emitted = 0
        count = 0
        for _ in self._run([prompt], [row], max_new_tokens, temperature, top_k, top_p, seed, stop, stop_token_ids,
                           chat, segment=1):
            safe = len(row.text) if row.finish else len(row.text) - _held_back(row.text, stop)
            piece, emitted = row.text[emitted:safe], max(emitted, safe)
            token = row.tokens[-1] if len(row.tokens) > count else None
            count = len(row.tokens)
            if token is not None or piece:
                yield StreamPiece(token=token, text=piece)
        if emitted < len(row.text):
            yield StreamPiece(token=None, text=row.text[emitted:])

    @staticmethod
    def _is_single(prompts: Any) -> bool:
        """A str, or a list of (role, text) pairs, is one prompt; anything else is a batch."""
        if isinstance(prompts, str):
            return True
        return bool(prompts) and all(
            isinstance(p, tuple) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in prompts
        )

    def _run(
        self,
        prompts: list[Prompt],
        rows: list[_Row],
        max_new_tokens: int,
        temperature: float,
        top_k: int,
        top_p: float,
        seed: int | Sequence[int],
        stop: Sequence[str],
        stop_token_ids: Sequence[int] | None,
        chat: bool | None,
        segment: int | None = None,
    ) -> Iterator[None]:
        """Prefill, then decode in segments, updating `rows` after each; yields once per segment."""
        if max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
        if not prompts:
            raise ValueError("no prompts given")
        if temperature < 0 or not 0 < top_p <= 1 or top_k < 0:
            raise ValueError(f"need temperature >= 0, 0 < top_p <= 1, top_k >= 0; got {temperature}, {top_p}, {top_k}")
        if max_new_tokens == 0:
            return
        stop = [s for s in stop if s]
        seeds = [seed + i for i in range(len(prompts))] if isinstance(seed, int) else list(seed)
        if len(seeds) != len(prompts):
            raise ValueError(f"got {len(seeds)} seeds for {len(prompts)} prompts")
        stop_ids = list(self.default_stop_ids(chat) if stop_token_ids is None else stop_token_ids)
        if segment is None:
            segment = 16 if stop else max_new_tokens

        ids = [self.encode_prompt(p, chat=chat) for p in prompts]
        longest = max(len(x) for x in ids)
        chunk = self.prefill_chunk_size
        padded = _bucket(longest) if longest <= chunk else -(-longest // chunk) * chunk
        tokens, positions = left_pad(ids, self.tokenizer.pad_id, padded)
        slots = _bucket(max_new_tokens)
        # The state has room for the padded prompt and every decode step (growing caches preallocate it).
        logits, cache = prefill(
            self.model, tokens, positions, chunk_size=chunk if padded > chunk else None, max_length=padded + slots
        )

        batch = len(prompts)
        carry = Carry(
            cache=cache,
            logits=logits.astype(jnp.float32),
            position=jnp.asarray([len(x) for x in ids], jnp.int32),
            step=jnp.int32(0),
            done=jnp.zeros((batch,), bool),
            tokens=jnp.full((batch, slots), self.tokenizer.pad_id, jnp.int32),
            logprobs=jnp.zeros((batch, slots), jnp.float32),
            keys=row_keys(jnp.asarray(seeds, jnp.int32)),
        )
        options = Options(
            temperature=jnp.float32(max(temperature, 1e-6)),
            top_k=jnp.int32(top_k),
            top_p=jnp.float32(top_p),
            stop_ids=jnp.asarray(stop_ids + [-1] * (_bucket(len(stop_ids) + 1, 4) - len(stop_ids)), jnp.int32),
            greedy=temperature == 0,
        )
        stop_set = set(stop_ids)
        produced = 0
        while produced < max_new_tokens and not all(row.finish for row in rows):
            limit = min(max_new_tokens, produced + segment)
            carry = _decode(self.model, carry, jnp.int32(limit), options, self.tokenizer.pad_id)
            step = int(carry.step)
            new_tokens = np.asarray(carry.tokens[:, produced:step])
            new_logprobs = np.asarray(carry.logprobs[:, produced:step])
            for row, row_tokens, row_logprobs in zip(rows, new_tokens, new_logprobs):
                self._extend(row, row_tokens, row_logprobs, stop_set, stop)
            produced = step
            finished = np.asarray([row.finish is not None for row in rows])
            if finished.any():
                carry = eqx.tree_at(lambda c: c.done, carry, carry.done | jnp.asarray(finished))
            yield

    def _extend(
        self, row: _Row, tokens: np.ndarray, logprobs: np.ndarray, stop_ids: set[int], stop: Sequence[str]
    ) -> None:
        """Append one segment's tokens to a row, ending it at a stop token or stop string."""
        if row.finish:
            return
        start = len(row.tokens)
        for token, logprob in zip(tokens.tolist(), logprobs.tolist()):
            if token in stop_ids:
                row.finish = "stop_token"
                break
            row.tokens.append(token)
            row.logprobs.append(logprob)
        row.text = self.tokenizer.decode(row.tokens)
        if not any(s in row.text for s in stop):
            return
        for end in range(start + 1, len(row.tokens) + 1):
            text = self.tokenizer.decode(row.tokens[:end])
            cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
            if cut >= 0:
                del row.tokens[end:], row.logprobs[end:]
                row.text, row.finish = text[:cut], "stop_string"
                return


def _held_back(text: str, stop: Sequence[str]) -> int:
    """Length of the longest suffix of `text` that starts some stop string (or is an incomplete character)."""
    if text.endswith("\ufffd"):
        return 1
    return max((n for s in stop for n in range(min(len(s), len(text)), 0, -1) if s.startswith(text[-n:])), default=0)
