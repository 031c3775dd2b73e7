"""Scores as GLUE and SQuAD report them, in percent: accuracy, F1 of the positive class, Matthews
correlation (sklearn, as Model Garden's sentence-prediction task), and SQuAD v1.1's exact match and
F1 through Model Garden's copy of the official evaluation script (answer normalisation included)."""

import numpy as np


def classification(labels, predictions, names: tuple) -> dict:
    """`names`: which of "accuracy", "f1", "matthews_corrcoef" to report."""
    from sklearn import metrics   # pylint: disable=import-outside-toplevel

    labels, predictions = np.asarray(labels), np.asarray(predictions)
    scores = {"accuracy": 100.0 * float(np.mean(labels == predictions))}
    if "f1" in names:
        scores["f1"] = 100.0 * float(metrics.f1_score(labels, predictions))
    if "matthews_corrcoef" in names:
        scores["matthews_corrcoef"] = 100.0 * float(metrics.matthews_corrcoef(labels, predictions))
    return scores


def squad_v1_1(articles: list, predictions: dict) -> dict:
    """`articles`: the dev JSON's "data"; `predictions`: {question id: answer text}."""
    from official.nlp.tools import squad_evaluate_v1_1   # pylint: disable=import-outside-toplevel

    scores = squad_evaluate_v1_1.evaluate(articles, predictions)   # fractions
    return {"exact_match": 100.0 * scores["exact_match"], "f1": 100.0 * scores["final_f1"]}
