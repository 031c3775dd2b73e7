"""The vocab a model was pretrained with, kept beside its checkpoints.

A model is only as good as the tokenizer it is fed with: fine-tuning and the TF Hub export must
split text exactly as the pretraining data did. So every model_dir holds a copy of the data's
vocab.txt and `vocab.json` (its sha256, size and lower-casing, from the data's metadata.json), and
anything that tokenizes for the model checks against them.
"""

import dataclasses
import json
import os

import tensorflow as tf

from bert_pretrain import atomic
from bert_pretrain.data import vocab as vocab_lib
from bert_pretrain.data.metadata import Metadata
from bert_pretrain.errors import UsageError

VOCAB_FILE, RECORD_FILE = "vocab.txt", "vocab.json"


@dataclasses.dataclass(frozen=True)
class VocabRecord:
    vocab_file: str
    sha256: str
    size: int
    do_lower_case: bool


def save(model_dir: str, data: Metadata, flag: str = "train_files") -> None:
    """Copies the data's vocab into model_dir with its record. A model_dir that has one already
    must be trained on the same vocab: data of another vocab of the same size would pass every
    size check and silently change what the ids mean."""
    if data is None or not data.vocab_file or not tf.io.gfile.exists(data.vocab_file):
        return
    existing = load(model_dir)
    if existing is not None:
        if data.vocab_sha256 and existing.sha256 != data.vocab_sha256:
            raise UsageError(flag, f"the data's vocab ({data.vocab_file}) is not the one {model_dir} was "
                             f"trained with ({existing.vocab_file})", "use data made with that vocab, or a new --model_dir")
        return
    save_record(model_dir, VocabRecord(data.vocab_file, data.vocab_sha256, data.vocab_size, data.do_lower_case))


def save_record(model_dir: str, record: VocabRecord) -> None:
    """Copies record's vocab into model_dir with its record (a checkpoint's own vocab, say)."""
    tf.io.gfile.makedirs(model_dir)
    with atomic.replacing(os.path.join(model_dir, VOCAB_FILE)) as temporary:
        tf.io.gfile.copy(record.vocab_file, temporary, overwrite=True)
    saved = {"sha256": record.sha256, "size": record.size, "do_lower_case": record.do_lower_case}
    atomic.write_text(os.path.join(model_dir, RECORD_FILE), json.dumps(saved, indent=1, sort_keys=True) + "\n")


def load(model_dir: str) -> VocabRecord | None:
    path = os.path.join(model_dir, RECORD_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as handle:
        record = json.load(handle)
    return VocabRecord(os.path.join(model_dir, VOCAB_FILE), record["sha256"], record["size"],
                       record["do_lower_case"])


def resolve(record: VocabRecord | None, vocab_file: str, do_lower_case: bool | None,
            flag: str = "vocab_file") -> tuple[str, bool]:
    """(vocab file, lower-case) to tokenize with: the record's, or the given ones, which must then
    be the very vocab and casing the model was pretrained with."""
    if record is None:
        if not vocab_file:
            raise UsageError(flag, "the model has no vocab.json beside its checkpoints to take the vocab "
                             "from", f"pass --{flag} (and --do_lower_case) as its data was made")
        return vocab_file, True if do_lower_case is None else do_lower_case
    if vocab_file:
        given = vocab_lib.load_vocab(vocab_file, flag)
        if given.sha256 != record.sha256:
            raise UsageError(flag, f"{vocab_file} is not the vocab the model was pretrained with "
                             f"({record.vocab_file}, sha256 {record.sha256[:12]}...)",
                             "drop the flag to use the model's own vocab")
    if do_lower_case is not None and do_lower_case != record.do_lower_case:
        raise UsageError("do_lower_case", f"the model was pretrained on text with do_lower_case="
                         f"{record.do_lower_case}", "drop the flag, or pass the same value")
    return record.vocab_file, record.do_lower_case
