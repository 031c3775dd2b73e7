"""Damaged data files: a run reads each up to its first damaged record, skips the rest, says so,
and stops only when too much of the data is lost.

Damage is found two ways. At start, a file whose size differs from the size metadata.json records
(a partial upload or copy) is read to its first bad record; that costs one size lookup per file.
During the run, a read that fails (flipped bits in a file of the right size) ends the host call;
the trainer then reads every file not yet known damaged and goes back to its latest checkpoint.

What was found is kept in `model_dir/data_faults.json`, so every later start makes the same
decisions without reading again. The record order (`record_order`) is computed from each file's
readable count, so a run that skipped a damaged file's tail resumes exactly like one that never
stopped. A file whose size changes after it was recorded (it was replaced) is read whole again.

Under MultiWorkerMirroredStrategy each worker reads its own files, and a read that fails on one
worker mid-run cannot be retried in step with the others (they wait in the all-reduce): the start-up
size check works there, mid-file corruption does not, so verify the data first (`bert-pretrain-data
--verify`). TPUStrategy and one-host strategies have one client, which sees every failure.
"""

import concurrent.futures
import dataclasses
import json
import os

import tensorflow as tf

from bert_pretrain import atomic
from bert_pretrain.data.verify import read_whole
from bert_pretrain.datasets import DataSpec
from bert_pretrain.errors import UsageError

FILENAME = "data_faults.json"
PARALLEL_READS = 16    # size lookups and reads at a time (gs:// latency, not CPU, bounds them)


@dataclasses.dataclass(frozen=True)
class Damage:
    readable: int                 # records before the first damaged one
    expected: int | None          # records metadata.json lists, if it does
    bytes: int                    # the file's size when the damage was found
    problem: str

    @property
    def lost(self) -> int:
        return max(self.expected - self.readable, 0) if self.expected is not None else 0


def load(model_dir: str) -> dict[str, Damage]:
    path = os.path.join(model_dir, FILENAME)
    if not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path) as handle:
        return {file: Damage(**entry) for file, entry in json.load(handle).items()}


def save(model_dir: str, damaged: dict[str, Damage]) -> None:
    text = json.dumps({f: dataclasses.asdict(d) for f, d in sorted(damaged.items())}, indent=1)
    atomic.write_text(os.path.join(model_dir, FILENAME), text + "\n")


def apply(spec: DataSpec, model_dir: str, max_fraction: float, flag: str, log=print,
          write: bool = True, read_all: bool = False) -> tuple[DataSpec, dict[str, Damage]]:
    """The spec with each damaged file's readable count in place of its full one, and the damage
    known for its files. Reads the files whose size is wrong (or, with `read_all`, every file not
    known damaged); records new damage in model_dir when `write` (the chief); raises UsageError
    naming `flag` when the lost records exceed `max_fraction` of the data."""
    known = load(model_dir)
    shards = spec.metadata.raw.get("shards", {}) if spec.metadata else {}
    if not (read_all or known or any("bytes" in entry for entry in shards.values())):
        return spec, {}   # nothing to compare sizes with: no lookups
    sizes = _parallel(lambda f: tf.io.gfile.stat(f).length, spec.files)
    damaged, suspects = {}, []
    for file, size in zip(spec.files, sizes):
        entry = shards.get(os.path.basename(file), {})
        if file in known and known[file].bytes == size:
            damaged[file] = known[file]
        elif file in known:
            log(f"data: {file} changed since it was found damaged; reading it whole again")
            suspects.append((file, size, entry.get("instances")))
        elif read_all or entry.get("bytes", size) != size:
            suspects.append((file, size, entry.get("instances")))
    if read_all:
        log(f"data: a record could not be read; reading {len(suspects)} file(s) to find the damage")
    found, readable_of = {}, {}
    for (file, size, expected), (readable, problem) in zip(suspects, _parallel(read_whole, [s[0] for s in suspects])):
        readable_of[file] = readable
        if problem is None and expected is not None and readable < expected:
            problem = f"ends after {readable:,} of {expected:,} records"
        if problem is not None:
            found[file] = Damage(readable, expected, size, problem)
    damaged |= found
    if write and (found or damaged.keys() != {f for f in known if f in spec.files}):
        save(model_dir, {f: d for f, d in known.items() if f not in spec.files} | damaged)
    lost = sum(d.lost for d in damaged.values())
    expected = spec.metadata.record_counts(spec.files) if spec.metadata else None
    total = sum(expected) if expected else None
    for file, damage in found.items():
        log(f"data: {file} is damaged ({damage.problem}); its first {damage.readable:,} records are "
            f"used and the rest skipped")
    if total and lost > max_fraction * total:
        names = ", ".join(os.path.basename(f) for f in damaged)
        raise UsageError(flag, f"{lost:,} of {total:,} records ({lost / total:.2%}) are unreadable, in {names}",
                         f"remake or re-copy those files (bert-pretrain-data --verify=DIR checks them), or "
                         f"raise --max_bad_record_fraction above {lost / total:.4f}")
    counts = spec.record_counts
    if counts is None and read_all:
        counts = tuple(damaged[f].readable if f in damaged else readable_of[f] for f in spec.files)
    elif counts is not None:
        counts = tuple(damaged[f].readable if f in damaged else n for f, n in zip(spec.files, counts))
    return dataclasses.replace(spec, record_counts=counts), damaged


def _parallel(function, items) -> list:
    items = list(items)
    if len(items) <= 1:
        return [function(item) for item in items]
    with concurrent.futures.ThreadPoolExecutor(min(PARALLEL_READS, len(items))) as pool:
        return list(pool.map(function, items))
