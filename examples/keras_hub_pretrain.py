"""Pretrain a tiny KerasHub BERT with LAMB on the built-in corpus, on the Keras 3 backend you choose.

    python examples/keras_hub_pretrain.py --backend=jax
    python examples/keras_hub_pretrain.py --backend=tensorflow --train_steps=600

Makes masked-LM data with the data tool's API (trained on builtin:python-docstrings, scored on the
disjoint builtin:python-topics; kept in --work_dir for the next call), builds
`keras_hub.models.BertMaskedLM` from a config (nothing is downloaded), compiles it with
`lamb_tf.keras3.LAMB` (BERT's exclusions, linear warmup and decay), trains it with `fit`, prints
the held-out masked-LM accuracy before and after, then saves the model and loads it back with its
optimizer.
"""

import os
import sys
import time
import warnings

from absl import app, flags

from bert_pretrain import console

flags.DEFINE_enum("backend", "jax", ["jax", "tensorflow"], "Keras 3 backend.")
flags.DEFINE_string("work_dir", "/tmp/keras_hub_pretrain", "Data (made once) and the saved model.")
flags.DEFINE_integer("train_steps", 300, "Optimizer steps.")
flags.DEFINE_integer("batch_size", 64, "Sequences per step.")
flags.DEFINE_float("learning_rate", 1e-2, "Peak learning rate.")
flags.DEFINE_integer("warmup_steps", 30, "Linear warmup steps.")
flags.DEFINE_integer("max_seq_length", 128, "Tokens per sequence.")
flags.DEFINE_integer("vocab_size", 8000, "WordPiece vocab learned from the training text.")
FLAGS = flags.FLAGS


def make_data(work_dir: str):
    """Training and held-out TFRecords (same vocab); made on the first call only."""
    from bert_pretrain.data import Options, create_pretraining_data
    from bert_pretrain.job import data_from_globs

    common = dict(max_seq_length=FLAGS.max_seq_length, max_predictions_per_seq=20, progress=False)
    train_dir, eval_dir = os.path.join(work_dir, "train"), os.path.join(work_dir, "eval")
    create_pretraining_data(Options(input="builtin:python-docstrings", output_dir=train_dir,
                                    vocab_size=FLAGS.vocab_size, **common))
    create_pretraining_data(Options(input="builtin:python-topics", output_dir=eval_dir, dupe_factor=1,
                                    vocab_file=os.path.join(train_dir, "vocab.txt"), **common))
    return tuple(data_from_globs(f"{d}/*.tfrecord", FLAGS.max_seq_length, 20, flag)
                 for d, flag in ((train_dir, "train"), (eval_dir, "eval")))


def main(argv):
    del argv
    console.quiet_absl_logging(verbose=False)
    # fit's notes on a tf.data stream (not shuffled by fit, ended by steps_per_epoch) and on the
    # encoder's pooler, which masked-LM training does not use, are expected here.
    warnings.filterwarnings("ignore", category=UserWarning, module="keras")
    os.environ["KERAS_BACKEND"] = FLAGS.backend      # before Keras is imported
    import keras
    import keras_hub

    from bert_pretrain import keras_hub_bert
    from lamb_tf import BERT_EXCLUSIONS
    from lamb_tf.keras3 import LAMB, WarmupPolynomialDecay

    train, held_out = make_data(FLAGS.work_dir)
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=train.vocab_size, num_layers=2, num_heads=2, hidden_dim=128, intermediate_dim=512,
        max_sequence_length=FLAGS.max_seq_length)
    model = keras_hub.models.BertMaskedLM(backbone=backbone, preprocessor=None)
    schedule = WarmupPolynomialDecay(FLAGS.learning_rate, FLAGS.warmup_steps, FLAGS.train_steps)
    model.compile(optimizer=LAMB(schedule, weight_decay=0.01, exclude_from_weight_decay=BERT_EXCLUSIONS),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")], jit_compile=True)

    def score():
        result = model.evaluate(keras_hub_bert.evaluation_batches(held_out, FLAGS.batch_size), verbose=0,
                                return_dict=True)
        return result["accuracy"], result["loss"]

    print(f"backend {keras.backend.backend()}: KerasHub BertMaskedLM, {backbone.count_params():,} weights, "
          f"LAMB, batch {FLAGS.batch_size}, {FLAGS.train_steps} steps")
    print("held-out MLM accuracy %.3f (loss %.3f) before training" % score())
    started = time.monotonic()
    model.fit(keras_hub_bert.training_batches(train, FLAGS.batch_size, seed=0), epochs=1,
              steps_per_epoch=FLAGS.train_steps, verbose=0)
    seconds = time.monotonic() - started
    print("held-out MLM accuracy %.3f (loss %.3f) after %d steps, %.0f s" % (*score(), FLAGS.train_steps, seconds))
    path = os.path.join(FLAGS.work_dir, f"bert_masked_lm_{FLAGS.backend}.keras")
    model.save(path)
    loaded = keras_hub_bert.load_model(path)
    print(f"saved and loaded back {path}: {type(loaded.optimizer).__name__}, "
          f"{len(loaded.optimizer.variables)} optimizer variables, step {int(loaded.optimizer.iterations)}")


if __name__ == "__main__":
    console.quiet_tensorflow(sys.argv)
    app.run(main)
