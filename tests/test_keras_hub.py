"""LAMB training KerasHub's BertMaskedLM through `model.compile`/`fit` on our TFRecords, on the
backend this process runs (TensorFlow here; `test_the_same_on_jax` reruns the file on JAX): the
update inside `fit` is the paper's, BERT's exclusions find KerasHub's LayerNorms and biases, a
saved model resumes identically, mixed precision stays finite, and on JAX DataParallel over two
devices gives one device's update."""

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

keras_hub = pytest.importorskip("keras_hub")

from bert_pretrain import datasets, keras_hub_bert  # noqa: E402
from lamb_tf import BERT_EXCLUSIONS, keras3  # noqa: E402

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))
sys.path.insert(0, str(TESTS / "training"))
import reference  # noqa: E402
from training_helpers import PRED, SEQ, VOCAB, write_shards  # noqa: E402

BATCH = 8


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    files = write_shards(str(tmp_path_factory.mktemp("data")), files=2, records=32)
    return datasets.data_spec(tuple(files), SEQ, PRED)


def masked_lm(dropout=0.0):
    keras.utils.set_random_seed(1)
    backbone = keras_hub.models.BertBackbone(vocabulary_size=VOCAB, num_layers=1, num_heads=2, hidden_dim=16,
                                             intermediate_dim=32, max_sequence_length=SEQ, dropout=dropout)
    return keras_hub.models.BertMaskedLM(backbone=backbone, preprocessor=None)


def compiled(model, learning_rate=1e-2, **options):
    model.compile(optimizer=keras3.LAMB(learning_rate, weight_decay=0.01,
                                        exclude_from_weight_decay=BERT_EXCLUSIONS, **options),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  weighted_metrics=["sparse_categorical_accuracy"], jit_compile=True)
    return model


def batches(spec, count):
    return keras_hub_bert.training_batches(spec, BATCH, seed=3).take(count)


def values(variables):
    return [np.array(keras.ops.convert_to_numpy(v)) for v in variables]


def gradients(model, batch):
    """d loss / d trainable weights, computed as Keras' own train_step does on this backend (on
    TensorFlow, None for a weight the loss does not use: the encoder's pooler; Keras skips those)."""
    x, y, weight = batch
    if keras.backend.backend() == "jax":
        import jax

        x, y, weight = jax.tree_util.tree_map(np.asarray, (x, y, weight))

        model.optimizer.build(model.trainable_variables)

        def loss(trainable):   # what Keras' JAX train_step differentiates
            value, _ = model.compute_loss_and_updates(
                trainable, [v.value for v in model.non_trainable_variables],
                [v.value for v in model.metrics_variables], x, y, weight, training=True,
                optimizer_variables=[v.value for v in model.optimizer.variables])
            return value
        return [np.array(g) for g in jax.grad(loss)([v.value for v in model.trainable_variables])]
    import tensorflow as tf
    with tf.GradientTape() as tape:
        prediction = model(x, training=True)
        value = model.compute_loss(x=x, y=y, y_pred=prediction, sample_weight=weight, training=True)
    return [None if g is None else tf.convert_to_tensor(g).numpy()
            for g in tape.gradient(value, model.trainable_variables)]


def test_exclusions_find_every_layer_norm_and_bias_of_keras_hub_bert():
    model = masked_lm()
    model({"token_ids": np.ones((1, SEQ), "int32"), "segment_ids": np.zeros((1, SEQ), "int32"),
           "padding_mask": np.ones((1, SEQ), bool), "mask_positions": np.zeros((1, PRED), "int32")})
    # The reference: found by layer type and variable name, not by the patterns under test.
    norms = {w.path for layer in model._flatten_layers() if isinstance(layer, keras.layers.LayerNormalization)
             for w in layer.weights}
    biases = {v.path for v in model.trainable_variables if v.name.endswith("bias")}
    optimizer = keras3.LAMB(1e-2, weight_decay=0.01, exclude_from_weight_decay=BERT_EXCLUSIONS)
    optimizer.build(model.trainable_variables)
    excluded = {plan.path for plan in optimizer._plans if plan.weight_decay == 0.0}
    assert norms and biases and excluded == norms | biases
    assert {plan.path for plan in optimizer._plans if not plan.layer_adaptation} == norms | biases
    assert "token_embedding/embeddings" not in excluded


def test_the_lamb_step_inside_fit_is_the_papers(spec):
    model = compiled(masked_lm())
    batch = next(iter(batches(spec, 1)))
    before = values(model.trainable_variables)
    grads = gradients(model, batch)
    used = [i for i, g in enumerate(grads) if g is not None]
    expected = reference.lamb([model.trainable_variables[i].path for i in used], [before[i] for i in used],
                              [[grads[i] for i in used]], lr=lambda step: 1e-2, weight_decay=0.01,
                              exclude_from_weight_decay=BERT_EXCLUSIONS)[0]
    model.fit(batches(spec, 1), epochs=1, verbose=0)
    after = values(model.trainable_variables)
    assert sum(np.abs(after[i] - before[i]).max() > 0 for i in used) > len(used) // 2   # a real step
    for i, want in zip(used, expected):
        np.testing.assert_allclose(after[i] - before[i], want - before[i], rtol=2e-3, atol=2e-7,
                                   err_msg=model.trainable_variables[i].path)
    for i in set(range(len(grads))) - set(used):
        np.testing.assert_array_equal(after[i], before[i])


def test_a_saved_model_resumes_identically(spec, tmp_path):
    schedule = keras3.WarmupPolynomialDecay(1e-2, warmup_steps=2, decay_steps=10, power=0.5, decay_from="step_0")
    options = dict(phi_min=1e-3, phi_max=10.0, nvlamb=True, record_trust_ratios=True)
    model = compiled(masked_lm(), learning_rate=schedule, **options)
    model.fit(batches(spec, 2), epochs=1, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras_hub_bert.load_model(tmp_path / "model.keras")
    assert type(loaded.optimizer) is keras3.LAMB
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert type(loaded.optimizer._learning_rate) is keras3.WarmupPolynomialDecay
    for a, b in zip(values(model.optimizer.variables), values(loaded.optimizer.variables)):
        np.testing.assert_array_equal(a, b)
    more = keras_hub_bert.training_batches(spec, BATCH, seed=3, consumed_steps=2).take(2)
    model.fit(more, epochs=1, verbose=0)
    loaded.fit(more, epochs=1, verbose=0)
    for a, b in zip(values(model.trainable_variables), values(loaded.trainable_variables)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_keeps_float32_norms_and_finite_steps(spec, policy):
    if policy == "mixed_float16" and keras.backend.backend() == "jax":
        pytest.skip("XLA:CPU has no float16 matmul accumulating in float32 (JAX raises); GPUs have")
    keras.mixed_precision.set_dtype_policy(policy)
    try:
        model = compiled(masked_lm(), record_trust_ratios=True)
        history = model.fit(batches(spec, 3), epochs=1, verbose=0)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    assert np.isfinite(history.history["loss"]).all()
    assert all(v.dtype == "float32" for v in model.trainable_variables)
    optimizer = model.optimizer.inner_optimizer if policy == "mixed_float16" else model.optimizer
    ratios = optimizer.trust_ratios()
    trained = {path: r for path, r in ratios.items() if not path.startswith("pooled_dense/")}   # no gradient
    assert trained and all(np.isfinite(r.ratio) and r.ratio > 0 and r.x_norm > 0 for r in trained.values())
    assert {v.dtype for v in optimizer._trust_ratio_stats if v is not None} == {"float32"}
    assert all(np.isfinite(v).all() for v in values(model.trainable_variables))


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="keras.distribution is the JAX backend's")
def test_data_parallel_on_two_devices_equals_one_device(spec):
    import jax

    if len(jax.devices()) < 2:
        pytest.skip("needs XLA_FLAGS=--xla_force_host_platform_device_count=2")
    one = compiled(masked_lm())
    one.fit(batches(spec, 2), epochs=1, verbose=0)
    distribution = keras.distribution.DataParallel(devices=jax.devices()[:2])
    with distribution.scope():
        two = compiled(masked_lm())
        two.fit(batches(spec, 2), epochs=1, verbose=0)
    for variable, a, b in zip(one.trainable_variables, values(one.trainable_variables),
                              values(two.trainable_variables)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7, err_msg=variable.path)


@pytest.mark.skipif(keras.backend.backend() == "jax", reason="this is the test that starts the JAX run")
def test_the_same_on_jax():
    pytest.importorskip("jax")
    environment = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu",
                       XLA_FLAGS="--xla_force_host_platform_device_count=2")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(Path(__file__))],
                            cwd=TESTS.parent, env=environment, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "5 passed, 2 skipped" in result.stdout, result.stdout[-1000:]   # float16 on XLA:CPU; this test
