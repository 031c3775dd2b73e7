"""Google's released BERT checkpoints as a starting point: a directory with `bert_model.ckpt`
(TF1 variables under google-research/bert's names), `bert_config.json` and `vocab.txt`.

Everything is loaded, the pretraining heads too (`cls/predictions/*`, `cls/seq_relationship/*`),
so continued pretraining starts where Google stopped. The model's sizes come from its
`bert_config.json`; the vocab and its casing are recorded like our own data's (`vocab_record`).
Every problem (a config this pipeline cannot build, a missing or extra variable, another vocab in
the data) is one line naming it, before any step is taken.
"""

import json
import os
import tempfile

import tensorflow as tf

from bert_pretrain import vocab_record
from bert_pretrain.config import MAX_POSITION, TYPE_VOCAB_SIZE, ModelConfig
from bert_pretrain.data import vocab as vocab_lib
from bert_pretrain.errors import UsageError
from bert_pretrain.model import NSP_HEAD

CHECKPOINT, CONFIG = "bert_model.ckpt", "bert_config.json"
# Optimizer state some released checkpoints keep (run_pretraining.py's Adam slots and step, and the
# AdamWeightDecayOptimizer variables of checkpoints continued from Google's): not part of the model.
OPTIMIZER_SLOTS = ("adam_m", "adam_v", "global_step", "AdamWeightDecayOptimizer")
SIZE_FLAGS = ("vocab_size", "num_layers", "hidden_size", "num_heads")


def is_google_research(directory: str) -> bool:
    return tf.io.gfile.exists(os.path.join(directory, CHECKPOINT + ".index"))


def model_config(directory: str, dropout: float, flag: str = "init_from") -> ModelConfig:
    """The ModelConfig its bert_config.json describes; one this pipeline cannot build is refused."""
    if not is_google_research(directory):
        raise UsageError(flag, f"{directory} has no {CHECKPOINT}.index",
                         "point at a google-research BERT directory (bert_model.ckpt.*, bert_config.json, "
                         "vocab.txt); to go on from one of our model_dirs, train in it again")
    path = os.path.join(directory, CONFIG)
    if not tf.io.gfile.exists(path):
        raise UsageError(flag, f"{directory} has {CHECKPOINT} but no {CONFIG}",
                         "copy the bert_config.json released with the checkpoint beside it")
    try:
        with tf.io.gfile.GFile(path) as handle:
            found = json.load(handle)
    except json.JSONDecodeError as error:
        raise UsageError(flag, f"{path} is not JSON ({error})",
                         "use the bert_config.json released with the checkpoint") from None
    keys = ("vocab_size", "num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size",
            "max_position_embeddings", "type_vocab_size", "hidden_act")
    missing = [key for key in keys if key not in found]
    if missing:
        raise UsageError(flag, f"{path} has no {missing[0]}", "use the bert_config.json released with the checkpoint")
    built = {"intermediate_size": 4 * found["hidden_size"], "max_position_embeddings": MAX_POSITION,
             "type_vocab_size": TYPE_VOCAB_SIZE, "hidden_act": "gelu"}
    for key, ours in built.items():
        if found[key] != ours:
            raise UsageError(flag, f"{path} has {key}={found[key]}, but the models built here have {ours}",
                             "start from a checkpoint of the standard BERT shape (every released BERT has it)")
    return ModelConfig(vocab_size=found["vocab_size"], num_layers=found["num_hidden_layers"],
                       hidden_size=found["hidden_size"], num_heads=found["num_attention_heads"], dropout=dropout)


def check_sizes(config: ModelConfig, given: dict, flag: str = "init_from", plan: str = "") -> None:
    """`given`: sizes a user set (flags, or a plan's model; None = not set); each must be the
    checkpoint's. `plan`: the plan they come from, named in the error instead of a flag."""
    for name in SIZE_FLAGS:
        if given.get(name) is not None and given[name] != getattr(config, name):
            if plan:
                raise UsageError("plan", f"{plan}'s model has {name} {given[name]}, --{flag}'s bert_config.json "
                                 f"{getattr(config, name)}", "use a plan whose model is the checkpoint's size")
            raise UsageError(name, f"{given[name]} contradicts --{flag}'s bert_config.json "
                             f"({name} {getattr(config, name)})", f"drop --{name}: the checkpoint sets it")


def vocab(directory: str, flag: str = "init_from") -> vocab_record.VocabRecord:
    """Its vocab.txt, with the casing read from the vocab itself: google-research records casing
    only in the directory's name (uncased_/cased_), and a cased vocab holds upper-case pieces."""
    path = os.path.join(directory, vocab_record.VOCAB_FILE)
    if not tf.io.gfile.exists(path):
        raise UsageError(flag, f"{directory} has no {vocab_record.VOCAB_FILE}",
                         "copy the vocab.txt released with the checkpoint beside it")
    loaded = vocab_lib.load_vocab(path, flag)
    cased = any(token != token.lower() for token in loaded.tokens
                if not (token.startswith("[") and token.endswith("]")))
    return vocab_record.VocabRecord(path, loaded.sha256, loaded.size, do_lower_case=not cased)


def check_data(directory: str, metadata, data_flag: str, flag: str = "init_from") -> None:
    """The pretraining data must be tokenized with the checkpoint's vocab and casing."""
    record = vocab(directory, flag)
    if metadata is None or not metadata.vocab_sha256:
        return
    if metadata.vocab_sha256 != record.sha256 or metadata.do_lower_case != record.do_lower_case:
        raise UsageError(data_flag, f"the data was not made with --{flag}'s vocab ({record.vocab_file}, "
                         f"do_lower_case={record.do_lower_case})",
                         f"make it with bert-pretrain-data --vocab_file={record.vocab_file} "
                         f"--do_lower_case={record.do_lower_case}")


def variable_shapes(config: ModelConfig) -> dict:
    """google-research/bert's variables (modeling.py's BertModel and run_pretraining.py's heads)."""
    hidden, inner = config.hidden_size, config.intermediate_size
    shapes = {"bert/embeddings/word_embeddings": [config.vocab_size, hidden],
              "bert/embeddings/token_type_embeddings": [TYPE_VOCAB_SIZE, hidden],
              "bert/embeddings/position_embeddings": [MAX_POSITION, hidden],
              "bert/pooler/dense/kernel": [hidden, hidden], "bert/pooler/dense/bias": [hidden],
              "cls/predictions/transform/dense/kernel": [hidden, hidden],
              "cls/predictions/transform/dense/bias": [hidden],
              "cls/predictions/output_bias": [config.vocab_size],
              "cls/seq_relationship/output_weights": [2, hidden], "cls/seq_relationship/output_bias": [2]}
    norms = ["bert/embeddings/LayerNorm", "cls/predictions/transform/LayerNorm"]
    for index in range(config.num_layers):
        layer = f"bert/encoder/layer_{index}/"
        for name in ("query", "key", "value"):
            shapes |= {f"{layer}attention/self/{name}/kernel": [hidden, hidden],
                       f"{layer}attention/self/{name}/bias": [hidden]}
        shapes |= {f"{layer}attention/output/dense/kernel": [hidden, hidden],
                   f"{layer}attention/output/dense/bias": [hidden],
                   f"{layer}intermediate/dense/kernel": [hidden, inner], f"{layer}intermediate/dense/bias": [inner],
                   f"{layer}output/dense/kernel": [inner, hidden], f"{layer}output/dense/bias": [hidden]}
        norms += [f"{layer}attention/output/LayerNorm", f"{layer}output/LayerNorm"]
    for norm in norms:
        shapes |= {f"{norm}/gamma": [hidden], f"{norm}/beta": [hidden]}
    return shapes


def _check_variables(prefix: str, config: ModelConfig, flag: str) -> None:
    try:
        listed = tf.train.list_variables(prefix)
    except tf.errors.OpError as error:
        raise UsageError(flag, f"{prefix} cannot be read ({type(error).__name__})",
                         "download the checkpoint again (bert_model.ckpt.index and .data-*)") from None
    found = {name: shape for name, shape in listed if not any(slot in name for slot in OPTIMIZER_SLOTS)}
    wanted = variable_shapes(config)
    for name in sorted(wanted):
        if name not in found:
            raise UsageError(flag, f"{prefix} has no variable {name} (its {CONFIG}: {config.num_layers} layers)",
                             "point at a whole google-research BERT checkpoint with its own bert_config.json")
        if list(found[name]) != wanted[name]:
            raise UsageError(flag, f"{prefix}: {name} has shape {list(found[name])}, its {CONFIG} says "
                             f"{wanted[name]}", "use the bert_config.json released with the checkpoint")
    extra = sorted(set(found) - set(wanted))
    if extra:
        raise UsageError(flag, f"{prefix} has a variable no BERT pretraining model has: {extra[0]}"
                         + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""),
                         "point at a google-research BERT pretraining checkpoint (encoder and cls/ heads)")


def load_into(pretrainer, directory: str, flag: str = "init_from") -> None:
    """Every variable of `pretrainer` (model.build_pretrainer, built) from the checkpoint."""
    from official.nlp.tools import tf1_bert_checkpoint_converter_lib as converter  # pylint: disable=import-outside-toplevel

    prefix = os.path.join(directory, CHECKPOINT)
    config = model_config(directory, 0.0, flag)
    _check_variables(prefix, config, flag)
    with tempfile.TemporaryDirectory() as scratch:
        # Model Garden's converter renames to BertEncoderV2's and the MLM head's names and splits
        # the attention kernels per head; it does not cover our NSP head (ClassificationHead with
        # its own pooler, below) and restores by graph names, which a second model in one process changes.
        converted_prefix = os.path.join(scratch, "converted")
        converter.convert(prefix, converted_prefix, config.num_heads, converter.BERT_V2_NAME_REPLACEMENTS,
                          converter.BERT_V2_PERMUTATIONS, exclude_patterns=list(OPTIMIZER_SLOTS))
        converted = tf.train.load_checkpoint(converted_prefix)
        values = {name.removeprefix("bert/"): converted.get_tensor(name)
                  for name in converted.get_variable_to_shape_map()}
    # google-research's NSP reads the pooler's output: the encoder's pooler and our head's own.
    values |= {f"{NSP_HEAD}/pooler_dense/kernel": values["pooler_transform/kernel"],
               f"{NSP_HEAD}/pooler_dense/bias": values["pooler_transform/bias"],
               f"{NSP_HEAD}/logits/kernel": values.pop("predictions/transform/logits/kernel"),
               f"{NSP_HEAD}/logits/bias": values.pop("predictions/transform/logits/bias")}
    for variable in pretrainer.variables:
        name = variable.name.split(":")[0].split("/", 1)[1]   # without the model's own scope
        variable.assign(values[name])
