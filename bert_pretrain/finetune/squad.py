"""SQuAD v1.1: the official JSON → windows of the context with a document stride (Model Garden's
`squad_lib`) → start/end logits → n-best span decoding back onto the original words
(`squad_lib.postprocess_output`) → the official v1.1 exact match and F1.

A question whose answer text is not at its `answer_start` is skipped and counted (as the reference
does); malformed JSON is one error line; a context longer than the model is read in windows.
"""

import collections
import dataclasses
import json

import numpy as np
import tensorflow as tf

from bert_pretrain.errors import UsageError

RawResult = collections.namedtuple("RawResult", ["unique_id", "start_logits", "end_logits"])
N_BEST, MAX_ANSWER_LENGTH = 20, 30   # google-research/bert run_squad.py defaults


@dataclasses.dataclass
class Squad:
    """One file's questions: its JSON articles, Model Garden's examples and features, and counts."""

    path: str
    articles: list
    examples: list
    features: list
    questions: int

    def report(self) -> str:
        skipped = self.questions - len(self.examples)
        return (f"{self.path}: {len(self.examples)} questions, {len(self.features)} windows"
                + (f"; skipped {skipped} question(s) whose answer is not at its answer_start" if skipped else ""))


def _articles(path: str, flag: str) -> list:
    try:
        with tf.io.gfile.GFile(path) as handle:
            articles = [article for article in json.load(handle)["data"] if article["paragraphs"]]
        for paragraph in (p for article in articles for p in article["paragraphs"]):
            paragraph["context"], [(q["id"], q["question"]) for q in paragraph["qas"]]
        return articles
    except tf.errors.OpError as error:
        raise UsageError(flag, f"cannot read {path} ({error.message})", "give the SQuAD v1.1 JSON file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UsageError(flag, f"{path} is not valid JSON ({error})", "give the SQuAD v1.1 JSON file") from None
    except (KeyError, TypeError):
        raise UsageError(flag, f"{path} lacks SQuAD's data/paragraphs/qas structure",
                         "give a file in the official SQuAD v1.1 format") from None


def read(path: str, is_training: bool, tokenizer, max_seq_length: int, doc_stride: int,
         max_query_length: int, flag: str) -> Squad:
    from official.nlp.data import squad_lib   # pylint: disable=import-outside-toplevel

    articles = _articles(path, flag)
    questions = sum(len(p["qas"]) for a in articles for p in a["paragraphs"])
    try:
        examples = squad_lib.read_squad_examples(path, is_training=is_training, version_2_with_negative=False)
    except (KeyError, ValueError, IndexError, TypeError) as error:
        raise UsageError(flag, f"{path}: a question is malformed ({type(error).__name__}: {error})",
                         "each training question needs one answer with text and answer_start") from None
    if not examples:
        raise UsageError(flag, f"{path} holds no usable question", "check the answers' answer_start")
    features = []

    def keep(feature, is_padding=False):
        if not is_padding:
            features.append(feature)

    # batch_size=1: no padding features (squad_lib pads evaluation features to a batch by id).
    squad_lib.convert_examples_to_features(examples, tokenizer, max_seq_length, doc_stride, max_query_length,
                                           is_training, keep, batch_size=None if is_training else 1)
    return Squad(path, articles, examples, features, questions)


def inputs(data: Squad) -> dict:
    return {"input_word_ids": np.array([f.input_ids for f in data.features], np.int32),
            "input_mask": np.array([f.input_mask for f in data.features], np.int32),
            "input_type_ids": np.array([f.segment_ids for f in data.features], np.int32)}


def targets(data: Squad) -> tuple:
    """Start and end token of the answer in each window ([CLS], 0, where the window misses it)."""
    return (np.array([f.start_position for f in data.features], np.int32),
            np.array([f.end_position for f in data.features], np.int32))


def predictions(data: Squad, start_logits: np.ndarray, end_logits: np.ndarray, do_lower_case: bool) -> dict:
    """{question id: answer text}: the best valid span over the question's windows."""
    from official.nlp.data import squad_lib   # pylint: disable=import-outside-toplevel

    results = [RawResult(f.unique_id, s.tolist(), e.tolist())
               for f, s, e in zip(data.features, start_logits, end_logits)]
    answers, _, _ = squad_lib.postprocess_output(data.examples, data.features, results, N_BEST,
                                                 MAX_ANSWER_LENGTH, do_lower_case)
    return dict(answers)
