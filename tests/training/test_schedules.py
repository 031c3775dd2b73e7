"""Warmup + polynomial decay against the closed form in docs/schedule.md, in both Keras flavours;
sqrt batch scaling."""

import keras
import numpy as np
import pytest
import tf_keras

from lamb_tf import keras3
from lamb_tf import tf_keras as lamb_tf_keras
from lamb_tf.schedules import sqrt_scaled_learning_rate

FLAVOURS = {"tf_keras": (lamb_tf_keras.WarmupPolynomialDecay, tf_keras.optimizers.schedules),
            "keras3": (keras3.WarmupPolynomialDecay, keras.optimizers.schedules)}


@pytest.fixture(params=sorted(FLAVOURS))
def WarmupPolynomialDecay(request):  # noqa: N802 (a class)
    return FLAVOURS[request.param][0]


def expected(step, peak, warmup, total, power):
    if step < warmup:
        return peak * step / warmup
    return peak * (1 - min(step - warmup, total - warmup) / (total - warmup)) ** power


@pytest.mark.parametrize("power", [1.0, 0.5])
def test_schedule_matches_formula(power, WarmupPolynomialDecay):  # noqa: N803
    schedule = WarmupPolynomialDecay(6e-3, warmup_steps=20, decay_steps=100, power=power)
    steps = [0, 1, 10, 19, 20, 21, 50, 99, 100, 150]
    got = [float(schedule(s)) for s in steps]
    np.testing.assert_allclose(got, [expected(s, 6e-3, 20, 100, power) for s in steps], rtol=1e-5, atol=1e-9)
    assert max(got) == pytest.approx(6e-3) and got[-1] == 0.0


def test_decay_from_step_0_by_hand(WarmupPolynomialDecay):  # noqa: N803
    """paper-64k-32k phase 1 (NVIDIA's form): 6e-3 peak, 2,000 warmup of 7,038 steps, power 0.5.
    At the end of warmup: 6e-3 * (1 - 2000/7038) ** 0.5 = 6e-3 * 0.846066... = 5.0764e-3."""
    schedule = WarmupPolynomialDecay(6e-3, warmup_steps=2000, decay_steps=7038, power=0.5,
                                     decay_from="step_0")
    assert float(schedule(1000)) == pytest.approx(3e-3)                     # warmup unchanged
    assert float(schedule(1999)) == pytest.approx(6e-3 * 1999 / 2000)
    assert float(schedule(2000)) == pytest.approx(5.0764e-3, rel=1e-4)      # not the peak
    assert float(schedule(5000)) == pytest.approx(6e-3 * (2038 / 7038) ** 0.5, rel=1e-5)
    assert float(schedule(7038)) == 0.0 and float(schedule(9000)) == 0.0
    linear = WarmupPolynomialDecay(1.0, warmup_steps=10, decay_steps=100, decay_from="step_0")
    assert [float(linear(t)) for t in (10, 40, 100)] == pytest.approx([0.9, 0.6, 0.0])
    with pytest.raises(ValueError, match="decay_from must be one of"):
        WarmupPolynomialDecay(1.0, 10, 100, decay_from="start")


@pytest.mark.parametrize("decay_from", ["warmup_end", "step_0"])
@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
def test_schedule_round_trips_through_config(decay_from, flavour):
    """Registered as lamb_tf>WarmupPolynomialDecay in each flavour: no custom_objects needed."""
    schedule_class, schedules = FLAVOURS[flavour]
    schedule = schedule_class(1e-3, 5, 50, power=0.5, end_learning_rate=1e-5, decay_from=decay_from)
    again = schedules.deserialize(schedules.serialize(schedule))
    assert type(again) is schedule_class and again.get_config() == schedule.get_config()
    assert float(again(30)) == pytest.approx(float(schedule(30)))


def test_schedule_rejects_warmup_past_total(WarmupPolynomialDecay):  # noqa: N803
    with pytest.raises(ValueError, match="warmup_steps < decay_steps"):
        WarmupPolynomialDecay(1e-3, 100, 100)


def test_sqrt_scaling():
    assert sqrt_scaled_learning_rate(1e-3, 256, 1024) == pytest.approx(2e-3)
    assert sqrt_scaled_learning_rate(4e-3, 32768, 8192) == pytest.approx(2e-3)


def test_the_configs_choices_are_the_schedules():
    from bert_pretrain import config
    from lamb_tf import schedules

    assert config.DECAY_FROM == schedules.DECAY_FROM
