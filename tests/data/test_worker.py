"""The block worker's tokenisation (each distinct word cut into pieces once) against tensorflow-text's
own BertTokenizer.tokenize, alone and through the whole tool."""

import os

import numpy as np
import pytest
import tensorflow as tf

from bert_pretrain.data import Options, create_pretraining_data
from bert_pretrain.data import worker as worker_lib
from bert_pretrain.data.instances import InstanceConfig
from data_helpers import corpus_text, write_vocab

# Repeated words, capitals and accents (lower-cased, stripped), CJK (one token per character),
# control and format characters, punctuation, a word WordPiece cannot split ([UNK]), one over
# max_bytes_per_word (100: [UNK]), and sentences that tokenise to nothing.
TRICKY = ["The cat sat on the mat, the cat ran.", "CAFÉ Naïve Ünder the cats", "中文 字 cat中dog",
          "cat\x07dog\u200bhill\tmat", "zzyzx qwv jumping cats walked", "", "   ", "\x07",
          "a" * 101 + " walk", "It was red; it was blue! The dog? The dog...", "walking walked walks"]


def reference_word_pieces(processor, sentences):
    """What the worker tokenised with before: tensorflow-text's BertTokenizer.tokenize as is."""
    ragged = processor.tokenizer.tokenize(sentences).merge_dims(-2, -1)
    return ragged.flat_values, ragged.row_lengths()


@pytest.mark.parametrize("lower_case", [True, False])
def test_pieces_equal_bert_tokenizer(tmp_path, lower_case):
    vocab = write_vocab(tmp_path / "vocab.txt", extra=["中", "文", "字", "café", "naive", "!", "?", ";"])
    processor = worker_lib.BlockProcessor(worker_lib.WorkerConfig(vocab, lower_case, InstanceConfig(), "v1", 0))
    ids, lengths = (t.numpy() for t in processor._word_pieces(tf.constant(TRICKY)))  # pylint: disable=protected-access
    want_ids, want_lengths = (t.numpy() for t in reference_word_pieces(processor, tf.constant(TRICKY)))
    np.testing.assert_array_equal(lengths, want_lengths)
    np.testing.assert_array_equal(ids, want_ids)
    assert lengths[5:8].tolist() == [0, 0, 0] and len(set(ids.tolist())) > 10


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
