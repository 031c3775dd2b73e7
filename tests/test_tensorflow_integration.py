"""Both flavours inside TensorFlow: distribution, sparse gradients, checkpoints, saving,
mixed precision, XLA, and which flavour `from lamb_tf import LAMB` picks."""

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import lamb_tf.keras3
import lamb_tf.tf_keras

TESTS = Path(__file__).parent
FLAVOURS = {"keras3": (lamb_tf.keras3, keras), "tf_keras": (lamb_tf.tf_keras, tf_keras)}


def run_python(args, **env):
    return subprocess.run([sys.executable, *args], cwd=TESTS.parent, capture_output=True,
                          text=True, timeout=600, env=dict(os.environ, **env))


def test_mirrored_two_cpus_equals_one_device():
    result = run_python([str(TESTS / "distributed_check.py")])
    checks = [line for line in result.stdout.splitlines() if line.startswith(("ok", "MISMATCH"))]
    assert result.returncode == 0 and len(checks) == 4, result.stdout + result.stderr[-3000:]


@pytest.mark.parametrize("legacy", ["0", "1"])
def test_package_level_lamb_follows_tf_keras(legacy):
    code = ("import lamb_tf, tensorflow as tf, numpy as np\n"
            "model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(1)])\n"
            "model.compile(lamb_tf.LAMB(0.05, weight_decay=0.01), loss='mse')\n"
            "x = np.random.default_rng(0).normal(size=(64, 3)).astype('float32')\n"
            "loss = model.fit(x, x.sum(1), epochs=5, verbose=0).history['loss']\n"
            "assert loss[-1] < loss[0], loss\n"
            "print(lamb_tf.flavour(), lamb_tf.LAMB.__module__, lamb_tf.LARS.__module__)\n")
    result = run_python(["-c", code], TF_USE_LEGACY_KERAS=legacy)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = "tf_keras" if legacy == "1" else "keras3"
    assert result.stdout.split()[-3:] == [expected] + [f"lamb_tf.{expected}"] * 2, result.stdout


def embedding_model(keras_module, seed=0):
    keras_module.utils.set_random_seed(seed)
    return keras_module.Sequential([
        keras_module.Input((3,), dtype="int32"),
        keras_module.layers.Embedding(10, 4),
        keras_module.layers.Flatten(),
        keras_module.layers.Dense(1)])


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_sparse_gradients_equal_dense(flavour):
    module, keras_module = FLAVOURS[flavour]
    ids = tf.constant([[1, 2, 2], [7, 1, 0]])  # repeated rows: IndexedSlices with duplicates
    target = tf.constant([[1.0], [-1.0]])
    results = []
    for densify in (False, True):
        model = embedding_model(keras_module)
        optimizer = module.LAMB(learning_rate=0.05, weight_decay=0.01)
        for _ in range(3):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean((model(ids) - target) ** 2)
            grads = tape.gradient(loss, model.trainable_variables)
            assert isinstance(grads[0], tf.IndexedSlices)
            if densify:
                grads = [tf.convert_to_tensor(g) for g in grads]
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
        results.append([np.array(w) for w in model.get_weights()])
    for sparse, dense in zip(*results):
        np.testing.assert_allclose(sparse, dense, rtol=1e-6, atol=1e-7)


def small_model(keras_module, seed=0):
    keras_module.utils.set_random_seed(seed)
    return keras_module.Sequential([keras_module.Input((4,)), keras_module.layers.Dense(3),
                                    keras_module.layers.Dense(1)])


def batches(count=6):
    rng = np.random.default_rng(5)
    return [(rng.normal(size=(8, 4)).astype("float32"), rng.normal(size=(8, 1)).astype("float32"))
            for _ in range(count)]


def train_steps(model, optimizer, data):
    @tf.function(jit_compile=True)
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((model(x) - y) ** 2)
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables),
                                      model.trainable_variables))

    for x, y in data:
        step(x, y)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_checkpoint_restores_slots_and_continues_identically(flavour, tmp_path):
    module, keras_module = FLAVOURS[flavour]
    make_optimizer = lambda: module.LAMB(learning_rate=0.02, weight_decay=0.01,  # noqa: E731
                                         exclude_from_weight_decay=["bias"])
    data = batches()
    model, optimizer = small_model(keras_module), make_optimizer()
    train_steps(model, optimizer, data[:3])
    path = tf.train.Checkpoint(model=model, optimizer=optimizer).write(str(tmp_path / "ckpt"))
    train_steps(model, optimizer, data[3:])

    restored_model, restored_optimizer = small_model(keras_module, seed=9), make_optimizer()
    restored_optimizer.build(restored_model.trainable_variables)
    tf.train.Checkpoint(model=restored_model, optimizer=restored_optimizer).read(
        path).assert_existing_objects_matched()
    assert int(restored_optimizer.iterations.numpy()) == 3
    assert any(np.abs(np.array(v)).sum() > 0 for v in restored_optimizer.variables
               if len(np.shape(v)) > 0)  # the moments came back, not zeros
    train_steps(restored_model, restored_optimizer, data[3:])
    for a, b in zip(model.get_weights(), restored_model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_keras3_model_save_reloads_optimizer(tmp_path):
    model = small_model(keras)
    model.compile(lamb_tf.keras3.LAMB(learning_rate=0.02, weight_decay=0.01,
                                      exclude_from_weight_decay=["bias"]), loss="mse")
    (x, y), (x2, y2) = batches(2)
    model.fit(x, y, verbose=0)
    model.save(tmp_path / "model.keras")
    restored = keras.models.load_model(tmp_path / "model.keras")
    assert isinstance(restored.optimizer, lamb_tf.keras3.LAMB)
    assert restored.optimizer.get_config() == model.optimizer.get_config()
    model.fit(x2, y2, verbose=0, shuffle=False)
    restored.fit(x2, y2, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), restored.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_fit_lowers_loss(flavour, policy):
    module, keras_module = FLAVOURS[flavour]
    mixed_precision = keras_module.mixed_precision
    mixed_precision.set_global_policy(policy)
    try:
        model = small_model(keras_module)
        model.compile(module.LAMB(learning_rate=0.05, weight_decay=0.01), loss="mse")
        if policy == "mixed_float16":
            assert isinstance(model.optimizer, mixed_precision.LossScaleOptimizer)
        rng = np.random.default_rng(0)
        x = rng.normal(size=(64, 4)).astype("float32")
        y = x @ np.array([[1.0], [2.0], [-1.0], [0.5]], "float32")
        loss = model.fit(x, y, batch_size=16, epochs=6, verbose=0).history["loss"]
    finally:
        mixed_precision.set_global_policy("float32")
    assert np.isfinite(loss).all() and loss[-1] < 0.6 * loss[0], loss


def test_tf_keras_loss_scale_optimizer_skips_non_finite_steps():
    x = tf.Variable([3.0, 4.0])
    optimizer = tf_keras.mixed_precision.LossScaleOptimizer(lamb_tf.tf_keras.LAMB(0.1))
    inner = optimizer.inner_optimizer
    optimizer.apply_gradients([(tf.constant([1.0, -1.0]), x)])  # unscaled, as the API expects
    step = 0.1 * 5 / np.sqrt(2)
    np.testing.assert_allclose(x.numpy(), [3 - step, 4 + step], rtol=1e-5)
    slots = [v.numpy() for v in inner._slots[0] + inner._slots[1]]
    optimizer.apply_gradients([(tf.constant([np.nan, np.inf]), x)])
    np.testing.assert_allclose(x.numpy(), [3 - step, 4 + step], rtol=1e-5)
    for before, after in zip(slots, inner._slots[0] + inner._slots[1]):
        np.testing.assert_array_equal(before, after.numpy())


def test_tf_keras_low_precision_variables():
    for dtype in (tf.float16, tf.bfloat16):
        x = tf.Variable(tf.constant([3.0, 4.0], dtype))
        lamb_tf.tf_keras.LAMB(0.1).apply_gradients([(tf.constant([1e-4, -1e-4], dtype), x)])
        step = 0.1 * 5 / np.sqrt(2)
        assert x.dtype == dtype
        np.testing.assert_allclose(tf.cast(x, tf.float32).numpy(), [3 - step, 4 + step],
                                   rtol=1e-2)
