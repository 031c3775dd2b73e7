"""Dynamic masking: a new masked-LM mask each time a sequence is fed (RoBERTa, Liu et al. 2019,
section 4.1), chosen on the host inside the tf.data pipeline with tensorflow-text's ops.

A `tf_text.RandomItemSelector` picks the positions (15% of the selectable tokens, rounded up, at
most max_predictions_per_seq; never [CLS], [SEP] or [PAD]) and `tf_text.mask_language_model` applies
the 80/10/10 replacement chosen by a `tf_text.MaskValuesChooser`. For whole-word masking the
tokens are grouped into words, a word being a piece and the `##` pieces after it (a `##` piece
right after [CLS] or [SEP] starts a word: words never cross segments), and the selector picks
words. Chosen words holding more than max_predictions_per_seq pieces are cut at the last whole
word that fits, in position order.

Exact resume: tensorflow-text draws its randomness from stateful ops; here the selector's shuffle
and the chooser's draws are stateless ops seeded from (seed, input pipeline, n), n being the
record's position in the pipeline's endless stream (`record_order`). The mask is therefore a pure
function of those: a resumed run masks each record as an uninterrupted run did, and a record read
again in a later epoch (a later n) gets a new mask. Batches are masked in one pass, each record
by its own seed, so a record's mask does not depend on the batch it is in.

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
        """Decoded records (unmasked, or static with their original tokens put back by
        `original_tokens`), a batch [batch, seq] with seeds [batch, 2] or one [seq] with its seed [2]
        -> the same records with fresh masks, in the decoder's layout. Masking a batch in one pass
        takes 3-4x less CPU than record by record (the ragged ops' fixed cost is paid once)."""
        if features["input_ids"].shape.rank == 1:
            batch = self({k: v[None] for k, v in features.items()}, seed[None])
            return {k: v[0] for k, v in batch.items()}
        ids = features["input_ids"]
        length = tf.reduce_sum(features["input_mask"], axis=1)
        tokens = tf.RaggedTensor.from_tensor(ids, lengths=length)
        selector_type = _WholeWordSelector if self.whole_word else _RowSeededSelector
        selector = selector_type(self.max_predictions_per_seq, MASKED_LM_PROB,
                                 [self.cls_id, self.sep_id, self.pad_id], seed)
        chooser = _StatelessChooser(self.vocab_size, self.mask_id, seed)
        units = self._words(tokens) if self.whole_word else tokens
        masked, positions, labels = tf_text.mask_language_model(units, selector, chooser, axis=1)
        shape = [None, self.max_predictions_per_seq]   # zero-padded, as the static records are
        return dict(features, input_ids=tf.where(tf.sequence_mask(length, tf.shape(ids)[1]),
                                                   masked.to_tensor(shape=tf.shape(ids)), ids),
                    masked_lm_positions=tf.cast(positions, tf.int32).to_tensor(shape=shape),
                    masked_lm_ids=labels.to_tensor(shape=shape),
                    masked_lm_weights=tf.ones_like(positions, tf.float32).to_tensor(shape=shape))

    def _words(self, tokens: tf.RaggedTensor) -> tf.RaggedTensor:
        """[batch, (words), (pieces)]: a `##` piece joins the word before it, unless that is [CLS] or
        [SEP] (or it starts the record)."""
        pieces = tokens.flat_values
        continuation = tf.gather(tf.constant(self.continuation), pieces)
        special = (pieces == self.cls_id) | (pieces == self.sep_id)
        first = tf.scatter_nd(tokens.row_starts()[:, None], tf.ones_like(tokens.row_starts()),
                              tf.shape(pieces, tf.int64)) > 0
        starts = tf.cast(~continuation | special | first | tf.concat([[False], special[:-1]], 0), tf.int64)
        words = tf.RaggedTensor.from_value_rowids(pieces, tf.cumsum(starts) - 1)
        return tf.RaggedTensor.from_row_lengths(
            words, tf.math.unsorted_segment_sum(starts, tokens.value_rowids(), tokens.nrows()))


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


def _split(seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """A record's seed -> (shuffle seed, mask-values seed)."""
    return tuple(tf.unstack(tf.random.experimental.stateless_split(seed, 2)))


class _StatelessChooser(tf_text.MaskValuesChooser):
    """tensorflow-text's 80/10/10 rule with its two random draws made stateless and seeded per
    record (its own use tf.random.uniform, which a resumed run cannot replay)."""

    def __init__(self, vocab_size: int, mask_token: int, seeds: tf.Tensor):
        super().__init__(vocab_size, mask_token, MASK_RATE, RANDOM_RATE)
        self._seeds = seeds   # [batch, 2]

    def get_mask_values(self, masked_lm_ids: tf.RaggedTensor) -> tf.RaggedTensor:
        def row_values(row):
            ids, seed = row
            draw_seed, id_seed = _split(_split(seed)[1])
            draw = tf.random.stateless_uniform(tf.shape(ids), draw_seed)
            random_ids = tf.random.stateless_uniform(tf.shape(ids), id_seed, maxval=self.vocab_size, dtype=ids.dtype)
            mask = tf.fill(tf.shape(ids), tf.cast(self.mask_token, ids.dtype))
            return tf.where(draw < MASK_RATE, mask, tf.where(draw < MASK_RATE + RANDOM_RATE, random_ids, ids))
        return tf.map_fn(row_values, (masked_lm_ids, self._seeds),
                         fn_output_signature=tf.RaggedTensorSpec([None], masked_lm_ids.dtype, ragged_rank=0))


class _RowSeededSelector(tf_text.RandomItemSelector):
    """tensorflow-text's RandomItemSelector with each record's items shuffled by its own stateless
    seed: its `shuffle_fn` sees one record's items but not which record they are, so
    `get_selection_mask` is its own again, with the record's seed passed along."""

    def __init__(self, max_selections: int, selection_rate: float, unselectable_ids: list, seeds: tf.Tensor):
        super().__init__(max_selections, selection_rate, unselectable_ids)
        self._seeds = seeds   # [batch, 2]

    def get_selection_mask(self, input_ids, axis):
        selectable = self.get_selectable(input_ids, axis)
        positions = input_ids.with_flat_values(tf.range(tf.size(input_ids.flat_values)))
        positions = tf.ragged.boolean_mask(positions, selectable)
        num_to_select = tf.minimum(tf.math.ceil(tf.cast(positions.row_lengths(), tf.float32) * self.selection_rate),
                                   self.max_selections_per_batch)

        def shuffle_and_trim(row):
            items, top_n, seed = row
            shuffle_seed = _split(seed)[0]
            if isinstance(items, tf.RaggedTensor):   # words: shuffle their indices
                order = tf.random.experimental.stateless_shuffle(tf.range(items.nrows()), shuffle_seed)
                return tf.gather(items, order[:top_n])
            return tf.random.experimental.stateless_shuffle(items, shuffle_seed)[:top_n]

        chosen = tf.map_fn(shuffle_and_trim, (positions, tf.cast(num_to_select, tf.int64), self._seeds),
                           fn_output_signature=tf.RaggedTensorSpec(ragged_rank=positions.ragged_rank - 1,
                                                                   dtype=positions.dtype))
        picked = tf.scatter_nd(chosen.flat_values[:, None], tf.ones_like(chosen.flat_values),
                               tf.shape(input_ids.flat_values))
        picked = input_ids.with_flat_values(picked > 0)
        return tf.reduce_all(picked, axis=list(range(picked.ragged_rank, axis, -1))) if axis < picked.ragged_rank else picked


class _WholeWordSelector(_RowSeededSelector):
    """The choice of words, cut to the words whose pieces fit max_predictions_per_seq (the
    selector's own limit counts words)."""

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
