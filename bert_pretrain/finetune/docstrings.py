"""A labelled task that ships with Python: which standard-library package a docstring comes from.

Examples are the first paragraph of each function's and class's docstring in eight large
packages (asyncio, distutils, email, importlib, multiprocessing, tkinter, unittest, xml), labelled
by package. Evaluation modules are every fourth module of each package in sorted order, training
modules the rest, so no evaluated docstring is fine-tuned on, nor any text that also occurs in a
training module; each class is capped (120 training, 40 evaluation examples), so no package
dominates: guessing the commonest scores 13.8% of the 290 evaluation examples. The pretraining corpus
(`builtin:python-docstrings`) holds these texts without labels, as pretraining corpora do.
"""

import ast
import functools
import os
import sysconfig

from bert_pretrain.data import builtin_corpus

PACKAGES = ("asyncio", "distutils", "email", "importlib", "multiprocessing", "tkinter", "unittest", "xml")
EVAL_EVERY = 4                    # module i of a package (sorted) is held out when i % 4 == 3
PER_CLASS = {"train": 120, "eval": 40}


def _first_paragraph(docstring: str) -> str:
    return " ".join(docstring.strip().split("\n\n")[0].split())


@functools.lru_cache(maxsize=None)
def _texts_by_package(split: str) -> dict:
    """{package: every first paragraph of its `split` modules}, in sorted module order."""
    root = sysconfig.get_paths()["stdlib"]
    modules = {package: [] for package in PACKAGES}
    for path in builtin_corpus.stdlib_files():
        parts = os.path.relpath(path, root).split(os.sep)
        if len(parts) > 1 and parts[0] in modules:
            modules[parts[0]].append(path)
    by_package = {package: [] for package in PACKAGES}
    for package, paths in modules.items():
        for index, path in enumerate(paths):
            if (index % EVAL_EVERY == EVAL_EVERY - 1) != (split == "eval"):
                continue
            with open(path, "rb") as handle:
                tree = ast.parse(handle.read())
            for node in ast.walk(tree):
                if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    text = _first_paragraph(ast.get_docstring(node) or "")
                    if len(text.split()) >= 3:
                        by_package[package].append(text)
    return by_package


@functools.lru_cache(maxsize=None)
def examples(split: str) -> tuple[tuple[str, str], ...]:
    """(text, package) pairs of `split` ("train" or "eval"), in a fixed order."""
    by_package = _texts_by_package(split)
    missing = [package for package, texts in by_package.items() if not texts]
    if missing:   # e.g. Debian's system Python, which ships tkinter as a separate package
        from bert_pretrain.errors import UsageError   # pylint: disable=import-outside-toplevel
        raise UsageError("task", f"this Python's standard library lacks {', '.join(missing)}, a class of the "
                         "built-in docstring task", "use a full Python installation (python.org, pyenv, conda)")
    if split == "eval":   # the same text in a training module (a docstring shared by two modules)
        seen = {text for texts in _texts_by_package("train").values() for text in texts}
        by_package = {package: [t for t in texts if t not in seen] for package, texts in by_package.items()}
    chosen = []
    for package, texts in by_package.items():
        step = max(1, len(texts) / PER_CLASS[split])          # spread the cap over the package
        chosen += [(texts[int(i * step)], package) for i in range(min(len(texts), PER_CLASS[split]))]
    return tuple(chosen)


def commonest_share(split: str = "eval") -> float:
    """Percent of `split` that guessing its commonest package gets right: the chance line."""
    counts = {}
    for _, package in examples(split):
        counts[package] = counts.get(package, 0) + 1
    return 100.0 * max(counts.values()) / sum(counts.values())
