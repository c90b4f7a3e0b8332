"""Inference: fixed-size state, (chunked) prefill, a batched compiled sampler, tokenizers and the chat format."""

from hybrid_seq.sampling.bookkeeping import SamplerOutput, StreamPiece
from hybrid_seq.sampling.chat import END_OF_TURN, START_OF_TURN, format_chat
from hybrid_seq.sampling.demo import random_demo
from hybrid_seq.sampling.hf_tokenizer import HFTokenizer
from hybrid_seq.sampling.options import SamplingOptions
from hybrid_seq.sampling.prefill import left_pad, prefill
from hybrid_seq.sampling.prefix import Prefix
from hybrid_seq.sampling.rules import choose, filter_logits
from hybrid_seq.sampling.sampler import Sampler
from hybrid_seq.sampling.state import init_state, kv_cache_bytes, state_bytes
from hybrid_seq.sampling.tokenizer import ByteTokenizer, Tokenizer

__all__ = [
    "END_OF_TURN",
    "START_OF_TURN",
    "ByteTokenizer",
    "HFTokenizer",
    "Prefix",
    "Sampler",
    "SamplerOutput",
    "SamplingOptions",
    "StreamPiece",
    "Tokenizer",
    "choose",
    "filter_logits",
    "format_chat",
    "init_state",
    "kv_cache_bytes",
    "left_pad",
    "prefill",
    "random_demo",
    "state_bytes",
]
