"""The simple gradient noise scale B_simple = tr(Σ) / |G|² (McCandlish et al. 2018, "An Empirical
Model of Large-Batch Training"), from gradient norms the training step already has.

Σ is the covariance of one example's gradient, G the true gradient. A step that accumulates K
micro-batches of b sequences (over accumulation steps and replicas) holds K gradients at batch b and
their sum at batch B = K b: the two batch sizes of the paper's Appendix A estimators. Exponential
moving averages of |G|² and tr(Σ), not of their ratio, smooth the noisy single-step estimates.
docs/noise_scale.md says what the number means and what it assumes.
"""

import math

import tensorflow as tf

DECAY = 0.99   # per applied step: the averages weigh roughly the last 100 steps
KEYS = ("noise_gradient_sq", "noise_trace", "b_simple")


def squared_norm(tensors) -> tf.Tensor:
    """Σ of squares over a list of tensors: one kernel each (`l2_loss` is Σ t² / 2) and no squared
    copy of a gradient; on CPU a square-then-sum pair per variable cost a step ~2% of CPU time,
    this ~0.5% (benchmarks/noise_scale_overhead.py)."""
    return 2.0 * tf.add_n([tf.nn.l2_loss(t) for t in tensors])


def estimates(micro_squared_norms, global_squared_norm, micro_batches: int, micro_batch_size: int):
    """One step's unbiased (|G|², tr(Σ)), Appendix A.

    The micro-batch gradients g_i are the accumulation's: each is its micro-batch's share of the
    batch-mean gradient, so they sum to the step's gradient (norm² `global_squared_norm`, at
    B = K b) and K g_i is the mean gradient of micro-batch i (at b). `micro_squared_norms` is
    Σ_i |g_i|², so the mean of |K g_i|² is K Σ_i |g_i|². With E|G_b|² = |G|² + tr(Σ)/b:
        |G|²  = (B |G_B|² − b |G_b|²) / (B − b)
        tr(Σ) = (|G_b|² − |G_B|²) / (1/b − 1/B)
    """
    k, b = float(micro_batches), float(micro_batch_size)
    big_batch = k * b
    small = k * micro_squared_norms
    gradient_sq = (big_batch * global_squared_norm - b * small) / (big_batch - b)
    trace = (small - global_squared_norm) / (1.0 / b - 1.0 / big_batch)
    return gradient_sq, trace


class NoiseScale(tf.Module):
    """Bias-corrected EMAs of the per-step |G|² and tr(Σ) estimates (Adam's correction: divided
    by `weight` = 1 − DECAY^steps), checkpointed with the run so a resumed run reports the same."""

    def __init__(self):
        super().__init__(name="noise_scale")
        zero = lambda: tf.Variable(0.0, trainable=False)  # noqa: E731
        self.gradient_sq, self.trace, self.weight = zero(), zero(), zero()

    def update(self, gradient_sq, trace, applied) -> None:
        """Folds in one step's estimates if the step was applied (a skipped step's are not finite)."""
        def mix(average, value):
            average.assign(tf.where(applied, DECAY * average + (1.0 - DECAY) * value, average))
        mix(self.gradient_sq, gradient_sq)
        mix(self.trace, trace)
        mix(self.weight, 1.0)

    def values(self) -> dict:
        """Host side: the averages and B_simple; B_simple only while the |G|² average is positive
        (early, or with a batch far below the noise scale, the estimate of |G|² can be ≤ 0)."""
        weight = float(self.weight.numpy())
        if not weight:
            return {}
        gradient_sq, trace = float(self.gradient_sq.numpy()) / weight, float(self.trace.numpy()) / weight
        out = {"noise_gradient_sq": gradient_sq, "noise_trace": trace}
        if gradient_sq > 0 and math.isfinite(trace):
            out["b_simple"] = trace / gradient_sq
        return out


def off_reason(enabled: bool, micro_batches: int) -> str:
    """Why the estimator is off, in one line; "" when it is on."""
    if not enabled:
        return "noise scale: off (--noise_scale=false)"
    if micro_batches < 2:
        return ("noise scale: off, a step has one micro-batch (it needs gradients at two batch sizes: "
                "--accumulation_steps > 1 or more than one replica)")
    return ""


def reading(batch_size: int, b_simple: float) -> str:
    """One sentence on a measured B_simple next to the batch a run used."""
    if batch_size > 2 * b_simple:
        meaning = ("the batch is far above it: each step's extra examples mostly repeat what the others "
                   "say, so a larger batch saves few steps and a smaller one would waste fewer examples")
    elif batch_size < b_simple / 2:
        meaning = ("the batch is far below it: the gradient is mostly noise at this batch, so more "
                   "parallelism is available, a larger batch would take nearly proportionally fewer steps")
    else:
        meaning = "the batch is near it: steps and examples are both spent about as well as they can be"
    return (f"gradient noise scale B_simple {b_simple:,.0f} sequences at batch {batch_size:,}: {meaning} "
            "(docs/noise_scale.md)")
