"""The order in which one input pipeline reads its training records, and entering it at any position.

A resumed run must see exactly the records an uninterrupted run would have seen next, and must not
read the records already trained on to get there (at the paper's scale that is hundreds of millions
of records). So the order is built from pieces whose position is arithmetic:

- epoch e visits the pipeline's files in a permutation drawn from (seed, e);
- the files are taken in groups of `GROUP` consecutive files of that permutation, and a group's
  records are interleaved round-robin, one record a file, a file dropping out when it ends;
- the endless stream of records is cut into windows of `window` records, each shuffled by a
  permutation drawn from (seed, window index).

Given each file's record count, record n of the stream is located without reading anything: its
window, its epoch and group, and how far each file of that group has been read. Resuming reads at
most one group's files up to that point, plus one window. Everything is tf.data ops (no Python
callbacks), so the pipeline also runs on a TPU host's CPU that is not this process's.
"""

import dataclasses

import tensorflow as tf

from bert_pretrain.data.verify import readable_records

GROUP = 8           # files interleaved at a time
WINDOW = 10_000     # records shuffled together


def _seed(seed: int, kind: int, index) -> tf.Tensor:
    """Stateless seed for epoch permutations (kind 0) and window shuffles (kind 1)."""
    return tf.stack([tf.constant(seed, tf.int64), 2 * tf.cast(index, tf.int64) + kind])


def epoch_order(num_files: int, seed: int, epoch) -> tf.Tensor:
    """The file indices in the order epoch `epoch` reads them."""
    return tf.random.experimental.stateless_shuffle(tf.range(num_files, dtype=tf.int64),
                                                    seed=_seed(seed, 0, epoch))


@dataclasses.dataclass(frozen=True)
class Position:
    """Where record `start` of the stream is: epoch, group, and the group's files (in the order the
    interleave should visit them) with the records already read from each."""

    epoch: int
    group: int
    files: tuple[int, ...]
    skips: tuple[int, ...]


def round_robin_position(counts: list[int], read: int) -> tuple[list[int], list[int]]:
    """After `read` records of a round-robin interleave over files with these counts: the order in
    which to continue (a rotation of the files) and how many records of each file were read."""
    low, high = 0, max(counts, default=0)
    while low < high:   # the most complete rounds k with sum(min(c, k)) <= read
        middle = (low + high + 1) // 2
        if sum(min(c, middle) for c in counts) <= read:
            low = middle
        else:
            high = middle - 1
    rounds = low
    taken = [min(c, rounds) for c in counts]
    extra = read - sum(taken)   # one more record from each of the first `extra` files still open
    resume_at = 0
    for index, count in enumerate(counts):
        if extra and count > rounds:
            taken[index] += 1
            extra -= 1
            resume_at = index + 1
    order = list(range(resume_at, len(counts))) + list(range(resume_at))
    return order, [taken[i] for i in order]


def locate(counts: list[int], seed: int, start: int, group: int = GROUP) -> Position:
    """The position of record `start` of the stream over files with these record counts."""
    total = sum(counts)
    if total == 0:
        raise ValueError("the training files hold no records")
    epoch, offset = divmod(start, total)
    order = epoch_order(len(counts), seed, epoch).numpy().tolist()
    for index in range(0, len(order), group):
        members = order[index:index + group]
        size = sum(counts[i] for i in members)
        if offset < size:
            rotation, skips = round_robin_position([counts[i] for i in members], offset)
            return Position(epoch, index // group, tuple(members[i] for i in rotation), tuple(skips))
        offset -= size
    raise AssertionError("unreachable: offset < total")


def _interleaved(files: tf.Tensor, skips: tf.Tensor, limits: tf.Tensor, group: int) -> tf.data.Dataset:
    def records(path, skip, limit):
        return tf.data.TFRecordDataset(path, buffer_size=1 << 22).take(limit).skip(skip)
    return tf.data.Dataset.from_tensor_slices((files, skips, limits)).interleave(
        records, cycle_length=group, block_length=1, num_parallel_calls=group, deterministic=True)


def _epoch(paths: tf.Tensor, limits: tf.Tensor, seed: int, epoch, group: int,
           first_group: int = 0) -> tf.data.Dataset:
    """Epoch `epoch` from group `first_group` on, every file from its first record."""
    order = epoch_order(paths.shape[0], seed, epoch)[first_group * group:]
    groups = tf.data.Dataset.from_tensor_slices((tf.gather(paths, order), tf.gather(limits, order))).batch(group)
    return groups.flat_map(lambda members, most: _interleaved(members, tf.zeros_like(most), most, group))


def records(paths: list[str], seed: int, start: int = 0, counts: list[int] | None = None,
            window: int = WINDOW, group: int = GROUP) -> tf.data.Dataset:
    """The endless shuffled stream of serialized records from record `start` on. `counts`, the
    files' record counts, are needed when start > 0; given, each file is read up to its count and
    no further (a damaged file's count is that of its readable records, `data_faults`)."""
    first_window, within = divmod(start, window)
    path_tensor = tf.constant(paths)
    if counts is not None and len(counts) != len(paths):
        raise ValueError("counts must give the record count of every file")
    limits = tf.constant(counts if counts is not None else [-1] * len(paths), tf.int64)
    if first_window == 0:
        stream = tf.data.Dataset.range(1 << 62).flat_map(lambda e: _epoch(path_tensor, limits, seed, e, group))
    else:
        if counts is None:
            raise ValueError("resuming needs the record count of every file")
        at = locate(counts, seed, first_window * window, group)
        head = _interleaved(tf.constant([paths[i] for i in at.files]), tf.constant(at.skips, tf.int64),
                            tf.constant([counts[i] for i in at.files], tf.int64), group)
        rest_of_epoch = _epoch(path_tensor, limits, seed, at.epoch, group, first_group=at.group + 1)
        later = tf.data.Dataset.range(at.epoch + 1, 1 << 62).flat_map(
            lambda e: _epoch(path_tensor, limits, seed, e, group))
        stream = head.concatenate(rest_of_epoch).concatenate(later)

    def shuffle(index, batch):
        return tf.gather(batch, tf.random.experimental.stateless_shuffle(
            tf.range(tf.shape(batch)[0]), seed=_seed(seed, 1, index)))

    windows = stream.batch(window).enumerate(start=first_window).map(shuffle)
    return windows.unbatch().skip(within)


def count_records(paths: list[str]) -> list[int]:
    """Reads every file to count its records (up to a damaged one): the fallback when metadata.json
    has no counts."""
    return [readable_records(p) for p in paths]
