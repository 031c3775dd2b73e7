"""Reading documents: format, odd input, counting, and the built-in corpus' determinism."""

import pytest

from bert_pretrain.data import builtin_corpus, corpus
from bert_pretrain.errors import UsageError
from bert_pretrain.data.sentences import split_sentences


def read(source):
    stats = corpus.ReadStats()
    return list(source.documents(stats)), stats


def test_bert_format_documents_and_counts(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"One.\r\nTwo.\n\n\n  \nLonely.\n\nThree.\nFour \xff\xfe end.\nFive.")
    (tmp_path / "b.txt").write_bytes(b"")
    docs, stats = read(corpus.FileSource([str(tmp_path / "*.txt")]))
    assert docs == [["One.", "Two."], ["Lonely."], ["Three.", "Four \ufffd\ufffd end.", "Five."]]
    assert (stats.files, stats.empty_files, stats.replaced_bytes) == (2, 1, 2)
    assert (stats.documents, stats.one_sentence_documents) == (3, 1)   # kept: the worker decides


def test_small_read_chunks_give_the_same_documents(tmp_path, monkeypatch):
    text = "".join(f"Sentence {i} é.\nSecond ü {i}.\n\n" for i in range(50)).encode()
    (tmp_path / "c.txt").write_bytes(text + b"\xc3")   # a truncated multi-byte character at the end
    whole, stats = read(corpus.FileSource([str(tmp_path / "c.txt")]))
    monkeypatch.setattr(corpus, "_CHUNK_BYTES", 7)
    chunked, chunked_stats = read(corpus.FileSource([str(tmp_path / "c.txt")]))
    assert chunked == whole and whole[0] == ["Sentence 0 é.", "Second ü 0."]
    assert len(whole) == 51 and whole[-1] == ["\ufffd"]   # the cut character: a one-sentence document
    assert stats.replaced_bytes == chunked_stats.replaced_bytes == 1


def test_paragraph_format_splits_sentences(tmp_path):
    (tmp_path / "p.txt").write_text("Dr. Smith went home. He slept well! Did he? Yes.\n\nOnly one here.\n")
    docs, stats = read(corpus.FileSource([str(tmp_path / "p.txt")], "paragraphs"))
    assert docs == [["Dr. Smith went home.", "He slept well!", "Did he?", "Yes."], ["Only one here."]]
    assert stats.one_sentence_documents == 1


@pytest.mark.parametrize("text, expected", [
    ("It rains. It pours.", ["It rains.", "It pours."]),
    ("See e.g. the manual. Then stop.", ["See e.g. the manual.", "Then stop."]),
    ("The U.S. Army came. J. R. R. Tolkien wrote.", ["The U.S. Army came.", "J. R. R. Tolkien wrote."]),
    ('He said "Go." Then left.', ['He said "Go."', "Then left."]),
    ("version 3.11 is out. 42 is an answer.", ["version 3.11 is out.", "42 is an answer."]),
    ("no capital. after this", ["no capital. after this"]),
])
def test_sentence_splitter(text, expected):
    assert split_sentences(text) == expected


def test_input_errors_name_the_flag(tmp_path):
    with pytest.raises(UsageError, match=r"^--input: .*matches no file"):
        corpus.open_source(str(tmp_path / "missing*.txt"))
    with pytest.raises(UsageError, match=r"^--input: "):
        corpus.open_source(" , ")
    with pytest.raises(UsageError, match=r"^--input: unknown built-in corpus"):
        corpus.open_source("builtin:nope")
    with pytest.raises(UsageError, match=r"^--input_format: "):
        corpus.open_source(str(tmp_path), "xml")


def test_builtin_corpora_split_into_disjoint_parts():
    """The demo trains on the docstrings and evaluates on the topics: no held-out document may be trained on."""
    topics, docstrings = builtin_corpus.load("python-topics"), builtin_corpus.load("python-docstrings")
    assert builtin_corpus.load("python-docs") == topics + docstrings
    assert len(topics) > 50 and len(docstrings) > 50 and not set(topics) & set(docstrings)


def test_builtin_corpus_does_not_depend_on_dict_order(monkeypatch):
    import pydoc_data.topics as topics_module
    first = builtin_corpus.load.__wrapped__("python-topics")
    reversed_topics = dict(reversed(list(topics_module.topics.items())))
    monkeypatch.setattr(topics_module, "topics", reversed_topics)
    assert builtin_corpus.load.__wrapped__("python-topics") == first
    assert len(first) == len(reversed_topics) > 50
    assert list(first[0]) == builtin_corpus.text_to_sentences(reversed_topics[min(reversed_topics)])
    assert all(s and s == s.strip() for d in first for s in d)
