"""Imports point down: every import in `lamb_tf` and `bert_pretrain` (top-level, inside functions,
and `importlib.import_module("...")` with a literal name) goes to a module of the same or a lower
tier of docs/architecture.md, and the graph has no cycle, so a reader can start at the bottom."""

import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

# docs/architecture.md, bottom first. A module may import its own tier or the tiers below it.
TIERS = [
    ("optimizer: the paper's rule", ["lamb_tf.algorithm", "lamb_tf.xla_sums", "lamb_tf.schedules"]),
    ("optimizer: what a user configures", ["lamb_tf.hyperparameters"]),
    ("optimizer: shared machinery", ["lamb_tf.layerwise"]),
    ("optimizer: the Keras flavours", ["lamb_tf.keras3", "lamb_tf.tf_keras", "lamb_tf"]),
    ("foundation", ["bert_pretrain", "bert_pretrain.errors", "bert_pretrain.atomic",
                    "bert_pretrain.console"]),
    ("data tool", ["bert_pretrain.data", "bert_pretrain.data.options", "bert_pretrain.data.sentences",
                   "bert_pretrain.data.builtin_corpus", "bert_pretrain.data.corpus",
                   "bert_pretrain.data.progress", "bert_pretrain.data.vocab",
                   "bert_pretrain.data.instances", "bert_pretrain.data.tfrecords",
                   "bert_pretrain.data.metadata", "bert_pretrain.data.verify", "bert_pretrain.data.worker",
                   "bert_pretrain.data.create"]),
    ("input masking", ["bert_pretrain.masking", "bert_pretrain.masking.dynamic"]),
    ("training parts", ["bert_pretrain.config", "bert_pretrain.model", "bert_pretrain.record_order",
                        "bert_pretrain.datasets", "bert_pretrain.data_faults", "bert_pretrain.checkpoints",
                        "bert_pretrain.keras_hub_bert", "bert_pretrain.metrics", "bert_pretrain.strategy",
                        "bert_pretrain.plans", "bert_pretrain.plot", "bert_pretrain.cloud_tpu",
                        "bert_pretrain.vocab_record", "bert_pretrain.finetune",
                        "bert_pretrain.finetune.metrics", "bert_pretrain.finetune.classification",
                        "bert_pretrain.finetune.squad", "bert_pretrain.finetune.docstrings",
                        "bert_pretrain.finetune.recipes", "bert_pretrain.checkpoint_formats",
                        "bert_pretrain.checkpoint_formats.google_research",
                        "bert_pretrain.checkpoint_formats.hugging_face",
                        "bert_pretrain.checkpoint_formats.keras_hub_preset"]),
    ("training", ["bert_pretrain.trainer", "bert_pretrain.job", "bert_pretrain.export",
                  "bert_pretrain.finetune.encoder", "bert_pretrain.finetune.loop"]),
    ("runs end to end", ["bert_pretrain.phases", "bert_pretrain.run", "bert_pretrain.finetune.tasks",
                         "bert_pretrain.checkpoint_formats.exporter"]),
    ("commands", ["bert_pretrain.cli", "bert_pretrain.data.cli"]),
]
TIER_OF = {module: index for index, (_, modules) in enumerate(TIERS) for module in modules}


def package_modules() -> dict:
    modules = {}
    for package in ("lamb_tf", "bert_pretrain"):
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            modules[name.removesuffix(".__init__")] = path
    return modules


MODULES = package_modules()


def imports_of(path: pathlib.Path) -> set:
    """Our modules that `path` imports; `from package import name` counts as the submodule
    `package.name` when there is one, else as the package."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in MODULES else node.module)
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant)):
            found.add(node.args[0].value)
    return {name for name in found if name in MODULES}


GRAPH = {name: imports_of(path) - {name} for name, path in MODULES.items()}


def test_every_module_has_a_tier():
    assert sorted(set(MODULES) - set(TIER_OF)) == []
    assert sorted(set(TIER_OF) - set(MODULES)) == []   # no stale names in the table


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module):
    upward = sorted(target for target in GRAPH[module] if TIER_OF[target] > TIER_OF[module])
    assert upward == [], f"{module} ({TIERS[TIER_OF[module]][0]}) imports a higher tier: {upward}"


def test_no_import_cycles():
    state = {}

    def visit(module, path):
        if state.get(module) == "done":
            return
        assert state.get(module) != "open", "import cycle: " + " -> ".join(path + [module])
        state[module] = "open"
        for target in sorted(GRAPH[module]):
            visit(target, path + [module])
        state[module] = "done"

    for module in sorted(GRAPH):
        visit(module, [])


def test_only_the_commands_read_flags():
    """A module below the commands takes plain arguments: none imports absl's flags, so none can
    read a flag another module defines."""
    readers = sorted(name for name, path in MODULES.items()
                     if re.search(r"^\s*(from absl import .*\bflags\b|import absl\.flags)",
                                  path.read_text(encoding="utf-8"), flags=re.M))
    assert readers == ["bert_pretrain.cli", "bert_pretrain.data.cli"]


def test_the_checker_sees_upward_and_lazy_imports(tmp_path):
    """The check itself can fail: a function-level import and an import_module call are found."""
    source = tmp_path / "probe.py"
    source.write_text("import importlib\n\ndef f():\n    from bert_pretrain import cli\n"
                      "    importlib.import_module('bert_pretrain.trainer')\n")
    assert imports_of(source) == {"bert_pretrain.cli", "bert_pretrain.trainer"}
