"""The TFRecord format (docs/data.md): its schema, a fast encoder for whole batches, the shard
writer, and `decode`, the one function that reads a record back.

Building tf.train.Example protos one by one costs more than everything else per instance, so records
are encoded here directly from the NumPy arrays: varints for all instances at once, then a few slices
joined per record. The bytes equal `tf.train.Example.SerializeToString(deterministic=True)` (features in key
order, packed lists), which the tests check.
"""

import contextlib
import functools

import numpy as np
import tensorflow as tf

from bert_pretrain import atomic

# Feature name in our arrays → name written, per naming scheme.
FEATURE_NAMES = {
    "v1": {"input_ids": "input_ids", "input_mask": "input_mask", "segment_ids": "segment_ids",
           "masked_lm_positions": "masked_lm_positions", "masked_lm_ids": "masked_lm_ids",
           "masked_lm_weights": "masked_lm_weights", "next_sentence_labels": "next_sentence_labels"},
    "v2": {"input_ids": "input_word_ids", "input_mask": "input_mask", "segment_ids": "input_type_ids",
           "masked_lm_positions": "masked_lm_positions", "masked_lm_ids": "masked_lm_ids",
           "masked_lm_weights": "masked_lm_weights", "next_sentence_labels": "next_sentence_labels"},
}
FLOAT_FEATURES = frozenset({"masked_lm_weights"})
# What unmasked records (`--masking=none`) hold: the sentence pair without a mask; training masks it.
UNMASKED_FEATURES = ("input_ids", "input_mask", "segment_ids", "next_sentence_labels")


def feature_spec(max_seq_length: int, max_predictions_per_seq: int, names: str = "v1",
                 masked: bool = True) -> dict[str, tf.io.FixedLenFeature]:
    """The parsing spec for records written with the given naming scheme; `masked=False` for
    unmasked records, which have no masked_lm_* features."""
    lengths = {"input_ids": max_seq_length, "input_mask": max_seq_length,
               "segment_ids": max_seq_length, "masked_lm_positions": max_predictions_per_seq,
               "masked_lm_ids": max_predictions_per_seq, "masked_lm_weights": max_predictions_per_seq,
               "next_sentence_labels": 1}
    return {FEATURE_NAMES[names][k]: tf.io.FixedLenFeature(
        [n], tf.float32 if k in FLOAT_FEATURES else tf.int64) for k, n in lengths.items()
        if masked or k in UNMASKED_FEATURES}


def decode(serialized: tf.Tensor, max_seq_length: int, max_predictions_per_seq: int,
           names: str = "v1", masked: bool = True) -> dict[str, tf.Tensor]:
    """One serialised record of either naming scheme → v1-named tensors: int32 integers (what TPUs
    and GPUs want), float32 weights. An unmasked record (`masked=False`) has no masked_lm_*."""
    spec = feature_spec(max_seq_length, max_predictions_per_seq, names, masked)
    parsed = tf.io.parse_single_example(serialized, spec)
    renamed = {v1: parsed[written] for v1, written in FEATURE_NAMES[names].items() if written in spec}
    return {k: tf.cast(v, tf.int32) if v.dtype == tf.int64 else v for k, v in renamed.items()}


@functools.lru_cache(maxsize=65536)
def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _packed_varints(values: np.ndarray) -> tuple[bytes, np.ndarray]:
    """Varint-encodes every row of a non-negative int matrix; returns the bytes and row offsets."""
    top = int(values.max()) if values.size else 0
    if top < 0x80:  # the common case (masks, segments, labels, short positions): one byte each
        return values.astype(np.uint8).tobytes(), np.arange(len(values) + 1) * values.shape[1]
    if top >= 1 << 28:
        raise ValueError("feature values must be below 2**28")
    values = values.astype(np.uint32)
    width = (top.bit_length() + 6) // 7
    groups = np.empty(values.shape + (width,), dtype=np.uint8)
    sizes = np.ones(values.shape, dtype=np.int32)
    for k in range(width):
        rest = values >> np.uint32(7 * (k + 1))
        groups[..., k] = ((values >> np.uint32(7 * k)) & np.uint32(0x7F)) | ((rest > 0) * np.uint32(0x80))
        if k:
            sizes += values >= np.uint32(1 << (7 * k))
    flat = groups[np.arange(width) < sizes[..., None]]
    offsets = np.concatenate([[0], np.cumsum(sizes.sum(axis=1, dtype=np.int64))])
    return flat.tobytes(), offsets


@functools.lru_cache(maxsize=None)
def _entry_prefix(key: str, list_field: int, payload_len: int) -> bytes:
    """Everything of a feature's map entry that comes before its packed payload."""
    list_msg_len = 1 + len(_varint(payload_len)) + payload_len            # Int64List / FloatList
    feature_len = 1 + len(_varint(list_msg_len)) + list_msg_len           # Feature
    key_bytes = key.encode()
    entry_len = 1 + len(_varint(len(key_bytes))) + len(key_bytes) + 1 + len(_varint(feature_len)) + feature_len
    prefix = (b"\x0a" + _varint(entry_len) + b"\x0a" + _varint(len(key_bytes)) + key_bytes
              + b"\x12" + _varint(feature_len) + bytes([list_field << 3 | 2]) + _varint(list_msg_len)
              + b"\x0a" + _varint(payload_len))
    return prefix


def encode_examples(features: dict[str, np.ndarray], names: str = "v1") -> list[bytes]:
    """Serialises row i of every array into the i-th tf.train.Example.

    Features whose encoded size is the same in every row (masks, segments, labels, weights, short
    positions) are laid out for all rows at once as one byte matrix, and neighbours in key order are
    merged, so a record is joined from a handful of slices.
    """
    num = len(next(iter(features.values())))
    runs = []   # per run: (bytes, offsets) with row i at bytes[offsets[i]:offsets[i + 1]]
    fixed = []  # consecutive fixed-size entries not yet merged into a run
    for key, source in sorted((FEATURE_NAMES[names][k], k) for k in features):
        values = features[source]
        if source in FLOAT_FEATURES:
            data = np.ascontiguousarray(values, dtype="<f4").tobytes()
            offsets, field = np.arange(num + 1) * values.shape[1] * 4, 2
        else:
            (data, offsets), field = _packed_varints(values), 3
        sizes = np.diff(offsets)
        if num and (sizes == sizes[0]).all():
            prefix = np.frombuffer(_entry_prefix(key, field, int(sizes[0])), dtype=np.uint8)
            payload = np.frombuffer(data, dtype=np.uint8).reshape(num, -1)
            fixed += [np.broadcast_to(prefix, (num, len(prefix))), payload]
            continue
        if fixed:
            runs.append(_matrix_run(fixed))
            fixed = []
        prefixes = [_entry_prefix(key, field, n) for n in sizes.tolist()]
        runs.append((b"".join(p + data[a:b] for p, a, b in zip(prefixes, offsets[:-1].tolist(),
                                                                offsets[1:].tolist())),
                     np.concatenate([[0], np.cumsum(sizes + [len(p) for p in prefixes])])))
    if fixed:
        runs.append(_matrix_run(fixed))
    offsets = [o.tolist() for _, o in runs]
    data = [d for d, _ in runs]
    records = []
    for row in range(num):
        body = b"".join([d[o[row]:o[row + 1]] for d, o in zip(data, offsets)])
        records.append(b"\x0a" + _varint(len(body)) + body)
    return records


def _matrix_run(blocks: list[np.ndarray]) -> tuple[bytes, np.ndarray]:
    matrix = np.concatenate(blocks, axis=1)
    return matrix.tobytes(), np.arange(len(matrix) + 1) * matrix.shape[1]


def shard_name(index: int, num_shards: int) -> str:
    return f"pretrain-{index:05d}-of-{num_shards:05d}.tfrecord"


class ShardWriter:
    """Writes one shard under a temporary name and renames it when complete, so a file with the final
    name is always whole (a re-run treats it as done)."""

    def __init__(self, path: str):
        self.path = path
        self._finish = contextlib.ExitStack()
        self._writer = tf.io.TFRecordWriter(
            self._finish.enter_context(atomic.replacing(path, ".incomplete")))

    def write(self, records: list[bytes]) -> None:
        for record in records:
            self._writer.write(record)

    def close(self) -> None:
        self._writer.close()
        self._finish.close()   # renames the shard to its final name
