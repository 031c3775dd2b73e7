"""Damaged and failed checkpoints: a restart uses the newest checkpoint that reads (saying which it
skipped) and still equals an uninterrupted run; a write that fails stops in one line with the
checkpoints before it intact; SIGTERM during a write finishes that write and exits."""

import os
import resource
import signal

import numpy as np
import pytest
import tensorflow as tf

from bert_pretrain import checkpoints, datasets
from bert_pretrain import config as config_lib
from bert_pretrain import trainer as trainer_lib
from bert_pretrain.config import TrainConfig
from bert_pretrain.errors import UsageError
from training_helpers import PRED, SEQ, VOCAB, write_shards

MODEL = config_lib.ModelConfig(VOCAB, num_layers=1, hidden_size=32, num_heads=2, dropout=0.0)
QUIET = lambda line: None  # noqa: E731


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    return datasets.data_spec(tuple(write_shards(str(tmp_path_factory.mktemp("data")), files=2, records=40)),
                              SEQ, PRED)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, spec):
    trainer = make(tmp_path_factory.mktemp("reference"), train_steps=9)
    trainer.train(spec, log=QUIET)
    return state(trainer)


def stopped_at(model_dir, spec, step):
    """A 9-step run preempted (SIGTERM) after `step`: checkpoints every 3 steps up to there."""
    def log(line):
        if line.startswith(f"step {step}/"):
            os.kill(os.getpid(), signal.SIGTERM)
    make(model_dir, train_steps=9).train(spec, log=log)


def make(model_dir, **overrides):
    settings = dict(train_steps=6, global_batch_size=8, learning_rate=2e-3, warmup_steps=1, steps_per_loop=3,
                    checkpoint_every=3, seed=7)
    settings.update(overrides)
    return trainer_lib.Trainer(MODEL, TrainConfig(**settings), tf.distribute.get_strategy(), str(model_dir))


def state(trainer):
    return [v.numpy() for v in trainer.variables] + [v.numpy() for v in trainer.optimizer.variables]


def assert_same(expected, trainer):
    for a, b in zip(expected, state(trainer)):
        np.testing.assert_array_equal(a, b)


def halve(path):
    with open(path, "r+b") as handle:
        handle.truncate(os.path.getsize(path) // 2)


def test_a_damaged_latest_checkpoint_is_named_and_the_one_before_it_used(tmp_path, spec, uninterrupted):
    stopped_at(tmp_path, spec, 6)                                      # ckpt-0, ckpt-3, ckpt-6
    halve(tmp_path / "ckpt-6.data-00000-of-00001")                     # a partial copy
    lines = []
    resumed = make(tmp_path, train_steps=9)
    resumed.train(spec, log=lines.append)
    assert lines[0].startswith(f"checkpoint: {tmp_path}/ckpt-6 cannot be read (")
    assert lines[1] == f"checkpoint: resuming from {tmp_path}/ckpt-3, the newest that reads"
    assert lines[2].startswith("resuming from step 3")
    assert_same(uninterrupted, resumed)
    assert checkpoints.listed(str(tmp_path))[:2] == [f"{tmp_path}/ckpt-9", f"{tmp_path}/ckpt-6"]
    tf.train.Checkpoint(model=resumed.model).read(f"{tmp_path}/ckpt-6").expect_partial()   # rewritten whole


def test_no_readable_checkpoint_is_an_error_not_a_silent_restart(tmp_path, spec):
    make(tmp_path, train_steps=3).train(spec, log=QUIET)               # ckpt-0, ckpt-3
    for path in tmp_path.glob("ckpt-*.data-*"):
        halve(path)
    with pytest.raises(UsageError, match="none of the 2 checkpoints in .* can be read; restore the directory"):
        make(tmp_path).train(spec, log=QUIET)


def test_a_damaged_index_file_is_rebuilt_from_the_checkpoints_present(tmp_path, spec, uninterrupted):
    stopped_at(tmp_path, spec, 6)
    (tmp_path / "checkpoint").write_text("model_checkpoint_path: \"ckpt-6\"\nall_model_checkpoint_pa")
    lines = []
    resumed = make(tmp_path, train_steps=9, keep_checkpoints=3)
    resumed.train(spec, log=lines.append)
    assert lines[0].startswith("resuming from step 6")
    assert_same(uninterrupted, resumed)
    # The rebuilt index lists the old checkpoints again, so they rotate out as usual (3 kept).
    assert checkpoints.listed(str(tmp_path)) == [f"{tmp_path}/ckpt-{n}" for n in (9, 6, 3)]
    assert sorted(p.name for p in tmp_path.glob("ckpt-*.index")) == ["ckpt-3.index", "ckpt-6.index", "ckpt-9.index"]


def test_a_failed_write_stops_in_one_line_and_leaves_the_checkpoints_before_it(tmp_path, spec):
    stopped_at(tmp_path, spec, 3)                                      # ckpt-0, ckpt-3
    trainer = make(tmp_path, train_steps=9)
    index_before = (tmp_path / "checkpoint").read_text()
    data_size = os.path.getsize(tmp_path / "ckpt-3.data-00000-of-00001")
    # A real failed write: files may not grow past half a checkpoint (EFBIG, as a full disk fails).
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (data_size // 2, hard))
    try:
        with pytest.raises(checkpoints.CheckpointWriteError,
                           match=rf"^could not write checkpoint {tmp_path}/ckpt-6 \(.*; File too large\); the last written "
                                 rf"checkpoint, {tmp_path}/ckpt-3, is intact; check the storage"):
            trainer.train(spec, log=QUIET)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous_handler)
    assert (tmp_path / "checkpoint").read_text() == index_before
    assert not list(tmp_path.glob("ckpt-6*")) and tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-3")
    tf.train.Checkpoint(model=trainer.model).read(f"{tmp_path}/ckpt-3").expect_partial()


def test_transient_write_errors_are_retried(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoints, "RETRY_DELAYS", (0.0, 0.0, 0.0))
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=tf.Variable(1.0)), str(tmp_path), 3)
    real_save, failures = manager.save, [tf.errors.UnavailableError(None, None, "connection reset"),
                                         tf.errors.DeadlineExceededError(None, None, "timed out")]

    def flaky(**kwargs):
        if failures:
            raise failures.pop(0)
        return real_save(**kwargs)

    monkeypatch.setattr(manager, "save", flaky)
    lines = []
    assert checkpoints.save(manager, 4, log=lines.append) == f"{tmp_path}/ckpt-4"
    assert [line.split(";")[1].strip() for line in lines] == ["retry 1 in 0 s", "retry 2 in 0 s"]
    assert "connection reset" in lines[0]


def test_sigterm_during_a_checkpoint_write_finishes_it_and_exits(tmp_path, spec, uninterrupted, monkeypatch):
    trainer = make(tmp_path, train_steps=9)
    real_save = trainer.manager.save

    def save_with_signal(**kwargs):
        if kwargs.get("checkpoint_number") == 3:
            os.kill(os.getpid(), signal.SIGTERM)    # the preemption notice arrives as the write starts
        return real_save(**kwargs)

    monkeypatch.setattr(trainer.manager, "save", save_with_signal)
    lines = []
    trainer.train(spec, log=lines.append)
    assert int(trainer.step.numpy()) == 3
    assert lines[-1].startswith(f"SIGTERM: saved {tmp_path}/ckpt-3 at step 3;")
    assert sorted(p.name for p in tmp_path.glob("ckpt-*.index")) == ["ckpt-0.index", "ckpt-3.index"]
    resumed = make(tmp_path, train_steps=9)
    resumed.train(spec, log=QUIET)
    assert_same(uninterrupted, resumed)


def test_what_a_killed_write_left_is_removed_and_the_checkpoints_kept(tmp_path):
    checkpoint = tf.train.Checkpoint(v=tf.Variable(2.0))
    tf.train.CheckpointManager(checkpoint, str(tmp_path), 3).save(checkpoint_number=3)
    (tmp_path / "ckpt-3_temp").mkdir()            # a re-save of step 3 killed mid-write
    (tmp_path / "ckpt-3_temp" / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"\0" * 10)
    manager = checkpoints.manager(checkpoint, str(tmp_path), 3)
    assert not (tmp_path / "ckpt-3_temp").exists()
    assert manager.latest_checkpoint == f"{tmp_path}/ckpt-3"
    checkpoint.v.assign(0.0)
    assert checkpoints.restore_newest_readable(checkpoint, str(tmp_path)) == f"{tmp_path}/ckpt-3"
    assert float(checkpoint.v.numpy()) == 2.0


def test_a_missing_index_file_is_rebuilt_not_taken_for_a_fresh_start(tmp_path):
    checkpoint = tf.train.Checkpoint(v=tf.Variable(2.0))
    saver = tf.train.CheckpointManager(checkpoint, str(tmp_path), 3)
    saver.save(checkpoint_number=3)
    saver.save(checkpoint_number=6)
    (tmp_path / "checkpoint").unlink()
    lines = []
    manager = checkpoints.manager(checkpoint, str(tmp_path), 3, log=lines.append)
    assert lines == [f"checkpoint: the index file in {tmp_path} is missing or cannot be read; rebuilt from the "
                     "2 checkpoint(s) present"]
    assert manager.latest_checkpoint == f"{tmp_path}/ckpt-6" and len(manager.checkpoints) == 2
