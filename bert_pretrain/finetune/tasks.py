"""One fine-tuning run end to end: read the task's files (every problem found before any step),
build the model on the pretrained (or a random) encoder, train, predict the evaluation set,
score it, and write results.json, predictions and the fine-tuned weights to output_dir.

Task defaults are BERT's fine-tuning recipe, in `bert_pretrain/plans/finetune/<task>.toml` with the
source of each number; flags override them. A run whose results.json exists is done and is not
repeated; one killed mid-training resumes from its last backup.
"""

import collections
import dataclasses
import json
import os

import numpy as np
import tensorflow as tf
import tf_keras

from bert_pretrain import atomic, vocab_record
from bert_pretrain.config import MAX_POSITION
from bert_pretrain.errors import UsageError
from bert_pretrain.finetune import classification, docstrings, encoder, loop, metrics, squad
from bert_pretrain.finetune.recipes import TASKS, recipe

RESULTS, SETTINGS = "results.json", "settings.json"


@dataclasses.dataclass(frozen=True)
class FinetuneOptions:
    task: str
    output_dir: str
    pretrained: encoder.Pretrained
    config: loop.FinetuneConfig
    max_seq_length: int
    train_file: str = ""
    eval_file: str = ""
    tsv_layout: str = "text"
    vocab_file: str = ""                 # "" = the model's own (vocab.json beside its checkpoints)
    do_lower_case: bool | None = None    # None = the model's own
    doc_stride: int = 128
    max_query_length: int = 64


def _sparse_cross_entropy(labels, logits):
    return tf_keras.losses.sparse_categorical_crossentropy(labels, tf.cast(logits, tf.float32), from_logits=True)


def _check(options: FinetuneOptions) -> None:
    if options.task not in TASKS:
        raise UsageError("task", f"{options.task!r} is not one of {', '.join(TASKS)}", "choose one")
    if not 8 <= options.max_seq_length <= MAX_POSITION:
        raise UsageError("max_seq_length", f"{options.max_seq_length} is outside [8, {MAX_POSITION}]",
                         f"the model has {MAX_POSITION} positions; longer SQuAD contexts are read in "
                         "windows (--doc_stride)")
    if options.task != "docstrings":
        for flag in ("train_file", "eval_file"):
            if not getattr(options, flag):
                raise UsageError(flag, f"is required for --task={options.task}", f"pass --{flag}=...")
    if options.task == "classification" and options.tsv_layout not in classification.LAYOUTS:
        raise UsageError("tsv_layout", f"{options.tsv_layout!r} is not one of "
                         f"{', '.join(classification.LAYOUTS)}", "choose the layout of the files")
    if options.task == "squad1.1":
        if options.doc_stride < 1 or options.max_query_length < 1:
            raise UsageError("doc_stride", f"doc_stride {options.doc_stride} and max_query_length "
                             f"{options.max_query_length} must be >= 1", "use the recipe's 128 and 64")
        if options.max_seq_length <= options.max_query_length + 3:
            raise UsageError("max_seq_length", f"{options.max_seq_length} leaves no room for the context after "
                             f"{options.max_query_length} question tokens and 3 special tokens",
                             "raise --max_seq_length or lower --max_query_length")
    config = options.config
    for flag, ok, rule in (("epochs", config.epochs >= 1 and float(config.epochs).is_integer(), "a whole number >= 1"),
                           ("batch_size", config.batch_size >= 1, ">= 1"),
                           ("learning_rate", config.learning_rate > 0, "> 0"),
                           ("warmup_proportion", 0 <= config.warmup_proportion < 1, "in [0, 1)")):
        if not ok:
            raise UsageError(flag, f"{getattr(config, flag)!r} is not {rule}", "change the flag")


def finetune(options: FinetuneOptions, strategy, log=print) -> dict:
    """Returns the evaluation scores (percent) and what the run read."""
    _check(options)
    done = os.path.join(options.output_dir, RESULTS)
    if tf.io.gfile.exists(done):
        _claim_output_dir(options)   # the same run, or an error
        with tf.io.gfile.GFile(done) as handle:
            results = json.load(handle)
        log(f"{options.output_dir}: already fine-tuned ({done})")
        return results
    vocab_file, lower_case = vocab_record.resolve(options.pretrained.vocab, options.vocab_file,
                                                  options.do_lower_case)
    from official.nlp.tools import tokenization   # pylint: disable=import-outside-toplevel
    tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case=lower_case)
    if len(tokenizer.vocab) != options.pretrained.model_config.vocab_size:
        raise UsageError("vocab_file", f"{vocab_file} has {len(tokenizer.vocab)} tokens, the model "
                         f"{options.pretrained.model_config.vocab_size}", "use the model's own vocab")
    if options.task == "squad1.1":
        scores, extra = _squad(options, tokenizer, lower_case, strategy, log)
    else:
        scores, extra = _classification(options, tokenizer, strategy, log)
    results = {"task": options.task, "scores": scores,
               "initialised_from": options.pretrained.checkpoint or "random"} | extra
    atomic.write_text(done, json.dumps(results, indent=1, sort_keys=True) + "\n")
    log(f"{options.task}: " + ", ".join(f"{name} {value:.2f}" for name, value in scores.items()))
    return results


def recipe_config(task: str, seed: int = 12345) -> loop.FinetuneConfig:
    """The task's recipe as it stands, with no flag over it."""
    settings = recipe(task)
    return loop.FinetuneConfig(epochs=settings["epochs"], batch_size=settings["batch_size"],
                               learning_rate=settings["learning_rate"],
                               warmup_proportion=settings["warmup_proportion"], seed=seed)


def pretrained_against_random(task: str, init_from: str, output_dir: str, strategy, log=print,
                              seed: int = 12345) -> dict:
    """The task's recipe run twice with the same budget and seed: on the encoder pretrained in
    `init_from`, and on the same architecture randomly initialised. {"pretrained"|"random": scores}."""
    settings = recipe(task)
    config = recipe_config(task, seed)
    pretrained = encoder.from_directory(init_from, dropout=0.1)
    scores = {}
    for name, source in (("pretrained", pretrained), ("random", dataclasses.replace(pretrained, checkpoint=None))):
        log(f"{task}: fine-tuning the {name} encoder")
        options = FinetuneOptions(task=task, output_dir=os.path.join(output_dir, name), pretrained=source,
                                  config=config, max_seq_length=settings["max_seq_length"])
        scores[name] = finetune(options, strategy, log)["scores"]
    return scores


def _settings(options: FinetuneOptions) -> dict:
    """What a run's weights and scores depend on: an output_dir holds one such run."""
    settings = dataclasses.asdict(options)
    settings["pretrained"] = {"checkpoint": options.pretrained.checkpoint,
                              "model": dataclasses.asdict(options.pretrained.model_config)}
    return json.loads(json.dumps(settings, default=str))


def _claim_output_dir(options: FinetuneOptions) -> None:
    """Records the run's settings in output_dir, or refuses a directory that holds another run (its
    backup or results would be taken for this one's). Called once the inputs are checked."""
    path = os.path.join(options.output_dir, SETTINGS)
    settings = _settings(options)
    if tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path) as handle:
            found = json.load(handle)
        if found != settings:
            changed = sorted(k for k in found.keys() | settings.keys() if found.get(k) != settings.get(k))
            raise UsageError("output_dir", f"{options.output_dir} holds a fine-tuning run with other settings "
                             f"({', '.join(changed)} differ)", "use another --output_dir, or the same flags")
        return
    tf.io.gfile.makedirs(options.output_dir)
    atomic.write_text(path, json.dumps(settings, indent=1, sort_keys=True) + "\n")


def _save(model, options: FinetuneOptions) -> None:
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model),
                                         os.path.join(options.output_dir, "checkpoints"), 1)
    manager.save()


def _classification(options: FinetuneOptions, tokenizer, strategy, log):
    if options.task == "docstrings":
        from official.nlp.data.classifier_data_lib import InputExample   # pylint: disable=import-outside-toplevel
        layout = classification.TsvLayout(0, None, 1, False, docstrings.PACKAGES)
        train, held_out = (classification.Examples(
            f"builtin:docstrings/{split}",
            [InputExample(f"{split}-{i}", text, None, label) for i, (text, label) in enumerate(docstrings.examples(split))],
            collections.Counter()) for split in ("train", "eval"))
    else:
        layout = classification.LAYOUTS[options.tsv_layout]
        train = classification.read(options.train_file, layout, layout.labels, "train_file")
        held_out = classification.read(options.eval_file, layout, classification.label_set(layout, train),
                                       "eval_file")
    labels = classification.label_set(layout, train)
    for examples in (train, held_out):
        log(examples.report())
    train_inputs, train_labels = classification.features(train, labels, options.max_seq_length, tokenizer)
    eval_inputs, eval_labels = classification.features(held_out, labels, options.max_seq_length, tokenizer)
    _claim_output_dir(options)
    model = loop.train(lambda: encoder.classifier(options.pretrained, len(labels)), [_sparse_cross_entropy],
                       train_inputs, train_labels, options.config, strategy, options.output_dir, log)
    _save(model, options)
    predicted = np.argmax(loop.predict(model, eval_inputs, options.config.batch_size), axis=-1)
    scores = metrics.classification(eval_labels, predicted, layout.metrics)
    return scores, {"labels": list(labels), "train_examples": len(train.examples),
                    "eval_examples": len(held_out.examples),
                    "skipped": {"train": dict(train.skipped), "eval": dict(held_out.skipped)}}


def _squad(options: FinetuneOptions, tokenizer, lower_case: bool, strategy, log):
    read = lambda path, training, flag: squad.read(   # noqa: E731
        path, training, tokenizer, options.max_seq_length, options.doc_stride, options.max_query_length, flag)
    train, dev = read(options.train_file, True, "train_file"), read(options.eval_file, False, "eval_file")
    for data in (train, dev):
        log(data.report())
    _claim_output_dir(options)
    model = loop.train(lambda: encoder.span_labeler(options.pretrained),
                       [_sparse_cross_entropy, _sparse_cross_entropy], squad.inputs(train),
                       squad.targets(train), options.config, strategy, options.output_dir, log)
    _save(model, options)
    start_logits, end_logits = loop.predict(model, squad.inputs(dev), options.config.batch_size)
    answers = squad.predictions(dev, start_logits, end_logits, lower_case)
    atomic.write_text(os.path.join(options.output_dir, "predictions.json"),
                      json.dumps(answers, indent=1, sort_keys=True) + "\n")
    scores = metrics.squad_v1_1(dev.articles, answers)
    return scores, {"train_questions": len(train.examples), "eval_questions": len(dev.examples),
                    "skipped_train_questions": train.questions - len(train.examples)}
