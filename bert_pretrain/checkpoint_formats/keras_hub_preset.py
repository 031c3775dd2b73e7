"""Our pretrainer as a KerasHub preset directory: `BertBackbone`, `BertMaskedLM` (with our MLM
head's weights), `BertTextClassifier` and `BertTokenizer.from_preset(dir)` load it, with our vocab
and casing.

The backbone's weights go through KerasHub's own reader of the Hugging Face layout
(`hugging_face`, then `BertBackbone.from_preset`), so the mapping to Keras 3 is KerasHub's, not
ours. KerasHub's masked-LM head is not BERT's in two details: exact GELU instead of the tanh
form, and LayerNorm epsilon 1e-5 instead of 1e-12; the weights are the same, the logits differ
slightly (docs/checkpoint_formats.md).
"""

import tempfile

from bert_pretrain import vocab_record
from bert_pretrain.checkpoint_formats import hugging_face
from bert_pretrain.config import ModelConfig


def masked_lm(pretrainer, model: ModelConfig, record: vocab_record.VocabRecord):
    """A KerasHub `BertMaskedLM` (with its preprocessor) holding our pretrainer's weights."""
    import keras_hub   # pylint: disable=import-outside-toplevel

    with tempfile.TemporaryDirectory() as scratch:
        hugging_face.write(pretrainer, model, record, scratch)
        backbone = keras_hub.models.BertBackbone.from_preset(scratch)
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=record.vocab_file, lowercase=record.do_lower_case)
    task = keras_hub.models.BertMaskedLM(backbone, keras_hub.models.BertMaskedLMPreprocessor(tokenizer))
    head = task.masked_lm_head
    ours = pretrainer.masked_lm
    head._intermediate_dense.kernel.assign(ours.dense.kernel.numpy())   # pylint: disable=protected-access
    head._intermediate_dense.bias.assign(ours.dense.bias.numpy())   # pylint: disable=protected-access
    head._intermediate_layer_norm.gamma.assign(ours.layer_norm.gamma.numpy())   # pylint: disable=protected-access
    head._intermediate_layer_norm.beta.assign(ours.layer_norm.beta.numpy())   # pylint: disable=protected-access
    head._bias.assign(ours.bias.numpy())   # pylint: disable=protected-access
    return task


def write(pretrainer, model: ModelConfig, record: vocab_record.VocabRecord, directory: str) -> None:
    """The preset, into `directory` (which the caller renames into place)."""
    masked_lm(pretrainer, model, record).save_to_preset(directory)
