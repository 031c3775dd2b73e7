"""Reading every record of a data directory to find damage before a run meets it: `bert-pretrain-data
--verify=DIR`, and `readable_records`, which training uses on a damaged file.

A file is checked for what breaks or silently spoils a run: records that do not read whole (a length
or CRC check fails: a truncated upload or flipped bits), records that do not parse with the
directory's lengths, ids outside the vocab, positions outside the sequence, and record and byte
counts that differ from metadata.json. Files are checked in parallel, records in batches.
"""

import concurrent.futures
import dataclasses
import os
import re
import time

import numpy as np
import tensorflow as tf

from bert_pretrain.data import tfrecords
from bert_pretrain.data.metadata import Metadata
from bert_pretrain.errors import UsageError

BATCH = 1024
READ_BUFFER = 1 << 22


def readable_records(path: str) -> int:
    """The records of `path` that read whole before the first damaged one (all of them if none is).
    tf.data's TFRecord reader checks each record's length and CRCs and ends the file at the first
    failure when errors are ignored."""
    return _count(tf.data.TFRecordDataset(path, buffer_size=READ_BUFFER).ignore_errors())


def _count(records: tf.data.Dataset) -> int:
    """Counted in batches: one reduce step per record costs more than reading it."""
    return int(records.batch(BATCH).reduce(np.int64(0), lambda count, batch: count + tf.size(batch, tf.int64)))


def read_whole(path: str) -> tuple[int, str | None]:
    """(records that read whole, what ended the file early or None): reads the file once, and a
    damaged file a second time to count the records before the damage."""
    try:
        return _count(tf.data.TFRecordDataset(path, buffer_size=READ_BUFFER)), None
    except tf.errors.DataLossError as error:
        return readable_records(path), _damage(error)


def _damage(error: tf.errors.DataLossError) -> str:
    """tf.data's message for a damaged record, without the op's name: 'truncated record at byte N'
    (the file ends inside a record) or 'corrupted record at byte N' (a CRC does not match)."""
    found = re.search(r"(truncated|corrupted) record at (\d+)", error.message)
    return f"{found.group(1)} record at byte {int(found.group(2)):,}" if found else error.message.splitlines()[0]


@dataclasses.dataclass(frozen=True)
class FileReport:
    path: str
    bytes: int
    records: int                     # records that read whole, before the first damaged one
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


def value_limits(vocab_size: int, max_seq_length: int) -> dict[str, int]:
    """Each integer feature's values lie in [0, limit): an id past the vocab reads out of bounds
    silently on TPU, a position past the sequence gathers nothing."""
    return {"input_ids": vocab_size, "masked_lm_ids": vocab_size, "masked_lm_positions": max_seq_length,
            "input_mask": 2, "segment_ids": 2, "next_sentence_labels": 2}


def check_file(path: str, metadata: Metadata) -> FileReport:
    """Reads every record of one shard and checks it against the directory's metadata."""
    settings = metadata.raw["settings"]
    seq, pred = settings["max_seq_length"], settings["max_predictions_per_seq"]
    masked = metadata.masking == "static"
    spec = tfrecords.feature_spec(seq, pred, metadata.feature_names, masked)
    names = tfrecords.FEATURE_NAMES[metadata.feature_names]
    limits = {k: v for k, v in value_limits(metadata.vocab_size, seq).items() if names[k] in spec}

    def summarize(serialized):
        parsed = tf.io.parse_example(serialized, spec)
        low = {k: tf.reduce_min(parsed[names[k]]) for k in limits}
        high = {k: tf.reduce_max(parsed[names[k]]) for k in limits}
        weights = parsed[names["masked_lm_weights"]] if masked else tf.zeros([0])
        bad_weights = tf.reduce_sum(tf.cast(~tf.math.is_finite(weights) | (weights < 0) | (weights > 1), tf.int64))
        return tf.size(serialized, tf.int64), low, high, bad_weights

    batches = (tf.data.TFRecordDataset(path, buffer_size=READ_BUFFER).batch(BATCH)
               .map(summarize, num_parallel_calls=tf.data.AUTOTUNE))
    records, problems, parsed = 0, [], True
    low = {k: np.iinfo(np.int64).max for k in limits}
    high = {k: np.iinfo(np.int64).min for k in limits}
    bad_weights = 0
    try:
        for count, batch_low, batch_high, batch_bad in batches:
            records += int(count)
            bad_weights += int(batch_bad)
            for k in limits:
                low[k], high[k] = min(low[k], int(batch_low[k])), max(high[k], int(batch_high[k]))
    except tf.errors.DataLossError as error:
        records = readable_records(path)
        problems.append(f"damaged after record {records:,}: {_damage(error)}")
    except tf.errors.InvalidArgumentError:
        problems.append(f"records do not parse with max_seq_length={seq}, max_predictions_per_seq={pred}, "
                        f"feature_names={metadata.feature_names}")
        records, parsed = readable_records(path), False
    for k, end in limits.items():
        if parsed and low[k] <= high[k] and (low[k] < 0 or high[k] >= end):
            problems.append(f"{k} outside [0, {end}): min {low[k]}, max {high[k]}")
    if bad_weights:
        problems.append(f"{bad_weights:,} masked_lm_weights not in [0, 1]")
    size = tf.io.gfile.stat(path).length
    entry = metadata.raw.get("shards", {}).get(os.path.basename(path), {})
    if entry.get("instances") is not None and entry["instances"] != records:
        problems.append(f"{records:,} records read, metadata.json says {entry['instances']:,}")
    if entry.get("bytes") is not None and entry["bytes"] != size:
        problems.append(f"{size:,} bytes, metadata.json says {entry['bytes']:,}")
    return FileReport(path, size, records, tuple(problems))


def verify_directory(directory: str, workers: int = 0, log=print) -> list[FileReport]:
    """Checks every shard metadata.json lists (and any other *.tfrecord beside them), `workers`
    files at a time (0: one per core); prints a line per file and a summary with the read rate."""
    metadata = Metadata.of_directory(directory)
    if metadata is None:
        raise UsageError("verify", f"{directory} has no metadata.json", "give a directory bert-pretrain-data made")
    listed = sorted(metadata.raw.get("shards", {}))
    present = {os.path.basename(p) for p in tf.io.gfile.glob(os.path.join(directory, "*.tfrecord"))}
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
        futures = {name: pool.submit(check_file, os.path.join(directory, name), metadata)
                   for name in sorted(present)}
        reports = []
        for name in sorted(present | set(listed)):
            if name not in present:
                report = FileReport(os.path.join(directory, name), 0, 0, ("missing: metadata.json lists it",))
            else:
                report = futures[name].result()
                if name not in listed:
                    report = dataclasses.replace(report, problems=report.problems + ("not listed in metadata.json",))
            reports.append(report)
            log(_line(report))
    seconds = time.monotonic() - started
    total_bytes = sum(r.bytes for r in reports)
    damaged = [r for r in reports if not r.ok]
    log(f"{len(reports)} file(s), {sum(r.records for r in reports):,} readable records, "
        f"{total_bytes / 1e6:,.1f} MB in {seconds:.1f} s ({total_bytes / 1e6 / max(seconds, 1e-9):,.0f} MB/s): "
        + (f"{len(damaged)} with problems" if damaged else "all good"))
    return reports


def _line(report: FileReport) -> str:
    name = os.path.basename(report.path)
    if report.ok:
        return f"ok   {name}: {report.records:,} records, {report.bytes / 1e6:,.1f} MB"
    return f"BAD  {name}: " + "; ".join(report.problems)
