"""Each task's fine-tuning recipe (`bert_pretrain/plans/finetune/<task>.toml`, the source of every
number in its comments): read by a run, and by `--help` to show what a run will use. No TensorFlow."""

import os
import tomllib

TASKS = ("squad1.1", "classification", "docstrings")
RECIPES_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "plans", "finetune")


def recipe(task: str) -> dict:
    with open(os.path.join(RECIPES_DIR, f"{task}.toml"), "rb") as handle:
        return tomllib.load(handle)


def defaults_text(name: str) -> str:
    """What a recipe flag defaults to, task by task: "squad1.1 3e-05, classification 5e-05, ..."."""
    values = [(task, recipe(task).get(name)) for task in TASKS]
    return ", ".join(f"{task} {value:g}" if isinstance(value, float) else f"{task} {value}"
                     for task, value in values if value is not None)
