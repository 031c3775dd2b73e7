"""Optimizer configurations checked against the float64 reference, shared by both flavours.

Framework-free: each flavour's test module builds its own variables and optimizer from these.
"""

import numpy as np

import reference

STEPS = 20
LEARNING_RATE = 0.01
# name -> (shape, initial value kind, gradient scale); names follow Keras 3 paths (no '/').
VARIABLES = {
    "dense_kernel": ((5, 3), "normal", 1.0),
    "dense_bias": ((3,), "normal", 0.1),
    "LayerNorm_gamma": ((3,), "ones", 0.5),
    "word_embeddings": ((7, 4), "normal", 2.0),
    "zero_init_kernel": ((4, 2), "zeros", 1.0),   # ‖x‖ = 0 at step 1: ratio 1, or phi_min/‖u‖
    "no_grad_kernel": ((2, 2), "normal", 0.0),    # zero gradient throughout
}
BERT = ["LayerNorm", "layer_norm", "bias"]

LAMB_CASES = {
    "defaults": {},
    "no_bias_correction": {"bias_correction": False},
    "decay_everywhere": {"weight_decay": 0.01},
    "decay_bert_exclusions": {"weight_decay": 0.01, "exclude_from_weight_decay": BERT},
    "adaptation_excludes_nothing": {"weight_decay": 0.01, "exclude_from_weight_decay": BERT,
                                    "exclude_from_layer_adaptation": []},
    "adaptation_explicit": {"weight_decay": 0.1, "exclude_from_weight_decay": ["bias"],
                            "exclude_from_layer_adaptation": ["embeddings", "gamma"]},
    "phi_bounds": {"weight_decay": 0.01, "phi_min": 1.0, "phi_max": 2.0},
    "ratio_bounds": {"weight_decay": 0.01, "min_trust_ratio": 0.5, "max_trust_ratio": 1.2},
    "nvlamb": {"weight_decay": 0.01, "exclude_from_weight_decay": BERT, "nvlamb": True},
    "betas_epsilon": {"beta_1": 0.5, "beta_2": 0.9, "epsilon": 1e-3, "weight_decay": 0.05},
    "schedule": {"weight_decay": 0.01, "schedule": True},
}
LARS_CASES = {
    "lars_defaults": {},
    "lars_decay_bert_exclusions": {"weight_decay": 0.01, "exclude_from_weight_decay": BERT},
    "lars_adaptation_excludes_nothing": {"weight_decay": 0.01, "exclude_from_weight_decay": BERT,
                                         "exclude_from_layer_adaptation": []},
    "lars_bounds": {"momentum": 0.5, "weight_decay": 0.01, "phi_max": 1.5,
                    "min_trust_ratio": 0.1, "max_trust_ratio": 3.0},
}


def schedule_lr(step):
    """What both flavours' ExponentialDecay(0.02, decay_steps=5, decay_rate=0.5) gives."""
    return 0.02 * 0.5 ** (step / 5)


def initial_values(seed=0):
    rng = np.random.default_rng(seed)
    values = []
    for shape, kind, _ in VARIABLES.values():
        if kind == "normal":
            values.append(rng.normal(size=shape))
        else:
            values.append(np.full(shape, 1.0 if kind == "ones" else 0.0))
    return [v.astype(np.float32) for v in values]


def gradients(seed=1):
    rng = np.random.default_rng(seed)
    return [[(rng.normal(size=shape) * scale).astype(np.float32)
             for shape, _, scale in VARIABLES.values()] for _ in range(STEPS)]


def expected(algorithm, case):
    """The reference trajectory for a case: one list of float64 arrays per step."""
    kwargs = dict(case)
    lr = schedule_lr if kwargs.pop("schedule", False) else (lambda step: LEARNING_RATE)
    kwargs["phi_bounds"] = (kwargs.pop("phi_min", None), kwargs.pop("phi_max", None))
    kwargs["ratio_bounds"] = (kwargs.pop("min_trust_ratio", None),
                              kwargs.pop("max_trust_ratio", None))
    if "epsilon" in kwargs:
        kwargs["eps"] = kwargs.pop("epsilon")
    run = reference.lamb if algorithm == "lamb" else reference.lars
    return run(list(VARIABLES), initial_values(), gradients(), lr=lr, **kwargs)


def optimizer_kwargs(case, schedule_class):
    """The optimizer's constructor arguments for a case, with the flavour's schedule class."""
    kwargs = dict(case)
    if kwargs.pop("schedule", False):
        kwargs["learning_rate"] = schedule_class(0.02, decay_steps=5, decay_rate=0.5)
    else:
        kwargs["learning_rate"] = LEARNING_RATE
    return kwargs


def assert_trajectory_matches(actual_per_step, expected_per_step, rtol=1e-5):
    """Every variable after every step within `rtol` relative (L2) error of the reference."""
    assert len(actual_per_step) == len(expected_per_step) == STEPS
    worst = 0.0
    for step, (actual, expected_vars) in enumerate(zip(actual_per_step, expected_per_step)):
        for name, a, e in zip(VARIABLES, actual, expected_vars):
            error = np.linalg.norm(np.float64(a) - e) / max(np.linalg.norm(e), 1e-12)
            worst = max(worst, error)
            assert error <= rtol, f"step {step + 1}, {name}: relative error {error:.3g}"
    return worst
