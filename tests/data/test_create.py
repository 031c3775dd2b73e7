"""End to end: text files → shards + metadata; determinism, resume, refusals, Model Garden compatibility."""

import json
import glob
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from bert_pretrain import datasets
from bert_pretrain.data import Options, create_pretraining_data, metadata, tfrecords
from bert_pretrain.errors import UsageError
from data_helpers import corpus_text, write_vocab

SEQ, PREDS = 32, 5


def options(tmp_path, out="out", **overrides):
    values = dict(input=str(tmp_path / "corpus*.txt"), output_dir=str(tmp_path / out),
                  vocab_file=str(tmp_path / "vocab.txt"), max_seq_length=SEQ,
                  max_predictions_per_seq=PREDS, dupe_factor=2, num_shards=3, block_bytes=2048,
                  workers=1, progress=False)
    values.update(overrides)
    return Options(**values)


@pytest.fixture
def corpus_dir(tmp_path):
    (tmp_path / "corpus1.txt").write_text(corpus_text(40, seed=1))
    (tmp_path / "corpus2.txt").write_bytes(
        corpus_text(30, seed=2).encode() + b"\nZzyzx qwv.\nAnother zzyzx \xff\xfe.\n\nAlone.\n")
    (tmp_path / "corpus3.txt").write_bytes(b"")
    write_vocab(tmp_path / "vocab.txt")
    return tmp_path


def shard_bytes(out_dir):
    names = sorted(n for n in os.listdir(out_dir) if n.endswith(".tfrecord"))
    return [open(os.path.join(out_dir, n), "rb").read() for n in names]


def read_all(out_dir, names="v1"):
    files = tuple(sorted(glob.glob(os.path.join(out_dir, "*.tfrecord"))))
    spec = datasets.data_spec(files, SEQ, PREDS)
    assert spec.feature_names == names   # from the directory's metadata.json
    batches = list(datasets.examples(spec).batch(10_000))
    return {k: np.concatenate([b[k].numpy() for b in batches]) for k in batches[0]}


def test_output_schema_counts_and_invariants(corpus_dir, capsys):
    meta = create_pretraining_data(options(corpus_dir))
    out = corpus_dir / "out"
    assert sorted(os.listdir(out)) == ["metadata.json", "pretrain-00000-of-00003.tfrecord",
                                       "pretrain-00001-of-00003.tfrecord",
                                       "pretrain-00002-of-00003.tfrecord", "vocab.txt"]
    assert json.loads((out / "metadata.json").read_text()) == meta
    data = read_all(out)
    counts = meta["counts"]
    n = len(data["input_ids"])
    assert n == counts["instances"] > 100
    # 72 documents, one of them of one sentence, kept as google-research keeps it.
    assert counts["documents"] == 72 and counts["masked_tokens"] == data["masked_lm_weights"].sum()
    assert counts["unknown_tokens"] == 6          # zzyzx qwv another zzyzx, the U+FFFD pair, alone
    assert meta["unk_rate"] == counts["unknown_tokens"] / counts["tokens"]
    assert meta["input"]["replaced_bytes"] == 2 and meta["input"]["empty_files"] == 1
    assert meta["input"]["one_sentence_documents"] == 1
    ids, mask, seg = data["input_ids"].copy(), data["input_mask"], data["segment_ids"]
    length = mask.sum(axis=1)
    # undo the masking (a random replacement may be any vocab id, [SEP] included, as in the reference)
    real = data["masked_lm_weights"] > 0
    ids[np.nonzero(real)[0], data["masked_lm_positions"][real]] = data["masked_lm_ids"][real]
    assert (ids[:, 0] == 2).all() and ((ids == 3).sum(axis=1) == 2).all()      # [CLS], two [SEP]
    assert (ids[mask == 0] == 0).all() and (seg[mask == 0] == 0).all()
    assert (ids[np.arange(n), length - 1] == 3).all()
    assert set(np.unique(data["next_sentence_labels"])) == {0, 1}
    wanted = np.minimum(PREDS, np.maximum(1, np.rint(length * 0.15)))
    np.testing.assert_array_equal(data["masked_lm_weights"].sum(axis=1), wanted)
    summary = capsys.readouterr().err
    assert "2 invalid UTF-8 byte(s) replaced" in summary and "1 empty file(s) skipped" in summary
    assert "documents: 72 used, 1 of them of one sentence" in summary
    assert f"instances: {n:,} (" in summary and f"[UNK] rate: {100 * 6 / counts['tokens']:.3f}%" in summary
    metadata.check_compatible(meta, max_seq_length=SEQ, max_predictions_per_seq=PREDS,
                              vocab_sha256=meta["vocab"]["sha256"], do_lower_case=True)
    with pytest.raises(ValueError, match="max_seq_length: data has 32, config wants 128"):
        metadata.check_compatible(meta, max_seq_length=128)


def test_one_sentence_documents_give_random_next_pairs_or_are_skipped(tmp_path, capsys):
    write_vocab(tmp_path / "vocab.txt")
    (tmp_path / "corpus1.txt").write_text("".join(f"the cat {w} sat on the mat .\n\n"
                                                  for w in ("red", "big", "old", "new", "wet", "dry")))
    meta = create_pretraining_data(options(tmp_path, dupe_factor=3, num_shards=1))
    labels = read_all(tmp_path / "out")["next_sentence_labels"]
    assert meta["counts"]["documents"] == 6 and len(labels) > 0 and (labels == 1).all()   # 1: random next
    with pytest.raises(UsageError, match="^--input: .*no document with 2 or more sentences"):
        create_pretraining_data(options(tmp_path, out="two", min_document_sentences=2))
    with pytest.raises(UsageError, match="^--min_document_sentences: invalid value 3; use 1 .* or 2"):
        create_pretraining_data(options(tmp_path, out="three", min_document_sentences=3))


def test_same_bytes_for_any_worker_count_and_shard_count(corpus_dir):
    create_pretraining_data(options(corpus_dir, "one"))
    create_pretraining_data(options(corpus_dir, "two", workers=2))
    create_pretraining_data(options(corpus_dir, "single", num_shards=1))
    one = shard_bytes(corpus_dir / "one")
    assert one == shard_bytes(corpus_dir / "two")
    assert len(one) == 3 and all(one)
    assert b"".join(one) == shard_bytes(corpus_dir / "single")[0]
    create_pretraining_data(options(corpus_dir, "seed", random_seed=1))
    assert shard_bytes(corpus_dir / "seed") != one


def test_rerun_skips_complete_shards_and_refuses_other_settings(corpus_dir):
    create_pretraining_data(options(corpus_dir))
    out = corpus_dir / "out"
    before = shard_bytes(out)
    kept = out / "pretrain-00000-of-00003.tfrecord"
    os.utime(kept, (1, 1))
    os.remove(out / "pretrain-00001-of-00003.tfrecord")
    meta = create_pretraining_data(options(corpus_dir))
    assert shard_bytes(out) == before and os.stat(kept).st_mtime == 1      # only shard 1 redone
    assert meta["counts"]["instances"] == sum(1 for _ in tf.data.TFRecordDataset(
        [str(out / n) for n in sorted(os.listdir(out)) if n.endswith(".tfrecord")]))
    with pytest.raises(UsageError, match=r"^--overwrite: .*masked_lm_prob differ.*pass --overwrite"):
        create_pretraining_data(options(corpus_dir, masked_lm_prob=0.2))
    create_pretraining_data(options(corpus_dir, masked_lm_prob=0.2, overwrite=True))
    assert shard_bytes(out) != before


def test_whole_word_masking_uses_the_vocab_pieces(corpus_dir):
    create_pretraining_data(options(corpus_dir, do_whole_word_mask=True, num_shards=1))
    data = read_all(corpus_dir / "out")
    vocab = (corpus_dir / "vocab.txt").read_text().split()
    piece = np.array([t.startswith("##") for t in vocab])
    ids = data["input_ids"].copy()
    real = data["masked_lm_weights"] > 0
    rows = np.nonzero(real)[0]
    ids[rows, data["masked_lm_positions"][real]] = data["masked_lm_ids"][real]
    checked = 0
    for row, pos in zip(rows, data["masked_lm_positions"][real]):
        chosen = set(data["masked_lm_positions"][row][real[row]].tolist())
        if pos + 1 < ids.shape[1] and piece[ids[row, pos + 1]]:
            assert pos + 1 in chosen            # the rest of the word is masked too
            checked += 1
        if piece[ids[row, pos]] and ids[row, pos - 1] not in (2, 3):
            assert pos - 1 in chosen
    assert checked > 20


def test_builtin_corpus_with_a_learned_vocab(tmp_path):
    run = Options(input="builtin:python-topics", output_dir=str(tmp_path / "demo"), vocab_size=600,
                  max_seq_length=64, max_predictions_per_seq=10, dupe_factor=1, num_shards=2,
                  workers=1, progress=False)
    meta = create_pretraining_data(run)
    vocab = (tmp_path / "demo" / "vocab.txt").read_text().split("\n")
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] and "##s" in vocab
    assert meta["vocab"]["size"] == len(vocab) - 1 and meta["settings"]["input"]["builtin"] == "python-topics"
    assert meta["counts"]["documents"] > 50 and meta["counts"]["instances"] > 1000
    assert meta["unk_rate"] < 0.01
    again = create_pretraining_data(run)    # complete: nothing redone, the learned vocab reused
    assert again["vocab"] == meta["vocab"] and again["counts"] == meta["counts"]


def test_bad_vocab_fails_before_any_output(corpus_dir):
    (corpus_dir / "bad_vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\n")
    with pytest.raises(UsageError, match=r"^--vocab_file: .*\[MASK\]"):
        create_pretraining_data(options(corpus_dir, vocab_file=str(corpus_dir / "bad_vocab.txt")))
    assert not (corpus_dir / "out").exists()


def test_model_garden_loader_reads_our_v2_output(corpus_dir):
    from official.nlp.data import pretrain_dataloader
    create_pretraining_data(options(corpus_dir, feature_names="v2", num_shards=1))
    ours = read_all(corpus_dir / "out", "v2")
    config = pretrain_dataloader.BertPretrainDataConfig(
        input_path=str(corpus_dir / "out" / "*.tfrecord"), seq_length=SEQ, max_predictions_per_seq=PREDS,
        global_batch_size=4, is_training=False, use_v2_feature_names=True)
    batch = next(iter(pretrain_dataloader.BertPretrainDataLoader(config).load()))
    expected = {"input_word_ids": "input_ids", "input_mask": "input_mask", "input_type_ids": "segment_ids",
                "masked_lm_positions": "masked_lm_positions", "masked_lm_ids": "masked_lm_ids",
                "masked_lm_weights": "masked_lm_weights", "next_sentence_labels": "next_sentence_labels"}
    assert set(batch) == set(expected)
    for theirs, mine in expected.items():
        np.testing.assert_array_equal(batch[theirs].numpy(), ours[mine][:4])
    assert batch["input_word_ids"].dtype == tf.int32 and batch["input_word_ids"].shape == (4, SEQ)


def test_model_garden_loader_reads_our_v1_output(corpus_dir):
    from official.nlp.data import pretrain_dataloader
    create_pretraining_data(options(corpus_dir, num_shards=1))
    ours = read_all(corpus_dir / "out")
    config = pretrain_dataloader.BertPretrainDataConfig(
        input_path=str(corpus_dir / "out" / "*.tfrecord"), seq_length=SEQ, max_predictions_per_seq=PREDS,
        global_batch_size=4, is_training=False)
    batch = next(iter(pretrain_dataloader.BertPretrainDataLoader(config).load()))
    np.testing.assert_array_equal(batch["input_word_ids"].numpy(), ours["input_ids"][:4])
    np.testing.assert_array_equal(batch["input_type_ids"].numpy(), ours["segment_ids"][:4])
    np.testing.assert_array_equal(batch["masked_lm_ids"].numpy(), ours["masked_lm_ids"][:4])
    np.testing.assert_array_equal(batch["next_sentence_labels"].numpy(), ours["next_sentence_labels"][:4])


def test_cli_reports_one_error_line_naming_the_flag(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "bert_pretrain.data.cli", f"--input={tmp_path}/none*.txt",
         f"--output_dir={tmp_path}/out"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("bert-pretrain-data:")]
    assert errors == [f"bert-pretrain-data: error: --input: '{tmp_path}/none*.txt' matches no file; "
                      "check the path or glob (quote it so the shell does not expand it)"]
    assert not (tmp_path / "out").exists()


def test_unmasked_records_are_the_static_pairs_before_masking(corpus_dir, capsys):
    """--masking=none writes the pairs the static records are made of (same seed, same pairs), with no
    masked_lm_* features and one copy by default; metadata.json says which kind a directory holds."""
    static = create_pretraining_data(options(corpus_dir, "static", dupe_factor=1))
    none = create_pretraining_data(options(corpus_dir, "none", dupe_factor=0, masking="none"))
    assert (static["settings"]["masking"], none["settings"]["masking"]) == ("static", "none")
    assert none["settings"]["dupe_factor"] == 1 and none["counts"]["masked_tokens"] == 0
    assert "unmasked) in 3 shard(s)" in capsys.readouterr().err
    assert metadata.Metadata.of_directory(str(corpus_dir / "none")).masking == "none"
    masked, unmasked = read_all(corpus_dir / "static"), read_all(corpus_dir / "none")
    assert sorted(unmasked) == sorted(tfrecords.UNMASKED_FEATURES)
    ids = masked["input_ids"].copy()
    real = masked["masked_lm_weights"] > 0
    ids[np.nonzero(real)[0], masked["masked_lm_positions"][real]] = masked["masked_lm_ids"][real]
    np.testing.assert_array_equal(ids, unmasked["input_ids"])
    for key in ("input_mask", "segment_ids", "next_sentence_labels"):
        np.testing.assert_array_equal(masked[key], unmasked[key])
    assert sum(map(len, shard_bytes(corpus_dir / "none"))) < 0.7 * sum(map(len, shard_bytes(corpus_dir / "static")))
    assert Options("", "").resolved().dupe_factor == 10 and Options("", "", masking="none").resolved().dupe_factor == 1
    from bert_pretrain.data.verify import verify_directory
    assert all(report.ok for report in verify_directory(str(corpus_dir / "none"), workers=1, log=lambda _: None))
    with pytest.raises(UsageError, match=r"^--overwrite: .*\(masking differ\)"):
        create_pretraining_data(options(corpus_dir, "none", dupe_factor=1))
    with pytest.raises(UsageError, match=r"^--masking: invalid value 'dynamic'; use static .* or none"):
        create_pretraining_data(options(corpus_dir, "bad", masking="dynamic"))


def test_fewer_blocks_than_shards_writes_no_empty_shard(corpus_dir, capsys):
    """A small input and many shards (the case of a 420 KB text and --num_shards=16): one shard per block,
    none empty, one line saying so; the records are those of a one-shard run."""
    create_pretraining_data(options(corpus_dir, "single", num_shards=1, block_bytes=4096))
    blocks = create_pretraining_data(options(corpus_dir, "many", num_shards=16, block_bytes=4096))
    written = shard_bytes(corpus_dir / "many")
    assert 1 < len(written) < 16 and all(written) and len(blocks["shards"]) == len(written)
    assert b"".join(written) == shard_bytes(corpus_dir / "single")[0]
    assert all(name.endswith(f"-of-{len(written):05d}.tfrecord") for name in blocks["shards"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("--num_shards=16")]
    assert len(lines) == 1 and f"so {len(written)} shard(s) are written rather than {16 - len(written)} empty" \
        in lines[0]
