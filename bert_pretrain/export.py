"""The trained encoder for others to use, in `--export_dir` (`bert-pretrain export --format=tfhub`,
or `train --export_dir` at the end of training):

- `pretrainer`: a Model Garden checkpoint (`encoder`, `masked_lm`, `next_sentence.pooler_dense`):
  what Model Garden's fine-tuning tasks restore as `init_checkpoint`;
- `encoder_savedmodel`: a SavedModel of the encoder with a serving signature;
- `hub_encoder` and `hub_preprocess`: TF Hub-style SavedModels written by Model Garden's
  `export_tfhub_lib` (the encoder's pooler is the pretrained next-sentence pooler; the
  preprocessing model tokenizes with our vocab), so `hub.KerasLayer(preprocess)` followed by
  `hub.KerasLayer(encoder)` turns text into BERT outputs (load tensorflow_text first);
- `bert_config.json`, `vocab.txt`, `vocab.json`: so the directory is a `finetune --init_from`.
"""

import json
import os
import tempfile

import tensorflow as tf

from bert_pretrain import atomic, vocab_record
from bert_pretrain.config import MAX_POSITION, TYPE_VOCAB_SIZE, ModelConfig
from bert_pretrain.trainer import CONFIG_FILE

HUB_SEQ_LENGTH = 128   # the preprocessing model's default output length
PRETRAINER_CHECKPOINT = "pretrainer"


def export(model, model_config: ModelConfig, model_dir: str, export_dir: str, log=print,
           record: vocab_record.VocabRecord | None = None) -> None:
    """`model`: the trained BertPretrainerV2; `model_dir`: where it trained (its vocab record,
    unless `record` is given)."""
    tf.io.gfile.makedirs(export_dir)
    checkpoint = tf.train.Checkpoint(**model.checkpoint_items)
    checkpoint.write(os.path.join(export_dir, PRETRAINER_CHECKPOINT))
    _encoder_savedmodel(model.encoder_network, os.path.join(export_dir, "encoder_savedmodel"))
    atomic.write_text(os.path.join(export_dir, CONFIG_FILE),
                      json.dumps(model_config.to_dict(), indent=1, sort_keys=True) + "\n")
    record = record or vocab_record.load(model_dir)
    if record is not None:
        vocab_record.save_record(export_dir, record)
    if record is None:
        log(f"export: no vocab beside {model_dir}'s checkpoints; TF Hub models not written")
        return
    _hub_models(checkpoint, model_config, record, export_dir)


def _encoder_savedmodel(encoder, path: str) -> None:
    ids = tf.TensorSpec([None, None], tf.int32)

    @tf.function(input_signature=[ids, ids, ids])
    def serve(input_word_ids, input_mask, input_type_ids):
        outputs = encoder({"input_word_ids": input_word_ids, "input_mask": input_mask,
                           "input_type_ids": input_type_ids}, training=False)
        return {"sequence_output": outputs["sequence_output"], "pooled_output": outputs["pooled_output"]}

    tf.saved_model.save(encoder, path, signatures={"serving_default": serve})


def encoder_config(config: ModelConfig):
    """Model Garden's EncoderConfig for the BertEncoderV2 that `model.build_pretrainer` builds
    (its "gelu" is the same tanh approximation as BertEncoderV2's default)."""
    from official.nlp.configs import encoders   # pylint: disable=import-outside-toplevel

    return encoders.EncoderConfig(type="bert_v2", bert_v2=encoders.BertEncoderConfig(
        vocab_size=config.vocab_size, hidden_size=config.hidden_size, num_layers=config.num_layers,
        num_attention_heads=config.num_heads, intermediate_size=config.intermediate_size,
        hidden_activation="gelu", dropout_rate=config.dropout, attention_dropout_rate=config.dropout,
        max_position_embeddings=MAX_POSITION, type_vocab_size=TYPE_VOCAB_SIZE, initializer_range=0.02))


def _hub_models(checkpoint, config: ModelConfig, record: vocab_record.VocabRecord, export_dir: str) -> None:
    from official.nlp.tools import export_tfhub_lib   # pylint: disable=import-outside-toplevel

    with tempfile.TemporaryDirectory() as scratch:
        # export_model restores with assert_existing_objects_matched, which wants the save counter
        # that Checkpoint.save (not .write) records.
        saved = checkpoint.save(os.path.join(scratch, "ckpt"))
        export_tfhub_lib.export_model(os.path.join(export_dir, "hub_encoder"),
                                      encoder_config=encoder_config(config), model_checkpoint_path=saved,
                                      with_mlm=False, copy_pooler_dense_to_encoder=True,
                                      vocab_file=record.vocab_file, do_lower_case=record.do_lower_case)
    export_tfhub_lib.export_preprocessing(os.path.join(export_dir, "hub_preprocess"),
                                          vocab_file=record.vocab_file, do_lower_case=record.do_lower_case,
                                          tokenize_with_offsets=False, default_seq_length=HUB_SEQ_LENGTH)
