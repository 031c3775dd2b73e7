"""Reading pretraining TFRecords back: our own input code, independent of Model Garden.

Accepts both naming schemes and always returns the google-research (v1) names with int32 integers,
the dtype TPUs and GPUs want, so consumers need not care which scheme a file was written with.
"""

import tensorflow as tf

from bert_pretrain.data import tfrecords


def decode(serialized: tf.Tensor, max_seq_length: int, max_predictions_per_seq: int,
           feature_names: str = "v1") -> dict[str, tf.Tensor]:
    """One serialised tf.train.Example → dict of v1-named tensors (int32, float32 weights)."""
    spec = tfrecords.feature_spec(max_seq_length, max_predictions_per_seq, feature_names)
    parsed = tf.io.parse_single_example(serialized, spec)
    renamed = {v1: parsed[written] for v1, written in tfrecords.FEATURE_NAMES[feature_names].items()}
    return {k: tf.cast(v, tf.int32) if v.dtype == tf.int64 else v for k, v in renamed.items()}


def load_dataset(file_pattern: str, max_seq_length: int, max_predictions_per_seq: int,
                 batch_size: int, feature_names: str = "v1", shuffle_buffer: int = 0,
                 seed: int | None = None) -> tf.data.Dataset:
    """Batched examples from all files matching the pattern (files in sorted order unless shuffling)."""
    files = tf.data.Dataset.list_files(file_pattern, shuffle=bool(shuffle_buffer), seed=seed)
    dataset = files.interleave(tf.data.TFRecordDataset, cycle_length=4,
                               num_parallel_calls=tf.data.AUTOTUNE, deterministic=not shuffle_buffer)
    if shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed)
    dataset = dataset.map(
        lambda record: decode(record, max_seq_length, max_predictions_per_seq, feature_names),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=not shuffle_buffer)
    return dataset.batch(batch_size, drop_remainder=False).prefetch(tf.data.AUTOTUNE)
