"""KerasHub's BERT on our data: the pretraining TFRecords as `BertMaskedLM` takes them, so
`model.fit` trains a Keras 3 BERT on what `bert-pretrain-data` makes, on the TensorFlow or JAX
backend (Keras feeds a tf.data pipeline to either); and `load_model`, which brings a saved
KerasHub task back with its optimizer.

KerasHub's masked-LM model reads `token_ids`, `segment_ids`, `padding_mask` and `mask_positions`;
the targets are the masked ids and the sample weights the masked-position weights (0 on padding
predictions). Its next-sentence head is not part of `BertMaskedLM`, so the NSP labels are unused.
"""

import json
import warnings
import zipfile

import keras
import tensorflow as tf

from bert_pretrain import datasets


def to_keras_hub(batch: dict) -> tuple[dict, tf.Tensor, tf.Tensor]:
    """One decoded batch (v1 names) → (inputs, masked ids, masked weights) in KerasHub's names."""
    inputs = {"token_ids": batch["input_ids"], "segment_ids": batch["segment_ids"],
              "padding_mask": tf.cast(batch["input_mask"], tf.bool),
              "mask_positions": batch["masked_lm_positions"]}
    return inputs, batch["masked_lm_ids"], batch["masked_lm_weights"]


def training_batches(spec: datasets.DataSpec, batch_size: int, seed: int = 0,
                     consumed_steps: int = 0) -> tf.data.Dataset:
    """The endless shuffled stream the pipeline trains on (`record_order`), batched for `fit`."""
    stream = datasets.train_dataset_fn(spec, batch_size, seed, consumed_steps)(tf.distribute.InputContext())
    return stream.map(to_keras_hub, num_parallel_calls=tf.data.AUTOTUNE)


def evaluation_batches(spec: datasets.DataSpec, batch_size: int) -> tf.data.Dataset:
    """One pass over held-out files in file order, whole batches only, for `evaluate`."""
    batches = datasets.eval_dataset_fn(spec, batch_size)(tf.distribute.InputContext())
    return batches.map(to_keras_hub, num_parallel_calls=tf.data.AUTOTUNE)


def load_model(path) -> keras.Model:
    """`keras.saving.load_model`, plus what it skips for KerasHub tasks: a task defines its own
    `compile()`, so Keras does not call it on load (it warns) and the task keeps the default Adam
    it compiled itself with, without the saved slots. Compiles it from the compile config saved in
    the file, then reads the weights again, now with the optimizer's variables."""
    with warnings.catch_warnings():   # the two warnings about what is mended below
        warnings.filterwarnings("ignore", message=r"`compile\(\)` was not called as part of model loading")
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model = keras.saving.load_model(path)
    with zipfile.ZipFile(path) as archive:
        compile_config = json.loads(archive.read("config.json")).get("compile_config")
    if compile_config:
        model.compile(**keras.saving.deserialize_keras_object(compile_config))
        model.optimizer.build(model.trainable_variables)
        model.load_weights(path)
    return model
