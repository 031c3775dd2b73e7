"""Tiny pretraining data and settings shared by the training tests."""

import hashlib
import json
import os

import numpy as np
import tensorflow as tf

VOCAB, SEQ, PRED = 120, 16, 4


def _example(rng, vocab, seq, pred):
    length = int(rng.integers(seq // 2, seq + 1))
    ids = np.zeros(seq, np.int64)
    ids[:length] = rng.integers(5, vocab, length)
    mask = (np.arange(seq) < length).astype(np.int64)
    segments = ((np.arange(seq) >= length // 2) & (mask == 1)).astype(np.int64)
    n = int(rng.integers(1, pred + 1))
    positions = np.zeros(pred, np.int64)
    positions[:n] = np.sort(rng.choice(np.arange(1, length), n, replace=False))
    lm_ids = np.zeros(pred, np.int64)
    lm_ids[:n] = rng.integers(5, vocab, n)
    weights = (np.arange(pred) < n).astype(np.float32)
    ints = {"input_ids": ids, "input_mask": mask, "segment_ids": segments,
            "masked_lm_positions": positions, "masked_lm_ids": lm_ids,
            "next_sentence_labels": [int(rng.integers(0, 2))]}
    feature = {k: tf.train.Feature(int64_list=tf.train.Int64List(value=list(v))) for k, v in ints.items()}
    feature["masked_lm_weights"] = tf.train.Feature(float_list=tf.train.FloatList(value=list(weights)))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_shards(directory, files=2, records=64, vocab=VOCAB, seq=SEQ, pred=PRED, seed=0, metadata=True):
    """`files` shards of random but well-formed records; metadata.json as the data tool writes it."""
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(files):
        path = os.path.join(directory, f"pretrain-{index:05d}-of-{files:05d}.tfrecord")
        with tf.io.TFRecordWriter(path) as writer:
            for _ in range(records):
                writer.write(_example(rng, vocab, seq, pred))
        paths.append(path)
    if metadata:
        text = "".join(t + "\n" for t in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
                       + [f"w{i}" for i in range(5, vocab)])
        with open(os.path.join(directory, "vocab.txt"), "w") as handle:
            handle.write(text)
        meta = {"complete": True, "vocab": {"size": vocab, "sha256": hashlib.sha256(text.encode()).hexdigest(),
                                            "file": "vocab.txt"},
                "settings": {"max_seq_length": seq, "max_predictions_per_seq": pred, "feature_names": "v1",
                             "do_lower_case": True},
                "shards": {os.path.basename(p): {"instances": records, "bytes": os.path.getsize(p)} for p in paths}}
        with open(os.path.join(directory, "metadata.json"), "w") as handle:
            json.dump(meta, handle)
    return paths


def record_offsets(path):
    """Byte offset where each record of a TFRecord file starts (8-byte length, 4-byte CRC, payload,
    4-byte CRC), read from the file's own length fields."""
    data, offsets, at = open(path, "rb").read(), [], 0
    while at < len(data):
        offsets.append(at)
        at += 16 + int(np.frombuffer(data[at:at + 8], "<u8")[0])
    return offsets
