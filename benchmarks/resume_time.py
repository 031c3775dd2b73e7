"""Time from a restart to the first resumed step, resuming at step 10 and at step 1,000, in one run.

    python benchmarks/resume_time.py [--rounds=3 --batch=256 --records=32768]

A resumed run enters the training order at the record its step needs (bert_pretrain/record_order.py)
instead of reading every record already trained on, so the two times should be within 10% of each
other. Both checkpoints hold the same weights (the step-1,000 one is the step-10 one with its step
counters set to 1,000); each restart is a fresh `bert-pretrain train` process that trains one more
step. For scale, the run also times what a resume by `dataset.skip()` would read first: the
records of 1,000 steps.
"""

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from absl import app, flags

from synthetic import random_features

from bert_pretrain import cli   # defines the training flags this script sets

flags.DEFINE_integer("rounds", 3, "Restarts per checkpoint, interleaved.")
flags.DEFINE_integer("batch", 256, "Global batch: sequences per step.")
flags.DEFINE_integer("records", 32768, "Synthetic training records (length 128), in 8 shards.")
flags.DEFINE_integer("far_step", 1000, "The later resume point.")
FLAGS = flags.FLAGS

SEQ, PRED, VOCAB, SHARDS, NEAR = 128, 20, 1000, 8, 10


def write_data(directory: str) -> None:
    """Random records in the data tool's schema, with the metadata.json (per-shard counts) it writes."""
    import tensorflow as tf
    from bert_pretrain.data import tfrecords
    rng = np.random.default_rng(0)
    per_shard = FLAGS.records // SHARDS
    shards = {}
    for shard in range(SHARDS):
        n = per_shard
        features = random_features(rng, n, SEQ, PRED, VOCAB)
        name = tfrecords.shard_name(shard, SHARDS)
        with tf.io.TFRecordWriter(os.path.join(directory, name)) as writer:
            for record in tfrecords.encode_examples(features):
                writer.write(record)
        shards[name] = {"instances": n}
    meta = {"complete": True, "vocab": {"size": VOCAB, "sha256": "0" * 64, "file": "vocab.txt"},
            "settings": {"max_seq_length": SEQ, "max_predictions_per_seq": PRED, "feature_names": "v1"},
            "shards": shards}
    with open(os.path.join(directory, "metadata.json"), "w", encoding="utf-8") as handle:
        json.dump(meta, handle)


def train_flags(data_dir: str, model_dir: str, train_steps: int) -> list[str]:
    return [f"--train_files={data_dir}/*.tfrecord", f"--model_dir={model_dir}", "--preset=tiny", "--hidden_size=32",
            f"--max_seq_length={SEQ}", f"--max_predictions_per_seq={PRED}",
            f"--global_batch_size={FLAGS.batch}", f"--train_steps={train_steps}", "--warmup_steps=5",
            "--steps_per_loop=1", "--checkpoint_every=0", "--seed=1"]


def make_checkpoints(data_dir: str, near_dir: str, far_dir: str) -> None:
    """ckpt-10 by training (a preemption notice after step 10 saves it), then a copy whose step
    counters say 1,000."""
    import tensorflow as tf

    def stop_after_near(line: str) -> None:
        print(line, flush=True)
        if line.startswith(f"step {NEAR}/"):
            os.kill(os.getpid(), signal.SIGTERM)

    flags.FLAGS(["x", *train_flags(data_dir, near_dir, 10 ** 6)])
    trainer, job = cli.build_trainer()
    trainer.train(job.train_data, log=stop_after_near)
    shutil.copytree(near_dir, far_dir)
    trainer.manager = tf.train.CheckpointManager(trainer.checkpoint, far_dir, 5)
    trainer.step.assign(FLAGS.far_step)
    trainer.optimizer.iterations.assign(FLAGS.far_step)
    trainer.save()


def seconds_to_first_step(data_dir: str, model_dir: str, resume_step: int) -> float:
    """A fresh `bert-pretrain train` in model_dir, from process start to its first step's log line."""
    scratch = model_dir + "-run"
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(model_dir, scratch)
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "bert_pretrain.cli", "train",
                                *train_flags(data_dir, scratch, resume_step + 1)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    elapsed = None
    for line in process.stdout:
        if elapsed is None and line.startswith(f"step {resume_step + 1}/"):
            elapsed = time.perf_counter() - started
    if process.wait() != 0 or elapsed is None:
        raise RuntimeError(f"the resumed run in {scratch} failed")
    return elapsed


def skip_seconds(data_dir: str, steps: int) -> float:
    """What `records.skip(steps x batch)` reads before a resumed first step."""
    import tensorflow as tf
    files = sorted(tf.io.gfile.glob(f"{data_dir}/*.tfrecord"))
    started = time.perf_counter()
    dataset = tf.data.TFRecordDataset(files).repeat().skip(steps * FLAGS.batch).take(1)
    for _ in dataset:
        pass
    return time.perf_counter() - started


def main(argv):
    del argv
    work = tempfile.mkdtemp(prefix="resume-time-")
    data_dir, near_dir, far_dir = (os.path.join(work, name) for name in ("data", "near", "far"))
    os.makedirs(data_dir)
    write_data(data_dir)
    make_checkpoints(data_dir, near_dir, far_dir)
    times = {NEAR: [], FLAGS.far_step: []}
    for _ in range(FLAGS.rounds):
        for step, directory in ((NEAR, near_dir), (FLAGS.far_step, far_dir)):
            times[step].append(seconds_to_first_step(data_dir, directory, step))
    near, far = (statistics.median(times[s]) for s in (NEAR, FLAGS.far_step))
    print(f"batch {FLAGS.batch}, {FLAGS.records} records of length {SEQ}, {FLAGS.rounds} rounds")
    for step in times:
        print(f"resume at step {step:>5}: " + ", ".join(f"{t:.1f}" for t in times[step])
              + f" s (median {statistics.median(times[step]):.1f} s)")
    print(f"ratio step {FLAGS.far_step} / step {NEAR}: {far / near:.3f} (target: within 10%)")
    print(f"for scale: reading the {FLAGS.far_step * FLAGS.batch:,} records of {FLAGS.far_step} steps "
          f"takes {skip_seconds(data_dir, FLAGS.far_step):.1f} s here")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    app.run(main)
