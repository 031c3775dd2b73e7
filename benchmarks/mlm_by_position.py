"""Held-out MLM accuracy of a pretrained model by the position of the masked token: whether the
positions a phase barely trained (past 128 after phase 1; far into 512 when the training
records are short) are what lowers the length-512 score.

    python benchmarks/mlm_by_position.py --model_dir=runs/demo/model/phase2 \
        --eval_dir=runs/demo/data/seq512-eval --max_predictions_per_seq=80

Prints one line per position bucket: predictions, accuracy; and the same for the records' lengths.
"""

import glob
import os

import numpy as np
from absl import app, flags

flags.DEFINE_string("model_dir", "", "A pretraining model_dir (a plan's phase directory).")
flags.DEFINE_string("eval_dir", "", "Held-out data made by bert-pretrain-data (static masks).")
flags.DEFINE_integer("max_seq_length", 512, "The records' length.")
flags.DEFINE_integer("max_predictions_per_seq", 80, "The records' max_predictions_per_seq.")
flags.DEFINE_list("edges", ["0", "128", "256", "384", "512"], "Position bucket edges.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    import tensorflow as tf

    from bert_pretrain import datasets, model as model_lib
    from bert_pretrain.finetune import encoder

    pretrained = encoder.from_directory(FLAGS.model_dir, dropout=0.0, flag="model_dir")
    pretrainer = model_lib.build_pretrainer(pretrained.model_config)
    tf.train.Checkpoint(model=pretrainer).restore(pretrained.checkpoint).expect_partial()
    spec = datasets.data_spec(tuple(sorted(glob.glob(os.path.join(FLAGS.eval_dir, "*.tfrecord")))),
                              FLAGS.max_seq_length, FLAGS.max_predictions_per_seq)
    positions, hits, lengths = [], [], []
    for batch in datasets.examples(spec).batch(32):
        logits = pretrainer(model_lib.model_inputs(batch), training=False)["mlm_logits"]
        weight = batch["masked_lm_weights"].numpy() > 0
        hit = tf.argmax(logits, -1, output_type=tf.int32).numpy() == batch["masked_lm_ids"].numpy()
        positions.append(batch["masked_lm_positions"].numpy()[weight])
        hits.append(hit[weight])
        lengths.append(np.repeat(batch["input_mask"].numpy().sum(1), weight.sum(1)))
    positions, hits, lengths = map(np.concatenate, (positions, hits, lengths))
    edges = [int(e) for e in FLAGS.edges]
    print(f"{FLAGS.model_dir} on {FLAGS.eval_dir}: {hits.size} predictions, accuracy {hits.mean():.4f}")
    for name, values in (("position", positions), ("record length", lengths)):
        for low, high in zip(edges, edges[1:]):
            inside = (values >= low) & (values < high) if high < edges[-1] else values >= low
            if inside.any():
                print(f"  {name} {low}-{high}: {inside.sum():6d} predictions, accuracy {hits[inside].mean():.4f}")


if __name__ == "__main__":
    app.run(main)
