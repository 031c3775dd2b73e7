"""`bert-pretrain`: its flags and its commands.

    bert-pretrain run [--plan=demo ...]         a whole plan: data, every phase, a plot (`run`)
    bert-pretrain train --train_files=... --model_dir=... [flags]    one phase (`job`)
    bert-pretrain finetune --task=... --output_dir=... [flags]       one task (`finetune.tasks`)
    bert-pretrain export --model_dir=... --export_dir=... --format=hf|keras_hub|tfhub
                                                (`checkpoint_formats.exporter`)

This module is the only one that reads these flags; below it everything takes plain arguments.
Every usage problem (flags, data, model_dir) is found before the first step and printed as one line.
"""

import sys

from absl import app, flags

from bert_pretrain import console

FLAGS = flags.FLAGS

# ----- bert-pretrain run -----
flags.DEFINE_string("plan", "demo", "A built-in plan (demo, paper-32k, paper-64k-32k, bert-baseline, "
                    "continue-base-phase2) "
                    "or a plan .toml file.")
flags.DEFINE_string("data_dir", "", "Phase data: <data_dir>/<phase data>/ as the plan names it "
                    "(default runs/<plan>/data).")
flags.DEFINE_string("corpus", "", "Text to make missing phase data from (bert-pretrain-data --input "
                    "syntax); the demo uses builtin:python-docstrings.")
flags.DEFINE_string("eval_corpus", "", "Held-out text for the phases' eval_data; the demo uses "
                    "builtin:python-topics.")
flags.DEFINE_integer("data_vocab_size", 8000, "WordPiece vocab size when the data is made here.")
flags.DEFINE_integer("micro_batch_size", 0, "Sequences per replica per accumulation step; 0: the "
                     "whole per-replica batch (no accumulation).")
flags.DEFINE_list("phase_batch_sizes", [], "Global batch per phase instead of the plan's; the "
                  "learning rate scales by the square root, the steps keep the epochs.")

# ----- bert-pretrain finetune -----
flags.DEFINE_enum("task", None, ["squad1.1", "classification", "docstrings"], "What to fine-tune on: SQuAD v1.1 "
                  "JSON, TSV classification, or the built-in docstring task.")
flags.DEFINE_string("init_from", "", "finetune: a pretraining --model_dir (for a plan: one phase's directory), "
                    "an --export_dir or a google-research BERT directory (bert_model.ckpt, bert_config.json, "
                    "vocab.txt); empty: random initialisation (--preset, --vocab_file). train, run: a "
                    "google-research BERT directory a new --model_dir starts from (weights, both heads, vocab; "
                    "its bert_config.json sets the model size); empty: random initialisation.")
flags.DEFINE_string("output_dir", None, "Fine-tuned weights, results.json, predictions; a restart resumes here.")
flags.DEFINE_string("train_file", "", "Training file: SQuAD JSON or TSV.")
flags.DEFINE_string("eval_file", "", "Evaluation file: SQuAD dev JSON or TSV.")
flags.DEFINE_enum("tsv_layout", "text", ["mnli", "sst2", "mrpc", "cola", "qqp", "text", "text_pair"],
                  "Columns of the TSV files: a GLUE task's, or text[<TAB>text_b]<TAB>label.")
flags.DEFINE_string("vocab_file", "", "Default: the vocab beside the pretrained checkpoints (must match).")
flags.DEFINE_bool("do_lower_case", None, "Default: as the pretraining data (must match).")
flags.DEFINE_integer("epochs", None, "Passes over the training set (default: the task's recipe).")
flags.DEFINE_integer("batch_size", None, "Global batch (default: the task's recipe).")
flags.DEFINE_float("warmup_proportion", None, "Share of the steps warming up (default: the recipe's).")
flags.DEFINE_integer("doc_stride", None, "SQuAD: tokens between the starts of a context's windows.")
flags.DEFINE_integer("max_query_length", None, "SQuAD: question tokens kept.")

# ----- bert-pretrain train: data and model -----
flags.DEFINE_string("train_files", None, "Comma-separated globs of training TFRecords (local or gs://).")
flags.DEFINE_string("eval_files", "", "Held-out TFRecords, evaluated every --eval_every steps and at the end.")
flags.DEFINE_string("model_dir", None, "Checkpoints, TensorBoard logs and exports; a restart resumes here "
                    "(run: default runs/<plan>/model). export: the model to export (a model_dir, a plan's phase "
                    "directory, an export or a google-research BERT directory).")
flags.DEFINE_enum("preset", "base", ["tiny", "mini", "small", "medium", "base", "large"], "Model size.")
flags.DEFINE_integer("num_layers", None, "Override the preset's layer count.")
flags.DEFINE_integer("hidden_size", None, "Override the preset's hidden size (intermediate is 4x).")
flags.DEFINE_integer("num_heads", None, "Override the preset's attention head count.")
flags.DEFINE_integer("vocab_size", None, "Model vocab size; default: the data's (metadata.json).")
flags.DEFINE_float("dropout", 0.1, "Hidden and attention dropout.")
flags.DEFINE_integer("max_seq_length", 128, "Sequence length the data was made with.")
flags.DEFINE_integer("max_predictions_per_seq", 20, "Masked positions per sequence in the data.")
flags.DEFINE_enum("masking", "static", ["static", "dynamic", "dynamic_whole_word"], "static: the masks the "
                  "records were made with; dynamic: a new mask each time a sequence is read, 15% of its tokens "
                  "(dynamic_whole_word: whole words); needs the data's vocab.txt. Evaluation stays static.")
# ----- schedule and optimizer -----
flags.DEFINE_integer("train_steps", 1000, "Total optimizer steps (the decay ends here).")
flags.DEFINE_integer("global_batch_size", 256, "Sequences per step, all replicas and accumulation steps.")
flags.DEFINE_integer("accumulation_steps", 1, "Micro-batches per replica per step.")
flags.DEFINE_float("learning_rate", 1e-3, "Peak learning rate (see lamb_tf.schedules.sqrt_scaled_learning_rate).")
flags.DEFINE_integer("warmup_steps", 100, "Linear warmup from 0.")
flags.DEFINE_float("decay_power", 1.0, "Polynomial decay power after warmup (paper 1, NVIDIA 0.5).")
flags.DEFINE_enum("decay_from", "warmup_end", ["warmup_end", "step_0"], "Decay from the end of warmup, or over "
                  "all steps with warmup replacing the first ones (google-research, NVIDIA).")
flags.DEFINE_enum("optimizer", "lamb", ["lamb", "adamw", "lars"], "Update rule (AdamW and LARS for comparisons).")
flags.DEFINE_float("weight_decay", 0.01, "Weight decay (not on LayerNorm and biases).")
flags.DEFINE_float("clip_norm", 0.0, "Global gradient clip norm; 0 = off.")
flags.DEFINE_enum("precision", "float32", ["float32", "mixed_bfloat16", "mixed_float16"], "Compute dtype policy.")
# ----- the loop -----
flags.DEFINE_integer("steps_per_loop", 100, "Steps per host call.")
flags.DEFINE_enum("xla", "auto", ["auto", "on", "off"], "Compile the step with XLA: auto = on GPU; on CPU "
                  "only the optimizer update (TPU steps are always XLA).")
flags.DEFINE_integer("checkpoint_every", 1000, "Checkpoint interval (multiple of --steps_per_loop).")
flags.DEFINE_integer("keep_checkpoints", 5, "Checkpoints kept.")
flags.DEFINE_integer("eval_every", 0, "Evaluation interval (multiple of --steps_per_loop); 0 = at the end.")
flags.DEFINE_integer("max_consecutive_skips", 20, "Stop after this many steps in a row with NaN/Inf gradients.")
flags.DEFINE_float("max_bad_record_fraction", 0.01, "Damaged data files are read up to their first bad record; "
                   "stop when the records skipped so exceed this share of the data.")
flags.DEFINE_integer("seed", 12345, "Initialisation, data order and dropout.")
flags.DEFINE_float("peak_tflops", 0.0, "Peak TFLOP/s of one replica, for the MFU estimate.")
flags.DEFINE_string("export_dir", "", "train: write the encoder here at the end, as export --format=tfhub does "
                    "(Model Garden checkpoint, SavedModel, TF Hub encoder and preprocessing models, config and "
                    "vocab: a finetune --init_from). export: the new directory.")
# ----- bert-pretrain export -----
flags.DEFINE_enum("format", None, ["hf", "keras_hub", "tfhub"], "hf: Hugging Face BertForPreTraining "
                  "(config.json, model.safetensors, vocab.txt, tokenizer_config.json); keras_hub: a KerasHub "
                  "preset (BertBackbone, BertMaskedLM, BertTextClassifier.from_preset); tfhub: what train "
                  "--export_dir writes.")
flags.DEFINE_bool("overwrite", False, "Replace a non-empty --export_dir.")
# ----- devices -----
flags.DEFINE_enum("strategy", "default", ["default", "one_device", "mirrored", "multi_worker"],
                  "tf.distribute strategy (ignored with --tpu).")
flags.DEFINE_string("tpu", "", "TPU name, or 'local' on a TPU VM.")
flags.DEFINE_string("tpu_zone", "", "TPU zone.")
flags.DEFINE_string("tpu_project", "", "GCP project of the TPU.")
flags.DEFINE_integer("cpu_devices", 0, "Split the CPU into this many logical devices (testing mirrored).")
flags.DEFINE_bool("verbose", False, "Show TensorFlow's own log lines too.")

DEVICE_FLAGS = ["strategy", "tpu", "tpu_zone", "tpu_project", "cpu_devices"]
# Settings of the training loop a run passes on to every phase when given explicitly.
RUN_TRAINING_FLAGS = ["steps_per_loop", "precision", "seed", "checkpoint_every", "keep_checkpoints",
                      "eval_every", "max_consecutive_skips", "max_bad_record_fraction", "weight_decay",
                      "peak_tflops", "masking"]
HELP_GROUPS = {
    "run": [("plan and data", ["plan", "data_dir", "model_dir", "init_from", "corpus", "eval_corpus",
                               "data_vocab_size"]),
            ("batch", ["micro_batch_size", "phase_batch_sizes"]),
            ("training, over the plan's [engine] table", RUN_TRAINING_FLAGS),
            ("devices", DEVICE_FLAGS),
            ("console", ["verbose"])],
    "train": [("data and model", ["train_files", "eval_files", "model_dir", "init_from", "preset", "num_layers",
                                  "hidden_size", "num_heads", "vocab_size", "dropout", "max_seq_length",
                                  "max_predictions_per_seq", "masking"]),
              ("schedule and optimizer", ["train_steps", "global_batch_size", "accumulation_steps",
                                          "learning_rate", "warmup_steps", "decay_power", "decay_from", "optimizer",
                                          "weight_decay", "clip_norm", "precision"]),
              ("loop, checkpoints, output", ["steps_per_loop", "xla", "checkpoint_every",
                                             "keep_checkpoints", "eval_every", "max_consecutive_skips",
                                             "max_bad_record_fraction", "seed", "peak_tflops", "export_dir"]),
              ("devices", DEVICE_FLAGS),
              ("console", ["verbose"])],
}
FINETUNE_RECIPE_FLAGS = ["learning_rate", "epochs", "batch_size", "warmup_proportion", "max_seq_length",
                         "doc_stride", "max_query_length"]
HELP_GROUPS["finetune"] = [
    ("task", ["task", "train_file", "eval_file", "tsv_layout", "output_dir"]),
    ("model", ["init_from", "vocab_file", "do_lower_case", "preset", "num_layers", "hidden_size", "num_heads",
               "dropout"]),
    ("recipe (defaults: bert_pretrain/plans/finetune/<task>.toml)",
     FINETUNE_RECIPE_FLAGS + ["optimizer", "weight_decay", "precision", "seed", "xla"]),
    ("devices", DEVICE_FLAGS),
    ("console", ["verbose"]),
]
HELP_GROUPS["export"] = [
    ("what and where", ["model_dir", "export_dir", "format", "overwrite"]),
    ("console", ["verbose"]),
]
USAGE = {
    "export": "bert-pretrain export --model_dir=DIR --export_dir=NEW_DIR --format=hf|keras_hub|tfhub: a trained\n"
              "model (a pretraining model_dir, a plan's phase directory, an export or a google-research BERT "
              "directory)\nfor Hugging Face, KerasHub or TF Hub.",
    "finetune": "bert-pretrain finetune --task=squad1.1|classification|docstrings --init_from=MODEL_DIR "
                "--output_dir=DIR [flags]:\nfine-tune a pretrained encoder and score it on the evaluation file.",
    "run": "bert-pretrain run [flags]: a plan from text to a trained model (data, every phase, a plot).\n"
           "With no flags: the demo plan on Python's own documentation, under runs/demo.",
    "train": "bert-pretrain train --train_files=GLOB --model_dir=DIR [flags]: one phase on existing data.",
}
COMMANDS_USAGE = ("usage: bert-pretrain COMMAND [flags]\n\ncommands:\n"
                  "  run       a whole plan: data, every phase, a plot (bert-pretrain run --help)\n"
                  "  train     one phase on existing TFRecords (bert-pretrain train --help)\n"
                  "  finetune  fine-tune and score a pretrained encoder (bert-pretrain finetune --help)\n"
                  "  export    a trained model for Hugging Face, KerasHub or TF Hub (bert-pretrain export --help)\n")


def make_strategy():
    """The tf.distribute strategy the device flags ask for; before any other TensorFlow op, since
    multi-worker collectives must be configured at start-up."""
    from bert_pretrain import strategy as strategy_lib

    if FLAGS.cpu_devices:
        strategy_lib.split_cpu(FLAGS.cpu_devices)
    return strategy_lib.make_strategy(FLAGS.strategy, FLAGS.tpu, FLAGS.tpu_zone, FLAGS.tpu_project)


def train_config_from_flags():
    from bert_pretrain.config import TrainConfig

    return TrainConfig(
        train_steps=FLAGS.train_steps, global_batch_size=FLAGS.global_batch_size,
        learning_rate=FLAGS.learning_rate, warmup_steps=FLAGS.warmup_steps, decay_power=FLAGS.decay_power,
        decay_from=FLAGS.decay_from,
        accumulation_steps=FLAGS.accumulation_steps, steps_per_loop=FLAGS.steps_per_loop,
        weight_decay=FLAGS.weight_decay, clip_norm=FLAGS.clip_norm, precision=FLAGS.precision,
        max_consecutive_skips=FLAGS.max_consecutive_skips,
        max_bad_record_fraction=FLAGS.max_bad_record_fraction, checkpoint_every=FLAGS.checkpoint_every,
        keep_checkpoints=FLAGS.keep_checkpoints, eval_every=FLAGS.eval_every, seed=FLAGS.seed,
        peak_tflops=FLAGS.peak_tflops, optimizer=FLAGS.optimizer, xla=FLAGS.xla, masking=FLAGS.masking)


def build_trainer():
    """`bert-pretrain train`'s Trainer and data from FLAGS, every check made: (trainer, job)."""
    from bert_pretrain import config as config_lib
    from bert_pretrain import job as job_lib
    from bert_pretrain.errors import UsageError

    for name in ("train_files", "model_dir"):
        if not FLAGS[name].value:
            raise UsageError(name, "is required", f"pass --{name}=...")
    sizes = dict(num_layers=FLAGS.num_layers, hidden_size=FLAGS.hidden_size, num_heads=FLAGS.num_heads)
    config_lib.from_preset(FLAGS.preset, 1, FLAGS.dropout, **sizes)   # bad sizes: one line, before anything runs
    started = _init_from_config() if FLAGS.init_from else None
    strategy = make_strategy()
    train_data = job_lib.data_from_globs(FLAGS.train_files, FLAGS.max_seq_length, FLAGS.max_predictions_per_seq,
                              "train_files")
    eval_data = (job_lib.data_from_globs(FLAGS.eval_files, FLAGS.max_seq_length, FLAGS.max_predictions_per_seq,
                              "eval_files") if FLAGS.eval_files else None)
    vocab_size = FLAGS.vocab_size or train_data.vocab_size
    if not vocab_size and not started:
        raise UsageError("vocab_size", "the data has no metadata.json to take it from", "pass --vocab_size")
    model_config = started or config_lib.from_preset(FLAGS.preset, vocab_size, FLAGS.dropout, **sizes)
    job = job_lib.Job(model_config, train_config_from_flags(), FLAGS.model_dir, train_data, eval_data,
                      data_flag="train_files", eval_flag="eval_files", init_from=FLAGS.init_from)
    return job_lib.build_trainer(job, strategy), job


def _init_from_config():
    """The model of --init_from's google-research checkpoint; a size flag given must agree with it."""
    from bert_pretrain import config as config_lib
    from bert_pretrain.checkpoint_formats import google_research
    from bert_pretrain.errors import UsageError

    config = google_research.model_config(FLAGS.init_from, FLAGS.dropout)
    given = {name: FLAGS[name].value for name in google_research.SIZE_FLAGS}
    google_research.check_sizes(config, given)
    shape = lambda c: (c.num_layers, c.hidden_size, c.num_heads)  # noqa: E731
    preset = config_lib.from_preset(FLAGS.preset, 1, num_layers=FLAGS.num_layers, hidden_size=FLAGS.hidden_size,
                                    num_heads=FLAGS.num_heads)
    if FLAGS["preset"].present and shape(preset) != shape(config):
        raise UsageError("preset", f"{FLAGS.preset} contradicts --init_from's bert_config.json ({config.num_layers} "
                         f"layers, hidden {config.hidden_size}, {config.num_heads} heads)",
                         "drop --preset: the checkpoint sets the model's size")
    return config


def train() -> dict:
    """`bert-pretrain train`: builds everything from FLAGS, checks it all, then trains."""
    trainer, job = build_trainer()
    result = trainer.train(job.train_data, job.eval_data)
    if FLAGS.export_dir and int(trainer.step.numpy()) >= FLAGS.train_steps:
        from bert_pretrain import export

        export.export(trainer.model, trainer.model_config, FLAGS.model_dir, FLAGS.export_dir)
    return result


def run() -> list:
    """`bert-pretrain run`: a plan, from text to a trained model."""
    from bert_pretrain import run as run_lib

    training = {name: FLAGS[name].value for name in RUN_TRAINING_FLAGS if FLAGS[name].present}
    return run_lib.run(run_lib.RunOptions(
        plan=FLAGS.plan, data_dir=FLAGS.data_dir, model_dir=FLAGS.model_dir or "", corpus=FLAGS.corpus,
        eval_corpus=FLAGS.eval_corpus, data_vocab_size=FLAGS.data_vocab_size,
        micro_batch_size=FLAGS.micro_batch_size,
        phase_batch_sizes=tuple(FLAGS.phase_batch_sizes), training=training, init_from=FLAGS.init_from),
        make_strategy)


def finetune() -> dict:
    """`bert-pretrain finetune`: one task, from a pretrained encoder (or a random one) to scores."""
    from bert_pretrain import config as config_lib
    from bert_pretrain.errors import UsageError
    from bert_pretrain.finetune import encoder, loop, recipes, tasks

    if not FLAGS.task or not FLAGS.output_dir:
        raise UsageError("task" if not FLAGS.task else "output_dir", "is required", "see bert-pretrain finetune --help")
    recipe = recipes.recipe(FLAGS.task)
    chosen = {name: FLAGS[name].value if FLAGS[name].present else recipe.get(name)
              for name in FINETUNE_RECIPE_FLAGS}
    if FLAGS.init_from:
        pretrained = encoder.from_directory(FLAGS.init_from, FLAGS.dropout)
    else:
        if not FLAGS.vocab_file:
            raise UsageError("vocab_file", "is required without --init_from (a random encoder)",
                             "pass the vocab of the data, or --init_from=a pretraining model_dir")
        from bert_pretrain.data import vocab as vocab_lib

        vocab_size = len(vocab_lib.load_vocab(FLAGS.vocab_file).tokens)
        pretrained = encoder.Pretrained(config_lib.from_preset(
            FLAGS.preset, vocab_size, FLAGS.dropout, num_layers=FLAGS.num_layers, hidden_size=FLAGS.hidden_size,
            num_heads=FLAGS.num_heads), None, None)
    config = loop.FinetuneConfig(
        epochs=chosen["epochs"], batch_size=chosen["batch_size"], learning_rate=chosen["learning_rate"],
        warmup_proportion=chosen["warmup_proportion"],
        optimizer=FLAGS.optimizer if FLAGS["optimizer"].present else "adamw",
        weight_decay=FLAGS.weight_decay, precision=FLAGS.precision, seed=FLAGS.seed, xla=FLAGS.xla)
    options = tasks.FinetuneOptions(
        task=FLAGS.task, output_dir=FLAGS.output_dir, pretrained=pretrained, config=config,
        max_seq_length=chosen["max_seq_length"], train_file=FLAGS.train_file, eval_file=FLAGS.eval_file,
        tsv_layout=FLAGS.tsv_layout, vocab_file=FLAGS.vocab_file,
        do_lower_case=FLAGS.do_lower_case,
        doc_stride=128 if chosen["doc_stride"] is None else chosen["doc_stride"],
        max_query_length=64 if chosen["max_query_length"] is None else chosen["max_query_length"])
    return tasks.finetune(options, make_strategy())


def export() -> str:
    """`bert-pretrain export`: a trained model in the format the next tool reads."""
    from bert_pretrain.checkpoint_formats import exporter
    from bert_pretrain.errors import UsageError

    for name in ("model_dir", "export_dir", "format"):
        if not FLAGS[name].value:
            raise UsageError(name, "is required", "see bert-pretrain export --help")
    return exporter.export(FLAGS.model_dir, FLAGS.export_dir, FLAGS.format, FLAGS.overwrite)


def _shown_defaults(command: str) -> dict:
    """finetune's recipe flags default to the task's recipe, not to the values train shares."""
    if command != "finetune":
        return {}
    from bert_pretrain.finetune import recipes

    return {name: f"the task's recipe: {recipes.defaults_text(name)}" for name in FINETUNE_RECIPE_FLAGS} | {
        "optimizer": "adamw, BERT's fine-tuning optimizer"}


COMMANDS = {"train": train, "run": run, "finetune": finetune, "export": export}


def _main(argv):
    from bert_pretrain.checkpoints import CheckpointWriteError
    from bert_pretrain.errors import UsageError
    from bert_pretrain.trainer import NonFiniteError

    console.quiet_absl_logging(FLAGS.verbose)
    if len(argv) != 2 or argv[1] not in COMMANDS:
        raise app.UsageError(COMMANDS_USAGE)
    try:
        COMMANDS[argv[1]]()
    except (UsageError, NonFiniteError, CheckpointWriteError) as error:
        print(f"bert-pretrain: {error}", file=sys.stderr)
        return 1
    return 0


def main(argv=None):
    argv = list(sys.argv if argv is None else argv)
    if console.wants_help(argv):
        command = next((a for a in argv[1:] if a in COMMANDS), None)
        print(console.help_text(USAGE[command], HELP_GROUPS[command], FLAGS, _shown_defaults(command))
              if command else COMMANDS_USAGE, end="")
        return
    console.quiet_tensorflow(argv)
    app.run(_main, argv=argv)


if __name__ == "__main__":
    main()
