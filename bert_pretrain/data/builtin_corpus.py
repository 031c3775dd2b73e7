"""A pretraining corpus that ships with every Python installation, so demos need no download.

* ``python-topics``: the interactive help topics (`pydoc_data.topics`), one document per topic (~0.5 MB).
* ``python-docstrings``: the docstrings of the standard library's source files, one document per
  module (~1.5 MB); no topic text, so the demo can train on it and hold the topics out.
* ``python-docs``: both (~2 MB). Sources are parsed with `ast`, never imported (importing some stdlib
  modules has side effects).

Documents come in sorted topic / relative-path order and are split by a fixed rule set, so the result
depends only on the Python version, never on dict or hash ordering, the file system or the machine.
"""

import ast
import functools
import os
import platform
import sysconfig

from bert_pretrain.data.sentences import split_sentences

NAMES = ("python-docs", "python-topics", "python-docstrings")
_SKIPPED_DIRS = frozenset({"test", "tests", "idlelib", "lib2to3", "turtledemo", "site-packages",
                           "dist-packages", "__pycache__"})


def python_version() -> str:
    return platform.python_version()


@functools.lru_cache(maxsize=None)
def load(name: str) -> tuple[tuple[str, ...], ...]:
    """Returns the named corpus as documents, each a tuple of sentences (cached: parsing the standard
    library takes seconds)."""
    documents = [] if name == "python-docstrings" else _topic_documents()
    if name != "python-topics":
        documents += _docstring_documents()
    return tuple(tuple(d) for d in documents if d)


def text_to_sentences(text: str) -> list[str]:
    """Blank-line separated, line-wrapped paragraphs → sentences; interactive examples are dropped."""
    sentences = []
    for paragraph in text.split("\n\n"):
        if ">>>" in paragraph:
            continue
        sentences.extend(split_sentences(" ".join(paragraph.split())))
    return sentences


def _topic_documents() -> list[list[str]]:
    from pydoc_data.topics import topics  # pylint: disable=import-outside-toplevel
    return [text_to_sentences(topics[key]) for key in sorted(topics)]


def stdlib_files() -> list[str]:
    """The standard library's .py files (tests, IDLE and the like left out), in sorted path order."""
    root = sysconfig.get_paths()["stdlib"]
    files = []
    for directory, subdirs, names in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if d not in _SKIPPED_DIRS and not d.startswith("config-"))
        files.extend(os.path.join(directory, n) for n in names if n.endswith(".py"))
    return sorted(files, key=lambda path: os.path.relpath(path, root).split(os.sep))


def _docstring_documents() -> list[list[str]]:
    documents = []
    for path in stdlib_files():
        try:
            with open(path, "rb") as handle:
                tree = ast.parse(handle.read())
        except (SyntaxError, ValueError, OSError):
            continue
        sentences = []
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                docstring = ast.get_docstring(node)
                if docstring:
                    sentences.extend(text_to_sentences(docstring))
        documents.append(sentences)
    return documents
