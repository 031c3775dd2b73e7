"""Reading the data tool's TFRecords for training: the checks made before the first step, and the
tf.data datasets for training and evaluation.

The training order is a pure function of (files, seed) whose every position can be computed from
the files' record counts (`record_order`): a restart at step N starts reading at the record step N
needs, without reading the records before it. Files are split among input pipelines (hosts), and
batches are made with drop_remainder=True so XLA and TPUs see static shapes.

With --masking=dynamic or dynamic_whole_word each training record is masked as it is read
(`masking.dynamic`), keyed by its position in the stream, so resuming also reproduces the masks.
Evaluation always reads the held-out records' own, static masks: the same set at every evaluation.
"""

import dataclasses
import os

import tensorflow as tf

from bert_pretrain import record_order
from bert_pretrain.data import tfrecords
from bert_pretrain.data.metadata import Metadata
from bert_pretrain.data.verify import value_limits
from bert_pretrain.errors import UsageError
from bert_pretrain.masking import dynamic

SCAN_FILES, SCAN_RECORDS = 8, 256


@dataclasses.dataclass(frozen=True)
class DataSpec:
    files: tuple[str, ...]
    max_seq_length: int
    max_predictions_per_seq: int
    feature_names: str = "v1"
    record_counts: tuple[int, ...] | None = None   # per file: metadata.json's, a damaged file's readable
    #                                                 records (data_faults); None: counted on resume
    metadata: Metadata | None = dataclasses.field(default=None, compare=False, repr=False)
    masking: str = "static"   # what the records hold: "static" (masked) or "none" (metadata.json's)

    @property
    def vocab_size(self) -> int | None:
        """The vocab size the data was made with, if its directory has metadata.json."""
        return self.metadata.vocab_size if self.metadata else None


def data_spec(files: tuple[str, ...], max_seq_length: int, max_predictions_per_seq: int) -> DataSpec:
    """A DataSpec with what metadata.json says of `files` (read once): the feature names, the
    record count of each file and the vocab size."""
    metadata = Metadata.of_files(files)
    if metadata is None:
        return DataSpec(files, max_seq_length, max_predictions_per_seq)
    return DataSpec(files, max_seq_length, max_predictions_per_seq, metadata.feature_names,
                    metadata.record_counts(files), metadata, metadata.masking)


def resolve_files(patterns: str, flag: str) -> tuple[str, ...]:
    """Comma-separated globs (local or gs://) -> sorted files; a glob matching nothing is an error."""
    files = []
    for pattern in filter(None, (p.strip() for p in patterns.split(","))):
        matched = tf.io.gfile.glob(pattern)
        if not matched:
            raise UsageError(flag, f"{pattern!r} matches no file", "check the path or glob")
        files.extend(matched)
    if not files:
        raise UsageError(flag, "no files given", "pass one or more comma-separated globs")
    return tuple(sorted(set(files)))


def check_data(spec: DataSpec, vocab_size: int, flag: str) -> None:
    """Metadata first (cheap, complete), then a scan of a sample: an id >= vocab_size reads out of
    bounds silently on TPU and trains on garbage, so it must stop the run here. (A damaged record
    is not a reason to stop: `data_faults` decides.)"""
    metadata = spec.metadata or Metadata.of_files(spec.files)   # a DataSpec made by hand has none
    if metadata is not None:
        try:
            metadata.check_compatible(max_seq_length=spec.max_seq_length,
                                      max_predictions_per_seq=spec.max_predictions_per_seq)
        except ValueError as error:
            raise UsageError(flag, str(error), "pass the data's --max_seq_length/--max_predictions_per_seq "
                                               "or other files") from None
        if metadata.vocab_size != vocab_size:
            raise UsageError(flag, f"the data's vocab has {metadata.vocab_size} tokens, the model "
                                   f"{vocab_size}", "set --vocab_size to the data's vocab size")
    for path in spec.files[:SCAN_FILES]:
        _scan_file(path, spec, vocab_size, flag)


def _scan_file(path: str, spec: DataSpec, vocab_size: int, flag: str) -> None:
    records = tf.data.TFRecordDataset(path).take(SCAN_RECORDS).map(lambda r: _decode(r, spec))
    limits = value_limits(vocab_size, spec.max_seq_length)
    try:
        for batch in records.batch(SCAN_RECORDS):
            for name, limit in limits.items():
                if name not in batch:   # unmasked records have no masked_lm_*
                    continue
                values = batch[name].numpy()
                if values.size and (values.max() >= limit or values.min() < 0):
                    raise UsageError(flag, f"{path} has {name} outside [0, {limit}) (max {values.max()})",
                                    "make the data with the model's vocab, or set --vocab_size to it")
    except tf.errors.InvalidArgumentError:
        raise UsageError(flag, f"{path} does not hold records of max_seq_length={spec.max_seq_length}, "
                              f"max_predictions_per_seq={spec.max_predictions_per_seq}",
                         "pass the lengths the data was made with") from None
    except tf.errors.DataLossError:
        pass   # a damaged record: the run reads the file up to it (data_faults)


def _pipeline_files(spec: DataSpec, context: tf.distribute.InputContext) -> list[int]:
    """Indices of the files this input pipeline (host) reads: every num_input_pipelines-th."""
    if len(spec.files) < context.num_input_pipelines:
        raise UsageError("train_files", f"{len(spec.files)} files for {context.num_input_pipelines} input "
                         "pipelines", "write the data in at least one shard per host")
    return list(range(context.input_pipeline_id, len(spec.files), context.num_input_pipelines))


def _decode(record: tf.Tensor, spec: DataSpec) -> dict:
    return tfrecords.decode(record, spec.max_seq_length, spec.max_predictions_per_seq,
                            spec.feature_names, masked=spec.masking == "static")


def check_masking(spec: DataSpec, masking: str, flag: str, held_out: bool = False) -> None:
    """Unmasked records need a run that masks them, and held-out records must hold their own
    (static) masks, so that every evaluation scores the same predictions."""
    if spec.masking == "none" and held_out:
        raise UsageError(flag, f"{_directory(spec)} holds unmasked records (made with --masking=none); "
                               "evaluation needs fixed masks", "make the held-out data with the default "
                                                               "bert-pretrain-data --masking=static")
    if spec.masking == "none" and masking == "static":
        raise UsageError("masking", f"static masking reads the records' own masks and {_directory(spec)} holds "
                                    "unmasked records (made with --masking=none)",
                         "pass --masking=dynamic or --masking=dynamic_whole_word")
    if masking != "static" and not held_out:
        masker_for(spec, masking)   # the vocab is found now, not when the stream starts


def _directory(spec: DataSpec) -> str:
    return os.path.dirname(spec.files[0]) or "."


def masker_for(spec: DataSpec, masking: str, flag: str = "masking") -> "dynamic.Masker | None":
    """The Masker of a dynamic `masking` over this data (None for static), from the data's vocab."""
    if masking == "static":
        return None
    vocab = dynamic.vocab_for(spec.metadata.vocab_file if spec.metadata else None, spec.files, flag)
    return dynamic.Masker.from_vocab(vocab, spec.max_predictions_per_seq, masking == "dynamic_whole_word")


def _decode_and_batch(records: tf.data.Dataset, spec: DataSpec, batch_size: int) -> tf.data.Dataset:
    decoded = records.map(lambda r: _decode(r, spec), num_parallel_calls=tf.data.AUTOTUNE)
    return decoded.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def _in_file_order(spec: DataSpec, indices: list[int]) -> tf.data.Dataset:
    """The records of these files one file after another, each up to its record count if known."""
    limits = [spec.record_counts[i] if spec.record_counts else -1 for i in indices]
    return tf.data.Dataset.from_tensor_slices(([spec.files[i] for i in indices],
                                               tf.constant(limits, tf.int64))).flat_map(
        lambda path, limit: tf.data.TFRecordDataset(path).take(limit))


def examples(spec: DataSpec) -> tf.data.Dataset:
    """Every record of `spec.files`, in file order, decoded (v1 names, int32): to inspect data."""
    return _in_file_order(spec, list(range(len(spec.files)))).map(lambda r: _decode(r, spec))


def train_dataset_fn(spec: DataSpec, global_batch_size: int, seed: int, consumed_steps: int = 0,
                     window: int = record_order.WINDOW, masking: str = "static"):
    """For `strategy.distribute_datasets_from_function`: an endless per-replica-batched stream,
    starting after the batches `consumed_steps` global steps took from this pipeline; masked
    anew (`masking` dynamic or dynamic_whole_word) or as the records were made (static)."""
    masker = masker_for(spec, masking)

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        batch_size = context.get_per_replica_batch_size(global_batch_size)
        indices = _pipeline_files(spec, context)
        replicas_per_pipeline = context.num_replicas_in_sync // context.num_input_pipelines
        start = consumed_steps * replicas_per_pipeline * batch_size
        counts = None
        if spec.record_counts:
            counts = [spec.record_counts[i] for i in indices]
        elif start:
            counts = record_order.count_records([spec.files[i] for i in indices])
        records = record_order.records([spec.files[i] for i in indices], seed, start, counts, window)
        if masker is None:
            return _decode_and_batch(records, spec, batch_size)
        return _mask_and_batch(records, spec, batch_size, masker, seed, context.input_pipeline_id, start)
    return dataset_fn


def _mask_and_batch(records: tf.data.Dataset, spec: DataSpec, batch_size: int, masker: dynamic.Masker,
                    seed: int, pipeline: int, start: int) -> tf.data.Dataset:
    """Decodes each record and keys its mask by its position in the stream (`start` is that of the
    first record), then masks whole batches (cheaper than record by record, same masks)."""
    static = spec.masking == "static"

    def decode(position, record):
        features = _decode(record, spec)
        if static:
            features = dynamic.original_tokens(features)
        return features, dynamic.record_seed(seed, pipeline, position)

    decoded = records.enumerate(start=start).map(decode, num_parallel_calls=tf.data.AUTOTUNE)
    batches = decoded.batch(batch_size, drop_remainder=True)
    return batches.map(masker, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def eval_dataset_fn(spec: DataSpec, global_batch_size: int):
    """One pass over the held-out files in file order (the remainder that fills no batch is dropped)."""
    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        records = _in_file_order(spec, _pipeline_files(spec, context))
        return _decode_and_batch(records, spec, context.get_per_replica_batch_size(global_batch_size))
    return dataset_fn
