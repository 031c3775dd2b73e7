"""The README's main job until the BERT pipeline lands: LAMB trains a small classifier.

A two-layer MLP with LayerNorm learns a synthetic 10-class problem at a large batch (1,024)
with the paper's settings (weight decay 0.01, LayerNorm and biases excluded). Prints the loss
per epoch and exits non-zero if it did not fall.
"""

import sys

import numpy as np
from absl import app, flags

flags.DEFINE_integer("epochs", 8, "Passes over the synthetic data.")
flags.DEFINE_integer("batch_size", 1024, "Global batch size.")
flags.DEFINE_float("learning_rate", 0.01, "LAMB's peak learning rate.")
flags.DEFINE_integer("seed", 0, "Seed for the data and the weights.")
FLAGS = flags.FLAGS


def synthetic_data(seed, examples=32768, features=32, classes=10):
    """Labels from a fixed random two-layer network, so the task is learnable but not linear."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(examples, features)).astype("float32")
    hidden = np.tanh(x @ rng.normal(size=(features, 64)))
    y = np.argmax(hidden @ rng.normal(size=(64, classes)), axis=1)
    return x, y


def main(argv):
    del argv
    import keras

    import lamb_tf

    keras.utils.set_random_seed(FLAGS.seed)
    x, y = synthetic_data(FLAGS.seed)
    model = keras.Sequential([
        keras.Input((x.shape[1],)),
        keras.layers.Dense(256, activation="gelu"),
        keras.layers.LayerNormalization(name="LayerNorm"),
        keras.layers.Dense(10)])
    steps = FLAGS.epochs * (len(x) // FLAGS.batch_size)
    schedule = keras.optimizers.schedules.PolynomialDecay(
        FLAGS.learning_rate, steps, end_learning_rate=0.0)
    optimizer = lamb_tf.LAMB(schedule, weight_decay=0.01,
                             exclude_from_weight_decay=lamb_tf.BERT_EXCLUSIONS)
    model.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], jit_compile=True)
    print(f"LAMB ({lamb_tf.flavour()}), batch {FLAGS.batch_size}, {steps} steps")
    history = model.fit(x, y, batch_size=FLAGS.batch_size, epochs=FLAGS.epochs, verbose=0)
    losses = history.history["loss"]
    for epoch, (loss, accuracy) in enumerate(zip(losses, history.history["accuracy"]), 1):
        print(f"epoch {epoch}: loss {loss:.4f}  accuracy {accuracy:.3f}")
    if not losses[-1] < losses[0]:
        print("FAILED: the loss did not fall", file=sys.stderr)
        return 1
    print(f"loss fell from {losses[0]:.4f} to {losses[-1]:.4f}")
    return 0


def run():
    app.run(main)


if __name__ == "__main__":
    run()
