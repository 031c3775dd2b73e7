"""The LAMB and LARS update rules, written once for every Keras flavour.

The functions here take `xp`, a small namespace of array operations (`KERAS_OPS` for Keras 3,
`TF_OPS` in `lamb_tf.tf_keras`), and plain tensors; they never touch variables or optimizer state.
The Keras 3 and tf_keras optimizers read their state, call these functions and assign the
results, so both flavours run the same lines of math. Everything is computed in float32.
"""

import dataclasses
import functools
import math
import operator
from typing import Any, Callable, Optional


@dataclasses.dataclass(frozen=True)
class ArrayOps:
    """The few array operations the update rules need, from one backend."""

    sqrt: Callable
    sum: Callable  # sum(x, axis=None, keepdims=False)
    cast: Callable  # cast(x, "float32")
    stack: Callable  # stack(list of arrays): along a new axis 0
    reshape: Callable  # reshape(x, shape)
    unstack: Callable  # unstack(x, num): the num slices along axis 0
    where: Callable
    minimum: Callable
    maximum: Callable
    # (a, b, axes) -> (Σa², Σb²) over `axes` as float32, summed together in float64, or None
    # where this backend has no such reduction here; each norm then takes `_norm`'s sliced sum.
    sums_of_squares: Optional[Callable] = None


@dataclasses.dataclass(frozen=True)
class TrustRatioBounds:
    """Optional clamps: φ(z) = min(max(z, phi_min), phi_max) on ‖x‖, and bounds on the ratio."""

    phi_min: Optional[float] = None
    phi_max: Optional[float] = None
    ratio_min: Optional[float] = None
    ratio_max: Optional[float] = None


@dataclasses.dataclass(frozen=True)
class TrustRatio:
    """What the last step saw for one variable: ‖x_t‖, ‖update‖ and the ratio applied."""

    x_norm: Any
    update_norm: Any
    ratio: Any


def _clamp(xp, value, low, high):
    if low is not None:
        value = xp.maximum(value, low)
    if high is not None:
        value = xp.minimum(value, high)
    return value


# Where the backend has no `sums_of_squares` (JAX, TensorFlow outside XLA or on TPU), ‖t‖² is
# summed in two stages: first the K equal contiguous slices of t, elementwise, then the n/K
# partial sums. XLA:CPU compiles a whole-array reduction by writing t² to memory before a tree
# reduction (or as a scalar loop); the slice sum is one vectorised pass that reads t once and
# makes the norms about 3x cheaper. K = 8 keeps the traced graph small (benchmarks/README.md).
NORM_SLICES = 8


def _norm(xp, t, stacked):
    """‖t‖, or one norm per variable along axis 0 (kept as broadcastable axes) if stacked."""
    if stacked:  # small vectors only: one reduction each
        return xp.sqrt(xp.sum(t * t, axis=tuple(range(1, len(t.shape))), keepdims=True))
    if None in tuple(t.shape) or math.prod(t.shape) % NORM_SLICES:
        return xp.sqrt(xp.sum(t * t))
    slices = xp.unstack(xp.reshape(t * t, (NORM_SLICES, -1)), NORM_SLICES)
    return xp.sqrt(xp.sum(functools.reduce(operator.add, slices)))


def _norms(xp, x, update, stacked):
    """(‖x‖, ‖update‖), from the backend's joint sum of squares where it has one."""
    axes = tuple(range(1 if stacked else 0, len(x.shape)))
    sums = xp.sums_of_squares(x, update, axes) if xp.sums_of_squares else None
    if sums is None:
        return _norm(xp, x, stacked), _norm(xp, update, stacked)
    shape = (-1,) + (1,) * len(axes) if stacked else ()
    return tuple(xp.sqrt(xp.reshape(total, shape)) for total in sums)


def trust_ratio(xp: ArrayOps, x, update, bounds: TrustRatioBounds, stacked=False) -> TrustRatio:
    """φ(‖x‖) / ‖update‖, φ(z) = min(max(z, phi_min), phi_max); 1 where the update is zero.

    ‖x‖ = 0 (a zero-initialised variable): with phi_min set, the paper's φ(0) = phi_min applies;
    without it φ(0) = 0 would freeze the variable for good, so it takes ratio 1, a plain step
    (as NVIDIA's and TensorFlow Addons' LAMB). `stacked`: axis 0 indexes several variables of one
    shape, each with its own ratio.
    """
    x_norm, update_norm = _norms(xp, x, update, stacked)
    defined = update_norm > 0.0
    if bounds.phi_min is None:
        defined = defined & (x_norm > 0.0)
    phi = _clamp(xp, x_norm, bounds.phi_min, bounds.phi_max)
    ratio = _clamp(xp, phi / xp.where(defined, update_norm, 1.0), bounds.ratio_min, bounds.ratio_max)
    return TrustRatio(x_norm, update_norm, xp.where(defined, ratio, 1.0))


def lamb_step(xp: ArrayOps, x, g, m, v, *, learning_rate, beta_1, beta_2, epsilon,
              bias_correction_1, bias_correction_2, weight_decay, layer_adaptation: bool,
              bounds: TrustRatioBounds, stacked=False):
    """One step of LAMB (You et al. 2020, Algorithm 2) for one variable.

    `bias_correction_k` is 1 - β_k^t (or 1 when bias correction is off), computed once per step
    by the caller. `weight_decay` is 0 for variables excluded from decay; a variable excluded
    from layer adaptation takes ratio 1, i.e. a plain Adam step with decay. `stacked`: the
    arrays hold several same-shape variables along axis 0, one trust ratio each.
    Returns (new x, new m, new v, TrustRatio or None).
    """
    m = beta_1 * m + (1.0 - beta_1) * g
    v = beta_2 * v + (1.0 - beta_2) * (g * g)
    m_hat = m / bias_correction_1
    v_hat = v / bias_correction_2
    update = m_hat / (xp.sqrt(v_hat) + epsilon) + weight_decay * x
    if not layer_adaptation:
        return x - learning_rate * update, m, v, None
    ratio = trust_ratio(xp, x, update, bounds, stacked)
    return x - (learning_rate * ratio.ratio) * update, m, v, ratio


def lars_step(xp: ArrayOps, x, g, m, *, learning_rate, momentum, weight_decay,
              layer_adaptation: bool, bounds: TrustRatioBounds, stacked=False):
    """One step of LARS (You et al. 2020, Algorithm 1) for one variable.

    m_t = β1·m + (1-β1)·(g + λ·x);  x ← x - η·φ(‖x‖)/‖m_t‖·m_t.
    Returns (new x, new m, TrustRatio or None).
    """
    m = momentum * m + (1.0 - momentum) * (g + weight_decay * x)
    if not layer_adaptation:
        return x - learning_rate * m, m, None
    ratio = trust_ratio(xp, x, m, bounds, stacked)
    return x - (learning_rate * ratio.ratio) * m, m, ratio
