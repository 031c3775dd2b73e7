"""The LAMB paper's learning-rate recipe (docs/schedule.md): linear warmup, polynomial decay,
sqrt scaling. The rule is written once over an ops namespace and imports no Keras; each flavour
binds it to its own LearningRateSchedule (`lamb_tf.tf_keras.WarmupPolynomialDecay`,
`lamb_tf.keras3.WarmupPolynomialDecay`)."""

import math


def sqrt_scaled_learning_rate(base_learning_rate: float, base_batch_size: int, batch_size: int) -> float:
    """Learning rates scale with the square root of the batch size (You et al., 2020)."""
    if base_batch_size <= 0 or batch_size <= 0:
        raise ValueError("batch sizes must be positive")
    return base_learning_rate * math.sqrt(batch_size / base_batch_size)


DECAY_FROM = ("warmup_end", "step_0")


class WarmupPolynomialRule:
    """0 -> peak linearly over `warmup_steps` (w), then a polynomial decay to `end_learning_rate`
    at `decay_steps` = T (total steps, warmup included), flat after T. `decay_from`:

    - "warmup_end": peak * (1 - (t - w) / (T - w)) ** power: the decay starts at the peak;
    - "step_0": peak * (1 - t / T) ** power, the warmup replacing its first w steps, as
      google-research/bert's `optimization.py` and NVIDIA's `PolyWarmUpScheduler` do: after the
      warmup the rate is already peak * (1 - w / T) ** power.
    """

    def __init__(self, peak_learning_rate: float, warmup_steps: int, decay_steps: int,
                 power: float = 1.0, end_learning_rate: float = 0.0, name: str | None = None,
                 decay_from: str = "warmup_end"):
        if not 0 <= warmup_steps < decay_steps:
            raise ValueError(f"need 0 <= warmup_steps < decay_steps, got {warmup_steps}, {decay_steps}")
        if peak_learning_rate <= 0 or power <= 0:
            raise ValueError("peak_learning_rate and power must be positive")
        if decay_from not in DECAY_FROM:
            raise ValueError(f"decay_from must be one of {DECAY_FROM}, got {decay_from!r}")
        self.decay_from = decay_from
        self.peak_learning_rate = peak_learning_rate
        self.warmup_steps = warmup_steps
        self.decay_steps = decay_steps
        self.power = power
        self.end_learning_rate = end_learning_rate
        self.name = name

    def rate(self, step, ops):
        """The rate at `step` (float32), with `ops` one of tensorflow or keras.ops."""
        step = ops.cast(step, "float32")
        warmup = self.peak_learning_rate * step / max(self.warmup_steps, 1)
        start = self.warmup_steps if self.decay_from == "warmup_end" else 0
        progress = ops.minimum((step - start) / (self.decay_steps - start), 1.0)
        decay = ((self.peak_learning_rate - self.end_learning_rate) * (1.0 - progress) ** self.power
                 + self.end_learning_rate)
        return ops.where(step < self.warmup_steps, warmup, decay)

    def get_config(self):
        return {"peak_learning_rate": self.peak_learning_rate, "warmup_steps": self.warmup_steps,
                "decay_steps": self.decay_steps, "power": self.power,
                "end_learning_rate": self.end_learning_rate, "name": self.name,
                "decay_from": self.decay_from}
