"""Processes of the real CLI: kill -9 and restart equals an uninterrupted run bit for bit; SIGTERM saves
and exits cleanly; MirroredStrategy on 2 logical CPUs equals one device on the same global batch."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from training_helpers import write_shards

PYTHON = [sys.executable, "-m", "bert_pretrain.cli", "train"]
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")


def flags(data_dir, model_dir, **overrides):
    settings = dict(train_files=f"{data_dir}/*.tfrecord", model_dir=model_dir, preset="tiny", hidden_size=32,
                    max_seq_length=16, max_predictions_per_seq=4, global_batch_size=8, train_steps=100,
                    warmup_steps=10, learning_rate=1e-3, steps_per_loop=5, checkpoint_every=20, seed=3)
    settings.update(overrides)
    return [f"--{k}={v}" for k, v in settings.items()]


def wait_for(path, process, timeout=120):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert process.poll() is None, process.communicate()[1][-2000:]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def checkpoint_values(model_dir):
    reader = tf.train.load_checkpoint(model_dir)
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
            if k.startswith(("model/", "optimizer/", "step"))}


@pytest.mark.parametrize("masking, steps, every", [("static", 100, 20), ("dynamic_whole_word", 40, 10)])
def test_kill_9_and_restart_equals_uninterrupted_run(tmp_path, masking, steps, every):
    """Dynamic masks too: a record's mask depends on its stream position only, so the resumed run
    masks the records it reads as the uninterrupted run did."""
    data = str(tmp_path / "data")
    write_shards(data, files=2, records=48)
    settings = dict(masking=masking, train_steps=steps, checkpoint_every=every)
    kill_at = 2 * every   # a checkpoint before it is whole: the restart resumes
    # The uninterrupted run and the one to kill run side by side (start-up is most of their time).
    reference = subprocess.Popen(PYTHON + flags(data, tmp_path / "reference", **settings), env=ENV,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    interrupted = tmp_path / "interrupted"
    victim = subprocess.Popen(PYTHON + flags(data, interrupted, **settings), env=ENV, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    wait_for(interrupted / f"ckpt-{kill_at}.index", victim)
    victim.kill()
    victim.communicate()
    assert victim.returncode == -signal.SIGKILL
    _, reference_err = reference.communicate(timeout=300)
    assert reference.returncode == 0, reference_err[-2000:]
    assert not (interrupted / f"ckpt-{steps}.index").exists()   # really mid-way
    resumed = subprocess.run(PYTHON + flags(data, interrupted, **settings), env=ENV, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from step" in resumed.stdout
    expected, got = checkpoint_values(tmp_path / "reference"), checkpoint_values(interrupted)
    assert len(expected) > 40 and expected.keys() == got.keys()
    assert int(got["step/.ATTRIBUTES/VARIABLE_VALUE"]) == steps
    for key in expected:
        np.testing.assert_array_equal(expected[key], got[key], err_msg=key)


def test_sigterm_saves_and_exits_cleanly(tmp_path):
    data = str(tmp_path / "data")
    write_shards(data, files=2, records=48)
    model_dir = tmp_path / "model"
    process = subprocess.Popen(PYTHON + flags(data, model_dir, train_steps=10 ** 6), env=ENV,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(model_dir / "ckpt-20.index", process)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-2000:]
    assert "SIGTERM: saved" in out
    step = int(tf.train.load_checkpoint(str(model_dir)).get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE"))
    assert step >= 20 and step % 5 == 0 and f"at step {step};" in out


MIRRORED = """
import sys
from absl import flags
from bert_pretrain import cli, strategy
strategy.split_cpu(2)
flags.FLAGS(["x"] + sys.argv[1:] + ["--model_dir=" + sys.argv[-1] + "/one", "--strategy=default"])
cli.train()
flags.FLAGS(["x"] + sys.argv[1:] + ["--model_dir=" + sys.argv[-1] + "/two", "--strategy=mirrored"])
cli.train()
"""


def test_mirrored_on_two_cpus_equals_one_device(tmp_path):
    data = str(tmp_path / "data")
    write_shards(data, files=2, records=48)
    settings = flags(data, "unused", train_steps=10, warmup_steps=2, steps_per_loop=5,
                     checkpoint_every=10, dropout=0.0)
    run = subprocess.run([sys.executable, "-c", MIRRORED] + settings[:1] + settings[2:] + [str(tmp_path)],
                         env=ENV, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    one, two = checkpoint_values(tmp_path / "one"), checkpoint_values(tmp_path / "two")
    assert one.keys() == two.keys()
    initial_moved = False
    for key in one:
        np.testing.assert_allclose(one[key], two[key], rtol=1e-5, atol=1e-6, err_msg=key)
        initial_moved |= "kernel" in key and bool(np.any(one[key] != 0))
    assert initial_moved


def test_faults_that_stop_a_run_are_one_line_naming_what_to_do(tmp_path):
    data = tmp_path / "data"
    paths = write_shards(str(data), files=2, records=48)
    with open(paths[0], "r+b") as handle:          # 3/4 of a file lost: far above the 1% default
        handle.truncate(os.path.getsize(paths[0]) // 4)
    damaged = subprocess.run(PYTHON + flags(data, tmp_path / "damaged"), env=ENV, capture_output=True, text=True,
                             timeout=300)
    assert damaged.returncode == 1 and "Traceback" not in damaged.stderr
    assert damaged.stderr.splitlines()[-1].startswith("bert-pretrain: --train_files: ")
    assert "records (" in damaged.stderr and "--max_bad_record_fraction" in damaged.stderr

    poisoned = tmp_path / "poisoned"
    for path in write_shards(str(poisoned), files=2, records=48, seed=4):
        records = [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(path)]
        with tf.io.TFRecordWriter(path) as writer:
            for example in records:
                example.features.feature["masked_lm_weights"].float_list.value[0] = np.nan
                writer.write(example.SerializeToString())
    diverged = subprocess.run(PYTHON + flags(poisoned, tmp_path / "diverged", max_consecutive_skips=2), env=ENV,
                              capture_output=True, text=True, timeout=300)
    assert diverged.returncode == 1 and "Traceback" not in diverged.stderr
    assert diverged.stderr.splitlines()[-1] == (
        f"bert-pretrain: stopped at step 2: 2 consecutive steps had non-finite gradients; the last good "
        f"checkpoint is {tmp_path}/diverged/ckpt-0; lower --learning_rate, set --clip_norm or check the data")
