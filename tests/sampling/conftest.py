"""Fixtures for the sampling tests: a trained-on-the-spot SentencePiece tokenizer and a tiny model."""

from __future__ import annotations

import pytest

import hybrid_seq
from hybrid_seq.sampling import Tokenizer
from tests.sampling.helpers import tiny_model, train_tokenizer


@pytest.fixture(scope="session")
def spm_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("spm") / "tokenizer.model")
    train_tokenizer(path)
    return path


@pytest.fixture(scope="session")
def tokenizer(spm_path: str) -> Tokenizer:
    return Tokenizer(spm_path)


@pytest.fixture(scope="session")
def model(tokenizer: Tokenizer) -> hybrid_seq.Model:
    return tiny_model(tokenizer.vocab_size)
