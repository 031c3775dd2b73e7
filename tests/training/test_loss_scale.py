"""float16's dynamic loss scale against a hand-worked sequence of finite and non-finite steps."""

import tensorflow as tf
import tf_keras

from bert_pretrain.trainer import DynamicLossScale


def run(scale, steps):
    seen = []
    for finite in steps:
        scale.update(tf.constant(finite))
        seen.append((float(scale.scale.numpy()), int(scale.good_steps.numpy())))
    return seen


def test_halves_on_overflow_and_doubles_after_the_growth_interval(monkeypatch):
    monkeypatch.setattr(DynamicLossScale, "GROWTH_INTERVAL", 3)
    s = 2.0 ** 15
    assert run(DynamicLossScale(enabled=True), [True, True, True, False, True, False, False]) == [
        (s, 1), (s, 2), (2 * s, 0),        # the third finite step in a row doubles, the count restarts
        (s, 0),                            # overflow: halved, count reset
        (s, 1), (s / 2, 0), (s / 4, 0)]


def test_other_precisions_keep_a_scale_of_one_and_count_finite_steps():
    assert run(DynamicLossScale(enabled=False), [True, True, False, True]) == [
        (1.0, 1), (1.0, 2), (1.0, 0), (1.0, 1)]


def test_defaults_are_tf_keras_loss_scale_optimizers():
    """The same start and growth interval as the library's dynamic loss scale."""
    tf_keras_scale = tf_keras.mixed_precision.LossScaleOptimizer(tf_keras.optimizers.SGD())
    assert DynamicLossScale.GROWTH_INTERVAL == tf_keras_scale.dynamic_growth_steps
    assert float(DynamicLossScale(enabled=True).scale.numpy()) == float(tf_keras_scale.initial_scale)
