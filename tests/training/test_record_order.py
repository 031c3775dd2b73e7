"""The training record order entered at any position equals the uninterrupted stream from there on,
across windows, file groups of unequal files, and epochs; the position arithmetic against hand cases."""

import pytest
import tensorflow as tf

from bert_pretrain import record_order

COUNTS = [5, 0, 9, 3, 7, 7, 1, 4, 6, 2, 8]   # unequal, one empty file; 52 records an epoch


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("order")
    paths = []
    for index, count in enumerate(COUNTS):
        path = str(directory / f"f{index:02d}.tfrecord")
        with tf.io.TFRecordWriter(path) as writer:
            for record in range(count):
                writer.write(f"{index}:{record}".encode())
        paths.append(path)
    return paths


def take(dataset, n):
    return [r.decode() for r in dataset.take(n).as_numpy_iterator()]


def test_round_robin_position_by_hand():
    # Counts 2, 4, 1: the interleave reads a0 b0 c0 a1 b1 b2 b3.
    assert record_order.round_robin_position([2, 4, 1], 0) == ([0, 1, 2], [0, 0, 0])
    assert record_order.round_robin_position([2, 4, 1], 2) == ([2, 0, 1], [0, 1, 1])   # after a0 b0
    assert record_order.round_robin_position([2, 4, 1], 4) == ([1, 2, 0], [1, 1, 2])   # after ... a1
    assert record_order.round_robin_position([2, 4, 1], 5) == ([0, 1, 2], [2, 2, 1])   # after b1
    assert record_order.round_robin_position([2, 4, 1], 6) == ([0, 1, 2], [2, 3, 1])


def test_every_record_once_an_epoch_and_files_interleaved(files):
    stream = take(record_order.records(files, seed=1, window=1, group=4), sum(COUNTS))
    assert sorted(stream) == sorted(f"{i}:{r}" for i, c in enumerate(COUNTS) for r in range(c))
    for index, count in enumerate(COUNTS):   # each file in its own order
        assert [s for s in stream if s.startswith(f"{index}:")] == [f"{index}:{r}" for r in range(count)]
    assert len({s.split(":")[0] for s in stream[:4]}) == 4   # a group's files alternate


def test_epochs_differ_and_seeds_differ(files):
    two_epochs = take(record_order.records(files, seed=1, window=1, group=4), 2 * sum(COUNTS))
    assert two_epochs[:52] != two_epochs[52:] and sorted(two_epochs[:52]) == sorted(two_epochs[52:])
    assert take(record_order.records(files, seed=2, window=1, group=4), 52) != two_epochs[:52]


@pytest.mark.parametrize("window", [1, 7, 100])
def test_resuming_anywhere_equals_the_uninterrupted_stream(files, window):
    full = take(record_order.records(files, seed=5, window=window, group=4), 260)
    for start in (1, 6, 7, 13, 20, 51, 52, 53, 90, 104, 155, 200):
        resumed = take(record_order.records(files, seed=5, start=start, counts=COUNTS, window=window,
                                            group=4), 40)
        assert resumed == full[start:start + 40], (window, start)


def test_windows_shuffle(files):
    unshuffled = take(record_order.records(files, seed=5, window=1, group=4), 52)
    shuffled = take(record_order.records(files, seed=5, window=26, group=4), 52)
    assert shuffled != unshuffled
    assert sorted(shuffled[:26]) == sorted(unshuffled[:26]) and sorted(shuffled) == sorted(unshuffled)


def test_resuming_reads_no_earlier_record(files, tmp_path):
    """Resuming deep into the stream opens only the group it lands in: the earlier groups' files are
    gone, and reading still works."""
    at = record_order.locate(COUNTS, seed=5, start=7 * 52 + 30, group=4)
    kept = {i for i in at.files}
    moved = [str(tmp_path / f"gone{i}") if i not in kept else p for i, p in enumerate(files)]
    order = record_order.epoch_order(len(COUNTS), 5, at.epoch).numpy().tolist()
    later = set(order[(at.group + 1) * 4:])
    moved = [files[i] if i in kept or i in later else path for i, path in enumerate(moved)]
    resumed = take(record_order.records(moved, seed=5, start=7 * 52 + 30, counts=COUNTS, window=1, group=4), 5)
    full = take(record_order.records(files, seed=5, window=1, group=4), 7 * 52 + 35)
    assert resumed == full[-5:]


def test_counting_records_and_errors(files):
    assert record_order.count_records(files) == COUNTS
    with pytest.raises(ValueError, match="record count of every file"):
        record_order.records(files, seed=1, start=30, window=7)
    with pytest.raises(ValueError, match="hold no records"):
        record_order.locate([0, 0], seed=1, start=3)
