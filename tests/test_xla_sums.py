"""The float64 pair reduction that both flavours use for the trust ratio inside XLA functions.

The optimizers' results under XLA are checked against the float64 reference in
test_norms_and_stacking.py and test_reference.py; here, the reduction itself, where it applies,
and that the optimizers take it.
"""

import dataclasses

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
xla_sums = pytest.importorskip("lamb_tf.xla_sums")


def under_xla(function, *arrays):
    return tf.function(function, jit_compile=True)(*[tf.constant(a) for a in arrays])


@pytest.mark.parametrize("shape,axes", [((), ()), ((5,), (0,)), ((48, 32), (0, 1)),
                                        ((3, 64), (1,)), ((3, 2, 64), (1, 2))])
def test_sums_match_float64(shape, axes):
    rng = np.random.default_rng(0)
    a = rng.normal(size=shape).astype(np.float32)
    b = (3.0 * rng.normal(size=shape)).astype(np.float32)  # unlike a: a swap would show
    sums = under_xla(lambda a, b: xla_sums.sums_of_squares(a, b, axes), a, b)
    for total, array in zip(sums, (a, b)):
        assert total.dtype == tf.float32
        wanted = np.sum(np.float64(array) ** 2, axis=axes)
        np.testing.assert_allclose(total.numpy(), wanted, rtol=1e-6)


def test_accumulates_in_float64():
    """A weight-like 4096x1024 matrix: XLA:CPU sums a variadic reduction one element after
    another, so a float32 accumulator is off by ~1e-4 here; the float64 one only rounds the
    result to float32."""
    a = np.random.default_rng(1).normal(0.0, 0.02, size=(4096, 1024)).astype(np.float32)
    sum_a, _ = under_xla(lambda a: xla_sums.sums_of_squares(a, a, (0, 1)), a)
    wanted = np.sum(np.float64(a) ** 2)
    assert abs(float(sum_a) - wanted) / wanted < 1.2e-7


def test_none_outside_xla():
    ones = tf.ones((4, 4))
    assert xla_sums.sums_of_squares(ones, ones, (0, 1)) is None  # eager
    graph = tf.function(lambda: xla_sums.sums_of_squares(ones, ones, (0, 1)) is None)
    assert graph()


def test_none_where_there_are_tpus(monkeypatch):
    """TPUs have no float64: the callers' float32 sums are used there."""
    devices = tf.config.list_logical_devices
    monkeypatch.setattr(tf.config, "list_logical_devices",
                        lambda kind=None: ["TPU:0"] if kind == "TPU" else devices(kind))
    ones = tf.ones((4, 4))
    assert under_xla(lambda: tf.constant(xla_sums.sums_of_squares(ones, ones, (0, 1)) is None))


def reductions_in(function, *args):
    """How many variadic reductions the traced function holds, nested functions included."""
    graph_def = function.get_concrete_function(*args).graph.as_graph_def()
    nodes = list(graph_def.node) + [n for f in graph_def.library.function for n in f.node_def]
    return sum(node.op == "XlaVariadicReduceV2" for node in nodes)


def optimizer_and_variables(flavour, **kwargs):
    """LAMB with a ratio for every variable: two kernels and two (stacked) LayerNorm vectors,
    all ones."""
    names = ["dense/kernel", "output/kernel", "LayerNorm/gamma", "LayerNorm_1/gamma"]
    shapes = [(8, 4), (4, 8), (4,), (4,)]
    if flavour == "tf_keras":
        pytest.importorskip("tf_keras")
        from lamb_tf.tf_keras import LAMB
        variables = [tf.Variable(tf.ones(shape), name=name) for name, shape in zip(names, shapes)]
    else:
        import keras
        if keras.backend.backend() != "tensorflow":
            pytest.skip("the Keras 3 class takes this path on the TensorFlow backend")
        from lamb_tf.keras3 import LAMB
        variables = [keras.Variable(np.ones(shape, np.float32), name=name.replace("/", "_"))
                     for name, shape in zip(names, shapes)]
    optimizer = LAMB(weight_decay=0.01, exclude_from_layer_adaptation=[], **kwargs)
    optimizer.build(variables)
    return optimizer, variables


@pytest.mark.parametrize("flavour", ["tf_keras", "keras3"])
@pytest.mark.parametrize("jit_compile", [False, True])
def test_optimizers_reduce_both_norms_together_under_xla(flavour, jit_compile):
    """One reduction per kernel and one for the stack of LayerNorm vectors; none in a graph."""
    optimizer, variables = optimizer_and_variables(flavour)
    grads = [tf.ones(v.shape) for v in variables]
    apply = tf.function(lambda grads: optimizer.apply_gradients(zip(grads, variables)),
                        jit_compile=jit_compile)
    assert reductions_in(apply, grads) == (3 if jit_compile else 0)


def recorded_after_one_step(flavour, jit_compile):
    optimizer, variables = optimizer_and_variables(flavour, record_trust_ratios=True)
    apply = tf.function(lambda grads: optimizer.apply_gradients(zip(grads, variables)),
                        jit_compile=jit_compile)
    apply([tf.ones(v.shape) for v in variables])
    return optimizer.trust_ratios(), optimizer._plans, variables


@pytest.mark.parametrize("flavour", ["tf_keras", "keras3"])
def test_recorded_trust_ratios_under_xla(flavour):
    """Recorded per variable, stacked ones included, as the graph path records them. By hand:
    step 1 from ones with gradient ones has m̂ = v̂ = 1, so every element of u is 1/(1 + ε) + λ
    (to ~1e-5: 1 - β₂ is rounded to float32) and each norm is that times √n."""
    ratios, plans, variables = recorded_after_one_step(flavour, jit_compile=True)
    in_graph, _, _ = recorded_after_one_step(flavour, jit_compile=False)
    assert len(ratios) == 4
    element = 1.0 / (1.0 + 1e-6) + 0.01
    for plan, variable in zip(plans, variables):
        root_n = np.sqrt(np.prod(variable.shape))
        recorded = dataclasses.astuple(ratios[plan.path])
        np.testing.assert_allclose(recorded, dataclasses.astuple(in_graph[plan.path]), rtol=1e-6)
        np.testing.assert_allclose(recorded, (root_n, element * root_n, 1.0 / element),
                                   rtol=1e-4)
