"""BERT pretraining data: text → WordPiece vocab → masked sentence-pair TFRecords, and reading them back.

Python API: `create_pretraining_data(Options(...))`; CLI: `bert-pretrain-data` (`cli`).
"""

from bert_pretrain.data.errors import DataError
from bert_pretrain.data.pipeline import Options, create_pretraining_data

__all__ = ["DataError", "Options", "create_pretraining_data"]
