"""Did the resumable record order make the demo learn less, or was it one seed? The demo's former
phase 1 (300 steps) under the current order (`record_order`: groups of files read round-robin,
windows of 10,000 records each permuted) and under the order it replaced (files shuffled once per
pass, read round-robin, records through a 10,000-record shuffle buffer), several seeds each.

    python benchmarks/record_order_mlm.py --data_dir=runs/demo/data --seeds=1,2,3

Each run trains a fresh model in a temporary directory and prints its held-out MLM accuracy on
the data_dir's seq128-eval; the last line is a summary per order (mean, min, max).
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile

from absl import app, flags

flags.DEFINE_string("data_dir", "runs/demo/data", "Demo data (seq128 and seq128-eval).")
flags.DEFINE_list("seeds", ["1", "2", "3"], "Seeds (initialisation, order, dropout).")
flags.DEFINE_list("orders", ["current", "previous"], "Orders to run.")
flags.DEFINE_integer("train_steps", 300, "Steps (the former demo: 300, warmup 30, lr 1e-2, batch 64).")
flags.DEFINE_string("worker", "", "Internal: run one order and seed.")
flags.DEFINE_integer("seed", 0, "Internal.")
FLAGS = flags.FLAGS


def previous_train_dataset_fn(spec, global_batch_size, seed, consumed_steps=0, **unused):
    """The order before record_order (commit 6f0817f^): rebuilt here for the comparison."""
    import tensorflow as tf
    from bert_pretrain import datasets

    del unused

    def dataset_fn(context):
        batch_size = context.get_per_replica_batch_size(global_batch_size)
        files = tf.data.Dataset.from_tensor_slices(list(spec.files)).shuffle(len(spec.files), seed=seed).repeat()
        records = files.interleave(tf.data.TFRecordDataset, cycle_length=min(len(spec.files), 8),
                                   num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        records = records.shuffle(10000, seed=seed).skip(consumed_steps * batch_size)
        return datasets._decode_and_batch(records, spec, batch_size)   # pylint: disable=protected-access
    return dataset_fn


def worker(order: str, seed: int) -> None:
    from bert_pretrain import config, job, trainer
    from bert_pretrain import strategy as strategy_lib

    if order == "previous":
        trainer.datasets.train_dataset_fn = previous_train_dataset_fn
    train = job.data_from_globs(os.path.join(FLAGS.data_dir, "seq128", "*.tfrecord"), 128, 20, "data_dir")
    held_out = job.data_from_globs(os.path.join(FLAGS.data_dir, "seq128-eval", "*.tfrecord"), 128, 20, "data_dir")
    settings = config.TrainConfig(train_steps=FLAGS.train_steps, global_batch_size=64, learning_rate=1e-2,
                                  warmup_steps=30, clip_norm=1.0, steps_per_loop=50, checkpoint_every=0,
                                  seed=seed)
    with tempfile.TemporaryDirectory() as model_dir:
        built = job.build_trainer(job.Job(config.from_preset("tiny", train.vocab_size), settings, model_dir,
                                          train, held_out, "data_dir", "data_dir"), strategy_lib.make_strategy())
        result = built.train(train, held_out, log=lambda line: None)
    print("RESULT " + json.dumps({"order": order, "seed": seed, "eval_mlm_accuracy": result["eval_mlm_accuracy"],
                                  "train_mlm_accuracy": result["mlm_accuracy"]}), flush=True)


def main(argv):
    del argv
    if FLAGS.worker:
        return worker(FLAGS.worker, FLAGS.seed)
    found = {}
    for order in FLAGS.orders:
        for seed in map(int, FLAGS.seeds):   # one process a run: nothing carries over between them
            output = subprocess.run([sys.executable, __file__, f"--worker={order}", f"--seed={seed}",
                                     f"--data_dir={FLAGS.data_dir}", f"--train_steps={FLAGS.train_steps}"],
                                    capture_output=True, text=True, check=True).stdout
            row = json.loads(output.split("RESULT ", 1)[1])
            found.setdefault(order, []).append(row["eval_mlm_accuracy"])
            print(f"{order} seed {seed}: held-out MLM accuracy {row['eval_mlm_accuracy']:.3f} "
                  f"(train {row['train_mlm_accuracy']:.3f})", flush=True)
    for order, values in found.items():
        print(f"{order}: mean {statistics.mean(values):.3f}, min {min(values):.3f}, max {max(values):.3f} "
              f"over seeds {','.join(FLAGS.seeds)}")


if __name__ == "__main__":
    app.run(main)
