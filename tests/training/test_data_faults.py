"""Damaged training data: a truncated or corrupted file is read up to its damage and the rest skipped,
and the run equals, bit for bit, a run on data that never held the skipped records. Too much damage
stops the run with one line, before compute or at the last good checkpoint."""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from bert_pretrain import config as config_lib
from bert_pretrain import data_faults, datasets
from bert_pretrain import trainer as trainer_lib
from bert_pretrain.config import TrainConfig
from bert_pretrain.errors import UsageError
from training_helpers import PRED, SEQ, VOCAB, record_offsets, write_shards

MODEL = config_lib.ModelConfig(VOCAB, num_layers=1, hidden_size=32, num_heads=2, dropout=0.0)
RECORDS = 40


def make(model_dir, **overrides):
    settings = dict(train_steps=6, global_batch_size=8, learning_rate=2e-3, warmup_steps=1, steps_per_loop=3,
                    checkpoint_every=3, seed=7, max_bad_record_fraction=0.2)
    settings.update(overrides)
    return trainer_lib.Trainer(MODEL, TrainConfig(**settings), tf.distribute.get_strategy(), str(model_dir))


def spec_of(directory):
    return datasets.data_spec(tuple(sorted(str(p) for p in directory.glob("*.tfrecord"))), SEQ, PRED)


def truncate_inside(path, record):
    with open(path, "r+b") as handle:
        handle.truncate(record_offsets(path)[record] + 20)


def corrupt(path, record):
    """Flips bytes inside one record's payload: same size, the CRC no longer matches."""
    data = bytearray(open(path, "rb").read())
    data[record_offsets(path)[record] + 40] ^= 0xFF
    open(path, "wb").write(bytes(data))


def keep_first(directory, name, records):
    """The reference: the file holds only its first `records` records, and metadata.json says so."""
    path = directory / name
    kept = [r.numpy() for r in tf.data.TFRecordDataset(str(path)).take(records)]
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in kept:
            writer.write(record)
    meta = json.loads((directory / "metadata.json").read_text())
    meta["shards"][name] = {"instances": records, "bytes": os.path.getsize(path)}
    (directory / "metadata.json").write_text(json.dumps(meta))


def state(trainer):
    return [v.numpy() for v in trainer.variables] + [v.numpy() for v in trainer.optimizer.variables]


@pytest.fixture
def data(tmp_path):
    clean = tmp_path / "clean"
    files = write_shards(str(clean), files=3, records=RECORDS)
    return clean, [os.path.basename(f) for f in files]


@pytest.mark.parametrize("damage", ["truncated", "corrupted"])
def test_damaged_file_is_skipped_from_its_damage_and_the_run_equals_clean_data(tmp_path, data, damage):
    clean, names = data
    damaged, reference = tmp_path / "damaged", tmp_path / "reference"
    shutil.copytree(clean, damaged)
    shutil.copytree(clean, reference)
    if damage == "truncated":     # found at start: the size differs from metadata.json's
        truncate_inside(str(damaged / names[1]), 25)
    else:                         # same size: found when the loop reads it
        corrupt(str(damaged / names[1]), 25)
    keep_first(reference, names[1], 25)

    expected = make(tmp_path / "ref_model")
    expected.train(spec_of(reference), log=lambda line: None)
    lines = []
    got = make(tmp_path / "model")
    got.train(spec_of(damaged), log=lines.append)
    assert any(f"{names[1]} is damaged" in line and "first 25 records are used" in line for line in lines)
    if damage == "corrupted":
        assert any(line.startswith("data: a record could not be read; reading 3 file(s)") for line in lines)
        assert any(line.startswith("data: back to step 0 (") for line in lines)
    for a, b in zip(state(expected), state(got)):
        np.testing.assert_array_equal(a, b)
    logged = {value.tag: value.simple_value if value.HasField("simple_value") else
              float(tf.make_ndarray(value.tensor)) for path in (tmp_path / "model" / "train").glob("events.*")
              for event in tf.compat.v1.train.summary_iterator(str(path)) for value in event.summary.value}
    assert logged["unreadable_records"] == RECORDS - 25      # in TensorBoard too
    recorded = data_faults.load(str(tmp_path / "model"))
    assert [(os.path.basename(f), d.readable, d.expected, d.lost) for f, d in recorded.items()] == [
        (names[1], 25, RECORDS, RECORDS - 25)]

    if damage == "corrupted":
        return   # what a restart does with recorded damage is the same for both kinds
    # A restart neither reads the file again nor announces the damage again, and resumes exactly.
    more_lines = []
    again = make(tmp_path / "model", train_steps=9)
    again.train(spec_of(damaged), log=more_lines.append)
    assert not any("is damaged" in line for line in more_lines) and "resuming from step 6" in more_lines[0]
    longer = make(tmp_path / "ref_model", train_steps=9)
    longer.train(spec_of(reference), log=lambda line: None)
    for a, b in zip(state(longer), state(again)):
        np.testing.assert_array_equal(a, b)


def test_too_much_damage_stops_before_compute(tmp_path, data):
    clean, names = data
    truncate_inside(str(clean / names[0]), 2)     # 38 of 120 records lost: 32%
    trainer = make(tmp_path / "model", max_bad_record_fraction=0.3)
    with pytest.raises(UsageError, match=r"^--train_files: 38 of 120 records \(31.67%\) are unreadable, in "
                                         rf"{names[0]}; .*raise --max_bad_record_fraction above 0.3167$"):
        trainer.train(spec_of(clean), log=lambda line: None)
    assert not list((tmp_path / "model").glob("ckpt-*"))     # nothing trained, nothing written


def test_damage_found_mid_run_past_the_bound_stops_with_the_last_checkpoint_intact(tmp_path, data):
    clean, names = data
    corrupt(str(clean / names[2]), 1)
    trainer = make(tmp_path / "model", max_bad_record_fraction=0.1)
    with pytest.raises(UsageError, match="39 of 120 records"):
        trainer.train(spec_of(clean), log=lambda line: None)
    assert trainer.manager.latest_checkpoint.endswith("ckpt-0")
    tf.train.Checkpoint(model=trainer.model).read(trainer.manager.latest_checkpoint).expect_partial()


def test_a_replaced_file_is_read_whole_again(tmp_path, data):
    clean, names = data
    pristine = (clean / names[1]).read_bytes()
    truncate_inside(str(clean / names[1]), 10)
    spec = spec_of(clean)
    damaged, found = data_faults.apply(spec, str(tmp_path), 0.9, "train_files", log=lambda line: None)
    assert damaged.record_counts == (RECORDS, 10, RECORDS) and list(found) == [str(clean / names[1])]
    (clean / names[1]).write_bytes(pristine)
    lines = []
    repaired, found = data_faults.apply(spec, str(tmp_path), 0.9, "train_files", log=lines.append)
    assert repaired.record_counts == (RECORDS,) * 3 and not found and "changed since it was found damaged" in lines[0]
    assert data_faults.load(str(tmp_path)) == {}


def test_damaged_held_out_file_is_evaluated_up_to_its_damage(tmp_path, data):
    clean, names = data
    reference = tmp_path / "reference"
    shutil.copytree(clean, reference)
    corrupt(str(clean / names[0]), 20)
    keep_first(reference, names[0], 20)
    trainer = make(tmp_path / "model")
    lines = []
    damaged_result = trainer.evaluate(spec_of(clean), log=lines.append)
    assert any(f"{names[0]} is damaged (corrupted record at byte" in line for line in lines)
    assert damaged_result == trainer.evaluate(spec_of(reference))   # the first 20 records, not 0 or 40
