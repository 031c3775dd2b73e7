"""The block worker's tokenisation (tensorflow-text's FastBertTokenizer) against tensorflow-text's
BertTokenizer.tokenize, the reference the records were first made with: alone, on awkward text and on
the built-in corpora, and through the whole tool."""

import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text as text

from bert_pretrain.data import Options, builtin_corpus, create_pretraining_data
from bert_pretrain.data import worker as worker_lib
from bert_pretrain.data.instances import InstanceConfig
from data_helpers import corpus_text, write_vocab

# Repeated words, capitals and accents (lower-cased, stripped), CJK (one token per character),
# control and format characters, punctuation, a word WordPiece cannot split ([UNK]), one over
# max_bytes_per_word (100: [UNK]), and sentences that tokenise to nothing.
TRICKY = ["The cat sat on the mat, the cat ran.", "CAFÉ Naïve Ünder the cats", "中文 字 cat中dog",
          "cat\x07dog\u200bhill\tmat", "zzyzx qwv jumping cats walked", "", "   ", "\x07",
          "a" * 101 + " walk", "It was red; it was blue! The dog? The dog...", "walking walked walks"]
# More Unicode: combining marks, soft hyphen, emoji, ligatures, Greek final sigma, dotted capital I,
# sharp s, full-width forms, Hangul, kana, NUL, BOM, NEL, an ideographic space, symbols.
MORE = ["Ångström résumé façade", "naïve\u0301 e\u0301", "x\u00adsoft", "emoji 😀 cat", "ﬁne", "ΣΑΣ",
        "İstanbul", "straße", "\u3000x", "a-b_c/d\\e", "$100 & 5% @home #tag", "\ufeffbom", "nul\x00x",
        "全角ＡＢＣ", "한국어 텍스트", "日本語のテキスト", "\u0085nel"]


def reference_word_pieces(processor, sentences):
    """tensorflow-text's BertTokenizer.tokenize, merged to (piece ids, pieces per sentence)."""
    reference = text.BertTokenizer(processor.config.vocab_path, lower_case=processor.config.lower_case,
                                   token_out_type=tf.int64)
    ragged = reference.tokenize(sentences).merge_dims(-2, -1)
    return ragged.flat_values, ragged.row_lengths()


def _assert_same_pieces(processor, sentences):
    ids, lengths = (t.numpy() for t in processor._word_pieces(tf.constant(sentences)))  # pylint: disable=protected-access
    want_ids, want_lengths = (t.numpy() for t in reference_word_pieces(processor, tf.constant(sentences)))
    np.testing.assert_array_equal(lengths, want_lengths)
    np.testing.assert_array_equal(ids, want_ids)
    return ids, lengths


@pytest.mark.parametrize("lower_case", [True, False])
def test_pieces_equal_bert_tokenizer(tmp_path, lower_case):
    vocab = write_vocab(tmp_path / "vocab.txt",
                        extra=["中", "文", "字", "café", "naive", "!", "?", ";", "ß"])
    processor = worker_lib.BlockProcessor(worker_lib.WorkerConfig(vocab, lower_case, InstanceConfig(), "v1", 0))
    ids, lengths = _assert_same_pieces(processor, TRICKY + MORE)
    assert lengths[5:8].tolist() == [0, 0, 0] and len(set(ids.tolist())) > 10


def test_pieces_equal_bert_tokenizer_on_the_builtin_corpora(tmp_path):
    """Every sentence of both built-in corpora, with a vocab of about the size the demo learns: 3,000
    of the corpora's words and common `##` suffixes, so that many words are split into pieces."""
    sentences = [s for name in ("python-docstrings", "python-topics")
                 for document in builtin_corpus.load(name) for s in document]
    base = set(open(write_vocab(tmp_path / "base.txt"), encoding="utf-8").read().split())
    words = sorted({w for s in sentences[::7] for w in s.lower().split() if w.isalpha()} - base)[:3000]
    suffixes = [f"##{p}" for p in ("s", "ing", "ed", "ly", "er", "tion", "al", "e", "t", "n")]
    vocab = write_vocab(tmp_path / "vocab.txt", extra=words + [p for p in suffixes if p not in base])
    processor = worker_lib.BlockProcessor(worker_lib.WorkerConfig(vocab, True, InstanceConfig(), "v1", 0))
    ids, _ = _assert_same_pieces(processor, sentences)
    assert len(sentences) > 20000 and len(set(ids.tolist())) > 1000


@pytest.mark.parametrize("masking, whole_word", [("static", True), ("none", False)])
def test_records_equal_those_of_the_plain_tokenizer(tmp_path, monkeypatch, masking, whole_word):
    """Same seed, same bytes: the records made with the worker's tokenisation and with
    BertTokenizer.tokenize are identical, static (google-research's format) and unmasked."""
    (tmp_path / "corpus.txt").write_text(corpus_text(30, seed=3) + "\n\n" + "\n".join(TRICKY) + "\n")
    vocab = write_vocab(tmp_path / "vocab.txt")

    def make(out):
        create_pretraining_data(Options(input=str(tmp_path / "corpus.txt"), output_dir=str(tmp_path / out),
                                        vocab_file=vocab, max_seq_length=32, max_predictions_per_seq=5,
                                        dupe_factor=2, masking=masking, do_whole_word_mask=whole_word,
                                        num_shards=2, block_bytes=1024, workers=1, progress=False))
        names = sorted(n for n in os.listdir(tmp_path / out) if n.endswith(".tfrecord"))
        return [(tmp_path / out / n).read_bytes() for n in names]

    ours = make("ours")
    monkeypatch.setattr(worker_lib.BlockProcessor, "_word_pieces", reference_word_pieces)
    plain = make("plain")
    assert len(ours) == 2 and all(ours) and ours == plain
