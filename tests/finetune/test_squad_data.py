"""SQuAD v1.1 through Model Garden's squad_lib: windows with a document stride, the answer found in
the window that holds it, decoded back to the original words; bad input is one line or a count."""

import json

import numpy as np
import pytest

from bert_pretrain.errors import UsageError
from bert_pretrain.finetune import squad

WORDS = [f"w{i}" for i in range(5, 120)]
CONTEXT = " ".join(WORDS[:40])                       # 40 words, one token each
ANSWER = "w23 w24"                                   # context tokens 18 and 19


def squad_file(path, answer_start=None, answer=ANSWER):
    start = CONTEXT.index(ANSWER) if answer_start is None else answer_start
    data = {"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": CONTEXT, "qas": [
        {"id": "q1", "question": "w100 w101", "answers": [{"text": answer, "answer_start": start}]}]}]}]}
    path.write_text(json.dumps(data))
    return str(path)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from official.nlp.tools import tokenization

    vocab = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS) + "\n")
    return tokenization.FullTokenizer(str(vocab), do_lower_case=True)


def read(path, tokenizer, training):
    # 24 positions - 2 question tokens - 3 specials = 19 context tokens a window, windows 8 apart.
    return squad.read(path, training, tokenizer, max_seq_length=24, doc_stride=8, max_query_length=8,
                      flag="train_file")


def test_an_answer_across_a_window_boundary_is_labelled_where_it_is_whole(tmp_path, tokenizer):
    data = read(squad_file(tmp_path / "train.json"), tokenizer, training=True)
    starts, ends = squad.targets(data)
    assert len(data.features) == 4                   # windows at context tokens 0, 8, 16, 24
    for feature, start, end in zip(data.features, starts, ends):
        tokens = feature.tokens
        if start:
            assert " ".join(tokens[start:end + 1]) == ANSWER
    # Window 0 (tokens 0-18) cuts it after its first token: labelled "no answer" ([CLS]), as the
    # reference does; windows 8-26 and 16-34 hold it whole; 24-39 does not reach it.
    assert [bool(s) for s in starts] == [False, True, True, False]
    assert "w23" in data.features[0].tokens and "w24" not in data.features[0].tokens


def test_logits_on_the_answer_decode_to_its_original_text(tmp_path, tokenizer):
    data = read(squad_file(tmp_path / "dev.json"), tokenizer, training=False)
    start_logits = np.zeros((len(data.features), 24), np.float32)
    end_logits = np.zeros_like(start_logits)
    for k, feature in enumerate(data.features):
        if "w23" in feature.tokens and "w24" in feature.tokens:   # the windows that hold it whole
            start_logits[k, feature.tokens.index("w23")] = 9.0
            end_logits[k, feature.tokens.index("w24")] = 9.0
    assert squad.predictions(data, start_logits, end_logits, do_lower_case=True) == {"q1": ANSWER}


def test_an_answer_not_at_its_start_is_skipped_and_counted(tmp_path, tokenizer):
    path = tmp_path / "train.json"
    data = json.loads(open(squad_file(path)).read())
    data["data"][0]["paragraphs"][0]["qas"].append(
        {"id": "q2", "question": "w100", "answers": [{"text": "w9 w10", "answer_start": 0}]})
    path.write_text(json.dumps(data))
    read_back = read(str(path), tokenizer, training=True)
    assert (read_back.questions, len(read_back.examples)) == (2, 1)
    assert "skipped 1 question(s)" in read_back.report()


def test_malformed_files_are_one_error_line(tmp_path, tokenizer):
    broken = tmp_path / "broken.json"
    broken.write_text('{"data": [')
    with pytest.raises(UsageError, match=r"^--train_file: .*broken.json is not valid JSON"):
        read(str(broken), tokenizer, training=True)
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"data": [{"title": "t"}]}')
    with pytest.raises(UsageError, match=r"lacks SQuAD's data/paragraphs/qas structure"):
        read(str(wrong), tokenizer, training=True)
