"""`bert-pretrain finetune` end to end on tiny data from a tiny pretrained model_dir: scores and
files written, a finished run not repeated, a killed run resumed, vocab and casing checked."""

import dataclasses
import json
import os
import random
import signal
import subprocess
import sys

import pytest

from bert_pretrain import vocab_record
from bert_pretrain.errors import UsageError
from finetune_helpers import WORDS, pretrained_model_dir

BIN = os.path.dirname(sys.executable)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return pretrained_model_dir(str(tmp_path_factory.mktemp("pretrained")))


def tsv(path, rows):
    path.write_text("".join(f"{text}\t{label}\n" for text, label in rows))
    return str(path)


def text_rows(count, seed):
    rng = random.Random(seed)   # label "low" for words w5-w40, "high" for w80 on
    rows = []
    for _ in range(count):
        label = rng.choice(["low", "high"])
        pool = WORDS[:35] if label == "low" else WORDS[75:]
        rows.append((" ".join(rng.choice(pool) for _ in range(6)), label))
    return rows


QUIET = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}   # as a user's shell


def finetune(*flags):
    return subprocess.run([os.path.join(BIN, "bert-pretrain"), "finetune", *flags], capture_output=True,
                          text=True, timeout=600, env=QUIET)


def test_classification_end_to_end_then_not_repeated(tmp_path, model_dir):
    train, dev = tsv(tmp_path / "train.tsv", text_rows(64, 1)), tsv(tmp_path / "dev.tsv", text_rows(32, 2))
    flags = ["--task=classification", "--tsv_layout=text", f"--init_from={model_dir}", f"--train_file={train}",
             f"--eval_file={dev}", f"--output_dir={tmp_path}/out", "--epochs=3", "--batch_size=8",
             "--max_seq_length=16", "--learning_rate=1e-3"]
    result = finetune(*flags)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.load(open(tmp_path / "out" / "results.json"))
    assert results["labels"] == ["high", "low"] and results["train_examples"] == 64
    assert 0 <= results["scores"]["accuracy"] <= 100 and "classification: accuracy" in result.stdout
    assert os.path.exists(tmp_path / "out" / "checkpoints" / "checkpoint")
    again = finetune(*flags)
    assert again.returncode == 0 and "already fine-tuned" in again.stdout
    other = finetune(*flags[:-1], "--learning_rate=3e-4")   # the same output_dir, another run
    assert other.returncode == 1 and "holds a fine-tuning run with other settings (config differ)" in other.stderr
    # Dropout from seeded generators whatever ran before in the process: the same seed, the same score.
    twin = finetune(*[f.replace(f"{tmp_path}/out", f"{tmp_path}/twin") for f in flags])
    assert twin.returncode == 0
    assert json.load(open(tmp_path / "twin" / "results.json"))["scores"] == results["scores"]


def test_a_killed_run_resumes_from_its_backup(tmp_path, model_dir):
    train, dev = tsv(tmp_path / "train.tsv", text_rows(64, 3)), tsv(tmp_path / "dev.tsv", text_rows(16, 4))
    flags = ["--task=classification", "--tsv_layout=text", f"--init_from={model_dir}", f"--train_file={train}",
             f"--eval_file={dev}", f"--output_dir={tmp_path}/out", "--epochs=4", "--batch_size=8",
             "--max_seq_length=16"]
    process = subprocess.Popen([os.path.join(BIN, "bert-pretrain"), "finetune", *flags], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    for line in process.stdout:
        if line.startswith("epoch 2/4"):   # the backup of epoch 2 is written before this line
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=120)
    assert not os.path.exists(tmp_path / "out" / "results.json")
    resumed = finetune(*flags)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    epochs = [line.split()[1] for line in resumed.stdout.splitlines() if line.startswith("epoch ")]
    assert epochs == ["3/4", "4/4"]
    assert os.path.exists(tmp_path / "out" / "results.json")


def test_squad_end_to_end(tmp_path, model_dir):
    context = " ".join(WORDS[:30])
    qas = [{"id": f"q{i}", "question": f"{WORDS[60 + i]} {WORDS[70 + i]}",
            "answers": [{"text": " ".join(WORDS[i:i + 2]), "answer_start": context.index(" ".join(WORDS[i:i + 2]))}]}
           for i in range(0, 20, 2)]
    path = tmp_path / "squad.json"
    path.write_text(json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": [
        {"context": context, "qas": qas}]}]}))
    result = finetune("--task=squad1.1", f"--init_from={model_dir}", f"--train_file={path}", f"--eval_file={path}",
                      f"--output_dir={tmp_path}/out", "--epochs=2", "--batch_size=4", "--max_seq_length=24",
                      "--doc_stride=8", "--max_query_length=4")
    assert result.returncode == 0, result.stderr[-3000:]
    predictions = json.load(open(tmp_path / "out" / "predictions.json"))
    assert sorted(predictions) == sorted(q["id"] for q in qas)
    scores = json.load(open(tmp_path / "out" / "results.json"))["scores"]
    assert set(scores) == {"exact_match", "f1"} and 0 <= scores["exact_match"] <= scores["f1"] <= 100


def test_bad_input_is_one_line_before_any_step(tmp_path, model_dir):
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    result = finetune("--task=squad1.1", f"--init_from={model_dir}", f"--train_file={broken}",
                      f"--eval_file={broken}", f"--output_dir={tmp_path}/out")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"bert-pretrain: --train_file: {broken} is not valid JSON "
                                          "(Expecting property name enclosed in double quotes: line 1 column 2 "
                                          "(char 1)); give the SQuAD v1.1 JSON file"]
    other_vocab = tmp_path / "vocab.txt"
    other_vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "other"]) + "\n")
    result = finetune("--task=docstrings", f"--init_from={model_dir}", f"--vocab_file={other_vocab}",
                      f"--output_dir={tmp_path}/out")
    assert result.returncode == 1 and "is not the vocab the model was pretrained with" in result.stderr


def test_vocab_and_case_must_be_the_pretrained_models(model_dir):
    record = vocab_record.load(model_dir)
    assert record.size == 120 and record.do_lower_case is True
    assert vocab_record.resolve(record, "", None) == (record.vocab_file, True)
    assert vocab_record.resolve(record, record.vocab_file, True) == (record.vocab_file, True)
    with pytest.raises(UsageError, match=r"^--do_lower_case: the model was pretrained on text with do_lower_case=True"):
        vocab_record.resolve(record, "", False)
    with pytest.raises(UsageError, match=r"^--vocab_file: the model has no vocab.json"):
        vocab_record.resolve(None, "", None)


def test_more_tokens_than_the_model_has_positions_is_refused(tmp_path, model_dir):
    from bert_pretrain.finetune import encoder, loop, tasks

    options = tasks.FinetuneOptions(
        task="squad1.1", output_dir=str(tmp_path / "out"), pretrained=encoder.from_directory(model_dir, 0.1),
        config=loop.FinetuneConfig(epochs=1, batch_size=8, learning_rate=1e-3), max_seq_length=1024,
        train_file="train.json", eval_file="dev.json")
    with pytest.raises(UsageError, match=r"^--max_seq_length: 1024 is outside \[8, 512\]; .*\(--doc_stride\)$"):
        tasks.finetune(options, strategy=None)
    # A window that leaves no room for the context would make squad_lib loop for ever.
    with pytest.raises(UsageError, match=r"^--max_seq_length: 48 leaves no room for the context after 64"):
        tasks.finetune(dataclasses.replace(options, max_seq_length=48), strategy=None)
    with pytest.raises(UsageError, match=r"^--epochs: 2.5 is not a whole number >= 1"):
        tasks.finetune(dataclasses.replace(options, max_seq_length=128, config=dataclasses.replace(
            options.config, epochs=2.5)), strategy=None)
    assert not os.path.exists(tmp_path / "out")


def test_a_model_dir_keeps_the_vocab_it_was_trained_with(tmp_path, model_dir):
    from bert_pretrain.data.metadata import Metadata

    other = tmp_path / "data"
    other.mkdir()
    (other / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nother\n")
    (other / "metadata.json").write_text(json.dumps({"vocab": {"file": "vocab.txt", "sha256": "f" * 64, "size": 6}}))
    with pytest.raises(UsageError, match=r"^--train_files: the data's vocab .* is not the one .* was trained with"):
        vocab_record.save(model_dir, Metadata.of_directory(str(other)))
    assert vocab_record.load(model_dir).size == 120   # unchanged
