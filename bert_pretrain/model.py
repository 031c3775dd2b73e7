"""Model Garden's BERT pretrainer (BertEncoderV2 + BertPretrainerV2) and the pretraining loss.

The loss is written as sums over examples divided by global totals that the caller passes in, so
that micro-batches, replicas and accumulation steps add up to exactly the loss of one big batch.
"""

import tensorflow as tf
import tf_keras
from official.modeling import tf_utils
from official.nlp.modeling import layers, models, networks

from bert_pretrain.config import MAX_POSITION, TYPE_VOCAB_SIZE, ModelConfig

NSP_HEAD = "next_sentence"
SUM_KEYS = ("mlm_loss", "mlm_correct", "mlm_weight", "nsp_loss", "nsp_correct", "examples")


def build_pretrainer(config: ModelConfig) -> tf_keras.Model:
    """BertPretrainerV2 with an MLM head and a 2-way next-sentence head on [CLS]. The MLM head's
    transform has BERT's GELU (google-research's `cls/predictions/transform`, Model Garden's
    `mlm_activation="gelu"` default in its BERT configs); the pretrainer's own default is none."""
    initializer = tf_keras.initializers.TruncatedNormal(stddev=0.02)
    encoder = networks.BertEncoderV2(
        vocab_size=config.vocab_size, hidden_size=config.hidden_size, num_layers=config.num_layers,
        num_attention_heads=config.num_heads, inner_dim=config.intermediate_size,
        max_sequence_length=MAX_POSITION, type_vocab_size=TYPE_VOCAB_SIZE,
        output_dropout=config.dropout, attention_dropout=config.dropout, initializer=initializer)
    nsp = layers.ClassificationHead(inner_dim=config.hidden_size, num_classes=2,
                                    dropout_rate=config.dropout, initializer=initializer, name=NSP_HEAD)
    return models.BertPretrainerV2(encoder_network=encoder, mlm_initializer=initializer,
                                   mlm_activation=tf_utils.get_activation("gelu"), classification_heads=[nsp])


def model_inputs(features: dict) -> dict:
    """Our v1-named features -> the pretrainer's input names."""
    return {"input_word_ids": features["input_ids"], "input_mask": features["input_mask"],
            "input_type_ids": features["segment_ids"],
            "masked_lm_positions": features["masked_lm_positions"]}


def loss_sums(outputs: dict, features: dict) -> dict:
    """Per-batch sums (not means): MLM loss and correct predictions weighted by masked_lm_weights,
    NSP loss and correct predictions per example. Logits are upcast: mixed precision computes them
    in float16/bfloat16."""
    weights = tf.cast(features["masked_lm_weights"], tf.float32)
    mlm_logits = tf.cast(outputs["mlm_logits"], tf.float32)
    mlm_ids = features["masked_lm_ids"]
    mlm_loss = tf.nn.sparse_softmax_cross_entropy_with_logits(mlm_ids, mlm_logits)
    mlm_hit = tf.cast(tf.equal(tf.argmax(mlm_logits, -1, output_type=tf.int32), mlm_ids), tf.float32)
    nsp_logits = tf.cast(outputs[NSP_HEAD], tf.float32)
    nsp_labels = tf.reshape(features["next_sentence_labels"], [-1])
    nsp_loss = tf.nn.sparse_softmax_cross_entropy_with_logits(nsp_labels, nsp_logits)
    nsp_hit = tf.cast(tf.equal(tf.argmax(nsp_logits, -1, output_type=tf.int32), nsp_labels), tf.float32)
    return {"mlm_loss": tf.reduce_sum(weights * mlm_loss), "mlm_correct": tf.reduce_sum(weights * mlm_hit),
            "mlm_weight": tf.reduce_sum(weights), "nsp_loss": tf.reduce_sum(nsp_loss),
            "nsp_correct": tf.reduce_sum(nsp_hit),
            "examples": tf.cast(tf.shape(nsp_labels)[0], tf.float32)}


def total_loss(sums: dict, mlm_weight_total, examples_total):
    """Weighted-mean MLM loss + mean NSP loss, over totals that may span more than this batch."""
    return sums["mlm_loss"] / mlm_weight_total + sums["nsp_loss"] / examples_total
