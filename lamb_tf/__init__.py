"""LAMB and LARS (You et al., "Large Batch Optimization for Deep Learning", ICLR 2020).

`from lamb_tf import LAMB, LARS` gives the classes for the Keras that `tf.keras` is in this
process: Keras 3 (`lamb_tf.keras3`) by default, tf_keras (`lamb_tf.tf_keras`) when TensorFlow
routes `tf.keras` to it (TF_USE_LEGACY_KERAS=1). Import a flavour module directly to choose.
The flavour is resolved on first access, so importing `lamb_tf.keras3` never needs TensorFlow.
"""

import importlib

from lamb_tf.hyperparameters import BERT_EXCLUSIONS

__all__ = ["LAMB", "LARS", "BERT_EXCLUSIONS", "flavour"]
__version__ = "0.1.0"


def flavour() -> str:
    """"tf_keras" if `tf.keras` is tf_keras in this process, else "keras3"."""
    try:
        import tensorflow as tf
    except ImportError:
        return "keras3"
    return "tf_keras" if tf.keras.optimizers.Optimizer.__module__.startswith("tf_keras") \
        else "keras3"


def __getattr__(name):
    if name in ("LAMB", "LARS"):
        return getattr(importlib.import_module(f"lamb_tf.{flavour()}"), name)
    raise AttributeError(f"module 'lamb_tf' has no attribute {name!r}")
