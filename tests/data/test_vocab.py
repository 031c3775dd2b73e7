"""Vocab loading, validation and learning with tensorflow-text's builder."""

import hashlib

import pytest

from bert_pretrain.data import vocab as vocab_lib
from bert_pretrain.errors import UsageError


def test_load_checks_reserved_tokens(tmp_path, vocab_file):
    vocab = vocab_lib.load_vocab(vocab_file)
    assert vocab.tokens[:5] == vocab_lib.RESERVED_TOKENS
    assert vocab.sha256 == hashlib.sha256(open(vocab_file, "rb").read()).hexdigest()
    assert vocab.continuation_mask()[vocab.id("##s")] and not vocab.continuation_mask()[vocab.id("cat")]

    (tmp_path / "no_mask.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\ncat\n")
    with pytest.raises(UsageError, match=r"^--vocab_file: .*lacks the reserved token\(s\) \[MASK\]; add"):
        vocab_lib.load_vocab(str(tmp_path / "no_mask.txt"))
    (tmp_path / "pad_late.txt").write_text("[UNK]\n[PAD]\n[CLS]\n[SEP]\n[MASK]\n")
    with pytest.raises(UsageError, match=r"^--vocab_file: .*id 0"):
        vocab_lib.load_vocab(str(tmp_path / "pad_late.txt"))
    with pytest.raises(UsageError, match=r"^--vocab_file: cannot read"):
        vocab_lib.load_vocab(str(tmp_path / "absent.txt"))


def test_learned_vocab_has_reserved_tokens_and_corpus_words(tmp_path):
    sentences = ["The cat sat on the mat.", "The dog ran over the hill.", "Cats and dogs play."] * 50
    vocab = vocab_lib.learn_vocab(lambda: iter(sentences), str(tmp_path / "v.txt"), 200, True)
    assert vocab.tokens[:5] == vocab_lib.RESERVED_TOKENS
    assert {"the", "cat", "dog", "mat"} <= set(vocab.tokens)
    assert "The" not in vocab.tokens      # lower-cased
    assert len(set(vocab.tokens)) == vocab.size <= 200
