"""Warmup + polynomial decay against the closed form in docs/schedule.md; sqrt batch scaling."""

import numpy as np
import pytest
import tf_keras

from lamb_tf.schedules import WarmupPolynomialDecay, sqrt_scaled_learning_rate


def expected(step, peak, warmup, total, power):
    if step < warmup:
        return peak * step / warmup
    return peak * (1 - min(step - warmup, total - warmup) / (total - warmup)) ** power


@pytest.mark.parametrize("power", [1.0, 0.5])
def test_schedule_matches_formula(power):
    schedule = WarmupPolynomialDecay(6e-3, warmup_steps=20, decay_steps=100, power=power)
    steps = [0, 1, 10, 19, 20, 21, 50, 99, 100, 150]
    got = [float(schedule(s)) for s in steps]
    np.testing.assert_allclose(got, [expected(s, 6e-3, 20, 100, power) for s in steps], rtol=1e-5, atol=1e-9)
    assert max(got) == pytest.approx(6e-3) and got[-1] == 0.0


def test_schedule_round_trips_through_config():
    schedule = WarmupPolynomialDecay(1e-3, 5, 50, power=0.5, end_learning_rate=1e-5)
    again = tf_keras.optimizers.schedules.deserialize(
        tf_keras.optimizers.schedules.serialize(schedule),
        custom_objects={"WarmupPolynomialDecay": WarmupPolynomialDecay})
    assert again.get_config() == schedule.get_config()
    assert float(again(30)) == pytest.approx(float(schedule(30)))


def test_schedule_rejects_warmup_past_total():
    with pytest.raises(ValueError, match="warmup_steps < decay_steps"):
        WarmupPolynomialDecay(1e-3, 100, 100)


def test_sqrt_scaling():
    assert sqrt_scaled_learning_rate(1e-3, 256, 1024) == pytest.approx(2e-3)
    assert sqrt_scaled_learning_rate(4e-3, 32768, 8192) == pytest.approx(2e-3)
