"""Invalid hyperparameters fail at construction with a ValueError that names the argument."""

import pytest

import lamb_tf.keras3
import lamb_tf.tf_keras

FLAVOURS = [lamb_tf.keras3, lamb_tf.tf_keras]

BAD_LAMB_ARGUMENTS = [
    ({"learning_rate": -0.1}, "learning_rate"),
    ({"learning_rate": float("nan")}, "learning_rate"),
    ({"beta_1": 1.0}, "beta_1"),
    ({"beta_1": -0.1}, "beta_1"),
    ({"beta_2": 1.5}, "beta_2"),
    ({"epsilon": 0.0}, "epsilon"),
    ({"epsilon": -1e-6}, "epsilon"),
    ({"weight_decay": -0.01}, "weight_decay"),
    ({"exclude_from_weight_decay": "bias"}, "exclude_from_weight_decay"),
    ({"exclude_from_layer_adaptation": "LayerNorm"}, "exclude_from_layer_adaptation"),
    ({"exclude_from_weight_decay": ["bias", "("]}, "exclude_from_weight_decay"),
    ({"exclude_from_weight_decay": ["bias", 3]}, "exclude_from_weight_decay"),
    ({"exclude_from_weight_decay": 3}, "exclude_from_weight_decay"),
    ({"phi_min": 2.0, "phi_max": 1.0}, "phi_min"),
    ({"phi_max": -1.0}, "phi_max"),
    ({"min_trust_ratio": -0.5}, "min_trust_ratio"),
    ({"min_trust_ratio": 2.0, "max_trust_ratio": 1.0}, "min_trust_ratio"),
    ({"nvlamb": True, "exclude_from_layer_adaptation": ["bias"]}, "nvlamb"),
    ({"nvlamb": True, "global_clipnorm": 5.0}, "nvlamb"),
    ({"nvlamb": True, "clipnorm": 1.0}, "nvlamb"),
]


@pytest.mark.parametrize("flavour", FLAVOURS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("kwargs,argument", BAD_LAMB_ARGUMENTS)
def test_lamb_rejects_bad_argument(flavour, kwargs, argument):
    with pytest.raises(ValueError, match=f"`{argument}(`|=)"):
        flavour.LAMB(**kwargs)


@pytest.mark.parametrize("flavour", FLAVOURS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("kwargs,argument", [
    ({"momentum": 1.0}, "momentum"),
    ({"learning_rate": -1.0}, "learning_rate"),
    ({"exclude_from_weight_decay": "bias"}, "exclude_from_weight_decay"),
    ({"weight_decay": -1.0}, "weight_decay"),
])
def test_lars_rejects_bad_argument(flavour, kwargs, argument):
    with pytest.raises(ValueError, match=f"`{argument}(`|=)"):
        flavour.LARS(**kwargs)


@pytest.mark.parametrize("flavour", FLAVOURS, ids=lambda m: m.__name__)
def test_exclusion_defaults(flavour):
    follows = flavour.LAMB(weight_decay=0.01, exclude_from_weight_decay=["bias"]).options
    assert not follows.adapts("dense/bias") and follows.adapts("dense/kernel")
    assert not follows.decays("dense/bias") and follows.decays("dense/kernel")
    nothing = flavour.LAMB(weight_decay=0.01, exclude_from_weight_decay=["bias"],
                           exclude_from_layer_adaptation=[]).options
    assert nothing.adapts("dense/bias") and not nothing.decays("dense/bias")
    nvlamb = flavour.LAMB(nvlamb=True, exclude_from_weight_decay=["bias"])
    assert nvlamb.options.adapts("dense/bias") and nvlamb.global_clipnorm == 1.0
    # Patterns are regexes searched anywhere in the path.
    anchored = flavour.LAMB(weight_decay=0.1, exclude_from_weight_decay=[r"^head/.*bias$"])
    assert not anchored.options.decays("head/dense/bias")
    assert anchored.options.decays("encoder/head/dense/bias")


def test_float32_slots_is_refused_where_tf_keras_cannot_make_them():
    assert lamb_tf.keras3.LAMB(float32_slots=True).options.float32_slots
    with pytest.raises(ValueError, match="`float32_slots`"):
        lamb_tf.tf_keras.LAMB(float32_slots=True)
