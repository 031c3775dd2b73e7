"""Dynamic masking: a new masked-LM mask each time a sequence is fed (RoBERTa, Liu et al. 2019,
section 4.1), chosen on the host inside the tf.data pipeline with tensorflow-text's ops.

`tf_text.RandomItemSelector` picks the positions (15% of the selectable tokens, rounded up, at most
max_predictions_per_seq; never [CLS], [SEP] or [PAD]) and `tf_text.mask_language_model` applies
the 80/10/10 replacement chosen by a `tf_text.MaskValuesChooser`. For whole-word masking the
tokens are grouped into words, a word being a piece and the `##` pieces after it (a `##` piece
right after [CLS] or [SEP] starts a word: words never cross segments), and the selector picks
words. Chosen words holding more than max_predictions_per_seq pieces are cut at the last whole
word that fits, in position order.

Exact resume: tensorflow-text draws its randomness from stateful ops; here the selector's shuffle
and the chooser's draws are stateless ops seeded from (seed, input pipeline, n), n being the
record's position in the pipeline's endless stream (`record_order`). The mask is therefore a pure
function of those: a resumed run masks each record as an uninterrupted run did, and a record read
again in a later epoch (a later n) gets a new mask.

Records of either kind can be masked: unmasked ones (`bert-pretrain-data --masking=none`) and
google-research's static ones, whose original tokens are put back from masked_lm_ids first.
"""

import dataclasses
import os

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

from bert_pretrain.data import vocab as vocab_lib
from bert_pretrain.errors import UsageError

MASKED_LM_PROB = 0.15
MASK_RATE, RANDOM_RATE = 0.8, 0.1   # of the chosen tokens: [MASK], a random id; the rest stay
SEED_KIND = 2                        # record_order seeds kinds 0 and 1


@dataclasses.dataclass(frozen=True)
class Masker:
    """What masking needs of the vocab, and the choices a run made."""

    max_predictions_per_seq: int
    whole_word: bool
    vocab_size: int
    cls_id: int
    sep_id: int
    mask_id: int
    pad_id: int = 0
    continuation: np.ndarray = dataclasses.field(default=None, compare=False, repr=False)  # bool per id

    @classmethod
    def from_vocab(cls, vocab: vocab_lib.Vocab, max_predictions_per_seq: int, whole_word: bool) -> "Masker":
        return cls(max_predictions_per_seq, whole_word, vocab.size, vocab.id("[CLS]"), vocab.id("[SEP]"),
                   vocab.id("[MASK]"), vocab.id("[PAD]"), vocab.continuation_mask())

    def __call__(self, features: dict, seed: tf.Tensor) -> dict:
        """One decoded record (unmasked, or static with its original tokens put back by
        `original_tokens`) -> the same record with a fresh mask, in the decoder's layout."""
        ids = features["input_ids"]
        seq = ids.shape[0]
        length = tf.reduce_sum(features["input_mask"])
        tokens = ids[:length]
        shuffle_seed, values_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        selector_type = _WholeWordSelector if self.whole_word else tf_text.RandomItemSelector
        selector = selector_type(
            self.max_predictions_per_seq, MASKED_LM_PROB, [self.cls_id, self.sep_id, self.pad_id],
            shuffle_fn=lambda x: tf.random.experimental.stateless_shuffle(x, seed=shuffle_seed))
        chooser = _StatelessChooser(self.vocab_size, self.mask_id, values_seed)
        units = self._words(tokens) if self.whole_word else tf.RaggedTensor.from_tensor(tokens[None])
        masked, positions, labels = tf_text.mask_language_model(units, selector, chooser, axis=1)
        chosen = tf.shape(positions.values)[0]

        def padded(values):   # to max_predictions_per_seq, with zeros as the static records are
            return tf.ensure_shape(tf.pad(values, [[0, self.max_predictions_per_seq - chosen]]),
                                   [self.max_predictions_per_seq])

        return dict(features, input_ids=tf.ensure_shape(tf.concat([masked.values, ids[length:]], 0), [seq]),
                    masked_lm_positions=padded(tf.cast(positions.values, tf.int32)),
                    masked_lm_ids=padded(labels.values), masked_lm_weights=padded(tf.ones([chosen], tf.float32)))

    def _words(self, tokens: tf.Tensor) -> tf.RaggedTensor:
        """[1, (words), (pieces)]: a `##` piece joins the word before it, unless that is [CLS] or [SEP]."""
        continuation = tf.gather(tf.constant(self.continuation), tokens)
        special = (tokens == self.cls_id) | (tokens == self.sep_id)
        after_special = tf.concat([[True], special[:-1]], 0)
        starts = ~continuation | special | after_special
        words = tf.RaggedTensor.from_value_rowids(tokens, tf.cumsum(tf.cast(starts, tf.int64)) - 1)
        return tf.RaggedTensor.from_row_lengths(words, tf.reshape(words.nrows(), [1]))


def original_tokens(features: dict) -> dict:
    """A static record with its masked positions given back their original tokens (masked_lm_ids),
    so it can be masked anew."""
    weights = features["masked_lm_weights"] > 0
    positions = tf.boolean_mask(features["masked_lm_positions"], weights)
    ids = tf.tensor_scatter_nd_update(features["input_ids"], positions[:, None],
                                      tf.boolean_mask(features["masked_lm_ids"], weights))
    return {"input_ids": ids, "input_mask": features["input_mask"], "segment_ids": features["segment_ids"],
            "next_sentence_labels": features["next_sentence_labels"]}


def record_seed(seed, pipeline, position) -> tf.Tensor:
    """The stateless seed of the record at `position` of input pipeline `pipeline`'s stream."""
    base = tf.stack([tf.cast(seed, tf.int64), tf.constant(SEED_KIND, tf.int64)])
    return tf.random.experimental.stateless_fold_in(
        tf.random.experimental.stateless_fold_in(base, pipeline), tf.cast(position, tf.int64))


class _StatelessChooser(tf_text.MaskValuesChooser):
    """tensorflow-text's 80/10/10 rule with its two random draws made stateless (its own use
    tf.random.uniform, which a resumed run cannot replay)."""

    def __init__(self, vocab_size: int, mask_token: int, seed: tf.Tensor):
        super().__init__(vocab_size, mask_token, MASK_RATE, RANDOM_RATE)
        self._seed = seed

    def get_mask_values(self, masked_lm_ids: tf.RaggedTensor) -> tf.RaggedTensor:
        draw_seed, id_seed = tf.unstack(tf.random.experimental.stateless_split(self._seed, 2))
        ids = masked_lm_ids.flat_values
        draw = tf.random.stateless_uniform(tf.shape(ids), draw_seed)
        random_ids = tf.random.stateless_uniform(tf.shape(ids), id_seed, maxval=self.vocab_size, dtype=ids.dtype)
        mask = tf.fill(tf.shape(ids), tf.cast(self.mask_token, ids.dtype))
        values = tf.where(draw < MASK_RATE, mask, tf.where(draw < MASK_RATE + RANDOM_RATE, random_ids, ids))
        return masked_lm_ids.with_flat_values(values)


class _WholeWordSelector(tf_text.RandomItemSelector):
    """tensorflow-text's choice of words, cut to the words whose pieces fit max_predictions_per_seq
    (the selector's own limit counts words)."""

    def get_selection_mask(self, input_ids, axis):
        chosen = super().get_selection_mask(input_ids, axis)
        pieces = tf.where(chosen.flat_values, input_ids.row_lengths(axis=2).flat_values, 0)
        taken = tf.RaggedTensor.from_tensor(tf.cumsum(chosen.with_flat_values(pieces).to_tensor(), axis=1),
                                            lengths=chosen.row_lengths())
        return chosen.with_flat_values(chosen.flat_values & (taken.flat_values <= self.max_selections_per_batch))


def vocab_for(vocab_file: str | None, files, flag: str = "masking") -> vocab_lib.Vocab:
    """The vocab the data was tokenized with: metadata.json's, else vocab.txt beside the shards."""
    path = vocab_file or os.path.join(os.path.dirname(files[0]), "vocab.txt")
    if not tf.io.gfile.exists(path):
        raise UsageError(flag, f"dynamic masking needs the data's vocab and {path} does not exist",
                         "put the vocab the data was made with there as vocab.txt, or use --masking=static")
    return vocab_lib.load_vocab(path, flag)
