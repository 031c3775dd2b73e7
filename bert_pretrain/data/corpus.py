"""Streams documents (lists of sentences) out of text files, local or on GCS, or the built-in corpus.

Files are read in large binary chunks through `tf.io.gfile` (so `gs://` works) and never held whole in
memory. Two layouts are understood, both with a blank line between documents:

* ``bert``: one sentence per line (the google-research format);
* ``paragraphs``: one paragraph of running text per line, split by `sentences.split_sentences`.

Bytes that are not UTF-8 are replaced by U+FFFD and counted; empty files are skipped and counted.
One-sentence documents are counted and passed on: whether a document is long enough is decided
after tokenisation, by `--min_document_sentences`.
"""

import codecs
import dataclasses
from typing import Iterator

import tensorflow as tf

from bert_pretrain.data import builtin_corpus
from bert_pretrain.errors import UsageError
from bert_pretrain.data.sentences import split_sentences

FORMATS = ("bert", "paragraphs")
_CHUNK_BYTES = 1 << 24


@dataclasses.dataclass
class ReadStats:
    """What reading the input found; filled in while documents are streamed."""

    files: int = 0
    input_bytes: int = 0
    empty_files: int = 0
    replaced_bytes: int = 0
    documents: int = 0
    one_sentence_documents: int = 0


_replaced = [0]


def _count_and_replace(error: UnicodeDecodeError):
    _replaced[0] += error.end - error.start
    return "\ufffd", error.end


codecs.register_error("bert_pretrain_count_replace", _count_and_replace)


class FileSource:
    """Documents from text files given as comma-separated paths and globs."""

    def __init__(self, patterns: list[str], text_format: str = "bert"):
        if text_format not in FORMATS:
            raise UsageError("input_format", f"unknown format {text_format!r}", f"use one of {FORMATS}")
        self.text_format = text_format
        self.paths = resolve_paths(patterns)
        self.sizes = [tf.io.gfile.stat(p).length for p in self.paths]

    def fingerprint(self) -> dict:
        """Identifies the input for the output directory's settings check."""
        return {"format": self.text_format, "files": [[p, s] for p, s in zip(self.paths, self.sizes)]}

    def documents(self, stats: ReadStats) -> Iterator[list[str]]:
        for path, size in zip(self.paths, self.sizes):
            stats.files += 1
            stats.input_bytes += size
            if size == 0:
                stats.empty_files += 1
                continue
            yield from _counted(self._file_documents(path, stats), stats)

    def _file_documents(self, path: str, stats: ReadStats) -> Iterator[list[str]]:
        document: list[str] = []
        for line in _lines(path, stats):
            line = line.strip()
            if not line:
                if document:
                    yield document
                document = []
            elif self.text_format == "bert":
                document.append(line)
            else:
                document.extend(split_sentences(line))
        if document:
            yield document


class BuiltinSource:
    """The corpus shipped with Python itself (see `builtin_corpus`); needs no files."""

    def __init__(self, name: str):
        if name not in builtin_corpus.NAMES:
            raise UsageError("input", f"unknown built-in corpus {name!r}",
                             f"use one of {', '.join('builtin:' + n for n in builtin_corpus.NAMES)}")
        self.name = name
        self._documents = builtin_corpus.load(name)
        self.sizes = [sum(len(s.encode()) + 1 for s in d) + 1 for d in self._documents]

    def fingerprint(self) -> dict:
        return {"builtin": self.name, "python": builtin_corpus.python_version(), "bytes": sum(self.sizes)}

    def documents(self, stats: ReadStats) -> Iterator[list[str]]:
        stats.files = 1
        stats.input_bytes = sum(self.sizes)
        yield from _counted(iter(self._documents), stats)


def open_source(input_spec: str, text_format: str = "bert"):
    """Parses the ``--input`` value: ``builtin:NAME`` or comma-separated paths and globs."""
    if input_spec.startswith("builtin:"):
        return BuiltinSource(input_spec[len("builtin:"):])
    patterns = [p.strip() for p in input_spec.split(",") if p.strip()]
    if not patterns:
        raise UsageError("input", "no input given",
                         "pass text files or globs, comma-separated, or builtin:python-docs")
    return FileSource(patterns, text_format)


def resolve_paths(patterns: list[str]) -> list[str]:
    """Expands globs in order and checks every file can be opened, before any work is done."""
    paths = []
    for pattern in patterns:
        try:
            matches = sorted(tf.io.gfile.glob(pattern))
        except tf.errors.OpError as error:
            raise UsageError("input", f"cannot list {pattern!r} ({error.message})",
                             "check the path and your credentials") from None
        matches = [m for m in matches if not tf.io.gfile.isdir(m)]
        if not matches:
            raise UsageError("input", f"{pattern!r} matches no file",
                             "check the path or glob (quote it so the shell does not expand it)")
        paths.extend(matches)
    for path in paths:
        try:
            with tf.io.gfile.GFile(path, "rb") as handle:
                handle.read(1)
        except tf.errors.OpError as error:
            raise UsageError("input", f"cannot read {path!r} ({error.message})",
                             "fix the file's permissions or drop it from --input") from None
    return paths


def _lines(path: str, stats: ReadStats) -> Iterator[str]:
    """Yields decoded lines, reading big chunks and decoding whole runs of complete lines at once."""
    carry = b""
    with tf.io.gfile.GFile(path, "rb") as handle:
        while True:
            chunk = handle.read(_CHUNK_BYTES)
            data = carry + chunk
            if not chunk:
                if data:
                    yield from _decode(data, stats).split("\n")
                return
            cut = data.rfind(b"\n") + 1
            carry = data[cut:]
            if cut:
                yield from _decode(data[:cut - 1], stats).split("\n")


def _decode(data: bytes, stats: ReadStats) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        _replaced[0] = 0
        text = data.decode("utf-8", errors="bert_pretrain_count_replace")
        stats.replaced_bytes += _replaced[0]
        return text


def _counted(documents: Iterator[list[str]], stats: ReadStats) -> Iterator[list[str]]:
    for document in documents:
        stats.one_sentence_documents += len(document) == 1
        stats.documents += 1
        yield document
