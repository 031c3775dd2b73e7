"""`bert-pretrain run --plan=...` (bert_pretrain.run: a whole plan) and `bert-pretrain train
--train_files=... --model_dir=... --preset=mini ...` (one phase), absl flags.

Every usage problem (flags, data, model_dir) is found before the first step and printed as one line.
"""

import sys

from absl import app, flags

from bert_pretrain import run as run_lib   # defines the run command's flags before parsing

FLAGS = flags.FLAGS
flags.DEFINE_string("train_files", None, "Comma-separated globs of training TFRecords (local or gs://).")
flags.DEFINE_string("eval_files", "", "Held-out TFRecords, evaluated every --eval_every steps and at the end.")
flags.DEFINE_string("model_dir", None, "Checkpoints, TensorBoard logs and exports; a restart resumes here.")
flags.DEFINE_enum("preset", "base", ["tiny", "mini", "small", "medium", "base", "large"], "Model size.")
flags.DEFINE_integer("num_layers", None, "Override the preset's layer count.")
flags.DEFINE_integer("hidden_size", None, "Override the preset's hidden size (intermediate is 4x).")
flags.DEFINE_integer("num_heads", None, "Override the preset's attention head count.")
flags.DEFINE_integer("vocab_size", None, "Model vocab size; default: the data's (metadata.json).")
flags.DEFINE_float("dropout", 0.1, "Hidden and attention dropout.")
flags.DEFINE_integer("max_seq_length", 128, "Sequence length the data was made with.")
flags.DEFINE_integer("max_predictions_per_seq", 20, "Masked positions per sequence in the data.")
flags.DEFINE_integer("train_steps", 1000, "Total optimizer steps (the decay ends here).")
flags.DEFINE_integer("global_batch_size", 256, "Sequences per step, all replicas and accumulation steps.")
flags.DEFINE_integer("accumulation_steps", 1, "Micro-batches per replica per step.")
flags.DEFINE_float("learning_rate", 1e-3, "Peak learning rate (see lamb_tf.schedules.sqrt_scaled_learning_rate).")
flags.DEFINE_integer("warmup_steps", 100, "Linear warmup from 0.")
flags.DEFINE_float("decay_power", 1.0, "Polynomial decay power after warmup (paper 1, NVIDIA 0.5).")
flags.DEFINE_enum("optimizer", "lamb", ["lamb", "adamw", "lars"], "Update rule (AdamW and LARS for comparisons).")
flags.DEFINE_float("weight_decay", 0.01, "Weight decay (not on LayerNorm and biases).")
flags.DEFINE_float("clip_norm", 0.0, "Global gradient clip norm; 0 = off.")
flags.DEFINE_enum("precision", "float32", ["float32", "mixed_bfloat16", "mixed_float16"], "Compute dtype policy.")
flags.DEFINE_integer("steps_per_loop", 100, "Steps per host call.")
flags.DEFINE_enum("xla", "auto", ["auto", "on", "off"], "Compile the step with XLA: auto = on GPU; on CPU "
                  "only the optimizer update (TPU steps are always XLA).")
flags.DEFINE_integer("checkpoint_every", 1000, "Checkpoint interval (multiple of --steps_per_loop).")
flags.DEFINE_integer("keep_checkpoints", 5, "Checkpoints kept.")
flags.DEFINE_integer("eval_every", 0, "Evaluation interval (multiple of --steps_per_loop); 0 = at the end.")
flags.DEFINE_integer("max_consecutive_skips", 20, "Stop after this many steps in a row with NaN/Inf gradients.")
flags.DEFINE_integer("seed", 12345, "Initialisation, data order and dropout.")
flags.DEFINE_float("peak_tflops", 0.0, "Peak TFLOP/s of one replica, for the MFU estimate.")
flags.DEFINE_enum("strategy", "default", ["default", "one_device", "mirrored", "multi_worker"],
                  "tf.distribute strategy (ignored with --tpu).")
flags.DEFINE_string("tpu", "", "TPU name, or 'local' on a TPU VM.")
flags.DEFINE_string("tpu_zone", "", "TPU zone.")
flags.DEFINE_string("tpu_project", "", "GCP project of the TPU.")
flags.DEFINE_integer("cpu_devices", 0, "Split the CPU into this many logical devices (testing mirrored).")
flags.DEFINE_string("export_dir", "", "Write the encoder here at the end (Model Garden checkpoint + SavedModel).")


def build_trainer():
    """The strategy, data specs and Trainer from FLAGS, every check made: (trainer, {flag: DataSpec})."""
    from bert_pretrain import config as config_lib
    from bert_pretrain import input_pipeline
    from bert_pretrain import strategy as strategy_lib
    from bert_pretrain import trainer as trainer_lib
    from bert_pretrain.data.errors import DataError

    for name in ("train_files", "model_dir"):
        if not FLAGS[name].value:
            raise DataError(name, "is required", f"pass --{name}=...")
    if FLAGS.cpu_devices:
        strategy_lib.split_cpu(FLAGS.cpu_devices)
    # Before any other TensorFlow op: multi-worker collectives must be configured at start-up.
    strategy = strategy_lib.make_strategy(FLAGS.strategy, FLAGS.tpu, FLAGS.tpu_zone, FLAGS.tpu_project)
    specs = {}
    for flag in ("train_files", "eval_files"):
        if FLAGS[flag].value:
            files = input_pipeline.resolve_files(FLAGS[flag].value, flag)
            specs[flag] = input_pipeline.data_spec(files, FLAGS.max_seq_length, FLAGS.max_predictions_per_seq)
    vocab_size = FLAGS.vocab_size or (input_pipeline.read_metadata(specs["train_files"].files) or {}).get(
        "vocab", {}).get("size")
    if not vocab_size:
        raise DataError("vocab_size", "the data has no metadata.json to take it from", "pass --vocab_size")
    for flag, spec in specs.items():
        input_pipeline.check_data(spec, vocab_size, flag)
    model_config = config_lib.from_preset(FLAGS.preset, vocab_size, FLAGS.dropout, num_layers=FLAGS.num_layers,
                                          hidden_size=FLAGS.hidden_size, num_heads=FLAGS.num_heads)
    train_config = trainer_lib.TrainConfig(
        train_steps=FLAGS.train_steps, global_batch_size=FLAGS.global_batch_size,
        learning_rate=FLAGS.learning_rate, warmup_steps=FLAGS.warmup_steps, decay_power=FLAGS.decay_power,
        accumulation_steps=FLAGS.accumulation_steps, steps_per_loop=FLAGS.steps_per_loop,
        weight_decay=FLAGS.weight_decay, clip_norm=FLAGS.clip_norm, precision=FLAGS.precision,
        max_consecutive_skips=FLAGS.max_consecutive_skips, checkpoint_every=FLAGS.checkpoint_every,
        keep_checkpoints=FLAGS.keep_checkpoints, eval_every=FLAGS.eval_every, seed=FLAGS.seed,
        peak_tflops=FLAGS.peak_tflops, optimizer=FLAGS.optimizer, xla=FLAGS.xla)
    return trainer_lib.Trainer(model_config, train_config, strategy, FLAGS.model_dir), specs


def train() -> dict:
    """Builds everything from FLAGS, checks it all, then trains."""
    trainer, specs = build_trainer()
    result = trainer.train(specs["train_files"], specs.get("eval_files"))
    if FLAGS.export_dir and int(trainer.step.numpy()) >= FLAGS.train_steps:
        trainer.export(FLAGS.export_dir)
    return result


def _main(argv):
    from bert_pretrain.data.errors import DataError
    from bert_pretrain.trainer import NonFiniteError

    commands = {"train": train, "run": run_lib.run}
    if len(argv) != 2 or argv[1] not in commands:
        raise app.UsageError("usage: bert-pretrain run [--plan=demo ...]  (a whole plan: data, "
                             "both phases, plot)\n       bert-pretrain train --train_files=... "
                             "--model_dir=... [flags]  (one phase)")
    try:
        commands[argv[1]]()
    except (DataError, NonFiniteError) as error:
        print(f"bert-pretrain: {error}", file=sys.stderr)
        return 1
    return 0


def main():
    app.run(_main)


if __name__ == "__main__":
    main()
