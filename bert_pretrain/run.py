"""`bert-pretrain run`: a plan, from text to a trained model, in one command.

Makes the phase data that is missing (from --corpus, one vocab for every phase), fits the plan to
the replicas at hand (printing what it derived), trains the phases (`bert_pretrain.phases`) and
plots the run. With no flags it is the README's demo: plan `demo` on the built-in corpus, held-out
records from another built-in text, everything under runs/demo.
"""

import dataclasses
import os

from absl import flags

flags.DEFINE_string("plan", "demo", "A built-in plan (demo, paper-32k, paper-64k-32k, "
                    "bert-baseline) or a plan .toml file.")
flags.DEFINE_string("data_dir", "", "Phase data: <data_dir>/<phase data>/ as the plan names it "
                    "(default runs/<plan>/data).")
flags.DEFINE_string("corpus", "", "Text to make missing phase data from (bert-pretrain-data "
                    "--input syntax); the demo uses builtin:python-docstrings.")
flags.DEFINE_string("eval_corpus", "", "Held-out text for the phases' eval_data; the demo uses "
                    "builtin:python-topics.")
flags.DEFINE_integer("data_vocab_size", 8000, "WordPiece vocab size when the data is made here.")
flags.DEFINE_integer("micro_batch_size", 0, "Sequences per replica per accumulation step; 0: the "
                     "whole per-replica batch (no accumulation).")
flags.DEFINE_list("phase_batch_sizes", [], "Global batch per phase instead of the plan's; the "
                  "learning rate scales by the square root, the steps keep the epochs.")
FLAGS = flags.FLAGS

DEMO_CORPUS, DEMO_EVAL_CORPUS = "builtin:python-docstrings", "builtin:python-topics"   # disjoint
# Engine flags of `bert-pretrain train` that a run passes on when given explicitly.
ENGINE_FLAGS = ("steps_per_loop", "precision", "seed", "checkpoint_every", "keep_checkpoints",
                "eval_every", "max_consecutive_skips", "weight_decay", "peak_tflops")


def ensure_data(plan, data_dir: str, corpus: str, eval_corpus: str, vocab_size: int, log) -> None:
    """Makes every phase data set that is not complete yet, all with the first one's vocab."""
    from bert_pretrain.data import metadata as metadata_lib
    from bert_pretrain.data.errors import DataError
    from bert_pretrain.data.pipeline import VOCAB_FILENAME, Options, create_pretraining_data

    vocab_file = None
    for phase in plan.phases:
        # Held-out text is masked once (dupe_factor 1): evaluation needs no repeats.
        for subdir, source, dupe_factor in ((phase.data, corpus, 10),
                                            (phase.eval_data, eval_corpus, 1)):
            if not subdir:
                continue
            directory = os.path.join(data_dir, subdir)
            if (metadata_lib.read(directory) or {}).get("complete"):
                vocab_file = vocab_file or os.path.join(directory, VOCAB_FILENAME)
                continue
            if not source:
                raise DataError("corpus", f"{directory} holds no finished data",
                                "pass --corpus (and --eval_corpus) to make it, or --data_dir "
                                "pointing at data made by bert-pretrain-data")
            log(f"making {directory} from {source} (length {phase.max_seq_length})")
            create_pretraining_data(Options(
                input=source, output_dir=directory, vocab_file=vocab_file, vocab_size=vocab_size,
                max_seq_length=phase.max_seq_length,
                max_predictions_per_seq=phase.max_predictions_per_seq, dupe_factor=dupe_factor))
            vocab_file = vocab_file or os.path.join(directory, VOCAB_FILENAME)


def run() -> list:
    from bert_pretrain import phases, plans, plot
    from bert_pretrain import strategy as strategy_lib
    from bert_pretrain.data.errors import DataError

    plan = plans.load_plan(FLAGS.plan)
    demo = plan.name == "demo"
    data_dir = FLAGS.data_dir or os.path.join("runs", plan.name, "data")
    model_dir = FLAGS.model_dir or os.path.join("runs", plan.name, "model")
    if FLAGS.phase_batch_sizes:
        sizes = [int(size) for size in FLAGS.phase_batch_sizes]
        if len(sizes) != len(plan.phases):
            raise DataError("phase_batch_sizes", f"{len(sizes)} sizes for {len(plan.phases)} "
                            "phases", "give one global batch size per phase")
        plan = dataclasses.replace(plan, phases=tuple(
            plans.rescale(phase, size) for phase, size in zip(plan.phases, sizes)))
    if FLAGS.cpu_devices:
        strategy_lib.split_cpu(FLAGS.cpu_devices)
    # Before any other TensorFlow op: multi-worker collectives must be configured at start-up.
    strategy = strategy_lib.make_strategy(FLAGS.strategy, FLAGS.tpu, FLAGS.tpu_zone,
                                          FLAGS.tpu_project)
    ensure_data(plan, data_dir, FLAGS.corpus or (DEMO_CORPUS if demo else ""),
                FLAGS.eval_corpus or (DEMO_EVAL_CORPUS if demo else ""), FLAGS.data_vocab_size,
                print)
    engine = {name: FLAGS[name].value for name in ENGINE_FLAGS if FLAGS[name].present}
    results = phases.run_plan(plan, data_dir, model_dir, strategy, FLAGS.micro_batch_size, engine)
    if len(results) == len(plan.phases):
        picture = plot.plot_run([phases.phase_dir(model_dir, p) for p in plan.phases],
                                [p.name for p in plan.phases],
                                [p.train_steps for p in plan.phases],
                                phases.learning_rate_curve(plan),
                                os.path.join(model_dir, f"{plan.name}.png"))
        print(f"plot: {picture}; TensorBoard: tensorboard --logdir {model_dir}")
        for phase, result in zip(plan.phases, results):
            if "eval_mlm_accuracy" in result:
                print(f"{phase.name} held-out: MLM accuracy {result['eval_mlm_accuracy']:.3f}, "
                      f"NSP accuracy {result['eval_nsp_accuracy']:.3f}")
    return results
