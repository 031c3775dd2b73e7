"""`bert-pretrain export`: a trained model written in the format the next tool reads.

    hf         Hugging Face BertForPreTraining: config.json, model.safetensors, vocab.txt, tokenizer config
    keras_hub  a KerasHub preset: BertBackbone / BertMaskedLM / BertTextClassifier.from_preset(dir)
    tfhub      Model Garden checkpoint, encoder SavedModel, TF Hub encoder + preprocessing (`export`)

The source is anything `finetune --init_from` takes: a pretraining model_dir (its latest
checkpoint), a plan's phase directory, a TF Hub export, or a google-research BERT directory. The
export is written beside its destination and renamed into place when whole; an existing non-empty
destination is kept unless `overwrite`.
"""

import os

import tensorflow as tf

from bert_pretrain import export as tfhub
from bert_pretrain.checkpoint_formats import hugging_face, keras_hub_preset
from bert_pretrain.errors import UsageError
from bert_pretrain.finetune import encoder

FORMATS = ("hf", "keras_hub", "tfhub")
DROPOUT = 0.1   # only the configs written carry it (BERT's); nothing trains here


def export(source: str, export_dir: str, fmt: str, overwrite: bool = False, log=print) -> str:
    """Writes `source`'s model to `export_dir` as `fmt`; returns export_dir."""
    if fmt not in FORMATS:
        raise UsageError("format", f"{fmt!r} is not one of {', '.join(FORMATS)}", "choose one of them")
    if not export_dir:
        raise UsageError("export_dir", "is required", "pass --export_dir=A_NEW_DIRECTORY")
    if "://" in export_dir:   # safetensors and KerasHub's saver write local files; buckets rename no directories
        raise UsageError("export_dir", f"exports are written to a local directory, not {export_dir}",
                         "export locally, then copy the directory (gcloud storage cp -r)")
    target, origin = os.path.realpath(export_dir), os.path.realpath(source)
    if origin == target or origin.startswith(target.rstrip(os.sep) + os.sep):
        raise UsageError("export_dir", f"{export_dir} holds the model being exported ({source}); "
                         "replacing it would delete that model", "choose a directory outside it")
    if tf.io.gfile.exists(export_dir) and not tf.io.gfile.isdir(export_dir):
        raise UsageError("export_dir", f"{export_dir} is a file", "choose a new directory")
    if tf.io.gfile.exists(export_dir) and tf.io.gfile.listdir(export_dir) and not overwrite:
        raise UsageError("export_dir", f"{export_dir} is not empty",
                         "choose a new directory, or pass --overwrite to replace it")
    pretrained = encoder.from_directory(source, DROPOUT, flag="model_dir")
    if pretrained.vocab is None:
        raise UsageError("model_dir", f"{source} has no vocab.json beside its checkpoints",
                         "train it on data made by bert-pretrain-data, whose vocab is recorded")
    model = encoder.load_pretrainer(pretrained, flag="model_dir")
    partial = export_dir.rstrip("/") + ".partial"
    if tf.io.gfile.exists(partial):
        tf.io.gfile.rmtree(partial)   # a killed export's leftovers
    tf.io.gfile.makedirs(partial)
    if fmt == "hf":
        hugging_face.write(model, pretrained.model_config, pretrained.vocab, partial)
    elif fmt == "keras_hub":
        keras_hub_preset.write(model, pretrained.model_config, pretrained.vocab, partial)
    else:
        tfhub.export(model, pretrained.model_config, source, partial, log, record=pretrained.vocab)
    if tf.io.gfile.exists(export_dir):
        tf.io.gfile.rmtree(export_dir)
    tf.io.gfile.rename(partial, export_dir)
    log(f"export: {fmt} written to {export_dir}")
    return export_dir
