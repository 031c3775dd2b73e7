"""Model Garden BERT as we build it: presets, shapes, initial loss, LAMB exclusions match its names."""

import math
import re

import numpy as np
import pytest
import tensorflow as tf

from bert_pretrain import config as config_lib
from bert_pretrain.errors import UsageError
from bert_pretrain import model as model_lib
from lamb_tf import BERT_EXCLUSIONS
from lamb_tf.tf_keras import LAMB

VOCAB, SEQ, PRED, BATCH = 120, 16, 4, 8


def random_features(batch=BATCH, seed=0, vocab=VOCAB):
    rng = np.random.default_rng(seed)
    return {"input_ids": tf.constant(rng.integers(1, vocab, (batch, SEQ)), tf.int32),
            "input_mask": tf.ones((batch, SEQ), tf.int32),
            "segment_ids": tf.constant(np.repeat([[0] * (SEQ // 2) + [1] * (SEQ // 2)], batch, 0), tf.int32),
            "masked_lm_positions": tf.constant(rng.integers(1, SEQ, (batch, PRED)), tf.int32),
            "masked_lm_ids": tf.constant(rng.integers(1, vocab, (batch, PRED)), tf.int32),
            "masked_lm_weights": tf.constant(np.tile([1, 1, 1, 0], (batch, 1)), tf.float32),
            "next_sentence_labels": tf.constant(rng.integers(0, 2, (batch, 1)), tf.int32)}


def test_presets_match_docs():
    sizes = {name: (c.num_layers, c.hidden_size, c.num_heads, c.intermediate_size) for name, c in
             ((n, config_lib.from_preset(n, vocab_size=100)) for n in config_lib.PRESETS)}
    assert sizes == {"tiny": (2, 128, 2, 512), "mini": (4, 256, 4, 1024), "small": (4, 512, 8, 2048),
                     "medium": (8, 512, 8, 2048), "base": (12, 768, 12, 3072),
                     "large": (24, 1024, 16, 4096)}


def test_custom_sizes_and_errors():
    custom = config_lib.from_preset("tiny", vocab_size=100, hidden_size=32, num_heads=None)
    assert (custom.num_layers, custom.hidden_size, custom.num_heads) == (2, 32, 2)
    with pytest.raises(UsageError, match=r"^--hidden_size: 30 is not a multiple of --num_heads=4; "):
        config_lib.from_preset("tiny", vocab_size=100, hidden_size=30, num_heads=4)
    with pytest.raises(UsageError, match=r"^--num_layers: 0 is not positive; --dropout=1.0 is not in \[0, 1\)"):
        config_lib.from_preset("tiny", vocab_size=100, num_layers=0, dropout=1.0)
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        config_lib.from_preset("huge", vocab_size=100)


def test_shapes_position_table_and_initial_loss():
    config = config_lib.ModelConfig(vocab_size=VOCAB, num_layers=2, hidden_size=32, num_heads=2, dropout=0.0)
    model = model_lib.build_pretrainer(config)
    features = random_features()
    outputs = model(model_lib.model_inputs(features), training=False)
    assert outputs["mlm_logits"].shape == (BATCH, PRED, VOCAB)
    assert outputs[model_lib.NSP_HEAD].shape == (BATCH, 2)
    tables = {re.sub(r".*/", "", v.name.rsplit("/", 1)[0]): v.shape for v in model.variables
              if "embedding" in v.name}
    assert tables["position_embedding"] == (512, 32) and tables["type_embeddings"] == (2, 32)
    sums = model_lib.loss_sums(outputs, features)
    assert float(sums["mlm_weight"]) == 3 * BATCH
    mlm = float(sums["mlm_loss"] / sums["mlm_weight"])
    nsp = float(sums["nsp_loss"] / sums["examples"])
    # At initialisation the predictions are near uniform: ln(vocab) and ln(2).
    assert abs(mlm - math.log(VOCAB)) < 0.1 * math.log(VOCAB), mlm
    assert abs(nsp - math.log(2)) < 0.2, nsp
    loss = model_lib.total_loss(sums, sums["mlm_weight"], sums["examples"])
    assert np.isclose(float(loss), mlm + nsp, rtol=1e-6)


def test_bert_exclusions_match_model_garden_names():
    """LayerNorm gammas/betas and biases are excluded from weight decay; kernels and embeddings not."""
    config = config_lib.ModelConfig(vocab_size=VOCAB, num_layers=1, hidden_size=32, num_heads=2)
    model = model_lib.build_pretrainer(config)
    model(model_lib.model_inputs(random_features()))
    optimizer = LAMB(learning_rate=1e-3, weight_decay=0.01, exclude_from_weight_decay=BERT_EXCLUSIONS)
    names = [re.sub(r":\d+$", "", v.name) for v in model.trainable_variables]
    excluded = {n for n in names if any(re.search(p, n) for p in BERT_EXCLUSIONS)}
    norms = {n for n in names if n.endswith(("/gamma", "/beta"))}
    biases = {n for n in names if n.endswith("/bias")}
    assert norms and biases and excluded == norms | biases
    assert any("LayerNorm" in n for n in norms) and any("layer_norm" in n for n in norms)
    optimizer.build(model.trainable_variables)
    decayed = {p.path for p in optimizer._plans if p.weight_decay}
    assert decayed == set(names) - excluded
