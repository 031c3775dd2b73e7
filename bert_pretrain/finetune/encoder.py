"""Where a fine-tuned model's weights come from: a pretraining model_dir (its latest checkpoint; a
plan's phase directory is one), an `--export_dir` of `bert-pretrain train`, a google-research BERT
directory (`checkpoint_formats.google_research`), or nothing (random initialisation, the baseline
pretraining must beat).

The task heads are Model Garden's: `BertClassifier` with its own [CLS] pooler initialised from the
pretrained next-sentence head's pooler (the encoder's own pooler gets no gradient in pretraining;
google-research fine-tunes the NSP-trained pooler too, and Model Garden offers the same copy as
`init_cls_pooler`), and `BertSpanLabeler` for SQuAD.
"""

import dataclasses
import json
import os

import tensorflow as tf
import tf_keras

from bert_pretrain import model as model_lib
from bert_pretrain import vocab_record
from bert_pretrain.checkpoint_formats import google_research
from bert_pretrain.config import ModelConfig
from bert_pretrain.errors import UsageError
from bert_pretrain.export import PRETRAINER_CHECKPOINT
from bert_pretrain.trainer import CONFIG_FILE



@dataclasses.dataclass(frozen=True)
class Pretrained:
    model_config: ModelConfig
    checkpoint: str | None                      # None: random initialisation
    vocab: vocab_record.VocabRecord | None
    exported: bool = False                      # an export's checkpoint (Model Garden's item names)
    google_research: bool = False               # `checkpoint` is a google-research BERT directory


def from_directory(directory: str, dropout: float, flag: str = "init_from") -> Pretrained:
    """The model a pretraining model_dir, export dir or google-research directory holds, and its vocab record."""
    if google_research.is_google_research(directory):
        return Pretrained(google_research.model_config(directory, dropout, flag), directory,
                          google_research.vocab(directory, flag), google_research=True)
    config_path = os.path.join(directory, CONFIG_FILE)
    if not tf.io.gfile.exists(config_path):
        raise UsageError(flag, f"{directory} has no {CONFIG_FILE}",
                         "point at a pretraining --model_dir (for a plan, one phase's directory) or an --export_dir")
    with tf.io.gfile.GFile(config_path) as handle:
        config = dict(json.load(handle), dropout=dropout)
    exported = os.path.join(directory, PRETRAINER_CHECKPOINT)
    checkpoint = tf.train.latest_checkpoint(directory)
    if checkpoint is None and tf.io.gfile.exists(exported + ".index"):
        return Pretrained(ModelConfig(**config), exported, vocab_record.load(directory), exported=True)
    if checkpoint is None:
        raise UsageError(flag, f"{directory} holds no checkpoint", "pretrain first, or point at another directory")
    return Pretrained(ModelConfig(**config), checkpoint, vocab_record.load(directory))


def _build_variables(model, **extra_inputs) -> None:
    """One call on a tiny batch, so that the model's variables exist and a restore or a weight copy
    happens now rather than on first use."""
    zeros = tf.zeros((1, 8), tf.int32)
    model({"input_word_ids": zeros, "input_mask": tf.ones_like(zeros), "input_type_ids": zeros,
           **extra_inputs}, training=False)


def load_pretrainer(pretrained: Pretrained, flag: str = "init_from"):
    """Model Garden's pretrainer with the pretrained weights (all of them: encoder and heads);
    `flag` names the source in error lines."""
    pretrainer = model_lib.build_pretrainer(pretrained.model_config)
    _build_variables(pretrainer, masked_lm_positions=tf.zeros((1, 1), tf.int32))
    if pretrained.google_research:
        google_research.load_into(pretrainer, pretrained.checkpoint, flag)
    elif pretrained.checkpoint:
        objects = (pretrainer.checkpoint_items if pretrained.exported
                   else {"model": pretrainer})
        tf.train.Checkpoint(**objects).read(pretrained.checkpoint).expect_partial() \
            .assert_existing_objects_matched()
    return pretrainer


def classifier(pretrained: Pretrained, num_classes: int) -> tf_keras.Model:
    from official.nlp.modeling import models   # pylint: disable=import-outside-toplevel

    pretrainer = load_pretrainer(pretrained)
    model = models.BertClassifier(network=pretrainer.encoder_network, num_classes=num_classes,
                                  initializer=tf_keras.initializers.TruncatedNormal(stddev=0.02),
                                  dropout_rate=pretrained.model_config.dropout, use_encoder_pooler=False)
    _build_variables(model)
    if pretrained.checkpoint:
        nsp_pooler = pretrainer.classification_heads[0].dense
        model.checkpoint_items["sentence_prediction.pooler_dense"].set_weights(nsp_pooler.get_weights())
    return model


def span_labeler(pretrained: Pretrained) -> tf_keras.Model:
    from official.nlp.modeling import models   # pylint: disable=import-outside-toplevel

    pretrainer = load_pretrainer(pretrained)
    return models.BertSpanLabeler(network=pretrainer.encoder_network,
                                  initializer=tf_keras.initializers.TruncatedNormal(stddev=0.02))
