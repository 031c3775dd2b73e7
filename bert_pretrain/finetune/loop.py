"""Fine-tuning with Keras' own loop: `Model.fit` under the run's tf.distribute strategy, BERT's
recipe (AdamW or LAMB with weight decay off LayerNorm and biases, gradients clipped to global norm 1,
linear warmup over a share of the steps then linear decay to zero), and
`tf_keras.callbacks.BackupAndRestore`, so a killed run resumes where its last backup left it.
"""

import dataclasses
import os
import time

import numpy as np
import tensorflow as tf
import tf_keras

from bert_pretrain.config import TrainConfig
from bert_pretrain.trainer import make_optimizer
from lamb_tf.tf_keras import WarmupPolynomialDecay


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    epochs: int
    batch_size: int
    learning_rate: float
    warmup_proportion: float = 0.1
    optimizer: str = "adamw"
    weight_decay: float = 0.01
    precision: str = "float32"
    seed: int = 12345
    backup_every: int = 100          # steps between backups (resume points)
    xla: str = "auto"


class _EpochLog(tf_keras.callbacks.Callback):
    def __init__(self, log, epochs):
        super().__init__()
        self.log, self.epochs, self.started = log, epochs, time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.log(f"epoch {epoch + 1}/{self.epochs} | loss {logs['loss']:.4f} | "
                 f"{time.perf_counter() - self.started:.0f} s")


def train(build_model, losses, inputs: dict, targets, config: FinetuneConfig, strategy, work_dir: str,
          log=print) -> tf_keras.Model:
    """Builds (`build_model()`) and compiles the model in the strategy's scope and fits it on
    (inputs, targets): `config.epochs` passes, shuffled by `config.seed`."""
    # Dropout from tf.random.Generator, as in pretraining: the result then depends on the seed only,
    # not on whether this process pretrained first (which switches Keras to these generators).
    tf_keras.backend.experimental.enable_tf_random_generator()
    tf_keras.utils.set_random_seed(config.seed)
    tf_keras.mixed_precision.set_global_policy(config.precision)
    examples = len(next(iter(inputs.values())))
    steps_per_epoch = max(1, examples // config.batch_size)
    epochs = int(config.epochs)
    total = steps_per_epoch * epochs
    # From step 0, the warmup replacing the first steps: google-research's optimization.py.
    schedule = WarmupPolynomialDecay(config.learning_rate, int(config.warmup_proportion * total), total,
                                     decay_from="step_0")
    settings = TrainConfig(train_steps=total, global_batch_size=config.batch_size, decay_from="step_0",
                           learning_rate=config.learning_rate, warmup_steps=int(config.warmup_proportion * total),
                           weight_decay=config.weight_decay, clip_norm=1.0, optimizer=config.optimizer,
                           precision=config.precision, seed=config.seed)
    settings.check(strategy.num_replicas_in_sync)
    with strategy.scope():
        model = build_model()
        optimizer = make_optimizer(settings, schedule)
        if config.precision == "mixed_float16":
            optimizer = tf_keras.mixed_precision.LossScaleOptimizer(optimizer)
        model.compile(optimizer=optimizer, loss=losses, loss_weights=[1.0 / len(losses)] * len(losses),
                      jit_compile=config.xla == "on" or (config.xla == "auto" and bool(tf.config.list_logical_devices("GPU"))))
    dataset = tf.data.Dataset.from_tensor_slices((inputs, targets)).shuffle(
        examples, seed=config.seed, reshuffle_each_iteration=True).repeat().batch(
        config.batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    backup = tf_keras.callbacks.BackupAndRestore(os.path.join(work_dir, "backup"),
                                                 save_freq=min(config.backup_every, steps_per_epoch))
    log(f"fine-tuning: {examples} examples, batch {config.batch_size}, {epochs} epoch(s) of "
        f"{steps_per_epoch} steps, peak lr {config.learning_rate:g} ({config.optimizer})")
    model.fit(dataset, epochs=epochs, steps_per_epoch=steps_per_epoch, verbose=0,
              callbacks=[backup, _EpochLog(log, epochs)])
    return model


def predict(model: tf_keras.Model, inputs: dict, batch_size: int):
    """Float32 outputs for every example (the last batch may be short)."""
    outputs = model.predict(tf.data.Dataset.from_tensor_slices(inputs).batch(batch_size), verbose=0)
    if isinstance(outputs, (list, tuple)):
        return [np.asarray(o, np.float32) for o in outputs]
    return np.asarray(outputs, np.float32)
