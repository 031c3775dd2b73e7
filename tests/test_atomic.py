"""Whole-or-nothing writes: the final name appears only when the write completed."""

import os

import pytest

from bert_pretrain import atomic


def test_write_text_replaces_the_file_whole(tmp_path):
    path = str(tmp_path / "metadata.json")
    atomic.write_text(path, "old\n")
    atomic.write_text(path, "new\n")
    assert open(path).read() == "new\n"
    assert os.listdir(tmp_path) == ["metadata.json"]   # no temporary left behind


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    path = str(tmp_path / "DONE")
    atomic.write_text(path, "first\n")
    with pytest.raises(OSError, match="disk full"):
        with atomic.replacing(path) as temporary:
            with open(temporary, "w") as handle:
                handle.write("half")
            raise OSError("disk full")
    assert open(path).read() == "first\n"
    assert os.listdir(tmp_path) == ["DONE"]


def test_the_suffix_keeps_an_extension_writers_need(tmp_path):
    path = str(tmp_path / "run.png")
    with atomic.replacing(path, ".tmp.png") as temporary:
        assert temporary.endswith(".png") and not os.path.exists(path)
        open(temporary, "wb").write(b"\x89PNG")
    assert open(path, "rb").read() == b"\x89PNG"
