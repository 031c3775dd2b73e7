"""Run as a script: a MirroredStrategy step over 2 logical CPUs equals a one-device step.

Logical devices must be configured before TensorFlow initialises, hence a separate process.
Prints one "ok <flavour> <config>" line per check; exits non-zero on a mismatch.
"""

import sys

import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import tf_keras  # noqa: E402

import lamb_tf.keras3  # noqa: E402
import lamb_tf.tf_keras  # noqa: E402

GLOBAL_BATCH = 16
CONFIGS = {
    "paper": dict(learning_rate=0.01, weight_decay=0.01,
                  exclude_from_weight_decay=["bias", "gamma", "beta"]),
    # Gradients well above norm 1: the clip must see the gradient summed over replicas.
    "nvlamb": dict(learning_rate=0.01, weight_decay=0.01, nvlamb=True),
}


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3 * GLOBAL_BATCH, 5)).astype("float32")
    return x, (10.0 * x @ rng.normal(size=(5, 2))).astype("float32")


def train(keras_module, optimizer_class, config, strategy):
    with strategy.scope():
        keras_module.utils.set_random_seed(0)
        model = keras_module.Sequential([
            keras_module.Input((5,)), keras_module.layers.Dense(4, activation="tanh"),
            keras_module.layers.LayerNormalization(), keras_module.layers.Dense(2)])
        model.compile(optimizer_class(**config), loss="mse")
    x, y = data()
    model.fit(x, y, batch_size=GLOBAL_BATCH, epochs=2, shuffle=False, verbose=0)
    return [np.array(w) for w in model.get_weights()]


def main():
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert mirrored.num_replicas_in_sync == 2
    failures = 0
    for flavour, keras_module in (("keras3", keras), ("tf_keras", tf_keras)):
        optimizer_class = getattr(lamb_tf, flavour).LAMB
        for name, config in CONFIGS.items():
            single = train(keras_module, optimizer_class, config, tf.distribute.get_strategy())
            replicated = train(keras_module, optimizer_class, config, mirrored)
            error = max(np.max(np.abs(a - b)) for a, b in zip(single, replicated))
            moved = max(np.max(np.abs(a)) for a in single)
            ok = error <= 1e-5 * max(moved, 1.0)
            failures += not ok
            print(f"{'ok' if ok else 'MISMATCH'} {flavour} {name} max_abs_error={error:.3g}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
