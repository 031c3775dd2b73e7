"""Float64 NumPy LAMB (Algorithm 2) and LARS (Algorithm 1), written from the paper's formulas.

Deliberately independent of lamb_tf: plain loops, no shared helpers, explicit masks.
"""

import re

import numpy as np


def _phi(z, low, high):
    if low is not None:
        z = max(z, low)
    if high is not None:
        z = min(z, high)
    return z


def _ratio(x, u, phi_bounds, ratio_bounds):
    """The paper's φ(‖x‖)/‖u‖ with φ(z) = min(max(z, γ_l), γ_u). Two cases the formula leaves open:
    u = 0 (no update to scale: 1), and ‖x‖ = 0 with no γ_l, where φ(0) = 0 would never move a
    zero-initialised variable: 1, as NVIDIA's and TensorFlow Addons' LAMB do."""
    x_norm = np.linalg.norm(x)
    u_norm = np.linalg.norm(u)
    low, high = phi_bounds
    if u_norm == 0.0 or (x_norm == 0.0 and low is None):
        return 1.0
    return _phi(_phi(x_norm, low, high) / u_norm, *ratio_bounds)


def _excluded(patterns, name):
    return any(re.search(p, name) for p in patterns or [])


def _global_clip(grads, clip):
    if clip is None:
        return grads
    norm = np.sqrt(sum(np.sum(g * g) for g in grads))
    return [g * clip / max(norm, clip) for g in grads]


def lamb(names, x0, grads_per_step, *, lr, beta_1=0.9, beta_2=0.999, eps=1e-6,
         weight_decay=0.0, exclude_from_weight_decay=None, exclude_from_layer_adaptation=None,
         bias_correction=True, phi_bounds=(None, None), ratio_bounds=(None, None),
         nvlamb=False):
    """Returns the list (one entry per step) of lists of float64 variables after that step.

    `lr` is a function of the 0-based step index. NVLAMB divides the gradients by their global
    norm when it exceeds 1 and adapts every variable.
    """
    if exclude_from_layer_adaptation is None:
        exclude_from_layer_adaptation = exclude_from_weight_decay
    if nvlamb:
        exclude_from_layer_adaptation = []
    xs = [np.array(x, np.float64) for x in x0]
    ms = [np.zeros_like(x) for x in xs]
    vs = [np.zeros_like(x) for x in xs]
    history = []
    for step, grads in enumerate(grads_per_step):
        t = step + 1
        grads = [np.array(g, np.float64) for g in grads]
        grads = _global_clip(grads, 1.0 if nvlamb else None)
        for i, name in enumerate(names):
            g = grads[i]
            ms[i] = beta_1 * ms[i] + (1 - beta_1) * g
            vs[i] = beta_2 * vs[i] + (1 - beta_2) * g * g
            if bias_correction:
                m_hat = ms[i] / (1 - beta_1 ** t)
                v_hat = vs[i] / (1 - beta_2 ** t)
            else:
                m_hat, v_hat = ms[i], vs[i]
            r = m_hat / (np.sqrt(v_hat) + eps)
            decay = 0.0 if _excluded(exclude_from_weight_decay, name) else weight_decay
            u = r + decay * xs[i]
            if _excluded(exclude_from_layer_adaptation, name):
                ratio = 1.0
            else:
                ratio = _ratio(xs[i], u, phi_bounds, ratio_bounds)
            xs[i] = xs[i] - lr(step) * ratio * u
        history.append([x.copy() for x in xs])
    return history


def lars(names, x0, grads_per_step, *, lr, momentum=0.9, weight_decay=0.0,
         exclude_from_weight_decay=None, exclude_from_layer_adaptation=None,
         phi_bounds=(None, None), ratio_bounds=(None, None)):
    """LARS, same conventions as `lamb`."""
    if exclude_from_layer_adaptation is None:
        exclude_from_layer_adaptation = exclude_from_weight_decay
    xs = [np.array(x, np.float64) for x in x0]
    ms = [np.zeros_like(x) for x in xs]
    history = []
    for step, grads in enumerate(grads_per_step):
        for i, name in enumerate(names):
            decay = 0.0 if _excluded(exclude_from_weight_decay, name) else weight_decay
            ms[i] = momentum * ms[i] + (1 - momentum) * (np.float64(grads[i]) + decay * xs[i])
            if _excluded(exclude_from_layer_adaptation, name):
                ratio = 1.0
            else:
                ratio = _ratio(xs[i], ms[i], phi_bounds, ratio_bounds)
            xs[i] = xs[i] - lr(step) * ratio * ms[i]
        history.append([x.copy() for x in xs])
    return history
