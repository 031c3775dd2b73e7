"""metadata.json: the settings a data directory was made with, its vocab and its counts.

The data tool writes it (`read`/`write`, the raw dict) to refuse mixing data made with other
settings into one directory and to resume. Everything else reads it through `Metadata`, whose
named accessors are the only place that knows the file's layout (docs/data.md).
"""

import dataclasses
import json
import os

import tensorflow as tf

from bert_pretrain import atomic
from bert_pretrain.errors import UsageError

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
    """Written atomically: a crash never leaves half a file."""
    atomic.write_text(path_in(output_dir), json.dumps(metadata, indent=1, sort_keys=True) + "\n")


def settings_differences(old: dict, new: dict) -> list[str]:
    return sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))


def _with_masking(settings: dict) -> dict:
    """Data made before `masking` was recorded is static."""
    return {"masking": "static", **settings}


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
    if existing is not None and _with_masking(existing.get("settings", {})) != settings:
        changed = settings_differences(_with_masking(existing.get("settings", {})), settings)
        raise UsageError("overwrite", f"{output_dir} holds data made with other settings "
                         f"({', '.join(changed)} differ)",
                         "pass --overwrite to replace it, or choose another --output_dir")


@dataclasses.dataclass(frozen=True)
class Metadata:
    """A data directory's metadata.json, read once, with named accessors."""

    raw: dict
    directory: str = ""

    @classmethod
    def of_directory(cls, directory: str) -> "Metadata | None":
        raw = read(directory)
        return None if raw is None else cls(raw, directory)

    @classmethod
    def of_files(cls, files) -> "Metadata | None":
        """The metadata of the directory holding the first of `files`, if the data tool wrote one."""
        return cls.of_directory(os.path.dirname(files[0]))

    @property
    def complete(self) -> bool:
        return bool(self.raw.get("complete"))

    @property
    def vocab_size(self) -> int | None:
        return self.raw.get("vocab", {}).get("size")

    @property
    def vocab_file(self) -> str | None:
        """The vocab the data was tokenized with (vocab.txt beside the shards)."""
        name = self.raw.get("vocab", {}).get("file")
        return os.path.join(self.directory, name) if name else None

    @property
    def vocab_sha256(self) -> str | None:
        return self.raw.get("vocab", {}).get("sha256")

    @property
    def do_lower_case(self) -> bool:
        return bool(self.raw.get("settings", {}).get("do_lower_case", True))

    @property
    def feature_names(self) -> str:
        """"v1" (google-research names) or "v2" (Model Garden's)."""
        return self.raw.get("settings", {}).get("feature_names", "v1")

    @property
    def masking(self) -> str:
        """"static" (google-research's masked records) or "none" (unmasked pairs, masked in training)."""
        return self.raw.get("settings", {}).get("masking", "static")

    @property
    def instances(self) -> int | None:
        """Records in the whole directory."""
        return self.raw.get("counts", {}).get("instances")

    def record_counts(self, files) -> tuple[int, ...] | None:
        """Records in each of `files` (shards of this directory), or None if any is not listed."""
        shards = self.raw.get("shards", {})
        counts = [shards.get(os.path.basename(f), {}).get("instances") for f in files]
        return None if None in counts else tuple(counts)

    def check_compatible(self, **expected) -> None:
        check_compatible(self.raw, **expected)
