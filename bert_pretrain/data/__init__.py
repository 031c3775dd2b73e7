"""Making BERT pretraining data: text → WordPiece vocab → masked sentence-pair TFRecords.

Python API: `create_pretraining_data(Options(...))` (`create`); CLI: `bert-pretrain-data` (`cli`).
The format is `tfrecords` (schema) and `metadata` (what a directory holds); training reads it
through `bert_pretrain.datasets`. The API is imported on first use: the CLI sets TensorFlow's
logging up before TensorFlow loads.
"""

import importlib

__all__ = ["Options", "create_pretraining_data"]


def __getattr__(name):
    if name == "Options":
        return importlib.import_module("bert_pretrain.data.options").Options
    if name == "create_pretraining_data":
        return importlib.import_module("bert_pretrain.data.create").create_pretraining_data
    raise AttributeError(f"module 'bert_pretrain.data' has no attribute {name!r}")
