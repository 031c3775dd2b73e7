"""A tiny pretrained model_dir (1 layer, hidden 32, the 120-token test vocab) for fine-tuning tests."""

import os

import tensorflow as tf

from bert_pretrain import job as job_lib
from bert_pretrain.config import ModelConfig, TrainConfig
from training_helpers import PRED, SEQ, VOCAB, write_shards

WORDS = [f"w{i}" for i in range(5, VOCAB)]   # the vocab's words (training_helpers' vocab.txt)


def pretrained_model_dir(root: str) -> str:
    """Two LAMB steps through the same builder as `bert-pretrain train`: checkpoints, bert_config.json,
    and the data's vocab beside them."""
    write_shards(os.path.join(root, "data"), files=1, records=16)
    model_dir = os.path.join(root, "model")
    data = job_lib.data_from_globs(os.path.join(root, "data", "*.tfrecord"), SEQ, PRED, "train_files")
    job = job_lib.Job(ModelConfig(vocab_size=VOCAB, num_layers=1, hidden_size=32, num_heads=2),
                      TrainConfig(train_steps=2, global_batch_size=8, learning_rate=1e-2, warmup_steps=1,
                                  steps_per_loop=1, checkpoint_every=0), model_dir, data)
    trainer = job_lib.build_trainer(job, tf.distribute.get_strategy())
    trainer.train(data, log=lambda line: None)
    return model_dir
