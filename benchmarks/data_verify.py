"""`bert-pretrain-data --verify` against reading the same bytes and nothing else (CRCs only).

    python benchmarks/data_verify.py                       # 256 MB of synthetic seq-128 records
    python benchmarks/data_verify.py --data_dir=data/seq128

Without --data_dir it writes random records in google-research's schema (length 128, 20
predictions, vocab 30522: the paper's phase 1) with a metadata.json, in 16 shards. Prints both
rates from one run and their ratio: the checks' cost over a plain read.
"""

import json
import os
import tempfile
import time

import numpy as np
from absl import app, flags

from synthetic import random_features

flags.DEFINE_string("data_dir", "", "A directory bert-pretrain-data made; empty = synthetic.")
flags.DEFINE_integer("synthetic_mb", 256, "Size of the synthetic data.")
flags.DEFINE_integer("workers", 0, "Files verified at a time (0: one per core).")
FLAGS = flags.FLAGS

SEQ, PRED, VOCAB, SHARDS = 128, 20, 30522, 16


def synthetic_dir(directory: str) -> str:
    import tensorflow as tf
    from bert_pretrain.data import tfrecords
    rng = np.random.default_rng(0)
    n = 4096
    features = random_features(rng, n, SEQ, PRED, VOCAB)
    block = tfrecords.encode_examples(features)
    per_shard = max(1, int(FLAGS.synthetic_mb * 1e6 / SHARDS / (sum(map(len, block)) + 16 * n)))
    shards = {}
    for shard in range(SHARDS):
        path = os.path.join(directory, tfrecords.shard_name(shard, SHARDS))
        with tf.io.TFRecordWriter(path) as writer:
            for _ in range(per_shard):
                for record in block:
                    writer.write(record)
        shards[os.path.basename(path)] = {"instances": per_shard * n, "bytes": os.path.getsize(path)}
    metadata = {"complete": True, "vocab": {"size": VOCAB}, "shards": shards,
                "settings": {"max_seq_length": SEQ, "max_predictions_per_seq": PRED, "feature_names": "v1"}}
    with open(os.path.join(directory, "metadata.json"), "w") as handle:
        json.dump(metadata, handle)
    return directory


def main(argv):
    del argv
    import tensorflow as tf
    from bert_pretrain.data.verify import READ_BUFFER, verify_directory

    directory = FLAGS.data_dir or synthetic_dir(tempfile.mkdtemp())
    files = sorted(tf.io.gfile.glob(os.path.join(directory, "*.tfrecord")))
    total_mb = sum(tf.io.gfile.stat(f).length for f in files) / 1e6
    started = time.perf_counter()
    reads = tf.data.Dataset.from_tensor_slices(files).interleave(
        lambda f: tf.data.TFRecordDataset(f, buffer_size=READ_BUFFER), cycle_length=os.cpu_count(),
        num_parallel_calls=tf.data.AUTOTUNE)
    records = int(reads.batch(1024).reduce(np.int64(0), lambda count, batch: count + tf.size(batch, tf.int64)))
    read_seconds = time.perf_counter() - started
    started = time.perf_counter()
    reports = verify_directory(directory, FLAGS.workers, log=lambda line: None)
    verify_seconds = time.perf_counter() - started
    assert all(r.ok for r in reports) and sum(r.records for r in reports) == records
    print(f"{len(files)} files, {total_mb:,.0f} MB, {records:,} records, {os.cpu_count()} cores")
    print(f"read only (length + CRCs): {total_mb / read_seconds:,.0f} MB/s ({records / read_seconds:,.0f} records/s)")
    print(f"--verify (+ parse, id ranges, counts): {total_mb / verify_seconds:,.0f} MB/s "
          f"({records / verify_seconds:,.0f} records/s)")
    print(f"verify / read time: {verify_seconds / read_seconds:.2f}x")


if __name__ == "__main__":
    app.run(main)
