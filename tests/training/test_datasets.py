"""Input pipeline: static int32 batches, file sharding, deterministic order with exact skipping, and
pre-flight errors that name the file and the flag."""

import os

import numpy as np
import pytest
import tensorflow as tf

from bert_pretrain import datasets
from bert_pretrain.errors import UsageError
from training_helpers import PRED, SEQ, VOCAB, write_shards


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("shards"))
    write_shards(directory, files=3, records=40)
    return datasets.resolve_files(os.path.join(directory, "*.tfrecord"), "train_files")


def spec_of(files):
    return datasets.data_spec(files, SEQ, PRED)


def first_batches(dataset_fn, n, pipelines=1, pipeline_id=0):
    context = tf.distribute.InputContext(pipelines, pipeline_id, 1)
    return [{k: v.numpy() for k, v in b.items()} for b in dataset_fn(context).take(n)]


def test_batches_are_static_int32(shards):
    dataset = datasets.train_dataset_fn(spec_of(shards), 8, seed=1)(tf.distribute.InputContext())
    spec = dataset.element_spec
    assert spec["input_ids"].shape == (8, SEQ) and spec["input_ids"].dtype == tf.int32
    assert spec["masked_lm_ids"].shape == (8, PRED) and spec["masked_lm_weights"].dtype == tf.float32
    assert spec["next_sentence_labels"].shape == (8, 1)


def test_order_is_deterministic_and_skip_resumes_exactly(shards):
    spec = spec_of(shards)
    run = first_batches(datasets.train_dataset_fn(spec, 8, seed=3), 25)   # 25 x 8 > 120 records: repeats
    again = first_batches(datasets.train_dataset_fn(spec, 8, seed=3), 25)
    resumed = first_batches(datasets.train_dataset_fn(spec, 8, seed=3, consumed_steps=17), 8)
    other_seed = first_batches(datasets.train_dataset_fn(spec, 8, seed=4), 1)
    for a, b in zip(run, again):
        np.testing.assert_array_equal(a["input_ids"], b["input_ids"])
    for a, b in zip(run[17:], resumed):
        np.testing.assert_array_equal(a["input_ids"], b["input_ids"])
    assert not np.array_equal(run[0]["input_ids"], other_seed[0]["input_ids"])


def test_pipelines_read_disjoint_files(shards):
    def ids(pipeline):
        batches = first_batches(datasets.eval_dataset_fn(spec_of(shards), 4), 100, 2, pipeline)
        return {tuple(row) for b in batches for row in b["input_ids"]}
    first, second = ids(0), ids(1)
    assert first and second and not first & second
    assert len(first) == 80 and len(second) == 40   # files 0, 2 and file 1: sharded by file


def test_preflight_accepts_good_data(shards):
    datasets.check_data(spec_of(shards), VOCAB, "train_files")


def test_preflight_errors_name_the_file_and_flag(tmp_path, shards):
    with pytest.raises(UsageError, match=r"^--train_files: .* matches no file"):
        datasets.resolve_files(str(tmp_path / "nothing-*.tfrecord"), "train_files")
    with pytest.raises(UsageError, match="--train_files: .*vocab has 120 tokens, the model 100"):
        datasets.check_data(spec_of(shards), 100, "train_files")
    with pytest.raises(UsageError, match="max_seq_length: data has 16, config wants 32"):
        datasets.check_data(datasets.data_spec(shards, 32, PRED), VOCAB, "train_files")
    big = write_shards(str(tmp_path / "big"), files=1, records=4, vocab=500, metadata=False)
    with pytest.raises(UsageError, match=f"--eval_files: {big[0]} has input_ids outside \\[0, 120\\)"):
        datasets.check_data(datasets.data_spec(tuple(big), SEQ, PRED), VOCAB, "eval_files")
    longer = write_shards(str(tmp_path / "long"), files=1, records=4, seq=32, metadata=False)
    with pytest.raises(UsageError, match="does not hold records of max_seq_length=16"):
        datasets.check_data(datasets.data_spec(tuple(longer), SEQ, PRED), VOCAB, "train_files")
