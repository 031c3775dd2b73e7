"""Export: the trained encoder as a Model Garden checkpoint that fine-tuning's `encoder=` restore
reads, and as a SavedModel that runs."""

import numpy as np
import tensorflow as tf

from bert_pretrain import model as model_lib
from bert_pretrain.config import ModelConfig
from bert_pretrain import datasets, export
from bert_pretrain.config import TrainConfig
from bert_pretrain.trainer import Trainer
from training_helpers import PRED, SEQ, VOCAB, write_shards


def test_export_restores_into_a_fresh_encoder_and_saved_model_runs(tmp_path):
    files = tuple(write_shards(str(tmp_path / "data"), files=1, records=32))
    config = ModelConfig(vocab_size=VOCAB, num_layers=1, hidden_size=32, num_heads=2)
    trainer = Trainer(config, TrainConfig(train_steps=2, global_batch_size=8, learning_rate=1e-2,
                                          warmup_steps=1, steps_per_loop=1, checkpoint_every=0),
                      tf.distribute.get_strategy(), str(tmp_path / "model"))
    trainer.train(datasets.data_spec(files, SEQ, PRED), log=lambda line: None)
    export.export(trainer.model, config, str(tmp_path / "model"), str(tmp_path / "export"),
                  log=lambda line: None)
    trained = trainer.model.encoder_network

    fresh = model_lib.build_pretrainer(config).encoder_network   # as a fine-tuning job builds it
    ids = tf.constant([[2, 7, 9, 3, 0, 0]])
    inputs = {"input_word_ids": ids, "input_mask": tf.cast(ids > 0, tf.int32),
              "input_type_ids": tf.zeros_like(ids)}
    fresh(inputs)
    tf.train.Checkpoint(encoder=fresh).read(str(tmp_path / "export" / "pretrainer")).expect_partial()
    assert len(fresh.weights) == len(trained.weights)
    for a, b in zip(fresh.weights, trained.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.name)

    loaded = tf.saved_model.load(str(tmp_path / "export" / "encoder_savedmodel"))
    outputs = loaded.signatures["serving_default"](**inputs)
    expected = trained(inputs, training=False)
    np.testing.assert_allclose(outputs["sequence_output"].numpy(),
                               expected["sequence_output"].numpy(), rtol=1e-5, atol=1e-5)
