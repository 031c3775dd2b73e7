"""WordPiece vocabularies: load and validate one, or learn one from the corpus with tensorflow-text.

The reserved tokens must be present and [PAD] must be id 0, because the TFRecord schema pads every
feature with 0 and readers (Model Garden included) rely on that.
"""

import dataclasses
import hashlib
from typing import Callable, Iterable

import numpy as np
import tensorflow as tf

from bert_pretrain import atomic
from bert_pretrain.errors import UsageError

RESERVED_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


@dataclasses.dataclass(frozen=True)
class Vocab:
    """A loaded vocabulary plus the ids and per-token facts instance creation needs."""

    path: str
    tokens: tuple[str, ...]
    sha256: str

    @property
    def size(self) -> int:
        return len(self.tokens)

    def id(self, token: str) -> int:
        return self.tokens.index(token)

    def continuation_mask(self) -> np.ndarray:
        """True for `##` pieces, which whole-word masking groups with the piece before them."""
        return np.array([t.startswith("##") for t in self.tokens], dtype=bool)


def load_vocab(path: str, flag: str = "vocab_file") -> Vocab:
    """Reads a one-token-per-line vocab file and checks the reserved tokens."""
    try:
        with tf.io.gfile.GFile(path, "rb") as handle:
            data = handle.read()
    except tf.errors.OpError as error:
        raise UsageError(flag, f"cannot read {path!r} ({error.message})",
                         "give an existing vocab file, or omit the flag to learn one from the input") from None
    tokens = tuple(line.strip() for line in data.decode("utf-8", errors="replace").splitlines())
    missing = [t for t in RESERVED_TOKENS if t not in tokens]
    if missing:
        raise UsageError(flag, f"{path} lacks the reserved token(s) {' '.join(missing)}",
                         f"add them (one per line, {' '.join(RESERVED_TOKENS)} at the top) or omit the "
                         "flag to learn a vocab")
    if tokens[0] != "[PAD]":
        raise UsageError(flag, f"{path} has {tokens[0]!r} at id 0 but padding uses id 0",
                         "put [PAD] on the first line")
    return Vocab(path, tokens, hashlib.sha256(data).hexdigest())


def learn_vocab(sentences: Callable[[], Iterable[str]], path: str, vocab_size: int,
                lower_case: bool) -> Vocab:
    """Learns a WordPiece vocab with tensorflow-text's BERT vocab builder and writes it to `path`.

    `sentences` is called to get a fresh stream, so the corpus is never held in memory.
    """
    # Deferred: the builder pulls in tensorflow_text, which only this path needs in the main process.
    from tensorflow_text.tools.wordpiece_vocab import bert_vocab_from_dataset as builder

    dataset = tf.data.Dataset.from_generator(
        sentences, output_signature=tf.TensorSpec([], tf.string)).batch(4096).prefetch(2)
    tokens = builder.bert_vocab_from_dataset(
        dataset, vocab_size=vocab_size, reserved_tokens=list(RESERVED_TOKENS),
        bert_tokenizer_params={"lower_case": lower_case}, learn_params={})
    atomic.write_text(path, "".join(t + "\n" for t in tokens))
    return load_vocab(path)
