"""The GLUE layouts and the plain text layouts read the right columns and labels; bad rows are
skipped and counted; a file with no usable row is one error line."""

import pytest

from bert_pretrain.errors import UsageError
from bert_pretrain.finetune import classification

ROWS = {
    "mnli": ["index\tpromptID\tpairID\tgenre\tb1\tb2\tp1\tp2\tsentence1\tsentence2\tlabel1\tgold_label",
             "0\t1\t1n\tgov\t(x)\t(y)\t(X)\t(Y)\tThe cat sat.\tA cat sits.\tentailment\tentailment"],
    "sst2": ["sentence\tlabel", "a fine film\t1"],
    "mrpc": ["Quality\t#1 ID\t#2 ID\t#1 String\t#2 String", "1\t11\t12\tHe went.\tHe left."],
    "cola": ["gj04\t0\t*\tThe more you eat, the."],
    "qqp": ["id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate", "7\t1\t2\tWhy?\tHow come?\t1"],
    "text": ["good words\tpositive"],
    "text_pair": ["left text\tright text\tyes"],
}
EXPECTED = {"mnli": ("The cat sat.", "A cat sits.", "entailment"), "sst2": ("a fine film", None, "1"),
            "mrpc": ("He went.", "He left.", "1"), "cola": ("The more you eat, the.", None, "0"),
            "qqp": ("Why?", "How come?", "1"), "text": ("good words", None, "positive"),
            "text_pair": ("left text", "right text", "yes")}


@pytest.mark.parametrize("name", sorted(ROWS))
def test_each_layout_reads_text_and_label(tmp_path, name):
    path = tmp_path / f"{name}.tsv"
    path.write_text("\n".join(ROWS[name]) + "\n")
    layout = classification.LAYOUTS[name]
    read = classification.read(str(path), layout, layout.labels, "train_file")
    (example,) = read.examples
    assert (example.text_a, example.text_b, example.label) == EXPECTED[name]
    assert not read.skipped


def test_bad_rows_are_counted_and_unknown_labels_skipped(tmp_path):
    path = tmp_path / "sst2.tsv"
    path.write_text("sentence\tlabel\ngood\t1\nno label column\nbad\t7\nfine\t0\n")
    read = classification.read(str(path), classification.LAYOUTS["sst2"], ("0", "1"), "eval_file")
    assert [e.label for e in read.examples] == ["1", "0"]
    assert read.skipped == {"row(s) with fewer than 2 columns": 1, "row(s) with a label outside 0/1": 1}
    assert "skipped 1 row(s) with a label outside 0/1, 1 row(s) with fewer than 2 columns" in read.report()


def test_a_row_without_its_label_column_is_skipped_not_labelled_with_its_text(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("left\tright\tyes\nonly left\tonly right\n")
    read = classification.read(str(path), classification.LAYOUTS["text_pair"], None, "train_file")
    assert [e.label for e in read.examples] == ["yes"]
    assert read.skipped == {"row(s) with fewer than 3 columns": 1}
    assert classification.LAYOUTS["text"].columns == 2 and classification.LAYOUTS["mnli"].columns == 11


def test_text_layout_takes_its_labels_from_the_training_file(tmp_path):
    layout = classification.LAYOUTS["text"]
    train = tmp_path / "train.tsv"
    train.write_text("a\tzeta\nb\talpha\nc\tzeta\n")
    read = classification.read(str(train), layout, None, "train_file")
    assert classification.label_set(layout, read) == ("alpha", "zeta")
    held_out = tmp_path / "dev.tsv"
    held_out.write_text("d\talpha\ne\tunseen\n")
    assert len(classification.read(str(held_out), layout, ("alpha", "zeta"), "eval_file").examples) == 1


def test_a_file_with_no_usable_row_is_one_error(tmp_path):
    path = tmp_path / "mrpc.tsv"
    path.write_text("Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\nonly\ttwo\n")
    with pytest.raises(UsageError, match=r"^--train_file: .*mrpc.tsv has no usable row .*; check --tsv_layout"):
        classification.read(str(path), classification.LAYOUTS["mrpc"], ("0", "1"), "train_file")
    with pytest.raises(UsageError, match=r"^--eval_file: cannot read"):
        classification.read(str(tmp_path / "missing.tsv"), classification.LAYOUTS["mrpc"], ("0", "1"), "eval_file")
