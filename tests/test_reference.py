"""LAMB/LARS of both Keras flavours against the float64 reference, and their Keras integration.

Each test taking `flavour` runs once for `lamb_tf.keras3` and once for `lamb_tf.tf_keras`; what
only one flavour has is tested below under that flavour's name. The Keras 3 tests are
backend-agnostic: test_jax_backend.py runs this module under KERAS_BACKEND=jax with TensorFlow
blocked, where the tf_keras tests and anything needing `tf.function` skip.
"""

import copy
import dataclasses
import functools
from types import ModuleType
from typing import Callable

import keras
import numpy as np
import pytest

import cases
from lamb_tf import layerwise


@dataclasses.dataclass(frozen=True)
class Flavour:
    """One Keras flavour: its optimizers, its Keras, and how it makes and reads tensors."""

    module: ModuleType           # lamb_tf.keras3 or lamb_tf.tf_keras
    keras: ModuleType            # keras (3) or tf_keras
    variable: Callable           # (value, name, dtype=None) -> a variable
    tensor: Callable             # (value, dtype=None) -> a tensor
    numpy: Callable              # tensor or variable -> NumPy, as float32
    dtype: Callable              # tensor or variable -> its dtype's name

    @property
    def LAMB(self):
        return self.module.LAMB

    @property
    def LARS(self):
        return self.module.LARS

    @property
    def Schedule(self):
        return self.keras.optimizers.schedules.ExponentialDecay


def keras3_flavour():
    from lamb_tf import keras3

    ops = keras.ops
    return Flavour(
        module=keras3, keras=keras,
        variable=lambda value, name, dtype=None: keras.Variable(value, dtype=dtype, name=name),
        tensor=lambda value, dtype=None: ops.convert_to_tensor(value, dtype=dtype),
        numpy=lambda x: ops.convert_to_numpy(ops.cast(x, "float32")),
        dtype=lambda x: keras.backend.standardize_dtype(x.dtype))


def tf_keras_flavour():
    tf = pytest.importorskip("tensorflow")
    tf_keras = pytest.importorskip("tf_keras")
    from lamb_tf import tf_keras as module

    return Flavour(
        module=module, keras=tf_keras,
        variable=lambda value, name, dtype=None: tf.Variable(
            tf.cast(value, dtype or tf.float32), name=name),
        tensor=lambda value, dtype=None: tf.cast(tf.constant(value), dtype or tf.float32),
        numpy=lambda x: tf.cast(x, tf.float32).numpy(),
        dtype=lambda x: x.dtype.name)


FLAVOURS = {"lamb_tf.keras3": keras3_flavour, "lamb_tf.tf_keras": tf_keras_flavour}


@pytest.fixture(params=list(FLAVOURS))
def flavour(request):
    return FLAVOURS[request.param]()


def xla_compiled(flavour, function):
    """`function` as one XLA-compiled `tf.function`."""
    if flavour.keras is keras and keras.backend.backend() != "tensorflow":
        pytest.skip("XLA through tf.function needs the TensorFlow backend")
    import tensorflow as tf

    return tf.function(function, jit_compile=True)


def make_variables(flavour):
    return [flavour.variable(value, name)
            for name, value in zip(cases.VARIABLES, cases.initial_values())]


def run_trajectory(flavour, optimizer, steps=cases.STEPS, xla=False):
    """The variables after each step of `cases.gradients()`, applied eagerly or in XLA."""
    variables = make_variables(flavour)
    optimizer.build(variables)

    def apply(grads):
        optimizer.apply_gradients(zip(grads, variables))

    if xla:
        apply = xla_compiled(flavour, apply)
    history = []
    for grads in cases.gradients()[:steps]:
        apply([flavour.tensor(g) for g in grads])
        history.append([flavour.numpy(v) for v in variables])
    return history


# ----- against the float64 reference -----

@pytest.mark.parametrize("name", sorted(cases.LAMB_CASES))
def test_lamb_matches_reference(flavour, name):
    case = cases.LAMB_CASES[name]
    optimizer = flavour.LAMB(**cases.optimizer_kwargs(case, flavour.Schedule))
    cases.assert_trajectory_matches(run_trajectory(flavour, optimizer),
                                    cases.expected("lamb", case))


@pytest.mark.parametrize("name", sorted(cases.LARS_CASES))
def test_lars_matches_reference(flavour, name):
    case = cases.LARS_CASES[name]
    optimizer = flavour.LARS(**cases.optimizer_kwargs(case, flavour.Schedule))
    cases.assert_trajectory_matches(run_trajectory(flavour, optimizer),
                                    cases.expected("lars", case))


@pytest.mark.parametrize("name", ["decay_bert_exclusions", "nvlamb", "phi_bounds"])
def test_xla_tf_function_matches_reference(flavour, name):
    case = cases.LAMB_CASES[name]
    optimizer = flavour.LAMB(**cases.optimizer_kwargs(case, flavour.Schedule))
    cases.assert_trajectory_matches(run_trajectory(flavour, optimizer, xla=True),
                                    cases.expected("lamb", case))


def test_lars_under_xla_matches_reference(flavour):
    case = cases.LARS_CASES["lars_decay_bert_exclusions"]
    optimizer = flavour.LARS(**cases.optimizer_kwargs(case, flavour.Schedule))
    cases.assert_trajectory_matches(run_trajectory(flavour, optimizer, xla=True),
                                    cases.expected("lars", case))


def test_hand_computed_first_step(flavour):
    # x = (3, 4), g = (1, -1): m̂ = g, v̂ = g², r = g/(1+ε); ‖x‖ = 5, ‖r‖ = √2/(1+ε),
    # so x1 = x - η·5/√2·(1, -1) exactly, whatever ε.
    x = flavour.variable(np.array([3.0, 4.0], np.float32), "w")
    optimizer = flavour.LAMB(learning_rate=0.1)
    optimizer.apply_gradients([(flavour.tensor(np.array([1.0, -1.0], np.float32)), x)])
    step = 0.1 * 5 / np.sqrt(2)
    np.testing.assert_allclose(flavour.numpy(x), [3 - step, 4 + step], rtol=1e-6)


@pytest.mark.parametrize("phi_min", [None, 0.5])
def test_hand_computed_first_step_of_a_zero_variable(flavour, phi_min):
    # x = 0, g = (1, -1, 0): r = g/(|g|+ε) = (1, -1, 0)/(1+ε), ‖r‖ = √2/(1+ε). The paper's
    # φ(0) = phi_min gives ratio phi_min·(1+ε)/√2, so x1 = -η·phi_min/√2·(1, -1, 0) exactly;
    # without phi_min the ratio is 1 and x1 = -η·(1, -1, 0)/(1+ε).
    x = flavour.variable(np.zeros(3, np.float32), "w")
    optimizer = flavour.LAMB(learning_rate=0.1, phi_min=phi_min)
    optimizer.apply_gradients([(flavour.tensor(np.array([1.0, -1.0, 0.0], np.float32)), x)])
    step = 0.1 * phi_min / np.sqrt(2) if phi_min else 0.1 / (1 + 1e-6)
    # Without the ratio's normalisation the step keeps float32's 1 - β₂ (β₂ = 0.99900001): √v̂ is
    # 1 + 6e-6 rather than 1.
    np.testing.assert_allclose(flavour.numpy(x), [-step, step, 0.0], rtol=1e-6 if phi_min else 1e-5)


def test_callable_learning_rate(flavour):
    """A no-argument callable is called for each step's rate: the hand-computed step at 0.1,
    then no change at 0."""
    rate = flavour.variable(np.float32(0.1), "rate")
    x = flavour.variable(np.array([3.0, 4.0], np.float32), "w")
    optimizer = flavour.LAMB(learning_rate=lambda: rate * 1.0)
    grad = flavour.tensor(np.array([1.0, -1.0], np.float32))
    optimizer.apply_gradients([(grad, x)])
    step = 0.1 * 5 / np.sqrt(2)
    np.testing.assert_allclose(flavour.numpy(x), [3 - step, 4 + step], rtol=1e-6)
    rate.assign(0.0)
    optimizer.apply_gradients([(grad, x)])
    np.testing.assert_allclose(flavour.numpy(x), [3 - step, 4 + step], rtol=1e-6)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_variables_update_in_float32(flavour, dtype):
    """The variable keeps its dtype and takes the hand-computed step, which needs the moments of
    a 1e-4 gradient (its square underflows float16) computed in float32."""
    x = flavour.variable(np.array([3.0, 4.0], np.float32), "w", dtype)
    optimizer = flavour.LAMB(learning_rate=0.1)
    grad = flavour.tensor(np.array([1e-4, -1e-4], np.float32), dtype)
    optimizer.apply_gradients([(grad, x)])
    step = 0.1 * 5 / np.sqrt(2)
    assert flavour.dtype(x) == dtype
    np.testing.assert_allclose(flavour.numpy(x), [3 - step, 4 + step], rtol=1e-2)


def test_keras_exclude_from_weight_decay_method_still_works(flavour):
    case = cases.LAMB_CASES["decay_bert_exclusions"]
    optimizer = flavour.LAMB(learning_rate=cases.LEARNING_RATE, weight_decay=0.01)
    optimizer.exclude_from_weight_decay(var_names=["LayerNorm", "bias"])
    cases.assert_trajectory_matches(run_trajectory(flavour, optimizer),
                                    cases.expected("lamb", case))


@pytest.mark.parametrize("algorithm", ["LAMB", "LARS"])
def test_stacked_small_variables_equal_one_by_one(flavour, algorithm, monkeypatch):
    rng = np.random.default_rng(7)
    values = [rng.normal(size=(16,)).astype("float32") for _ in range(5)]
    values.append(np.zeros(16, "float32"))  # ratio 1 inside a stack
    grads = [[rng.normal(size=(16,)).astype("float32") for _ in values] for _ in range(5)]

    def run(max_stacked_size):
        monkeypatch.setattr(layerwise, "MAX_STACKED_SIZE", max_stacked_size)
        variables = [flavour.variable(v, f"w{i}") for i, v in enumerate(values)]
        optimizer = getattr(flavour, algorithm)(learning_rate=0.01, weight_decay=0.01,
                                                record_trust_ratios=True)
        for step_grads in grads:
            optimizer.apply_gradients(zip([flavour.tensor(g) for g in step_grads], variables))
        assert len(optimizer._stacks) == (1 if max_stacked_size else 0)
        return [flavour.numpy(v) for v in variables], optimizer.trust_ratios()

    stacked, stacked_ratios = run(1 << 16)
    one_by_one, ratios = run(0)
    for a, b in zip(stacked, one_by_one):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert stacked_ratios.keys() == ratios.keys() and len(ratios) == len(values)
    for path in ratios:
        np.testing.assert_allclose(dataclasses.astuple(stacked_ratios[path]),
                                   dataclasses.astuple(ratios[path]), rtol=1e-6)


# ----- variable paths and diagnostics -----

def test_plans_follow_the_variable_path(flavour):
    """Patterns are searched in the variable's path; tf_keras names end in an output index
    (`dense_bias:0`) that the path drops, so an anchored pattern still matches."""
    optimizer = flavour.LAMB(weight_decay=0.01, exclude_from_weight_decay=["^dense_bias$"],
                             record_trust_ratios=True)
    run_trajectory(flavour, optimizer, steps=1)
    plans = {plan.path: plan for plan in optimizer._plans}
    assert set(plans) == set(cases.VARIABLES)
    assert plans["dense_bias"].weight_decay == 0.0
    assert plans["dense_kernel"].weight_decay == 0.01
    assert "dense_kernel" in optimizer.trust_ratios()


def test_trust_ratios_are_recorded(flavour):
    optimizer = flavour.LAMB(learning_rate=0.01, weight_decay=0.01,
                             exclude_from_weight_decay=["bias"], record_trust_ratios=True)
    run_trajectory(flavour, optimizer, steps=1)
    ratios = optimizer.trust_ratios()
    assert "dense_bias" not in ratios and "dense_kernel" in ratios
    kernel = ratios["dense_kernel"]
    x0 = cases.initial_values()[0]
    assert kernel.x_norm == pytest.approx(np.linalg.norm(x0), rel=1e-5)
    assert kernel.ratio == pytest.approx(kernel.x_norm / kernel.update_norm, rel=1e-5)
    assert ratios["zero_init_kernel"].ratio == 1.0


# ----- model.fit, saving -----

def build_model(flavour, seed=3):
    k = flavour.keras
    k.utils.set_random_seed(seed)
    return k.Sequential([k.Input((6,)), k.layers.Dense(8, activation="tanh"),
                         k.layers.LayerNormalization(), k.layers.Dense(1)])


def regression_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 6)).astype("float32")
    return x, (x @ rng.normal(size=(6, 1))).astype("float32")


@functools.cache
def lamb_fit(flavour_name, jit):
    """Loss per epoch and final weights of six epochs of LAMB (with the usual exclusions);
    computed once per flavour and jit_compile setting for the tests that read them."""
    flavour = FLAVOURS[flavour_name]()
    model = build_model(flavour)
    model.compile(flavour.LAMB(learning_rate=0.02, weight_decay=0.01,
                               exclude_from_weight_decay=["bias", "gamma", "beta"]),
                  loss="mse", jit_compile=jit)
    x, y = regression_data()
    history = model.fit(x, y, batch_size=32, epochs=6, shuffle=False, verbose=0)
    return history.history["loss"], [flavour.numpy(w) for w in model.weights]


@pytest.mark.parametrize("jit", [False, True])
def test_fit_lowers_loss_with_and_without_xla(flavour, jit):
    loss, _ = lamb_fit(flavour.module.__name__, jit)
    assert loss[-1] < 0.5 * loss[0], loss


def test_jit_compiled_fit_matches_eager_fit(flavour):
    _, weights_jit = lamb_fit(flavour.module.__name__, True)
    _, weights_eager = lamb_fit(flavour.module.__name__, False)
    assert len(weights_jit) == len(weights_eager) == 6
    for a, b in zip(weights_jit, weights_eager):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_lars_fit_lowers_loss(flavour):
    model = build_model(flavour)
    model.compile(flavour.LARS(learning_rate=0.05), loss="mse")
    x, y = regression_data()
    loss = model.fit(x, y, batch_size=32, epochs=10, shuffle=False, verbose=0).history["loss"]
    assert loss[-1] < 0.5 * loss[0], loss


def test_saved_model_reloads_with_optimizer(flavour, tmp_path):
    model = build_model(flavour)
    model.compile(flavour.LAMB(learning_rate=0.02, weight_decay=0.01,
                               exclude_from_weight_decay=["bias"]), loss="mse")
    x, y = regression_data()
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = flavour.keras.models.load_model(path)
    assert isinstance(restored.optimizer, flavour.LAMB)
    assert restored.optimizer.get_config() == model.optimizer.get_config()
    restored.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), restored.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


# ----- configs -----

@pytest.mark.parametrize("clip", [{"clipnorm": 2.0}, {"global_clipnorm": 1.5}],
                         ids=["clipnorm", "global_clipnorm"])
def test_config_round_trip_keeps_every_argument(flavour, clip):
    schedule = flavour.keras.optimizers.schedules.PolynomialDecay(0.01, 100,
                                                                  end_learning_rate=0.0)
    optimizer = flavour.LAMB(learning_rate=schedule, beta_1=0.8, beta_2=0.99, epsilon=1e-5,
                             weight_decay=0.02, exclude_from_weight_decay=["bias", "LayerNorm"],
                             exclude_from_layer_adaptation=["embeddings"],
                             bias_correction=False, phi_min=0.1, phi_max=10.0,
                             min_trust_ratio=0.01, max_trust_ratio=5.0,
                             record_trust_ratios=True, name="my_lamb", **clip)
    config = optimizer.get_config()
    clone = flavour.LAMB.from_config(copy.deepcopy(config))
    assert clone.get_config() == config
    assert config["exclude_from_weight_decay"] == ["bias", "LayerNorm"]
    assert config["exclude_from_layer_adaptation"] == ["embeddings"]
    assert config["weight_decay"] == 0.02 and config["bias_correction"] is False
    assert config["phi_min"] == 0.1 and config["max_trust_ratio"] == 5.0
    assert config["name"] == "my_lamb"
    for name, value in clip.items():
        assert config[name] == value
    revived = flavour.keras.optimizers.deserialize(flavour.keras.optimizers.serialize(optimizer))
    assert type(revived) is flavour.LAMB and revived.get_config() == config


def test_nvlamb_round_trip(flavour):
    optimizer = flavour.LAMB(nvlamb=True, weight_decay=0.01, exclude_from_weight_decay=["bias"])
    config = optimizer.get_config()
    assert config["global_clipnorm"] == 1.0 and config["exclude_from_layer_adaptation"] == []
    assert flavour.LAMB.from_config(copy.deepcopy(config)).get_config() == config


@pytest.mark.parametrize("decay_exclusions", [{}, {"exclude_from_weight_decay": ["bias"]}],
                         ids=["default_exclusions", "bias_excluded"])
def test_lars_config_round_trip(flavour, decay_exclusions):
    optimizer = flavour.LARS(learning_rate=0.1, momentum=0.8, weight_decay=1e-4,
                             exclude_from_layer_adaptation=[], phi_max=3.0, **decay_exclusions)
    config = optimizer.get_config()
    assert config["momentum"] == 0.8 and config["exclude_from_layer_adaptation"] == []
    if decay_exclusions:
        assert config["exclude_from_weight_decay"] == ["bias"]
    assert flavour.LARS.from_config(copy.deepcopy(config)).get_config() == config
    revived = flavour.keras.optimizers.deserialize(flavour.keras.optimizers.serialize(optimizer))
    assert type(revived) is flavour.LARS and revived.get_config() == config


# ----- Keras 3 only -----

def test_reference_tells_keras_lamb_apart():
    """Keras' own Lamb decays outside the ratio: the reference must reject it (test can fail)."""
    case = cases.LAMB_CASES["decay_everywhere"]
    optimizer = keras.optimizers.Lamb(learning_rate=cases.LEARNING_RATE, weight_decay=0.01,
                                      epsilon=1e-6)
    with pytest.raises(AssertionError, match="relative error"):
        cases.assert_trajectory_matches(run_trajectory(keras3_flavour(), optimizer),
                                        cases.expected("lamb", case))


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


def test_keras3_loss_scale_optimizer_skips_non_finite_steps():
    from lamb_tf.keras3 import LAMB

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


# ----- tf_keras only -----

@pytest.mark.parametrize("name", ["defaults", "decay_bert_exclusions", "adaptation_explicit"])
def test_tf_keras_agrees_with_model_garden_lamb(name):
    """A second, independent implementation of Algorithm 2 (Model Garden's legacy LAMB)."""
    flavour = tf_keras_flavour()
    from official.modeling.optimization import lamb as model_garden

    case = dict(cases.LAMB_CASES[name])
    ours = run_trajectory(flavour, flavour.LAMB(**cases.optimizer_kwargs(case, flavour.Schedule)))
    garden = model_garden.LAMB(
        cases.LEARNING_RATE, weight_decay_rate=case.get("weight_decay", 0.0),
        exclude_from_weight_decay=case.get("exclude_from_weight_decay"),
        exclude_from_layer_adaptation=case.get("exclude_from_layer_adaptation"))
    variables = make_variables(flavour)
    theirs = []
    for grads in cases.gradients():
        garden.apply_gradients(zip([flavour.tensor(g) for g in grads], variables))
        theirs.append([np.float64(flavour.numpy(v)) for v in variables])
    cases.assert_trajectory_matches(ours, theirs)


def test_tf_keras_a_variable_it_was_not_built_for_is_a_clear_error():
    flavour = tf_keras_flavour()
    optimizer = flavour.LAMB(learning_rate=0.01)
    optimizer.build([flavour.variable(np.array([1.0, 2.0], np.float32), "known")])
    with pytest.raises(KeyError, match="built for other variables than stranger"):
        optimizer.apply_gradients([(flavour.tensor(np.array([1.0], np.float32)),
                                    flavour.variable(np.array([3.0], np.float32), "stranger"))])
