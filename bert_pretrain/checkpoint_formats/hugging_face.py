"""Our pretrainer in Hugging Face's `BertForPreTraining` layout: `config.json`, `model.safetensors`
(encoder and both heads), `vocab.txt` and a tokenizer config with our casing.

Written here because KerasHub's Hugging Face exporter covers Gemma, GPT-2 and Qwen, not BERT; the
layout is the one KerasHub's BERT reader (`keras_hub/src/utils/transformers/convert_bert.py`) and
transformers read. PyTorch's Linear stores [out, in], so every kernel is transposed. LayerNorm
parameters keep the `gamma`/`beta` names of Google's BERT checkpoints converted on the Hub
(bert-base-uncased): KerasHub's reader asks for those, and transformers renames them on load.
"""

import json
import os

import numpy as np
import tensorflow as tf

from bert_pretrain import vocab_record
from bert_pretrain.config import MAX_POSITION, TYPE_VOCAB_SIZE, ModelConfig
from bert_pretrain.model import NSP_HEAD

WEIGHTS_FILE, CONFIG_FILE, TOKENIZER_CONFIG_FILE = "model.safetensors", "config.json", "tokenizer_config.json"


def config(model: ModelConfig) -> dict:
    """transformers' BertConfig of our model. `gelu_new` is the tanh approximation of GELU that
    Model Garden's BertEncoderV2 computes (transformers' `gelu` is the exact one)."""
    return {"architectures": ["BertForPreTraining"], "model_type": "bert", "vocab_size": model.vocab_size,
            "hidden_size": model.hidden_size, "num_hidden_layers": model.num_layers,
            "num_attention_heads": model.num_heads, "intermediate_size": model.intermediate_size,
            "hidden_act": "gelu_new", "hidden_dropout_prob": model.dropout,
            "attention_probs_dropout_prob": model.dropout, "max_position_embeddings": MAX_POSITION,
            "type_vocab_size": TYPE_VOCAB_SIZE, "initializer_range": 0.02, "layer_norm_eps": 1e-12,
            "pad_token_id": 0, "position_embedding_type": "absolute", "tie_word_embeddings": True}


def tensors(pretrainer, model: ModelConfig) -> dict:
    """Hugging Face name -> array, from a built Model Garden pretrainer (`model.build_pretrainer`)."""
    ours = {v.name.split(":")[0].split("/", 1)[1]: v.numpy() for v in pretrainer.variables}
    hidden = model.hidden_size
    linear = lambda kernel: np.ascontiguousarray(kernel.reshape(-1, kernel.shape[-1]).T)  # noqa: E731
    out = {"bert.embeddings.word_embeddings.weight": ours["word_embeddings/embeddings"],
           "bert.embeddings.position_embeddings.weight": ours["position_embedding/embeddings"],
           "bert.embeddings.token_type_embeddings.weight": ours["type_embeddings/embeddings"],
           "bert.embeddings.LayerNorm.gamma": ours["embeddings/layer_norm/gamma"],
           "bert.embeddings.LayerNorm.beta": ours["embeddings/layer_norm/beta"],
           # BERT's pooler is the one pretraining trained: the next-sentence head's.
           "bert.pooler.dense.weight": linear(ours[f"{NSP_HEAD}/pooler_dense/kernel"]),
           "bert.pooler.dense.bias": ours[f"{NSP_HEAD}/pooler_dense/bias"],
           "cls.predictions.transform.dense.weight": linear(ours["cls/predictions/transform/dense/kernel"]),
           "cls.predictions.transform.dense.bias": ours["cls/predictions/transform/dense/bias"],
           "cls.predictions.transform.LayerNorm.gamma": ours["cls/predictions/transform/LayerNorm/gamma"],
           "cls.predictions.transform.LayerNorm.beta": ours["cls/predictions/transform/LayerNorm/beta"],
           "cls.predictions.bias": ours["cls/predictions/output_bias/bias"],   # decoder: tied embeddings
           "cls.seq_relationship.weight": linear(ours[f"{NSP_HEAD}/logits/kernel"]),
           "cls.seq_relationship.bias": ours[f"{NSP_HEAD}/logits/bias"]}
    for index in range(model.num_layers):
        mg, hf = f"transformer/layer_{index}/", f"bert.encoder.layer.{index}."
        for name in ("query", "key", "value"):   # Model Garden: [hidden, heads, head size]
            out[f"{hf}attention.self.{name}.weight"] = linear(ours[f"{mg}self_attention/{name}/kernel"]
                                                              .reshape(hidden, hidden))
            out[f"{hf}attention.self.{name}.bias"] = ours[f"{mg}self_attention/{name}/bias"].reshape(hidden)
        out |= {f"{hf}attention.output.dense.weight": linear(ours[f"{mg}self_attention/attention_output/kernel"]),
                f"{hf}attention.output.dense.bias": ours[f"{mg}self_attention/attention_output/bias"],
                f"{hf}attention.output.LayerNorm.gamma": ours[f"{mg}self_attention_layer_norm/gamma"],
                f"{hf}attention.output.LayerNorm.beta": ours[f"{mg}self_attention_layer_norm/beta"],
                f"{hf}intermediate.dense.weight": linear(ours[f"{mg}intermediate/kernel"]),
                f"{hf}intermediate.dense.bias": ours[f"{mg}intermediate/bias"],
                f"{hf}output.dense.weight": linear(ours[f"{mg}output/kernel"]),
                f"{hf}output.dense.bias": ours[f"{mg}output/bias"],
                f"{hf}output.LayerNorm.gamma": ours[f"{mg}output_layer_norm/gamma"],
                f"{hf}output.LayerNorm.beta": ours[f"{mg}output_layer_norm/beta"]}
    return {name: np.asarray(value, np.float32) for name, value in out.items()}


def write(pretrainer, model: ModelConfig, record: vocab_record.VocabRecord, directory: str) -> None:
    """The Hugging Face directory, into `directory` (which the caller renames into place)."""
    from safetensors.numpy import save_file   # pylint: disable=import-outside-toplevel

    save_file(tensors(pretrainer, model), os.path.join(directory, WEIGHTS_FILE), metadata={"format": "pt"})
    _json(os.path.join(directory, CONFIG_FILE), config(model))
    tf.io.gfile.copy(record.vocab_file, os.path.join(directory, vocab_record.VOCAB_FILE), overwrite=True)
    _json(os.path.join(directory, TOKENIZER_CONFIG_FILE), {
        "tokenizer_class": "BertTokenizer", "do_lower_case": record.do_lower_case,
        "strip_accents": None, "tokenize_chinese_chars": True, "model_max_length": MAX_POSITION,
        "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
        "mask_token": "[MASK]"})


def _json(path: str, value: dict) -> None:
    with tf.io.gfile.GFile(path, "w") as handle:
        handle.write(json.dumps(value, indent=2, sort_keys=True) + "\n")
