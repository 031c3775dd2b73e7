"""Keras 3 LAMB/LARS against the float64 reference; backend-agnostic (TensorFlow and JAX).

test_jax_backend.py runs this same module under KERAS_BACKEND=jax with TensorFlow blocked.
"""

import copy
import dataclasses

import keras
import numpy as np
import pytest

import cases
from lamb_tf import options
from lamb_tf.keras3 import LAMB, LARS


def run_trajectory(optimizer, steps=cases.STEPS):
    variables = [keras.Variable(value, name=name)
                 for name, value in zip(cases.VARIABLES, cases.initial_values())]
    optimizer.build(variables)
    history = []
    for grads in cases.gradients()[:steps]:
        optimizer.apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in grads], variables))
        history.append([keras.ops.convert_to_numpy(v) for v in variables])
    return history


@pytest.mark.parametrize("name", sorted(cases.LAMB_CASES))
def test_lamb_matches_reference(name):
    case = cases.LAMB_CASES[name]
    optimizer = LAMB(**cases.optimizer_kwargs(case, keras.optimizers.schedules.ExponentialDecay))
    cases.assert_trajectory_matches(run_trajectory(optimizer), cases.expected("lamb", case))


@pytest.mark.parametrize("name", sorted(cases.LARS_CASES))
def test_lars_matches_reference(name):
    case = cases.LARS_CASES[name]
    optimizer = LARS(**cases.optimizer_kwargs(case, keras.optimizers.schedules.ExponentialDecay))
    cases.assert_trajectory_matches(run_trajectory(optimizer), cases.expected("lars", case))


def test_hand_computed_first_step():
    # x = (3, 4), g = (1, -1): m̂ = g, v̂ = g², r = g/(1+ε); ‖x‖ = 5, ‖r‖ = √2/(1+ε),
    # so x1 = x - η·5/√2·(1, -1) exactly, whatever ε.
    x = keras.Variable(np.array([3.0, 4.0], np.float32), name="w")
    optimizer = LAMB(learning_rate=0.1)
    optimizer.apply_gradients([(keras.ops.convert_to_tensor(np.array([1.0, -1.0], "float32")), x)])
    step = 0.1 * 5 / np.sqrt(2)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(x), [3 - step, 4 + step], rtol=1e-6)


def test_reference_tells_keras_lamb_apart():
    """Keras' own Lamb decays outside the ratio: the reference must reject it (test can fail)."""
    case = cases.LAMB_CASES["decay_everywhere"]
    optimizer = keras.optimizers.Lamb(learning_rate=cases.LEARNING_RATE, weight_decay=0.01,
                                      epsilon=1e-6)
    with pytest.raises(AssertionError, match="relative error"):
        cases.assert_trajectory_matches(run_trajectory(optimizer), cases.expected("lamb", case))


def test_trust_ratios_are_recorded():
    optimizer = LAMB(learning_rate=0.01, weight_decay=0.01, exclude_from_weight_decay=["bias"],
                     record_trust_ratios=True)
    run_trajectory(optimizer, steps=1)
    ratios = optimizer.trust_ratios()
    assert "dense_bias" not in ratios and "dense_kernel" in ratios
    kernel = ratios["dense_kernel"]
    x0 = cases.initial_values()[0]
    assert kernel.x_norm == pytest.approx(np.linalg.norm(x0), rel=1e-5)
    assert kernel.ratio == pytest.approx(kernel.x_norm / kernel.update_norm, rel=1e-5)
    assert ratios["zero_init_kernel"].ratio == 1.0


def test_jit_compiled_fit_matches_eager_fit():
    def fit(jit):
        keras.utils.set_random_seed(3)
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="tanh"),
                                  keras.layers.LayerNormalization(), keras.layers.Dense(1)])
        model.compile(LAMB(learning_rate=0.02, weight_decay=0.01,
                           exclude_from_weight_decay=["bias", "gamma", "beta"]),
                      loss="mse", jit_compile=jit)
        rng = np.random.default_rng(0)
        x = rng.normal(size=(128, 6)).astype("float32")
        y = (x @ rng.normal(size=(6, 1))).astype("float32")
        history = model.fit(x, y, batch_size=32, epochs=6, shuffle=False, verbose=0)
        return history.history["loss"], [keras.ops.convert_to_numpy(w) for w in model.weights]

    loss_jit, weights_jit = fit(True)
    loss_eager, weights_eager = fit(False)
    assert loss_jit[-1] < 0.5 * loss_jit[0], loss_jit
    for a, b in zip(weights_jit, weights_eager):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_lars_fit_lowers_loss():
    keras.utils.set_random_seed(4)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(LARS(learning_rate=0.1, momentum=0.9), loss="mse")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x @ np.array([[1.0], [-2.0], [0.5], [3.0]])).astype("float32")
    loss = model.fit(x, y, batch_size=16, epochs=12, verbose=0).history["loss"]
    assert loss[-1] < 0.5 * loss[0], loss


def test_config_round_trip_keeps_every_argument():
    schedule = keras.optimizers.schedules.PolynomialDecay(0.01, 100, end_learning_rate=0.0)
    optimizer = LAMB(learning_rate=schedule, beta_1=0.8, beta_2=0.99, epsilon=1e-5,
                     weight_decay=0.02, exclude_from_weight_decay=["bias", "LayerNorm"],
                     exclude_from_layer_adaptation=["embeddings"], bias_correction=False,
                     phi_min=0.1, phi_max=10.0, min_trust_ratio=0.01, max_trust_ratio=5.0,
                     record_trust_ratios=True, clipnorm=2.0, name="my_lamb")
    config = optimizer.get_config()
    clone = LAMB.from_config(copy.deepcopy(config))
    assert clone.get_config() == config
    assert config["exclude_from_weight_decay"] == ["bias", "LayerNorm"]
    assert config["exclude_from_layer_adaptation"] == ["embeddings"]
    assert config["weight_decay"] == 0.02 and config["clipnorm"] == 2.0
    revived = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(revived) is LAMB and revived.get_config() == config


def test_nvlamb_round_trip():
    optimizer = LAMB(nvlamb=True, weight_decay=0.01, exclude_from_weight_decay=["bias"])
    config = optimizer.get_config()
    assert config["global_clipnorm"] == 1.0 and config["exclude_from_layer_adaptation"] == []
    assert LAMB.from_config(copy.deepcopy(config)).get_config() == config


def test_lars_config_round_trip():
    optimizer = LARS(learning_rate=0.1, momentum=0.8, weight_decay=1e-4,
                     exclude_from_weight_decay=["bias"], exclude_from_layer_adaptation=[],
                     phi_max=3.0)
    config = optimizer.get_config()
    assert LARS.from_config(copy.deepcopy(config)).get_config() == config


def test_keras_exclude_from_weight_decay_method_still_works():
    case = cases.LAMB_CASES["decay_bert_exclusions"]
    optimizer = LAMB(learning_rate=cases.LEARNING_RATE, weight_decay=0.01)
    optimizer.exclude_from_weight_decay(var_names=["LayerNorm", "bias"])
    cases.assert_trajectory_matches(run_trajectory(optimizer), cases.expected("lamb", case))


def test_low_precision_variables_update_in_float32():
    for dtype in ("float16", "bfloat16"):
        x = keras.Variable(np.array([3.0, 4.0], np.float32), dtype=dtype, name="w")
        optimizer = LAMB(learning_rate=0.1)
        grad = keras.ops.convert_to_tensor(np.array([1e-4, -1e-4], np.float32), dtype=dtype)
        optimizer.apply_gradients([(grad, x)])
        step = 0.1 * 5 / np.sqrt(2)
        assert keras.backend.standardize_dtype(x.dtype) == dtype
        np.testing.assert_allclose(keras.ops.convert_to_numpy(keras.ops.cast(x, "float32")),
                                   [3 - step, 4 + step], rtol=1e-2)


def apply_like_fit(optimizer, grads_and_vars):
    """Stateful apply, or on JAX the stateless apply that model.fit uses (Keras' JAX
    LossScaleOptimizer only works there)."""
    if keras.backend.backend() != "jax":
        return optimizer.apply_gradients(grads_and_vars)
    grads, variables = zip(*grads_and_vars)
    new_values, new_state = optimizer.stateless_apply(
        [v.value for v in optimizer.variables], list(grads), [v.value for v in variables])
    for variable, value in zip(list(variables) + list(optimizer.variables),
                               list(new_values) + list(new_state)):
        variable.assign(value)


def test_loss_scale_optimizer_skips_non_finite_steps():
    x = keras.Variable(np.array([3.0, 4.0], np.float32), name="w")
    optimizer = keras.optimizers.LossScaleOptimizer(LAMB(learning_rate=0.1))
    optimizer.build([x])
    scale = keras.ops.convert_to_numpy(optimizer.dynamic_scale)
    good = keras.ops.convert_to_tensor(np.array([1.0, -1.0], np.float32) * scale)
    apply_like_fit(optimizer, [(good, x)])
    x_before = keras.ops.convert_to_numpy(x)
    step = 0.1 * 5 / np.sqrt(2)
    np.testing.assert_allclose(x_before, [3 - step, 4 + step], rtol=1e-5)
    slots_before = [keras.ops.convert_to_numpy(v) for v in optimizer.inner_optimizer.variables]
    bad = keras.ops.convert_to_tensor(np.array([np.nan, np.inf], np.float32))
    apply_like_fit(optimizer, [(bad, x)])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(x), x_before)
    slots_after = [keras.ops.convert_to_numpy(v) for v in optimizer.inner_optimizer.variables]
    for before, after in zip(slots_before, slots_after):
        np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("optimizer_class", [LAMB, LARS])
def test_stacked_small_variables_equal_one_by_one(optimizer_class, monkeypatch):
    rng = np.random.default_rng(7)
    values = [rng.normal(size=(16,)).astype("float32") for _ in range(5)]
    values.append(np.zeros(16, "float32"))  # ratio 1 inside a stack
    grads = [[rng.normal(size=(16,)).astype("float32") for _ in values] for _ in range(5)]

    def run(max_stacked_size):
        monkeypatch.setattr(options, "MAX_STACKED_SIZE", max_stacked_size)
        variables = [keras.Variable(v, name=f"w{i}") for i, v in enumerate(values)]
        optimizer = optimizer_class(learning_rate=0.01, weight_decay=0.01,
                                    record_trust_ratios=True)
        for step_grads in grads:
            optimizer.apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in step_grads],
                                          variables))
        assert len(optimizer._stacks) == (1 if max_stacked_size else 0)
        return [keras.ops.convert_to_numpy(v) for v in variables], optimizer.trust_ratios()

    stacked, stacked_ratios = run(1 << 16)
    one_by_one, ratios = run(0)
    for a, b in zip(stacked, one_by_one):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert stacked_ratios.keys() == ratios.keys()
    for path in ratios:
        np.testing.assert_allclose(dataclasses.astuple(stacked_ratios[path]),
                                   dataclasses.astuple(ratios[path]), rtol=1e-6)
