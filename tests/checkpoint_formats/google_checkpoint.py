"""A google-research BERT checkpoint directory written the way google-research/bert writes one:
tf.compat.v1 variables created in its variable scopes (modeling.py's BertModel, run_pretraining.py's
heads), saved by a tf.compat.v1 Saver as bert_model.ckpt, with bert_config.json and vocab.txt."""

import json
import os
import shutil

import numpy as np
import tensorflow as tf

from training_helpers import VOCAB

LAYERS, HIDDEN, HEADS, POSITIONS = 2, 32, 2, 512


def _weights(rng, layers, hidden, vocab):
    """Random values under google-research's names (with its shapes); LayerNorm gammas near 1."""
    inner = 4 * hidden
    shapes = {"bert/embeddings/word_embeddings": (vocab, hidden),
              "bert/embeddings/token_type_embeddings": (2, hidden),
              "bert/embeddings/position_embeddings": (POSITIONS, hidden),
              "bert/embeddings/LayerNorm/gamma": (hidden,), "bert/embeddings/LayerNorm/beta": (hidden,)}
    for i in range(layers):
        p = f"bert/encoder/layer_{i}/"
        for name in ("query", "key", "value"):
            shapes[f"{p}attention/self/{name}/kernel"] = (hidden, hidden)
            shapes[f"{p}attention/self/{name}/bias"] = (hidden,)
        shapes |= {f"{p}attention/output/dense/kernel": (hidden, hidden), f"{p}attention/output/dense/bias": (hidden,),
                   f"{p}attention/output/LayerNorm/gamma": (hidden,), f"{p}attention/output/LayerNorm/beta": (hidden,),
                   f"{p}intermediate/dense/kernel": (hidden, inner), f"{p}intermediate/dense/bias": (inner,),
                   f"{p}output/dense/kernel": (inner, hidden), f"{p}output/dense/bias": (hidden,),
                   f"{p}output/LayerNorm/gamma": (hidden,), f"{p}output/LayerNorm/beta": (hidden,)}
    shapes |= {"bert/pooler/dense/kernel": (hidden, hidden), "bert/pooler/dense/bias": (hidden,),
               "cls/predictions/transform/dense/kernel": (hidden, hidden),
               "cls/predictions/transform/dense/bias": (hidden,),
               "cls/predictions/transform/LayerNorm/gamma": (hidden,),
               "cls/predictions/transform/LayerNorm/beta": (hidden,),
               "cls/predictions/output_bias": (vocab,),
               "cls/seq_relationship/output_weights": (2, hidden), "cls/seq_relationship/output_bias": (2,)}
    weights = {}
    for name, shape in shapes.items():
        scale = 0.2 if name.endswith(("kernel", "embeddings", "output_weights")) else 0.1
        value = rng.normal(0.0, scale, shape)
        weights[name] = (1.0 + value if name.endswith("gamma") else value).astype(np.float32)
    return weights


def write(directory, layers=LAYERS, hidden=HIDDEN, heads=HEADS, vocab_file=None, seed=0, drop=(), extra=(),
          with_optimizer_slots=False):
    """Writes the directory; returns the weights. `drop`/`extra`: names to leave out / add."""
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(seed)
    vocab_size = VOCAB
    if vocab_file is None:
        tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(5, VOCAB)]
        with open(os.path.join(directory, "vocab.txt"), "w") as handle:
            handle.write("".join(t + "\n" for t in tokens))
    else:
        shutil.copy(vocab_file, os.path.join(directory, "vocab.txt"))
        vocab_size = sum(1 for _ in open(vocab_file))
    weights = _weights(rng, layers, hidden, vocab_size)
    for name in drop:
        del weights[name]
    for name in extra:
        weights[name] = np.zeros((3,), np.float32)
    with tf.Graph().as_default():
        variables = []
        for name, value in weights.items():
            scope, leaf = name.rsplit("/", 1)
            with tf.compat.v1.variable_scope(scope):
                variables.append(tf.compat.v1.get_variable(leaf, initializer=tf.constant(value)))
            if with_optimizer_slots:
                with tf.compat.v1.variable_scope(name):
                    variables.append(tf.compat.v1.get_variable("adam_m", initializer=tf.zeros_like(value)))
        if with_optimizer_slots:
            variables.append(tf.compat.v1.train.get_or_create_global_step())
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, os.path.join(directory, "bert_model.ckpt"), write_meta_graph=False)
    config = {"attention_probs_dropout_prob": 0.1, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
              "hidden_size": hidden, "initializer_range": 0.02, "intermediate_size": 4 * hidden,
              "max_position_embeddings": POSITIONS, "num_attention_heads": heads, "num_hidden_layers": layers,
              "type_vocab_size": 2, "vocab_size": vocab_size}
    with open(os.path.join(directory, "bert_config.json"), "w") as handle:
        json.dump(config, handle, indent=2)
    return weights


def batch(seed=1, batch_size=2, length=12, predictions=3, vocab=VOCAB):
    """A fixed batch with padding in the second sequence and both segments."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, vocab, (batch_size, length)).astype(np.int32)
    ids[:, 0] = 2
    mask = np.ones((batch_size, length), np.int32)
    mask[1, length - 4:] = 0
    ids[mask == 0] = 0
    segments = (np.arange(length)[None, :] >= length // 2).astype(np.int32) * mask
    positions = np.stack([np.sort(rng.choice(np.arange(1, length - 4), predictions, replace=False))
                          for _ in range(batch_size)]).astype(np.int32)
    return ids, mask, segments, positions
