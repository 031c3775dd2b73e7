"""Fixtures for the data tests; they write everything into tmp_path."""

import pytest

from data_helpers import write_vocab


@pytest.fixture
def vocab_file(tmp_path):
    return write_vocab(tmp_path / "vocab.txt")
