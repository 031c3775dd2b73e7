"""A batch masked in one pass gets, record by record, the masks tensorflow-text's own ops give one
record at a time: `tf_text.mask_language_model` with a `RandomItemSelector` whose shuffle_fn is the
record's stateless shuffle, and the 80/10/10 draws seeded by the record (the per-record reference)."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text as tf_text

from bert_pretrain.masking import dynamic

V, CLS, SEP, MASK, SEQ = 1000, 2, 3, 4, 40
CONTINUATION = np.arange(V) >= 500            # ids 500 and up are `##` pieces


class ReferenceChooser(tf_text.MaskValuesChooser):
    def __init__(self, seed):
        super().__init__(V, MASK, 0.8, 0.1)
        self.seed = seed

    def get_mask_values(self, masked_lm_ids):
        draw_seed, id_seed = tf.unstack(tf.random.experimental.stateless_split(self.seed, 2))
        ids = masked_lm_ids.flat_values
        draw = tf.random.stateless_uniform(tf.shape(ids), draw_seed)
        random_ids = tf.random.stateless_uniform(tf.shape(ids), id_seed, maxval=V, dtype=ids.dtype)
        values = tf.where(draw < 0.8, tf.fill(tf.shape(ids), MASK), tf.where(draw < 0.9, random_ids, ids))
        return masked_lm_ids.with_flat_values(values)


class ReferenceWordSelector(tf_text.RandomItemSelector):
    """Whole words, cut to the chosen words (in position order) whose pieces fit the limit."""

    def get_selection_mask(self, input_ids, axis):
        chosen = super().get_selection_mask(input_ids, axis)[0]
        pieces = tf.cumsum(tf.where(chosen, input_ids.row_lengths(axis=2).values, 0))
        return tf.RaggedTensor.from_tensor((chosen & (pieces <= self.max_selections_per_batch))[None])


@tf.function(reduce_retracing=True)
def reference(ids, seed, limit, whole_word):
    """One record: (input_ids, masked positions, original ids) from tensorflow-text's ops."""
    tokens = ids[:tf.math.count_nonzero(ids, dtype=tf.int32)]
    shuffle_seed, values_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    selector = (ReferenceWordSelector if whole_word else tf_text.RandomItemSelector)(
        limit, 0.15, [CLS, SEP, 0], shuffle_fn=lambda x: (
        tf.random.experimental.stateless_shuffle(x, seed=shuffle_seed)))
    if whole_word:   # words: a `##` piece joins the one before it unless that is [CLS] or [SEP]
        special = (tokens == CLS) | (tokens == SEP)
        starts = ~tf.gather(CONTINUATION, tokens) | special | tf.concat([[True], special[:-1]], 0)
        words = tf.RaggedTensor.from_value_rowids(tokens, tf.cumsum(tf.cast(starts, tf.int64)) - 1)
        units = tf.RaggedTensor.from_row_lengths(words, tf.reshape(words.nrows(), [1]))
    else:
        units = tf.RaggedTensor.from_tensor(tokens[None])
    masked, positions, labels = tf_text.mask_language_model(units, selector, ReferenceChooser(values_seed))
    return tf.concat([masked.values, ids[tf.shape(tokens)[0]:]], 0), positions.values, labels.values


@pytest.mark.parametrize("whole_word", [False, True])
def test_a_batch_gets_the_per_record_masks_of_tensorflow_text(whole_word):
    rng = np.random.default_rng(5)
    ids = np.zeros((48, SEQ), np.int32)
    for row in ids:
        length = int(rng.integers(6, SEQ + 1))
        row[:length] = rng.integers(5, V, length)
        row[[0, int(rng.integers(1, length)), length - 1]] = [CLS, SEP, SEP]
    seeds = np.stack([dynamic.record_seed(3, 1, n).numpy() for n in range(len(ids))])
    batch = {"input_ids": ids, "input_mask": (ids != 0).astype(np.int32)}
    for limit in (3, 20):     # the limit binds (whole words are dropped) and does not
        masker = dynamic.Masker(limit, whole_word, V, CLS, SEP, MASK, 0, CONTINUATION)
        out = {k: v.numpy() for k, v in tf.function(masker)(batch, seeds).items()}
        weights = out["masked_lm_weights"] > 0
        assert out["masked_lm_positions"].shape == (len(ids), limit) and weights.sum() > len(ids)
        for n in range(len(ids)):
            want_ids, want_positions, want_labels = (
                t.numpy() for t in reference(tf.constant(ids[n]), tf.constant(seeds[n]), limit, whole_word))
            np.testing.assert_array_equal(out["input_ids"][n], want_ids)
            np.testing.assert_array_equal(out["masked_lm_positions"][n][weights[n]], want_positions)
            np.testing.assert_array_equal(out["masked_lm_ids"][n][weights[n]], want_labels)
            assert weights[n].sum() == len(want_positions) and not weights[n][len(want_positions):].any()
