"""`Metadata`: the named accessors read what the data tool writes into metadata.json."""

import json

from bert_pretrain.data import metadata


def write(directory, raw):
    (directory / metadata.FILENAME).write_text(json.dumps(raw))


def test_accessors_read_the_files_layout(tmp_path):
    write(tmp_path, {"complete": True, "vocab": {"size": 8000, "sha256": "ab"},
                     "settings": {"feature_names": "v2", "max_seq_length": 128},
                     "shards": {"a.tfrecord": {"instances": 5}, "b.tfrecord": {"instances": 7}}})
    info = metadata.Metadata.of_files([str(tmp_path / "a.tfrecord"), str(tmp_path / "b.tfrecord")])
    assert (info.complete, info.vocab_size, info.feature_names) == (True, 8000, "v2")
    assert info.record_counts([str(tmp_path / "b.tfrecord"), str(tmp_path / "a.tfrecord")]) == (7, 5)
    assert info.record_counts([str(tmp_path / "a.tfrecord"), str(tmp_path / "c.tfrecord")]) is None


def test_defaults_for_older_or_unfinished_directories(tmp_path):
    assert metadata.Metadata.of_directory(str(tmp_path)) is None
    write(tmp_path, {"settings": {}})
    info = metadata.Metadata.of_directory(str(tmp_path))
    assert (info.complete, info.vocab_size, info.feature_names) == (False, None, "v1")
