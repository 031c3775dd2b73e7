"""metadata.json: the settings data was made with, its vocab and its counts.

The data tool uses it to refuse mixing data made with other settings into one directory and to resume;
training uses `check_compatible` to refuse data that does not match its config.
"""

import json
import os

import tensorflow as tf

from bert_pretrain.data.errors import DataError

FILENAME = "metadata.json"


def path_in(output_dir: str) -> str:
    return os.path.join(output_dir, FILENAME)


def read(output_dir: str) -> dict | None:
    path = path_in(output_dir)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as handle:
        return json.load(handle)


def write(output_dir: str, metadata: dict) -> None:
    """Writes atomically (temp name, then rename) so a crash never leaves half a file."""
    path = path_in(output_dir)
    with tf.io.gfile.GFile(path + ".tmp", "w") as handle:
        handle.write(json.dumps(metadata, indent=1, sort_keys=True) + "\n")
    tf.io.gfile.rename(path + ".tmp", path, overwrite=True)


def settings_differences(old: dict, new: dict) -> list[str]:
    return sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))


def check_compatible(metadata: dict, **expected) -> None:
    """Raises ValueError naming every setting (e.g. max_seq_length=128, vocab_sha256=...) that the data
    does not match. Keys are looked up in the settings, then the vocab section."""
    if not metadata.get("complete"):
        raise ValueError("the data directory is incomplete; finish it with bert-pretrain-data first")
    found = {**{f"vocab_{k}": v for k, v in metadata["vocab"].items()}, **metadata["settings"]}
    wrong = [f"{k}: data has {found.get(k)!r}, config wants {v!r}"
             for k, v in sorted(expected.items()) if found.get(k) != v]
    if wrong:
        raise ValueError("pretraining data does not match the config: " + "; ".join(wrong))


def refuse_other_settings(output_dir: str, settings: dict, existing: dict | None) -> None:
    if existing is not None and existing.get("settings") != settings:
        changed = settings_differences(existing.get("settings", {}), settings)
        raise DataError("overwrite", f"{output_dir} holds data made with other settings "
                        f"({', '.join(changed)} differ)",
                        "pass --overwrite to replace it, or choose another --output_dir")
