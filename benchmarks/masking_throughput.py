"""Training throughput with masks chosen in the input pipeline (--masking=dynamic, dynamic_whole_word)
against the records' own masks (static): one model, one batch, one process.

    python benchmarks/masking_throughput.py                         # the demo's phase 1: tiny, batch 64
    python benchmarks/masking_throughput.py --num_layers=4 --hidden_size=256 --num_heads=4

One Trainer (so one compiled step) is fed by one stream per masking, all over the same static records
(dynamic masking re-masks them from masked_lm_ids); rounds of `--steps_per_round` steps alternate
between the streams so that a change in machine load hits all of them, and the median of the
per-round ratios to static is reported. The input pipelines alone (no training) are timed the
same way over rounds of `--pipeline_batches` batches, long enough to drain the prefetch buffers.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app, flags

flags.DEFINE_string("train_files", "", "Static TFRecords of length 128 with vocab.txt and metadata.json beside "
                    "them; empty: made from the demo's corpus (dupe_factor 1) in a temporary directory.")
flags.DEFINE_integer("num_layers", 2, "Encoder layers (the demo: 2).")
flags.DEFINE_integer("hidden_size", 128, "Hidden size (the demo: 128).")
flags.DEFINE_integer("num_heads", 2, "Attention heads (the demo: 2).")
flags.DEFINE_integer("global_batch_size", 64, "Sequences per step (the demo: 64).")
flags.DEFINE_integer("steps_per_round", 10, "Steps per host call and per timed round.")
flags.DEFINE_integer("rounds", 8, "Timed rounds per masking, alternating.")
flags.DEFINE_integer("pipeline_batches", 200, "Batches per timed round of an input pipeline alone.")
flags.DEFINE_list("maskings", ["static", "dynamic", "dynamic_whole_word"], "Streams to compare; the first is the base.")
FLAGS = flags.FLAGS


def make_data(work: str) -> str:
    out = os.path.join(work, "data")
    subprocess.run([sys.executable, "-m", "bert_pretrain.data.cli", "--input=builtin:python-docstrings",
                    f"--output_dir={out}", "--vocab_size=8000", "--dupe_factor=1", "--num_shards=4"],
                   check=True, capture_output=True)
    return os.path.join(out, "*.tfrecord")


def main(argv):
    del argv
    import tensorflow as tf

    from bert_pretrain import config as config_lib
    from bert_pretrain import datasets, job
    from bert_pretrain.trainer import Trainer

    with tempfile.TemporaryDirectory() as work:
        spec = job.data_from_globs(FLAGS.train_files or make_data(work), 128, 20, "train_files")
        strategy = tf.distribute.get_strategy()
        model = config_lib.ModelConfig(spec.vocab_size, FLAGS.num_layers, FLAGS.hidden_size, FLAGS.num_heads)
        steps = FLAGS.steps_per_round * (FLAGS.rounds + 1) * len(FLAGS.maskings)
        trainer = Trainer(model, config_lib.TrainConfig(steps, FLAGS.global_batch_size, 1e-3, 10,
                                                        steps_per_loop=FLAGS.steps_per_round),
                          strategy, os.path.join(work, "model"))

        def stream(masking):
            return iter(strategy.distribute_datasets_from_function(
                datasets.train_dataset_fn(spec, FLAGS.global_batch_size, 1, masking=masking)))

        def pipeline(masking):   # the input alone
            return iter(datasets.train_dataset_fn(spec, FLAGS.global_batch_size, 1, masking=masking)(
                tf.distribute.InputContext()))

        for label, make, run, batches in (
                ("input pipeline alone", pipeline, lambda it: [next(it) for _ in range(FLAGS.pipeline_batches)],
                 FLAGS.pipeline_batches),
                ("training", stream, lambda it: trainer.run_steps(it, tf.constant(FLAGS.steps_per_round)),
                 FLAGS.steps_per_round)):
            iterators = {m: make(m) for m in FLAGS.maskings}
            for it in iterators.values():      # warm-up round: tracing, first batches
                run(it)
            seconds = {m: [] for m in FLAGS.maskings}
            for _ in range(FLAGS.rounds):
                for masking, it in iterators.items():
                    started = time.perf_counter()
                    result = run(it)
                    if isinstance(result, dict):
                        float(result["steps"])    # wait for the device
                    seconds[masking].append(time.perf_counter() - started)
            base = FLAGS.maskings[0]
            sequences = batches * FLAGS.global_batch_size
            for masking in FLAGS.maskings:
                ratio = statistics.median(b / s for b, s in zip(seconds[base], seconds[masking]))
                print(f"{label}, --masking={masking}: {sequences / statistics.median(seconds[masking]):,.0f} "
                      f"sequences/s, {ratio:.3f}x {base} (median of {FLAGS.rounds} interleaved rounds)", flush=True)
        print(f"model: {FLAGS.num_layers} layers, hidden {FLAGS.hidden_size}, batch {FLAGS.global_batch_size}, "
              f"seq 128, {os.cpu_count()} CPU cores, devices: "
              f"{[d.device_type for d in tf.config.list_logical_devices()]}")


if __name__ == "__main__":
    app.run(main)
