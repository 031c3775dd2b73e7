"""Each command's --help lists its own flags, with defaults, in the README's groups; TensorFlow's
log lines stay hidden unless --verbose."""

import logging
import os
import re
import subprocess
import sys

import pytest

from bert_pretrain import console

ROOT = os.path.join(os.path.dirname(__file__), "..")
BIN = os.path.dirname(sys.executable)
README = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()


def defined_flags(module_path: str) -> set:
    """The flags a CLI module defines, from its source (the two CLIs cannot share a process)."""
    source = open(os.path.join(ROOT, module_path), encoding="utf-8").read()
    return set(re.findall(r'flags\.DEFINE_\w+\(\s*"(\w+)"', source))


def command(*argv, env=None):
    return subprocess.run([os.path.join(BIN, argv[0]), *argv[1:]], capture_output=True, text=True,
                          timeout=300, env=env)


def readme_flags(section: str) -> set:
    """Flags named in the first column of the flag table under a README heading."""
    text = README.split(section, 1)[1]
    table = re.search(r"\| flag \| default \| meaning \|\n\|[-|]+\|\n((?:\|.*\n)+)", text).group(1)
    return {name for row in table.splitlines() for name in re.findall(r"--([a-z_]+)", row.split("|")[1])}


def listed(help_text: str) -> list:
    return re.findall(r"^  --([a-z_]+)", help_text, flags=re.M)


def test_top_level_help_lists_the_commands():
    result = command("bert-pretrain", "--help")
    assert result.returncode == 0 and "Try --helpfull" not in result.stdout
    assert [re.search(rf"^  {name} ", result.stdout, re.M) is not None
            for name in ("run", "train", "finetune", "export")] == [True] * 4


@pytest.mark.parametrize("name, section", [("run", "## Pretraining: `bert-pretrain run`"),
                                           ("train", "### One phase: `bert-pretrain train`"),
                                           ("finetune", "## Fine-tuning and scoring: `bert-pretrain finetune`"),
                                           ("export", "## Export: `bert-pretrain export`")])
def test_command_help_lists_its_flags_in_groups(name, section):
    result = command("bert-pretrain", name, "--help")
    assert result.returncode == 0, result.stderr
    shown = listed(result.stdout)
    assert len(shown) == len(set(shown)) and set(shown) <= defined_flags("bert_pretrain/cli.py")
    assert readme_flags(section) <= set(shown)                # every flag the README's table names
    groups = re.findall(r"^(\S[^\n]*):$", result.stdout, flags=re.M)
    if name == "export":   # no training: no device flags
        assert groups == ["what and where", "console"]
    else:
        assert len(groups) >= 3 and "devices" in groups
    example = {"run": "--plan=demo", "train": "--global_batch_size=256", "finetune": "--tsv_layout=text",
               "export": "--overwrite=false"}
    assert example[name] in result.stdout
    assert "tfhub_cache_dir" not in result.stdout and "--flagfile" not in result.stdout   # not absl's/TF's


def test_every_bert_pretrain_flag_is_in_a_commands_help():
    shown = set()
    for name in ("run", "train", "finetune", "export"):
        shown |= set(listed(command("bert-pretrain", name, "--help").stdout))
    assert shown == defined_flags("bert_pretrain/cli.py")


def test_data_tool_help_lists_every_flag_with_its_default():
    result = command("bert-pretrain-data", "--help")
    assert result.returncode == 0, result.stderr
    defined = defined_flags("bert_pretrain/data/cli.py")
    assert set(listed(result.stdout)) == defined
    assert readme_flags("## Pretraining data: `bert-pretrain-data`") <= defined
    assert "--max_seq_length=128" in result.stdout and "--input  (no default)" in result.stdout


def test_a_usage_error_is_one_line_without_tensorflow_noise(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = command("bert-pretrain", "train", f"--train_files={tmp_path}/none-*.tfrecord",
                     f"--model_dir={tmp_path}/model", env=env)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"bert-pretrain: --train_files: '{tmp_path}/none-*.tfrecord' matches no file; check the path or glob"]


@pytest.mark.parametrize("sizes, first", [(["--hidden_size=30", "--num_heads=4"], "--hidden_size: 30 is not a multiple of --num_heads=4"),
                                          (["--num_layers=0"], "--num_layers: 0 is not positive")])
def test_a_bad_model_size_is_one_line_before_anything_runs(tmp_path, sizes, first):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = command("bert-pretrain", "train", f"--train_files={tmp_path}/none-*.tfrecord",
                     f"--model_dir={tmp_path}/model", "--preset=tiny", *sizes, env=env)
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"bert-pretrain: {first}")   # not the missing data, found later
    assert not os.path.exists(tmp_path / "model")


def test_finetune_help_shows_the_task_recipes_a_run_uses():
    """finetune shares --learning_rate, --max_seq_length ... with train, whose defaults a
    fine-tuning run does not use: its help shows each task's recipe value instead."""
    import tomllib

    shown = command("bert-pretrain", "finetune", "--help").stdout
    recipes_dir = os.path.join(ROOT, "bert_pretrain", "plans", "finetune")
    recipes = {name[:-5]: tomllib.load(open(os.path.join(recipes_dir, name), "rb"))
               for name in os.listdir(recipes_dir)}
    assert set(recipes) == {"squad1.1", "classification", "docstrings"}
    for flag in ("learning_rate", "epochs", "batch_size", "warmup_proportion", "max_seq_length"):
        line = re.search(rf"^  --{flag}\b.*$", shown, flags=re.M).group(0)
        assert "=" not in line.split()[0], line       # no --flag=<train's default>
        for task, recipe in recipes.items():
            assert re.search(rf"{re.escape(task)} {recipe[flag]:g}\b", line), (task, line)
    assert re.search(r"^  --optimizer  \(default: adamw\b", shown, flags=re.M)
    assert "--learning_rate=0.001" not in shown and "--max_seq_length=128" not in shown


def test_verbose_leaves_tensorflow_logging_alone(monkeypatch):
    """absl's spellings of a true --verbose keep TensorFlow's C++ log level; the last one wins."""
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")   # restored after the test
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL")
    monkeypatch.setattr(console, "sys", type("NoTensorFlow", (), {"modules": {}}))
    logger = logging.getLogger("tensorflow")
    monkeypatch.setattr(logger, "level", logger.level)   # restored after the test
    for argv in (["run", "--verbose"], ["run", "--verbose=TRUE"], ["run", "--noverbose", "--verbose=1"]):
        console.quiet_tensorflow(["bert-pretrain", *argv])
        assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ, argv
    console.quiet_tensorflow(["bert-pretrain", "run", "--verbose", "--noverbose"])
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"
