"""The sliced norm and the stacked small-variable path against the float64 reference.

The reference tests (`cases.VARIABLES`) use tiny shapes; here the variables are sized so that
norms take the sliced two-stage sum (sizes divisible by `NORM_SLICES`; inside TensorFlow XLA
functions the float64 pair reduction of test_xla_sums.py instead) and several same-shape vectors
are stacked. Backend-agnostic for Keras 3 (test_jax_backend.py runs it on JAX); the
tf_keras and XLA tests skip where TensorFlow is unavailable.
"""

import keras
import numpy as np
import pytest

import cases
import reference
from lamb_tf import algorithm
from lamb_tf.keras3 import KERAS_OPS, LAMB, LARS

STEPS = 12
# Keras 3 paths (no '/'); the BERT exclusions match the biases and LayerNorm parameters.
VARIABLES = {
    "dense_kernel": ((48, 32), "normal", 1.0),
    "word_embeddings": ((40, 32), "normal", 2.0),
    "zero_init_kernel": ((32, 2), "zeros", 1.0),
    "odd_kernel": ((5, 7), "normal", 1.0),          # 35 elements: whole-array sum
    "query_bias": ((64,), "normal", 0.1),           # the three (64,) biases are stacked
    "key_bias": ((64,), "normal", 0.1),
    "value_bias": ((64,), "zeros", 0.1),
    "LayerNorm_gamma": ((64,), "ones", 0.5),         # stacked with its beta
    "LayerNorm_beta": ((64,), "zeros", 0.5),
    "odd_bias": ((6,), "normal", 0.1),
    "other_odd_bias": ((6,), "normal", 0.1),
}
LAMB_CASES = ["decay_bert_exclusions", "adaptation_excludes_nothing", "nvlamb", "schedule",
              "phi_bounds"]
LARS_CASES = ["lars_adaptation_excludes_nothing", "lars_bounds"]


def initial_values():
    rng = np.random.default_rng(3)
    return [(rng.normal(size=shape) if kind == "normal"
             else np.full(shape, 1.0 if kind == "ones" else 0.0)).astype(np.float32)
            for shape, kind, _ in VARIABLES.values()]


def gradients():
    rng = np.random.default_rng(4)
    return [[(rng.normal(size=shape) * scale).astype(np.float32)
             for shape, _, scale in VARIABLES.values()] for _ in range(STEPS)]


def expected(algorithm_name, case):
    kwargs = dict(case)
    lr = cases.schedule_lr if kwargs.pop("schedule", False) else (lambda s: cases.LEARNING_RATE)
    kwargs["phi_bounds"] = (kwargs.pop("phi_min", None), kwargs.pop("phi_max", None))
    kwargs["ratio_bounds"] = (kwargs.pop("min_trust_ratio", None),
                              kwargs.pop("max_trust_ratio", None))
    run = reference.lamb if algorithm_name == "lamb" else reference.lars
    return run(list(VARIABLES), initial_values(), gradients(), lr=lr, **kwargs)


def assert_matches(actual_per_step, expected_per_step, rtol=1e-5):
    assert len(actual_per_step) == len(expected_per_step) == STEPS
    for step, (actual, wanted) in enumerate(zip(actual_per_step, expected_per_step)):
        for name, a, e in zip(VARIABLES, actual, wanted):
            error = np.linalg.norm(np.float64(a) - e) / max(np.linalg.norm(e), 1e-12)
            assert error <= rtol, f"step {step + 1}, {name}: relative error {error:.3g}"


def run_keras3(optimizer, compile_step=False):
    variables = [keras.Variable(value, name=name)
                 for name, value in zip(VARIABLES, initial_values())]
    optimizer.build(variables)
    apply = lambda grads: optimizer.apply_gradients(zip(grads, variables))  # noqa: E731
    if compile_step:
        import tensorflow as tf
        apply = tf.function(apply, jit_compile=True)
    history = []
    for grads in gradients():
        apply([keras.ops.convert_to_tensor(g) for g in grads])
        history.append([keras.ops.convert_to_numpy(v) for v in variables])
    return history


@pytest.mark.parametrize("shape", [(3,), (64,), (5, 7), (48, 32), (2, 3, 64), (4096,)])
@pytest.mark.parametrize("stacked", [False, True])
def test_norm_equals_numpy(shape, stacked):
    rng = np.random.default_rng(0)
    t = rng.normal(size=((3,) + shape) if stacked else shape).astype(np.float32)
    norm = keras.ops.convert_to_numpy(
        algorithm._norm(KERAS_OPS, keras.ops.convert_to_tensor(t), stacked))
    if stacked:
        wanted = np.linalg.norm(np.float64(t).reshape(3, -1), axis=1)
        assert norm.shape == (3,) + (1,) * len(shape)
    else:
        wanted = np.linalg.norm(np.float64(t))
        assert norm.shape == ()
    np.testing.assert_allclose(norm.reshape(-1), np.reshape(wanted, -1), rtol=1e-6)


def test_sliced_norm_is_used():
    """A size divisible by NORM_SLICES takes the sliced sum (one reshape), others the
    whole-array sum. The two give the same norm, so test_norm_equals_numpy passes whichever is
    taken; only the operations called show that the faster sliced sum is the one used."""
    calls = []

    class Recording:
        def __getattr__(self, name):
            def op(*args, **kwargs):
                calls.append(name)
                return getattr(KERAS_OPS, name)(*args, **kwargs)
            return op

    algorithm._norm(Recording(), keras.ops.ones((64, 32)), stacked=False)
    assert calls == ["reshape", "unstack", "sum", "sqrt"]
    calls.clear()
    algorithm._norm(Recording(), keras.ops.ones((5, 7)), stacked=False)
    assert calls == ["sum", "sqrt"]


@pytest.mark.parametrize("name", LAMB_CASES)
def test_keras3_lamb_matches_reference(name):
    case = cases.LAMB_CASES[name]
    optimizer = LAMB(**cases.optimizer_kwargs(case, keras.optimizers.schedules.ExponentialDecay))
    history = run_keras3(optimizer)
    assert any(len(group) > 2 for group in optimizer._stacks)  # the (64,) vectors are stacked
    assert_matches(history, expected("lamb", case))


@pytest.mark.parametrize("name", LARS_CASES)
def test_keras3_lars_matches_reference(name):
    case = cases.LARS_CASES[name]
    optimizer = LARS(**cases.optimizer_kwargs(case, keras.optimizers.schedules.ExponentialDecay))
    assert_matches(run_keras3(optimizer), expected("lars", case))


@pytest.mark.parametrize("name", ["adaptation_excludes_nothing", "nvlamb"])
def test_keras3_lamb_xla_matches_reference(name):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("XLA through tf.function needs the TensorFlow backend")
    case = cases.LAMB_CASES[name]
    optimizer = LAMB(**cases.optimizer_kwargs(case, keras.optimizers.schedules.ExponentialDecay))
    assert_matches(run_keras3(optimizer, compile_step=True), expected("lamb", case))


def run_tf_keras(optimizer, xla=False, strategy=None):
    tf = pytest.importorskip("tensorflow")
    with (strategy or tf.distribute.get_strategy()).scope():
        variables = [tf.Variable(value, name=name)
                     for name, value in zip(VARIABLES, initial_values())]

    def apply(grads):
        optimizer.apply_gradients(zip(grads, variables))

    if xla:
        apply = tf.function(apply, jit_compile=True)
    if strategy:
        apply = tf.function(lambda grads, step=apply: strategy.run(step, args=(grads,)))
    history = []
    for grads in gradients():
        apply([tf.constant(g) for g in grads])
        history.append([v.numpy() for v in variables])
    return history


# jit_compile is the optimizer's own option (its per-variable and per-stack XLA functions, on by
# default where there is a GPU); xla wraps the whole apply in one XLA function.
@pytest.mark.parametrize("jit_compile,xla", [(False, False), (True, False), (False, True),
                                              (True, True)])
@pytest.mark.parametrize("name", ["decay_bert_exclusions", "adaptation_excludes_nothing"])
def test_tf_keras_lamb_matches_reference(name, jit_compile, xla):
    pytest.importorskip("tf_keras")
    from lamb_tf import tf_keras as flavour

    case = cases.LAMB_CASES[name]
    optimizer = flavour.LAMB(**cases.optimizer_kwargs(case, None))
    optimizer.jit_compile = jit_compile   # the constructor turns it off where there is no GPU
    history = run_tf_keras(optimizer, xla)
    assert any(len(group) > 2 for group in optimizer._stacks)  # the (64,) vectors are stacked
    assert_matches(history, expected("lamb", case))


@pytest.mark.parametrize("name", LARS_CASES)
def test_tf_keras_lars_matches_reference(name):
    pytest.importorskip("tf_keras")
    from lamb_tf import tf_keras as flavour

    case = cases.LARS_CASES[name]
    optimizer = flavour.LARS(**cases.optimizer_kwargs(case, None))
    assert_matches(run_tf_keras(optimizer), expected("lars", case))


def test_tf_keras_under_a_strategy_updates_one_by_one():
    """Inside tf.distribute each variable is updated in its own context (no stacks)."""
    tf = pytest.importorskip("tensorflow")
    pytest.importorskip("tf_keras")
    from lamb_tf import tf_keras as flavour

    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    case = cases.LAMB_CASES["decay_bert_exclusions"]
    with strategy.scope():
        optimizer = flavour.LAMB(**cases.optimizer_kwargs(case, None))
    stacked_calls = []
    update = optimizer._update
    optimizer._update = lambda indices, *rest: (stacked_calls.append(len(indices) > 1),
                                                update(indices, *rest))
    assert_matches(run_tf_keras(optimizer, strategy=strategy), expected("lamb", case))
    assert stacked_calls and not any(stacked_calls)


@pytest.mark.parametrize("xla", [False, True])
def test_tf_keras_compiles_each_update_only_outside_xla(xla):
    """jit_compile=True compiles each variable's (or stack's) update on its own, unless the
    whole apply is XLA-compiled already, where those functions would only add tracing."""
    pytest.importorskip("tf_keras")
    from lamb_tf import tf_keras as flavour

    optimizer = flavour.LAMB()
    optimizer.jit_compile = True   # the constructor turns it off where there is no GPU
    compiled = []
    for name in ("_update_step_xla", "_update_stack_xla"):
        function = getattr(optimizer, name)
        setattr(optimizer, name, lambda *args, f=function, n=name: (compiled.append(n), f(*args)))
    run_tf_keras(optimizer, xla)
    assert bool(compiled) != xla
    if not xla:
        assert set(compiled) == {"_update_step_xla", "_update_stack_xla"}
