"""Sentence and sentence-pair classification from TSV files in the GLUE layouts, or a plain
"text[<TAB>text_b]<TAB>label" file.

Model Garden 2.20's GLUE processors read TensorFlow Datasets, not files, so the columns of each
layout are declared here (as google-research/bert's `run_classifier.py` reads them: tab-separated,
quotes kept literally); rows become Model Garden `InputExample`s and `convert_single_example`
makes the model inputs. A row with too few columns or a label outside the task's labels is skipped
and counted, never a crash and never a silently different task.
"""

import collections
import csv
import dataclasses

import numpy as np
import tensorflow as tf

from bert_pretrain.errors import UsageError


@dataclasses.dataclass(frozen=True)
class TsvLayout:
    text_a: int
    text_b: int | None
    label: int
    header: bool
    labels: tuple | None        # None: the training file's labels, sorted
    metrics: tuple = ("accuracy",)

    @property
    def columns(self) -> int:
        """The fewest columns a row must have: a label counted from the end comes after the texts."""
        texts = max(self.text_a, self.text_b or 0) + 1
        return max(texts, self.label + 1) if self.label >= 0 else texts - self.label


LAYOUTS = {
    "mnli": TsvLayout(8, 9, -1, True, ("contradiction", "entailment", "neutral")),
    "sst2": TsvLayout(0, None, 1, True, ("0", "1")),
    "mrpc": TsvLayout(3, 4, 0, True, ("0", "1"), ("accuracy", "f1")),
    "cola": TsvLayout(3, None, 1, False, ("0", "1"), ("accuracy", "matthews_corrcoef")),
    "qqp": TsvLayout(3, 4, 5, True, ("0", "1"), ("accuracy", "f1")),
    "text": TsvLayout(0, None, -1, False, None),
    "text_pair": TsvLayout(0, 1, -1, False, None),
}


@dataclasses.dataclass
class Examples:
    """Rows read from one file: Model Garden InputExamples and what was skipped, by reason."""

    path: str
    examples: list
    skipped: collections.Counter

    def report(self) -> str:
        if not self.skipped:
            return f"{self.path}: {len(self.examples)} examples"
        reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(self.skipped.items()))
        return f"{self.path}: {len(self.examples)} examples; skipped {reasons}"


def read(path: str, layout: TsvLayout, labels: tuple | None, flag: str) -> Examples:
    """The rows of `path` as InputExamples. `labels` None: any label (the training file of a
    layout without a fixed label set)."""
    from official.nlp.data.classifier_data_lib import InputExample   # pylint: disable=import-outside-toplevel

    try:
        with tf.io.gfile.GFile(path) as handle:
            rows = list(csv.reader(handle, delimiter="\t", quotechar=None))
    except (tf.errors.OpError, UnicodeDecodeError, csv.Error) as error:
        raise UsageError(flag, f"cannot read {path} ({type(error).__name__})", "give a UTF-8 TSV file") from None
    examples, skipped = [], collections.Counter()
    for number, row in enumerate(rows[1:] if layout.header else rows, 2 if layout.header else 1):
        if not row:
            continue
        if len(row) < layout.columns:
            skipped[f"row(s) with fewer than {layout.columns} columns"] += 1
            continue
        label = row[layout.label].strip()
        if labels is not None and label not in labels:
            skipped["row(s) with a label outside " + "/".join(labels)] += 1
            continue
        examples.append(InputExample(guid=f"{path}:{number}", text_a=row[layout.text_a],
                                     text_b=None if layout.text_b is None else row[layout.text_b],
                                     label=label))
    if not examples:
        raise UsageError(flag, f"{path} has no usable row ({dict(skipped) or 'it is empty'})",
                         "check --tsv_layout against the file's columns")
    return Examples(path, examples, skipped)


def label_set(layout: TsvLayout, train: Examples) -> tuple:
    return layout.labels or tuple(sorted({example.label for example in train.examples}))


def features(examples: Examples, labels: tuple, max_seq_length: int, tokenizer) -> tuple[dict, np.ndarray]:
    """Model inputs ([CLS] a [SEP] b [SEP], longest-first truncation) and label ids."""
    from official.nlp.data.classifier_data_lib import convert_single_example   # pylint: disable=import-outside-toplevel

    converted = [convert_single_example(i, example, list(labels), max_seq_length, tokenizer)
                 for i, example in enumerate(examples.examples)]
    inputs = {"input_word_ids": np.array([f.input_ids for f in converted], np.int32),
              "input_mask": np.array([f.input_mask for f in converted], np.int32),
              "input_type_ids": np.array([f.segment_ids for f in converted], np.int32)}
    return inputs, np.array([f.label_id for f in converted], np.int32)
