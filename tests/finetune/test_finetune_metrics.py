"""Scores against hand-computed values."""

import pytest

from bert_pretrain.finetune import metrics


def test_classification_scores_by_hand():
    labels, predicted = [1, 0, 1, 1, 0, 1], [1, 0, 0, 1, 1, 1]
    # TP 3, FP 1, FN 1, TN 1: precision = recall = 3/4; MCC = (3*1 - 1*1) / sqrt(4*4*2*2) = 1/4.
    scores = metrics.classification(labels, predicted, ("accuracy", "f1", "matthews_corrcoef"))
    assert scores == pytest.approx({"accuracy": 400 / 6, "f1": 75.0, "matthews_corrcoef": 25.0})
    assert metrics.classification(labels, predicted, ("accuracy",)).keys() == {"accuracy"}


def test_squad_v1_1_exact_match_and_f1_by_hand():
    articles = [{"title": "t", "paragraphs": [{"context": "...", "qas": [
        {"id": "q1", "question": "?", "answers": [{"text": "the Eiffel Tower", "answer_start": 0}]},
        {"id": "q2", "question": "?", "answers": [{"text": "1889", "answer_start": 0},
                                                  {"text": "in 1889", "answer_start": 0}]},
        {"id": "q3", "question": "?", "answers": [{"text": "Gustave Eiffel", "answer_start": 0}]}]}]}]
    predictions = {"q1": "  Eiffel tower!",   # case, punctuation, the article and spaces normalised away
                   "q2": "built in 1889",      # vs "in 1889": precision 2/3, recall 1 -> F1 0.8
                   "q3": "Eiffel"}             # precision 1, recall 1/2 -> F1 2/3
    scores = metrics.squad_v1_1(articles, predictions)
    assert scores["exact_match"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(100 * (1 + 0.8 + 2 / 3) / 3)
