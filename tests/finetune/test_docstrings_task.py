"""The built-in task: eight packages, module-disjoint splits, capped classes, no shared text."""

import collections
import os
import sysconfig

from bert_pretrain.data import builtin_corpus
from bert_pretrain.finetune import docstrings


def test_splits_are_disjoint_capped_and_cover_every_package():
    train, held_out = docstrings.examples("train"), docstrings.examples("eval")
    for split, cap in ((train, docstrings.PER_CLASS["train"]), (held_out, docstrings.PER_CLASS["eval"])):
        counts = collections.Counter(label for _, label in split)
        assert set(counts) == set(docstrings.PACKAGES) and max(counts.values()) <= cap
    assert not {text for text, _ in train} & {text for text, _ in held_out}


def test_held_out_texts_come_only_from_held_out_modules():
    """Every fourth module of a package (sorted) is held out: its docstrings are never in training."""
    import ast

    root = sysconfig.get_paths()["stdlib"]
    held_out_modules = collections.defaultdict(list)
    for path in builtin_corpus.stdlib_files():
        parts = os.path.relpath(path, root).split(os.sep)
        if len(parts) > 1 and parts[0] in docstrings.PACKAGES:
            held_out_modules[parts[0]].append(path)
    texts_by_module = {}
    for package, paths in held_out_modules.items():
        for index, path in enumerate(paths):
            tree = ast.parse(open(path, "rb").read())
            texts_by_module[path] = (index % 4 == 3, {
                " ".join((ast.get_docstring(n) or "").strip().split("\n\n")[0].split()) for n in ast.walk(tree)
                if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))})
    held_out_texts = set().union(*(texts for held_out, texts in texts_by_module.values() if held_out))
    training_module_texts = set().union(*(texts for held_out, texts in texts_by_module.values() if not held_out))
    for text, _ in docstrings.examples("eval"):
        assert text in held_out_texts and text not in training_module_texts
    for text, _ in docstrings.examples("train"):
        assert text in training_module_texts


def test_the_chance_line_is_the_commonest_package_of_the_split():
    for split in ("train", "eval"):
        labels = [label for _, label in docstrings.examples(split)]
        commonest = max(labels.count(package) for package in docstrings.PACKAGES)
        assert docstrings.commonest_share(split) == 100.0 * commonest / len(labels)
    assert 100 / len(docstrings.PACKAGES) <= docstrings.commonest_share() < 100   # at least a uniform guess


def test_score_bars_take_one_value_or_one_per_seed(tmp_path):
    from bert_pretrain import plot   # pylint: disable=import-outside-toplevel

    for scores in ({"pretrained": {"accuracy": 61.0}, "random": {"accuracy": 42.1}},
                   {"pretrained": {"accuracy": [61.0, 59.0]}, "random": {"accuracy": [42.1, 30.3]}}):
        path = plot.plot_scores(scores, "title", str(tmp_path / "scores.png"), chance=13.8)
        assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
