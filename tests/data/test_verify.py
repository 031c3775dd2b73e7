"""`bert-pretrain-data --verify`: every kind of damage is named for its file, intact data passes, and
the counts agree with what the data tool wrote."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf

from bert_pretrain.data import Options, create_pretraining_data
from bert_pretrain.data.verify import read_whole, verify_directory
from data_helpers import corpus_text, write_vocab

sys.path.insert(0, str(Path(__file__).parents[1] / "training"))
from training_helpers import record_offsets  # noqa: E402

SEQ, PREDS = 32, 5


@pytest.fixture
def data_dir(tmp_path):
    (tmp_path / "corpus.txt").write_text(corpus_text(60, seed=3))
    write_vocab(tmp_path / "vocab.txt")
    out = tmp_path / "out"
    create_pretraining_data(Options(input=str(tmp_path / "corpus.txt"), output_dir=str(out),
                                    vocab_file=str(tmp_path / "vocab.txt"), max_seq_length=SEQ,
                                    max_predictions_per_seq=PREDS, dupe_factor=2, num_shards=4,
                                    block_bytes=2048, workers=1, progress=False))
    return out


def shards(directory):
    return sorted(str(p) for p in directory.glob("*.tfrecord"))


def test_intact_data_passes_and_counts_match_the_metadata(data_dir):
    meta = json.loads((data_dir / "metadata.json").read_text())
    lines = []
    reports = verify_directory(str(data_dir), log=lines.append)
    assert all(r.ok for r in reports) and len(reports) == 4
    for report in reports:
        entry = meta["shards"][os.path.basename(report.path)]
        assert (report.records, report.bytes) == (entry["instances"], entry["bytes"])
        assert entry["bytes"] == os.path.getsize(report.path)
    assert lines[-1].endswith("all good") and "MB/s" in lines[-1]


def test_each_kind_of_damage_is_named_for_its_file(data_dir):
    files = shards(data_dir)
    truncated, corrupted, out_of_vocab, unlisted = files[0], files[1], files[2], data_dir / "stray.tfrecord"
    offsets = record_offsets(truncated)
    with open(truncated, "r+b") as handle:   # cut inside record 5: a partial upload
        handle.truncate(offsets[5] + 20)
    offsets = record_offsets(corrupted)
    data = bytearray(open(corrupted, "rb").read())
    data[offsets[3] + 30] ^= 0xFF            # one flipped bit pattern inside record 3's payload
    open(corrupted, "wb").write(bytes(data))
    records = [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(out_of_vocab)]
    records[-1].features.feature["input_ids"].int64_list.value[0] = 10 ** 6
    with tf.io.TFRecordWriter(out_of_vocab) as writer:
        for example in records:
            writer.write(example.SerializeToString())
    unlisted.write_bytes(open(files[3], "rb").read())

    reports = {os.path.basename(r.path): r for r in verify_directory(str(data_dir), log=lambda line: None)}
    name = os.path.basename
    assert reports[name(files[3])].ok
    assert reports[name(truncated)].records == 5
    assert any("truncated record at byte" in p for p in reports[name(truncated)].problems)
    assert reports[name(corrupted)].records == 3
    assert any("corrupted record at byte" in p for p in reports[name(corrupted)].problems)
    assert any(p.startswith("input_ids outside [0, ") and "max 1000000" in p
               for p in reports[name(out_of_vocab)].problems)
    assert any("bytes, metadata.json says" in p for p in reports[name(out_of_vocab)].problems)
    assert reports["stray.tfrecord"].problems == ("not listed in metadata.json",)
    assert read_whole(truncated)[0] == 5 and read_whole(files[3])[1] is None


def test_cli_exit_status_and_one_line_per_file(data_dir):
    command = [sys.executable, "-m", "bert_pretrain.data.cli", f"--verify={data_dir}"]
    good = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert good.returncode == 0, good.stderr[-2000:]
    assert len(good.stdout.splitlines()) == 5 and good.stdout.count("ok   ") == 4
    os.remove(shards(data_dir)[2])
    bad = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "missing: metadata.json lists it" in bad.stdout
