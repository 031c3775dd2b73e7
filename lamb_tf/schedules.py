"""The LAMB paper's learning-rate recipe (docs/schedule.md): linear warmup, polynomial decay,
sqrt scaling."""

import math

import tensorflow as tf
import tf_keras


def sqrt_scaled_learning_rate(base_learning_rate: float, base_batch_size: int, batch_size: int) -> float:
    """Learning rates scale with the square root of the batch size (You et al., 2020)."""
    if base_batch_size <= 0 or batch_size <= 0:
        raise ValueError("batch sizes must be positive")
    return base_learning_rate * math.sqrt(batch_size / base_batch_size)


class WarmupPolynomialDecay(tf_keras.optimizers.schedules.LearningRateSchedule):
    """0 -> peak linearly over `warmup_steps`, then peak * (1 - (t - w) / (T - w)) ** power down to
    `end_learning_rate` at `decay_steps` = T (total steps, warmup included); flat after T."""

    def __init__(self, peak_learning_rate: float, warmup_steps: int, decay_steps: int,
                 power: float = 1.0, end_learning_rate: float = 0.0, name: str | None = None):
        if not 0 <= warmup_steps < decay_steps:
            raise ValueError(f"need 0 <= warmup_steps < decay_steps, got {warmup_steps}, {decay_steps}")
        if peak_learning_rate <= 0 or power <= 0:
            raise ValueError("peak_learning_rate and power must be positive")
        self.peak_learning_rate = peak_learning_rate
        self.warmup_steps = warmup_steps
        self.decay_steps = decay_steps
        self.power = power
        self.end_learning_rate = end_learning_rate
        self.name = name

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warmup = self.peak_learning_rate * step / max(self.warmup_steps, 1)
        progress = tf.minimum((step - self.warmup_steps) / (self.decay_steps - self.warmup_steps), 1.0)
        decay = ((self.peak_learning_rate - self.end_learning_rate) * (1.0 - progress) ** self.power
                 + self.end_learning_rate)
        return tf.where(step < self.warmup_steps, warmup, decay)

    def get_config(self):
        return {"peak_learning_rate": self.peak_learning_rate, "warmup_steps": self.warmup_steps,
                "decay_steps": self.decay_steps, "power": self.power,
                "end_learning_rate": self.end_learning_rate, "name": self.name}
