"""`bert-pretrain run`: a plan, from text to a trained model, in one command.

Makes the phase data that is missing (from --corpus, one vocab for every phase), fits the plan to
the replicas at hand (printing what it derived), trains the phases (`bert_pretrain.phases`) and
plots the run; a plan with a `downstream` task then fine-tunes the result and a random encoder on
it. With no flags it is the README's demo: plan `demo` on the built-in corpus, held-out records
from another built-in text, the docstring task, everything under runs/demo.
"""

import dataclasses
import os

from bert_pretrain import phases, plans, plot
from bert_pretrain.data import metadata as metadata_lib
from bert_pretrain.data.create import VOCAB_FILENAME, Options, create_pretraining_data
from bert_pretrain.errors import UsageError
from bert_pretrain.masking import dynamic as dynamic_masking

DEMO_CORPUS, DEMO_EVAL_CORPUS = "builtin:python-docstrings", "builtin:python-topics"   # disjoint
HELD_OUT_MASKED_LM_PROB = 0.15   # BERT's: held-out data is scored on the same share whatever a plan trains on


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """What `bert-pretrain run` is given (its flags); empty strings take the defaults below."""

    plan: str = "demo"
    data_dir: str = ""             # default runs/<plan>/data
    model_dir: str = ""            # default runs/<plan>/model
    corpus: str = ""               # the demo: DEMO_CORPUS
    eval_corpus: str = ""          # the demo: DEMO_EVAL_CORPUS
    data_vocab_size: int = 8000
    micro_batch_size: int = 0      # 0: no accumulation
    phase_batch_sizes: tuple = ()  # one global batch per phase instead of the plan's
    training: dict = dataclasses.field(default_factory=dict)   # TrainConfig fields over the plan's
    init_from: str = ""            # a google-research checkpoint directory the first phase starts from


def ensure_data(plan, data_dir: str, corpus: str, eval_corpus: str, vocab_size: int, log,
                training: dict | None = None, vocab_file: str | None = None,
                do_lower_case: bool = True) -> None:
    """Makes every phase data set that is not complete yet, all with the first one's vocab (or
    with `vocab_file`, a checkpoint's, and its casing).
    A phase masked on the fly (`training`'s or the plan's masking, as `phases.phase_training`
    resolves it) gets one unmasked copy of its text instead of ten masked ones."""
    for phase in plan.phases:
        dynamic = phases.phase_training(plan, phase, training).get("masking", "static") != "static"
        if dynamic and phase.masked_lm_prob != dynamic_masking.MASKED_LM_PROB:
            raise UsageError("plan", f"{phase.name} sets masked_lm_prob {phase.masked_lm_prob}, which only "
                             f"static data holds; masking on the fly masks {dynamic_masking.MASKED_LM_PROB}",
                             "drop masked_lm_prob from the phase, or train it with --masking=static")
        # Held-out text is masked once (dupe_factor 1), statically: evaluation needs no repeats
        # and scores every run on the same masks.
        # dupe_factor 0: the data tool's default for the masking (10 masked copies, or 1 unmasked).
        for subdir, source, masking, dupe_factor, share in (
                (phase.data, corpus, "none" if dynamic else "static", 0, phase.masked_lm_prob),
                (phase.eval_data, eval_corpus, "static", 1, HELD_OUT_MASKED_LM_PROB)):
            if not subdir:
                continue
            directory = os.path.join(data_dir, subdir)
            metadata = metadata_lib.Metadata.of_directory(directory)
            if metadata and metadata.complete:
                made = metadata.raw.get("settings", {}).get("masked_lm_prob", share)
                if metadata.masking == "static" and made != share:
                    raise UsageError("data_dir", f"{directory} was masked at masked_lm_prob {made}, "
                                     f"{phase.name} asks for {share}",
                                     "delete the directory so that run makes it again, or use another --data_dir")
                vocab_file = vocab_file or os.path.join(directory, VOCAB_FILENAME)
                continue
            if not source:
                raise UsageError("corpus", f"{directory} holds no finished data",
                                 "pass --corpus (and --eval_corpus) to make it, or --data_dir "
                                 "pointing at data made by bert-pretrain-data")
            log(f"making {directory} from {source} (length {phase.max_seq_length}"
                + (", unmasked: masked as it is read)" if masking == "none" else ")"))
            create_pretraining_data(Options(
                input=source, output_dir=directory, vocab_file=vocab_file, vocab_size=vocab_size,
                max_seq_length=phase.max_seq_length, max_predictions_per_seq=phase.max_predictions_per_seq,
                masked_lm_prob=share, masking=masking, dupe_factor=dupe_factor, do_lower_case=do_lower_case))
            vocab_file = vocab_file or os.path.join(directory, VOCAB_FILENAME)


def run(options: RunOptions, make_strategy, log=print) -> list:
    """Loads and fits the plan, makes the strategy (`make_strategy()`: after the plan's checks,
    before any other TensorFlow op), makes missing data, trains the phases and plots them.
    Returns each finished phase's final metrics."""
    plan = plans.load_plan(options.plan)
    demo = plan.name == "demo"
    data_dir = options.data_dir or os.path.join("runs", plan.name, "data")
    model_dir = options.model_dir or os.path.join("runs", plan.name, "model")
    if options.phase_batch_sizes:
        sizes = [_batch_size(size) for size in options.phase_batch_sizes]
        if len(sizes) != len(plan.phases):
            raise UsageError("phase_batch_sizes", f"{len(sizes)} sizes for {len(plan.phases)} "
                             "phases", "give one global batch size per phase")
        plan = dataclasses.replace(plan, phases=tuple(
            plans.rescale(phase, size) for phase, size in zip(plan.phases, sizes)))
    started = None
    if options.init_from:   # checked before anything runs; its vocab makes the data
        started = phases.check_start(plan, options.init_from)
    strategy = make_strategy()
    ensure_data(plan, data_dir, options.corpus or (DEMO_CORPUS if demo else ""),
                options.eval_corpus or (DEMO_EVAL_CORPUS if demo else ""), options.data_vocab_size,
                log, options.training, *((started.vocab_file, started.do_lower_case) if started else ()))
    results = phases.run_plan(plan, data_dir, model_dir, strategy, options.micro_batch_size,
                              options.training, log, init_from=options.init_from)
    if len(results) == len(plan.phases):
        picture = plot.plot_run([phases.phase_dir(model_dir, p) for p in plan.phases],
                                [p.name for p in plan.phases],
                                [p.train_steps for p in plan.phases],
                                phases.learning_rate_curve(plan),
                                os.path.join(model_dir, f"{plan.name}.png"))
        log(f"plot: {picture}; TensorBoard: tensorboard --logdir {model_dir}")
        for phase, result in zip(plan.phases, results):
            if "eval_mlm_accuracy" in result:
                log(f"{phase.name} held-out: MLM accuracy {result['eval_mlm_accuracy']:.3f}, "
                    f"NSP accuracy {result['eval_nsp_accuracy']:.3f}")
        for phase in plan.phases[:-1]:
            key = f"eval_{phase.name}_mlm_accuracy"
            if key in results[-1]:
                log(f"final model on {phase.name}'s held-out records: MLM accuracy {results[-1][key]:.3f}, "
                    f"NSP accuracy {results[-1][f'eval_{phase.name}_nsp_accuracy']:.3f}")
        if plan.downstream:
            _downstream(plan, model_dir, strategy, log)
    return results


def _batch_size(text) -> int:
    try:
        size = int(text)
    except ValueError:
        size = 0
    if size < 1:
        raise UsageError("phase_batch_sizes", f"{text!r} is not a positive whole number",
                         "give one global batch size per phase, e.g. 1024,512")
    return size


def _downstream(plan, model_dir: str, strategy, log) -> None:
    """Fine-tunes the last phase's encoder and a random one on the plan's built-in task; prints and
    plots both scores."""
    from bert_pretrain.finetune import docstrings, tasks

    scores = tasks.pretrained_against_random(plan.downstream, phases.phase_dir(model_dir, plan.phases[-1]),
                                             os.path.join(model_dir, plan.downstream), strategy, log)
    picture = plot.plot_scores(scores, f"{plan.downstream}: held-out score after fine-tuning (one seed)",
                               os.path.join(model_dir, f"{plan.name}-{plan.downstream}.png"),
                               chance=docstrings.commonest_share())
    pretrained, random = scores["pretrained"]["accuracy"], scores["random"]["accuracy"]
    log(f"{plan.downstream} held-out accuracy: pretrained encoder {pretrained:.1f}%, random encoder "
        f"{random:.1f}% (same budget); plot: {picture}")
