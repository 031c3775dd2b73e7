"""tf_keras (Keras 2) LAMB/LARS against the float64 reference, and tf_keras integration."""

import copy

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import cases
from lamb_tf.tf_keras import LAMB, LARS

Schedule = tf_keras.optimizers.schedules.ExponentialDecay


def make_variables():
    return [tf.Variable(value, name=name)
            for name, value in zip(cases.VARIABLES, cases.initial_values())]


def run_trajectory(optimizer, steps=cases.STEPS, xla=False):
    variables = make_variables()
    optimizer.build(variables)

    def apply(grads):
        optimizer.apply_gradients(zip(grads, variables))

    if xla:
        apply = tf.function(apply, jit_compile=True)
    history = []
    for grads in cases.gradients()[:steps]:
        apply([tf.constant(g) for g in grads])
        history.append([v.numpy() for v in variables])
    return history


@pytest.mark.parametrize("name", sorted(cases.LAMB_CASES))
def test_lamb_matches_reference(name):
    case = cases.LAMB_CASES[name]
    optimizer = LAMB(**cases.optimizer_kwargs(case, Schedule))
    cases.assert_trajectory_matches(run_trajectory(optimizer), cases.expected("lamb", case))


@pytest.mark.parametrize("name", sorted(cases.LARS_CASES))
def test_lars_matches_reference(name):
    case = cases.LARS_CASES[name]
    optimizer = LARS(**cases.optimizer_kwargs(case, Schedule))
    cases.assert_trajectory_matches(run_trajectory(optimizer), cases.expected("lars", case))


@pytest.mark.parametrize("name", ["decay_bert_exclusions", "nvlamb", "phi_bounds"])
def test_xla_tf_function_matches_reference(name):
    case = cases.LAMB_CASES[name]
    optimizer = LAMB(**cases.optimizer_kwargs(case, Schedule))
    cases.assert_trajectory_matches(run_trajectory(optimizer, xla=True),
                                    cases.expected("lamb", case))


def test_lars_under_xla_matches_reference():
    case = cases.LARS_CASES["lars_decay_bert_exclusions"]
    optimizer = LARS(**cases.optimizer_kwargs(case, Schedule))
    cases.assert_trajectory_matches(run_trajectory(optimizer, xla=True),
                                    cases.expected("lars", case))


def test_paths_drop_the_output_index():
    optimizer = LAMB(weight_decay=0.01, exclude_from_weight_decay=["^dense_bias$"],
                     record_trust_ratios=True)
    run_trajectory(optimizer, steps=1)
    plans = {plan.path: plan for plan in optimizer._plans}
    assert plans["dense_bias"].weight_decay == 0.0
    assert plans["dense_kernel"].weight_decay == 0.01
    assert "dense_kernel" in optimizer.trust_ratios()


def build_model(seed=3):
    tf_keras.utils.set_random_seed(seed)
    return tf_keras.Sequential([
        tf_keras.layers.Dense(8, activation="tanh", input_shape=(6,)),
        tf_keras.layers.LayerNormalization(),
        tf_keras.layers.Dense(1)])


def regression_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 6)).astype("float32")
    return x, (x @ rng.normal(size=(6, 1))).astype("float32")


@pytest.mark.parametrize("jit", [False, True])
def test_fit_lowers_loss_with_and_without_xla(jit):
    model = build_model()
    model.compile(LAMB(learning_rate=0.02, weight_decay=0.01,
                       exclude_from_weight_decay=["bias", "gamma", "beta"]),
                  loss="mse", jit_compile=jit)
    x, y = regression_data()
    loss = model.fit(x, y, batch_size=32, epochs=6, shuffle=False, verbose=0).history["loss"]
    assert loss[-1] < 0.5 * loss[0], loss


def test_xla_fit_equals_plain_fit():
    weights = []
    for jit in (False, True):
        model = build_model()
        model.compile(LAMB(learning_rate=0.02, weight_decay=0.01), loss="mse", jit_compile=jit)
        x, y = regression_data()
        model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_lars_fit_lowers_loss():
    model = build_model()
    model.compile(LARS(learning_rate=0.05), loss="mse")
    x, y = regression_data()
    loss = model.fit(x, y, batch_size=32, epochs=10, shuffle=False, verbose=0).history["loss"]
    assert loss[-1] < 0.5 * loss[0], loss


def test_config_round_trip_keeps_every_argument():
    schedule = tf_keras.optimizers.schedules.PolynomialDecay(0.01, 100, end_learning_rate=0.0)
    optimizer = LAMB(learning_rate=schedule, beta_1=0.8, beta_2=0.99, epsilon=1e-5,
                     weight_decay=0.02, exclude_from_weight_decay=["bias", "LayerNorm"],
                     exclude_from_layer_adaptation=["embeddings"], bias_correction=False,
                     phi_min=0.1, phi_max=10.0, min_trust_ratio=0.01, max_trust_ratio=5.0,
                     record_trust_ratios=True, global_clipnorm=1.5, name="my_lamb")
    config = optimizer.get_config()
    assert config["exclude_from_weight_decay"] == ["bias", "LayerNorm"]
    assert config["weight_decay"] == 0.02 and config["global_clipnorm"] == 1.5
    assert LAMB.from_config(copy.deepcopy(config)).get_config() == config
    revived = tf_keras.optimizers.deserialize(tf_keras.optimizers.serialize(optimizer))
    assert type(revived) is LAMB and revived.get_config() == config
    lars = LARS(learning_rate=0.1, momentum=0.8, weight_decay=1e-4, phi_max=3.0,
                exclude_from_layer_adaptation=[])
    assert LARS.from_config(copy.deepcopy(lars.get_config())).get_config() == lars.get_config()


def test_callable_learning_rate():
    rate = tf.Variable(0.1)
    x = tf.Variable([3.0, 4.0])
    optimizer = LAMB(learning_rate=lambda: rate * 1.0)
    optimizer.apply_gradients([(tf.constant([1.0, -1.0]), x)])
    step = 0.1 * 5 / np.sqrt(2)
    np.testing.assert_allclose(x.numpy(), [3 - step, 4 + step], rtol=1e-6)


def test_saved_model_reloads_with_optimizer(tmp_path):
    model = build_model()
    model.compile(LAMB(learning_rate=0.02, weight_decay=0.01, exclude_from_weight_decay=["bias"]),
                  loss="mse")
    x, y = regression_data()
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = tf_keras.models.load_model(path)
    assert isinstance(restored.optimizer, LAMB)
    assert restored.optimizer.get_config() == model.optimizer.get_config()
    restored.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), restored.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", ["defaults", "decay_bert_exclusions", "adaptation_explicit"])
def test_agrees_with_model_garden_lamb(name):
    """A second, independent implementation of Algorithm 2 (Model Garden's legacy LAMB)."""
    from official.modeling.optimization import lamb as model_garden

    case = dict(cases.LAMB_CASES[name])
    ours = run_trajectory(LAMB(**cases.optimizer_kwargs(case, Schedule)))
    garden = model_garden.LAMB(
        cases.LEARNING_RATE, weight_decay_rate=case.get("weight_decay", 0.0),
        exclude_from_weight_decay=case.get("exclude_from_weight_decay"),
        exclude_from_layer_adaptation=case.get("exclude_from_layer_adaptation"))
    variables = make_variables()
    theirs = []
    for grads in cases.gradients():
        garden.apply_gradients(zip([tf.constant(g) for g in grads], variables))
        theirs.append([np.float64(v.numpy()) for v in variables])
    cases.assert_trajectory_matches(ours, theirs)


def test_a_variable_it_was_not_built_for_is_a_clear_error():
    optimizer = LAMB(learning_rate=0.01)
    optimizer.build([tf.Variable([1.0, 2.0], name="known")])
    with pytest.raises(KeyError, match="built for other variables than stranger"):
        optimizer.apply_gradients([(tf.constant([1.0]), tf.Variable([3.0], name="stranger"))])
