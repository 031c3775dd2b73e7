"""What Keras 3's optimizer base class promises (`keras/src/optimizers/base_optimizer.py`), kept by
`lamb_tf.keras3.LAMB` and `LARS`: exclusions that mean the same after `load_model`, Keras' own
`exclude_from_weight_decay()`, `weight_decay` as an attribute, native variables, unique names,
float32 slots, and the base class's options against a hand loop over the float64 reference.
Backend-agnostic: test_jax_backend.py runs this module under KERAS_BACKEND=jax as well.
"""

import re

import keras
import numpy as np
import pytest

import cases
import reference
from lamb_tf.keras3 import LAMB, LARS
from test_reference import apply_like_fit, keras3_flavour, regression_data, run_trajectory

OPTIMIZERS = {"LAMB": LAMB, "LARS": LARS}


def named_model(seed=3):
    """Layers named explicitly, so that path patterns do not depend on what ran before."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, "tanh", name="first"),
                             keras.layers.LayerNormalization(name="norm"),
                             keras.layers.Dense(4, "tanh", name="middle"),
                             keras.layers.Dense(1, name="head")])


def plan_table(optimizer):
    return [(plan.weight_decay > 0, plan.layer_adaptation) for plan in optimizer._plans]


# ----- 1. exclusions survive keras.saving.load_model -----

@pytest.mark.parametrize("algorithm", ["LAMB", "LARS"])
def test_every_kind_of_exclusion_resumes_identically_after_load_model(algorithm, tmp_path):
    """Constructor patterns (searched in the path), Keras' `var_names` (searched in the name) and
    `var_list` (variables): LAMB with the ratio following the decay exclusions, LARS with a ratio
    list of its own. Keras renames `sequential/first/kernel` to `first/kernel` on loading."""
    model = named_model()
    first, norm, middle, head = model.layers
    adaptation = {} if algorithm == "LAMB" else {"exclude_from_layer_adaptation": ["gamma"]}
    optimizer = OPTIMIZERS[algorithm](0.05, weight_decay=0.1, exclude_from_weight_decay=["bias"],
                                      **adaptation)
    optimizer.exclude_from_weight_decay(var_list=[first.kernel], var_names=["bet."])
    model.compile(optimizer, loss="mse")
    x, y = regression_data()
    model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)

    # The plans against the layers themselves, not the patterns under test.
    decayed = {id(v) for v in (norm.gamma, middle.kernel, head.kernel)}
    variables = model.trainable_variables
    adapts = ([id(v) in decayed for v in variables] if algorithm == "LAMB"
              else [v is not norm.gamma for v in variables])
    assert plan_table(optimizer) == [(id(v) in decayed, a) for v, a in zip(variables, adapts)]
    assert variables[0].path.endswith("/first/kernel") and variables[0].path != "first/kernel"

    model.save(tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras")
    assert restored.trainable_variables[0].path == "first/kernel"    # renamed on loading
    assert restored.optimizer.get_config() == optimizer.get_config()
    assert plan_table(restored.optimizer) == plan_table(optimizer)
    model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    restored.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), restored.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def variables_under(scope, names):
    with keras.name_scope(scope):
        return [keras.Variable(np.ones(2, "float32"), name=name) for name in names]


def test_an_older_config_keeps_what_its_patterns_excluded():
    """Older versions stored `var_list` as `^<escaped path>$` among the patterns: such a literal
    still excludes its variable after the rename; any other pattern keeps its meaning."""
    config = LAMB(weight_decay=0.1).get_config()
    for name in ("excluded_var_names", "excluded_var_paths"):
        config.pop(name, None)
    config["exclude_from_weight_decay"] = ["LayerNorm", r"^head/.*bias$",
                                           r"^sequential/dense_1/kernel$"]
    optimizer = LAMB.from_config(config)
    variables = (variables_under("dense_1", ["kernel", "bias"])
                 + variables_under("LayerNorm", ["gamma"]) + variables_under("head", ["bias"])
                 + variables_under("body", ["bias"]))
    optimizer.build(variables)
    assert [plan.weight_decay > 0 for plan in optimizer._plans] == [False, True, False, False, True]
    config = optimizer.get_config()
    assert config["exclude_from_weight_decay"] == ["LayerNorm", r"^head/.*bias$"]
    assert config["excluded_var_paths"] == ["sequential/dense_1/kernel"]


# ----- 2. exclude_from_weight_decay() means what Keras' does -----

@pytest.mark.parametrize("calls", [
    [{"var_names": ["ker.el"]}],                                # a regex
    [{"var_names": ["first", "norm"]}],                         # layer names: not in the name
    [{"var_names": ["gamma", "^b"], "var_list": ["middle"]}],
    [{"var_names": ["bias"]}, {"var_list": ["first"]}],         # the second call replaces
], ids=["regex", "layer_names", "both", "second_call_replaces"])
def test_exclude_from_weight_decay_means_what_keras_means(calls):
    """Keras' own AdamW, given the same calls, is the reference."""
    model = named_model()
    ours, keras_own = LAMB(weight_decay=0.1), keras.optimizers.AdamW(weight_decay=0.1)
    for call in calls:
        kwargs = dict(call)
        if "var_list" in kwargs:
            kwargs["var_list"] = [model.get_layer(name).kernel for name in kwargs["var_list"]]
        ours.exclude_from_weight_decay(**kwargs)
        keras_own.exclude_from_weight_decay(**kwargs)
    ours.build(model.trainable_variables)
    assert [plan.weight_decay == 0.0 for plan in ours._plans] == [
        not keras_own._use_weight_decay(v) for v in model.trainable_variables]


def test_method_exclusions_reach_the_trust_ratio_unless_it_has_its_own_list():
    variables = variables_under("dense", ["kernel", "bias"])
    coupled = LAMB(weight_decay=0.1)
    separate = LAMB(weight_decay=0.1, exclude_from_layer_adaptation=[])
    for optimizer in (coupled, separate):
        optimizer.exclude_from_weight_decay(var_names=["bias"])
        optimizer.build(variables)
    assert plan_table(coupled) == [(True, True), (False, False)]
    assert plan_table(separate) == [(True, True), (False, True)]
    with pytest.raises(ValueError, match="before the optimizer is built"):
        coupled.exclude_from_weight_decay(var_names=["kernel"])
    with pytest.raises(ValueError, match="`var_names`"):
        LAMB().exclude_from_weight_decay(var_names="bias")


# ----- 3. weight_decay is an attribute -----

@pytest.mark.parametrize("algorithm", ["LAMB", "LARS"])
def test_weight_decay_is_an_attribute_settable_before_build(algorithm):
    cls = OPTIMIZERS[algorithm]
    assert cls(weight_decay=0.02).weight_decay == 0.02
    unset = cls(weight_decay=None)
    assert unset.weight_decay == 0.0 and unset.get_config()["weight_decay"] == 0.0
    optimizer = cls(learning_rate=cases.LEARNING_RATE)
    optimizer.weight_decay = 0.01
    expected = cases.expected(algorithm.lower(), {"weight_decay": 0.01})
    cases.assert_trajectory_matches(run_trajectory(keras3_flavour(), optimizer), expected)
    with pytest.raises(ValueError, match="before the optimizer is built"):
        optimizer.weight_decay = 0.5
    assert optimizer.weight_decay == 0.01 and optimizer.get_config()["weight_decay"] == 0.01


# ----- 4. native variables -----

def test_a_native_tf_variable_is_accepted():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("native variables are the TensorFlow backend's")
    import tensorflow as tf

    case = cases.LAMB_CASES["decay_bert_exclusions"]
    optimizer = LAMB(**cases.optimizer_kwargs(case, None))
    variables = [tf.Variable(value, name=name)
                 for name, value in zip(cases.VARIABLES, cases.initial_values())]
    history = []
    for grads in cases.gradients():
        optimizer.apply_gradients(zip([tf.constant(g) for g in grads], variables))
        history.append([v.numpy() for v in variables])
    cases.assert_trajectory_matches(history, cases.expected("lamb", case))


# ----- 5. names, float32 slots -----

def test_default_names_are_unique_as_keras_makes_them():
    names = [LAMB().name, LAMB().name, LARS().name, LARS().name]
    assert len(set(names)) == 4, names
    assert all(re.fullmatch(r"(lamb|lars)(_\d+)?", name) for name in names), names
    assert LAMB(name="mine").name == "mine"


@pytest.mark.parametrize("algorithm", ["LAMB", "LARS"])
def test_float32_slots_keep_the_moments_of_bfloat16_variables(algorithm):
    """A constant gradient 1 makes every moment 1 - 0.9^t. In bfloat16 (Keras' choice, the
    default) it stops rising near 0.98; float32 slots follow it while the variable stays
    bfloat16."""
    steps = 60
    kwargs = {"beta_1": 0.9, "beta_2": 0.9} if algorithm == "LAMB" else {"momentum": 0.9}
    expected = 1.0 - 0.9 ** steps
    for float32_slots in (False, True):
        x = keras.Variable(np.full(4, 3.0), dtype="bfloat16", name="x")
        optimizer = OPTIMIZERS[algorithm](1e-3, float32_slots=float32_slots, **kwargs)
        for _ in range(steps):
            optimizer.apply_gradients([(keras.ops.ones(4, "bfloat16"), x)])
        assert keras.backend.standardize_dtype(x.dtype) == "bfloat16"
        for slot in (slots[0] for slots in optimizer._slots):
            value = keras.ops.convert_to_numpy(keras.ops.cast(slot, "float32"))
            if float32_slots:
                assert keras.backend.standardize_dtype(slot.dtype) == "float32"
                np.testing.assert_allclose(value, expected, rtol=1e-5)
            else:
                assert keras.backend.standardize_dtype(slot.dtype) == "bfloat16"
                assert np.all(np.abs(value - expected) > 1e-2 * expected), value


# ----- 6. the base class's options, against a hand loop -----

STEPS = 6
# A large epsilon, so that the step depends on the gradients' scale (m̂/√v̂ alone does not):
# a missing 1/loss_scale_factor or 1/gradient_accumulation_steps shows.
CASE = {"weight_decay": 0.01, "exclude_from_weight_decay": cases.BERT, "epsilon": 0.1}


def applied(optimizer, gradients_per_call):
    """The variables after each call, applied as `fit` applies them."""
    variables = [keras.Variable(v, name=n) for n, v in zip(cases.VARIABLES, cases.initial_values())]
    optimizer.build(variables)
    history = []
    for grads in gradients_per_call:
        apply_like_fit(optimizer, [(keras.ops.convert_to_tensor(g), v)
                                   for g, v in zip(grads, variables)])
        history.append([keras.ops.convert_to_numpy(v) for v in variables])
    return history, variables


def hand_loop(gradients_per_step):
    return reference.lamb(list(cases.VARIABLES), cases.initial_values(), gradients_per_step,
                          lr=lambda step: cases.LEARNING_RATE, weight_decay=CASE["weight_decay"],
                          exclude_from_weight_decay=CASE["exclude_from_weight_decay"],
                          eps=CASE["epsilon"])


def assert_close(actual, expected, rtol=1e-5):
    assert len(actual) == len(expected)
    for step, (a_step, e_step) in enumerate(zip(actual, expected)):
        for name, a, e in zip(cases.VARIABLES, a_step, e_step):
            error = np.linalg.norm(np.float64(a) - e) / max(np.linalg.norm(e), 1e-12)
            assert error <= rtol, f"step {step + 1}, {name}: relative error {error:.3g}"


def clipped(grads, kind, c):
    if kind == "clipvalue":
        return [np.clip(g, -c, c) for g in grads]
    if kind == "clipnorm":
        return [g * c / max(np.linalg.norm(g), c) for g in grads]
    norm = np.sqrt(sum(np.sum(np.float64(g) ** 2) for g in grads))
    return [g * c / max(norm, c) for g in grads]


@pytest.mark.parametrize("kind,c",
                         [("clipvalue", 0.3), ("clipnorm", 0.5), ("global_clipnorm", 2.0)])
def test_clipping(kind, c):
    grads = cases.gradients()[:STEPS]
    expected = [clipped(step, kind, c) for step in grads]
    assert sum(not np.allclose(a, b) for a, b in zip(expected[0], grads[0])) >= 2   # it clips
    history, _ = applied(LAMB(cases.LEARNING_RATE, **{kind: c}, **CASE), grads)
    assert_close(history, hand_loop(expected))


def test_loss_scale_factor_divides_the_gradients():
    grads = cases.gradients()[:STEPS]
    scaled = [[g * 64.0 for g in step] for step in grads]
    history, _ = applied(LAMB(cases.LEARNING_RATE, loss_scale_factor=64.0, **CASE), scaled)
    assert_close(history, hand_loop(grads))


def test_gradient_accumulation_steps_average_then_step():
    k, steps = 3, 3
    micro = cases.gradients()[:steps * k]
    history, _ = applied(LAMB(cases.LEARNING_RATE, gradient_accumulation_steps=k, **CASE), micro)
    means = [[np.mean([micro[s * k + j][i] for j in range(k)], axis=0)
              for i in range(len(cases.VARIABLES))] for s in range(steps)]
    assert_close(history[k - 1::k], hand_loop(means))
    for s in range(steps):        # no change between updates
        before = history[s * k - 1] if s else cases.initial_values()
        for call in history[s * k:s * k + k - 1]:
            for a, b in zip(call, before):
                np.testing.assert_array_equal(a, b)


def test_use_ema_averages_the_trajectory():
    momentum = 0.8
    grads = cases.gradients()[:STEPS]
    optimizer = LAMB(cases.LEARNING_RATE, use_ema=True, ema_momentum=momentum, **CASE)
    history, variables = applied(optimizer, grads)
    expected = hand_loop(grads)
    assert_close(history, expected)
    average = expected[0]         # Keras starts the average at the first step's value
    for x in expected[1:]:
        average = [momentum * a + (1 - momentum) * v for a, v in zip(average, x)]
    optimizer.finalize_variable_values(variables)
    assert_close([[keras.ops.convert_to_numpy(v) for v in variables]], [average])
