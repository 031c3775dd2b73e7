"""What measuring the gradient noise scale costs a training step: the trainer with --noise_scale on
against off, in one process, on the same model, data and accumulation.

    python benchmarks/noise_scale_overhead.py
    python benchmarks/noise_scale_overhead.py --accumulation_steps=8 --xla=on

Both trainers are built and run twice, untimed (tracing, compilation, first allocations), then
take turns running --steps_per_round steps per host call, the order alternating each round so a
change in machine load hits both; the result is the median per-round time ratio on / off, in
wall time and in the process's CPU time (all its threads; less moved by other processes on a
shared machine, though not immune to them). The target is ≤ 1.02.
"""

import os
import shutil
import statistics
import tempfile
import time

from absl import app, flags

flags.DEFINE_integer("num_layers", 4, "Encoder layers.")
flags.DEFINE_integer("hidden_size", 256, "Hidden size (intermediate 4x).")
flags.DEFINE_integer("num_heads", 4, "Attention heads.")
flags.DEFINE_integer("vocab_size", 3000, "Vocab of the random records.")
flags.DEFINE_integer("max_seq_length", 128, "Sequence length.")
flags.DEFINE_integer("max_predictions_per_seq", 20, "Masked positions per sequence.")
flags.DEFINE_integer("global_batch_size", 64, "Sequences per step.")
flags.DEFINE_integer("accumulation_steps", 4, "Micro-batches per step (the noise scale needs 2 or more).")
flags.DEFINE_enum("xla", "auto", ["auto", "on", "off"], "The trainer's --xla.")
flags.DEFINE_integer("steps_per_round", 5, "Steps per host call and per timed round.")
flags.DEFINE_integer("rounds", 8, "Timed rounds per trainer, alternating.")
FLAGS = flags.FLAGS


def write_records(path: str) -> None:
    import numpy as np
    import tensorflow as tf
    from bert_pretrain.data import tfrecords
    from synthetic import random_features

    features = random_features(np.random.default_rng(0), 4 * FLAGS.global_batch_size, FLAGS.max_seq_length,
                               FLAGS.max_predictions_per_seq, FLAGS.vocab_size)
    with tf.io.TFRecordWriter(path) as writer:
        for record in tfrecords.encode_examples(features):
            writer.write(record)


def main(argv):
    del argv
    import tensorflow as tf
    from bert_pretrain import config as config_lib
    from bert_pretrain import datasets
    from bert_pretrain.config import TrainConfig
    from bert_pretrain.trainer import Trainer

    work = tempfile.mkdtemp(prefix="noise_overhead-")
    path = os.path.join(work, "records.tfrecord")
    write_records(path)
    spec = datasets.data_spec((path,), FLAGS.max_seq_length, FLAGS.max_predictions_per_seq)
    model = config_lib.ModelConfig(FLAGS.vocab_size, FLAGS.num_layers, FLAGS.hidden_size, FLAGS.num_heads)
    strategy = tf.distribute.get_strategy()
    runs = {}
    for name, on in (("on", True), ("off", False)):
        config = TrainConfig(train_steps=10 ** 6, global_batch_size=FLAGS.global_batch_size, learning_rate=1e-3,
                             warmup_steps=10, accumulation_steps=FLAGS.accumulation_steps,
                             steps_per_loop=FLAGS.steps_per_round, checkpoint_every=0, xla=FLAGS.xla,
                             noise_scale=on)
        trainer = Trainer(model, config, strategy, os.path.join(work, name))
        assert trainer.measure_noise == on, trainer.noise_off_reason
        iterator = iter(strategy.distribute_datasets_from_function(
            datasets.train_dataset_fn(spec, FLAGS.global_batch_size, seed=1)))
        started = time.perf_counter()
        trainer.run_steps(iterator, tf.constant(FLAGS.steps_per_round))   # trace and compile
        print(f"{name}: first call {time.perf_counter() - started:.1f} s", flush=True)
        trainer.run_steps(iterator, tf.constant(FLAGS.steps_per_round))   # the first rounds ran slow
        runs[name] = (trainer, iterator)
    seconds = {"on": [], "off": []}
    cpu = {"on": [], "off": []}
    for index in range(FLAGS.rounds):
        for name in (("on", "off") if index % 2 else ("off", "on")):
            trainer, iterator = runs[name]
            started, cpu_started = time.perf_counter(), time.process_time()
            trainer.run_steps(iterator, tf.constant(FLAGS.steps_per_round))
            seconds[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - cpu_started)
    ratios = [on / off for on, off in zip(seconds["on"], seconds["off"])]
    cpu_ratios = [on / off for on, off in zip(cpu["on"], cpu["off"])]
    step = {name: statistics.median(values) / FLAGS.steps_per_round for name, values in seconds.items()}
    print(f"model {FLAGS.num_layers}x{FLAGS.hidden_size}, batch {FLAGS.global_batch_size} = "
          f"{FLAGS.accumulation_steps} x {FLAGS.global_batch_size // FLAGS.accumulation_steps}, seq "
          f"{FLAGS.max_seq_length}, xla {FLAGS.xla}, {FLAGS.rounds} rounds of {FLAGS.steps_per_round} steps; "
          f"load average {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print(f"step: on {1000 * step['on']:.1f} ms, off {1000 * step['off']:.1f} ms (medians)")
    print("per-round ratios on/off: " + ", ".join(f"{r:.3f}" for r in ratios))
    print(f"median ratio on/off: {statistics.median(ratios):.4f} (overhead {100 * (statistics.median(ratios) - 1):+.2f}%)")
    print("per-round CPU-time ratios on/off: " + ", ".join(f"{r:.3f}" for r in cpu_ratios))
    print(f"median CPU-time ratio on/off: {statistics.median(cpu_ratios):.4f} "
          f"(overhead {100 * (statistics.median(cpu_ratios) - 1):+.2f}%)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    app.run(main)
