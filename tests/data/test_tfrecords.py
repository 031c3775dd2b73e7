"""The fast encoder against TensorFlow's own serialisation, and our reader against hand-made records."""

import numpy as np
import pytest
import tensorflow as tf

from bert_pretrain.data import tfrecords


def random_features(n, seq=16, preds=4, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "input_ids": rng.integers(0, 2**21, (n, seq)),   # 1- to 3-byte varints
        "input_mask": rng.integers(0, 2, (n, seq)),
        "segment_ids": rng.integers(0, 2, (n, seq)),
        "masked_lm_positions": rng.integers(0, 300, (n, preds)),
        "masked_lm_ids": rng.integers(0, 2**27, (n, preds)),
        "masked_lm_weights": rng.random((n, preds)).astype(np.float32),
        "next_sentence_labels": rng.integers(0, 2, (n, 1)),
    }


def tf_example(features, row, names):
    example = tf.train.Example()
    for key, values in features.items():
        feature = example.features.feature[tfrecords.FEATURE_NAMES[names][key]]
        target = feature.float_list if key == "masked_lm_weights" else feature.int64_list
        target.value.extend(values[row].tolist())
    return example


@pytest.mark.parametrize("names", ["v1", "v2"])
def test_encoding_equals_tensorflow_serialisation(names):
    features = random_features(50)
    records = tfrecords.encode_examples(features, names)
    assert len(records) == 50
    for row, record in enumerate(records):
        assert record == tf_example(features, row, names).SerializeToString(deterministic=True)


def test_hand_written_google_research_record_reads_back(tmp_path):
    # The google-research layout, built field by field as its create_pretraining_data writes it.
    values = {
        "input_ids": [2, 11, 4, 13, 3, 21, 22, 3, 0, 0],
        "input_mask": [1] * 8 + [0, 0],
        "segment_ids": [0] * 5 + [1] * 3 + [0, 0],
        "masked_lm_positions": [2, 6, 0],
        "masked_lm_ids": [12, 22, 0],
        "masked_lm_weights": [1.0, 1.0, 0.0],
        "next_sentence_labels": [1],
    }
    example = tf.train.Example(features=tf.train.Features(feature={
        k: tf.train.Feature(float_list=tf.train.FloatList(value=v)) if k == "masked_lm_weights"
        else tf.train.Feature(int64_list=tf.train.Int64List(value=v)) for k, v in values.items()}))
    path = str(tmp_path / "hand.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        writer.write(example.SerializeToString())
    batch = next(iter(tf.data.TFRecordDataset(path).map(lambda r: tfrecords.decode(r, 10, 3)).batch(1)))
    assert set(batch) == set(values)
    for key, expected in values.items():
        assert batch[key].dtype == (tf.float32 if key == "masked_lm_weights" else tf.int32)
        np.testing.assert_array_equal(batch[key].numpy()[0], expected)


def test_reader_maps_v2_names_back(tmp_path):
    features = random_features(3, seq=8, preds=2)
    features["masked_lm_positions"] %= 8
    path = str(tmp_path / "v2.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for record in tfrecords.encode_examples(features, "v2"):
            writer.write(record)
    batch = next(iter(tf.data.TFRecordDataset(path).map(lambda r: tfrecords.decode(r, 8, 2, "v2")).batch(3)))
    for key, expected in features.items():
        np.testing.assert_array_equal(batch[key].numpy(), expected)


def test_shard_writer_renames_only_when_closed(tmp_path):
    path = str(tmp_path / tfrecords.shard_name(0, 1))
    writer = tfrecords.ShardWriter(path)
    writer.write([b"x"])
    assert not tf.io.gfile.exists(path)
    writer.close()
    assert [r.numpy() for r in tf.data.TFRecordDataset(path)] == [b"x"]
    assert tf.io.gfile.listdir(str(tmp_path)) == [tfrecords.shard_name(0, 1)]
