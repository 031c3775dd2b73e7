"""Input pipeline alone vs what the model consumes (target: >= 10x).

    python benchmarks/input_pipeline.py --preset=tiny --max_seq_length=128 --global_batch_size=64
    python benchmarks/input_pipeline.py --train_files='data/seq128/*.tfrecord' --preset=mini

Without --train_files it writes random records in google-research's schema to a temporary
directory. Both rates use the same per-host batch; the model rate is measured after compilation.
"""

import os
import tempfile
import time

import numpy as np
from absl import app, flags

from synthetic import random_features

flags.DEFINE_string("train_files", "", "TFRecords to read; empty = synthetic records.")
flags.DEFINE_string("preset", "tiny", "Model size.")
flags.DEFINE_integer("vocab_size", 30522, "Vocab (synthetic data and model).")
flags.DEFINE_integer("max_seq_length", 128, "Sequence length.")
flags.DEFINE_integer("max_predictions_per_seq", 20, "Masked positions.")
flags.DEFINE_integer("global_batch_size", 64, "Batch per step.")
flags.DEFINE_integer("steps", 20, "Timed model steps.")
FLAGS = flags.FLAGS


def synthetic_files(directory: str, records: int = 4096, shards: int = 8) -> str:
    import tensorflow as tf
    from bert_pretrain.data import tfrecords
    rng = np.random.default_rng(0)
    seq, pred = FLAGS.max_seq_length, FLAGS.max_predictions_per_seq
    for shard in range(shards):
        n = records // shards
        features = random_features(rng, n, seq, pred, FLAGS.vocab_size)
        with tf.io.TFRecordWriter(os.path.join(directory, tfrecords.shard_name(shard, shards))) as writer:
            for record in tfrecords.encode_examples(features):
                writer.write(record)
    return os.path.join(directory, "*")


def main(argv):
    import tensorflow as tf
    from bert_pretrain import config as config_lib
    from bert_pretrain import datasets, metrics, trainer as trainer_lib
    from bert_pretrain.config import TrainConfig

    pattern = FLAGS.train_files or synthetic_files(tempfile.mkdtemp())
    spec = datasets.data_spec(datasets.resolve_files(pattern, "train_files"),
                                   FLAGS.max_seq_length, FLAGS.max_predictions_per_seq)
    dataset = datasets.train_dataset_fn(spec, FLAGS.global_batch_size, seed=0)(tf.distribute.InputContext())
    input_rate = metrics.count_batches_per_second(dataset, 200)
    model_dir = tempfile.mkdtemp()
    trainer = trainer_lib.Trainer(
        config_lib.from_preset(FLAGS.preset, FLAGS.vocab_size),
        TrainConfig(train_steps=10 ** 6, global_batch_size=FLAGS.global_batch_size,
                                learning_rate=1e-4, warmup_steps=10, steps_per_loop=FLAGS.steps,
                                checkpoint_every=0),
        tf.distribute.get_strategy(), model_dir)
    iterator = iter(tf.distribute.get_strategy().distribute_datasets_from_function(
        datasets.train_dataset_fn(spec, FLAGS.global_batch_size, seed=0)))
    trainer.run_steps(iterator, tf.constant(FLAGS.steps))          # compile
    started = time.perf_counter()
    trainer.run_steps(iterator, tf.constant(FLAGS.steps))["steps"].numpy()
    model_rate = FLAGS.steps / (time.perf_counter() - started)
    print(f"{tf.config.list_logical_devices()[-1].device_type} preset={FLAGS.preset} seq={FLAGS.max_seq_length} "
          f"batch={FLAGS.global_batch_size}: input {input_rate:.1f} batches/s, model {model_rate:.2f} steps/s, "
          f"ratio {input_rate / model_rate:.1f}x")


if __name__ == "__main__":
    app.run(main)
