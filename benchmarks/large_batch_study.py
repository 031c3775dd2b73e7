"""The paper's claim at small scale: LAMB vs AdamW vs LARS as the batch grows.

    python benchmarks/large_batch_study.py      # the full study (benchmarks/results/large_batch_study.md)
    python benchmarks/large_batch_study.py --quick --output_dir=/tmp/study   # CI smoke test

A tiny BERT learns MLM + NSP on the built-in corpus (the Python docs, split by document into
training text and held-out text, so nothing evaluated was trained on). The protocol, fixed before
the run:

1. Every batch B = m x B0 (m = 1, 4, 16, 64) trains the same epochs, so the largest batch still
   gets a few hundred updates, with the learning rate decaying linearly from step 0 (part of the
   paper's recipe, lamb_tf.schedules decay_from="step_0").
2. Warmup: linear-epoch warmup (LEGW, You et al. 2019, used by the LAMB paper with sqrt scaling):
   k times the batch, k times the warmup epochs, i.e. the same number of warmup steps at every batch.
3. Each optimizer is tuned on a grid of the same shape (4 points sqrt(10) apart; a grid whose best
   point is at an edge is extended by one point, up to twice) at B_t = 16 x B0, where tuning is
   cheap, by held-out MLM accuracy (Nado et al. 2021: tune every optimizer the same way); every
   other batch takes lr_t * sqrt(B / B_t), no retuning.
4. The points that decide the outcome, m = 1 and the largest m, run with two seeds.
5. Verdict per optimizer (VERDICT_RULE below), from held-out MLM accuracy against B0's.

Every run is scored on the same held-out records (a multiple of the largest batch, so no batch
size drops any). Writes large_batch_study.csv (every run), .curves.csv (training loss per host
call), .png and .md to --output_dir, each under a temporary name and then renamed.
"""

import csv
import dataclasses
import math
import os
import platform
import shutil
import sys
import tempfile
import time

from absl import app, flags, logging

from study_verdict import VERDICT_RULE, accuracy, best_index, grid_extension, verdict

flags.DEFINE_string("output_dir", "benchmarks/results", "Where the CSV, PNG and MD go.")
flags.DEFINE_string("work_dir", "", "Data and model directories; default: a temporary directory, "
                    "removed at the end. Data made there is reused by a later run.")
flags.DEFINE_bool("quick", False, "Smoke test (CI): tiny data and model, 2 batch sizes, one "
                  "learning rate per optimizer.")
flags.DEFINE_list("optimizers", ["lamb", "adamw", "lars"], "Optimizers to compare.")
flags.DEFINE_integer("base_batch_size", 4, "B0, the smallest batch.")
flags.DEFINE_list("batch_multiples", ["1", "4", "16", "64"], "Batch sizes as multiples of B0.")
flags.DEFINE_integer("tune_multiple", 16, "Learning rates are tuned at this multiple of B0.")
flags.DEFINE_float("epochs", 3.0, "Epochs over the training records, the same at every batch.")
flags.DEFINE_integer("warmup_steps", 30, "Warmup steps, the same at every batch (linear-epoch warmup).")
flags.DEFINE_list("seeds", ["12345", "54321"], "The first seed is used for every run; the others only at B0 "
                  "and at the largest batch, the points that decide the verdict.")
flags.DEFINE_integer("micro_batch_size", 64, "Sequences per accumulation step (larger batches "
                     "accumulate gradients over B / this many micro-batches).")
flags.DEFINE_list("lamb_grid", ["3.16e-3", "1e-2", "3.16e-2", "1e-1"], "LAMB learning rates at B_t.")
flags.DEFINE_list("adamw_grid", ["3.16e-4", "1e-3", "3.16e-3", "1e-2"], "AdamW learning rates at B_t.")
flags.DEFINE_list("lars_grid", ["3.16e-2", "1e-1", "3.16e-1", "1"], "LARS learning rates at B_t.")
flags.DEFINE_integer("grid_extensions", 2, "Points a grid may grow by when its best is at an edge.")
flags.DEFINE_integer("num_layers", 2, "Transformer layers.")
flags.DEFINE_integer("hidden_size", 64, "Hidden size (intermediate 4x).")
flags.DEFINE_integer("num_heads", 2, "Attention heads.")
flags.DEFINE_integer("max_seq_length", 64, "Sequence length.")
flags.DEFINE_integer("max_predictions_per_seq", 10, "Masked positions per sequence.")
flags.DEFINE_integer("vocab_size", 4096, "WordPiece vocab learned from the training text.")
flags.DEFINE_integer("dupe_factor", 3, "Maskings of the training text (static masking).")
flags.DEFINE_integer("heldout_every", 5, "Every n-th document of the corpus is held out.")
flags.DEFINE_float("clip_norm", 1.0, "Global-norm gradient clipping, for every optimizer.")
FLAGS = flags.FLAGS

CORPUS = "python-docs"
# --quick: seconds per run, not a result. Everything else keeps the full study's flags.
QUICK = dict(base_batch_size=8, batch_multiples=["1", "4"], tune_multiple=4, epochs=1.0, num_layers=1,
             hidden_size=32, max_seq_length=32, max_predictions_per_seq=5, vocab_size=1000,
             dupe_factor=1, heldout_every=5, micro_batch_size=32, warmup_steps=2, seeds=["12345"],
             grid_extensions=0)
# Held-out text masked twice: twice the masked positions to score (~28k in the full study), so a
# difference of half a point of accuracy is more than the sampling noise (~0.3 points).
HELDOUT_DUPE_FACTOR = 2
QUICK_DOCUMENTS = 60    # of the corpus's 585: ~150 KB of text
NAME = "large_batch_study"
COLUMNS = ("optimizer", "stage", "selected", "seed", "batch_size", "batch_multiple", "base_learning_rate",
           "learning_rate", "train_steps", "warmup_steps", "accumulation_steps", "examples",
           "eval_mlm_accuracy", "eval_mlm_loss", "eval_nsp_accuracy", "train_mlm_loss",
           "trust_ratio_min", "trust_ratio_median", "trust_ratio_max", "skipped_steps", "seconds")


@dataclasses.dataclass(frozen=True)
class Data:
    train: object        # datasets.DataSpec
    heldout: object
    train_records: int
    heldout_records: int
    vocab_size: int
    plateau: float       # held-out MLM accuracy of always predicting the commonest training token


def fail(flag: str, problem: str) -> None:
    sys.exit(f"--{flag}: {problem}")


def check_flags(multiples: list) -> None:
    """One line per bad flag, before any data is made."""
    from bert_pretrain.config import OPTIMIZERS
    for name in FLAGS.optimizers:
        if name not in OPTIMIZERS:
            fail("optimizers", f"{name!r} is not one of {', '.join(OPTIMIZERS)}")
        try:
            rates = learning_rates(name)
            if not rates or not all(lr > 0 for lr in rates):
                raise ValueError
        except (ValueError, IndexError):
            fail(f"{name}_grid", "needs one or more positive learning rates")
    if multiples[0] != 1 or any(b % a for a, b in zip(multiples, multiples[1:])):
        fail("batch_multiples", "must start at 1 and each must divide the next (e.g. 1,4,16,64)")
    if FLAGS.tune_multiple not in multiples:
        fail("tune_multiple", f"{FLAGS.tune_multiple} is not one of --batch_multiples")
    try:
        if not [int(seed) for seed in FLAGS.seeds]:
            raise ValueError
    except ValueError:
        fail("seeds", "give one or more integer seeds")
    if FLAGS.base_batch_size <= 0 or FLAGS.micro_batch_size <= 0:
        fail("base_batch_size", "batch sizes must be positive")
    for b in multiples:
        batch = b * FLAGS.base_batch_size
        if batch > FLAGS.micro_batch_size and batch % FLAGS.micro_batch_size:
            fail("micro_batch_size", f"{FLAGS.micro_batch_size} does not divide the batch {batch}")
    if FLAGS.grid_extensions < 0:
        fail("grid_extensions", "use 0 or more")
    if FLAGS.warmup_steps < 0 or FLAGS.epochs <= 0:
        fail("warmup_steps", "use warmup steps >= 0 and positive --epochs")


def learning_rates(optimizer: str) -> list:
    """The optimizer's grid; --quick takes one value only."""
    values = [float(v) for v in FLAGS[f"{optimizer}_grid"].value]
    return [values[len(values) // 2]] if FLAGS.quick else values


def make_data(work_dir: str, largest_batch: int, documents: int | None) -> Data:
    """Training and held-out records from the built-in corpus, through the project's own data
    pipeline (one vocab, learned from the training text). The held-out records are cut to a
    multiple of the largest batch: evaluation batches by the training batch and drops the
    remainder, so otherwise each batch size would be scored on a different subset."""
    import tensorflow as tf
    from bert_pretrain import atomic, datasets
    from bert_pretrain.data import builtin_corpus, metadata
    from bert_pretrain.data.create import VOCAB_FILENAME, Options, create_pretraining_data

    corpus = builtin_corpus.load(CORPUS)[:documents]
    texts = {"train": [d for i, d in enumerate(corpus) if i % FLAGS.heldout_every],
             "heldout": [d for i, d in enumerate(corpus) if not i % FLAGS.heldout_every]}
    # A --work_dir reused with other data flags gets new directories, never stale data.
    tag = (f"seq{FLAGS.max_seq_length}-pred{FLAGS.max_predictions_per_seq}-vocab{FLAGS.vocab_size}-"
           f"dupe{FLAGS.dupe_factor}-every{FLAGS.heldout_every}-docs{len(corpus)}-seed{FLAGS.seeds[0]}")
    dirs = {name: os.path.join(work_dir, f"{name}-{tag}") for name in texts}
    vocab_file = None
    for name, dupe_factor in (("train", FLAGS.dupe_factor), ("heldout", HELDOUT_DUPE_FACTOR)):
        text = os.path.join(work_dir, f"{name}-{tag}.txt")
        with open(text, "w", encoding="utf-8") as handle:   # one sentence a line, blank between documents
            handle.writelines("\n".join(document) + "\n\n" for document in texts[name])
        directory = dirs[name]
        made = metadata.Metadata.of_directory(directory)
        if not (made and made.complete):
            create_pretraining_data(Options(
                input=text, output_dir=directory, vocab_file=vocab_file, vocab_size=FLAGS.vocab_size,
                max_seq_length=FLAGS.max_seq_length, max_predictions_per_seq=FLAGS.max_predictions_per_seq,
                dupe_factor=dupe_factor, random_seed=int(FLAGS.seeds[0]), progress=False))
        vocab_file = vocab_file or os.path.join(directory, VOCAB_FILENAME)
    meta = {name: metadata.Metadata.of_directory(dirs[name]) for name in texts}
    files = {name: datasets.resolve_files(os.path.join(dirs[name], "*.tfrecord"), "work_dir")
             for name in texts}
    available = meta["heldout"].instances
    kept = available // largest_batch * largest_batch
    if not kept:
        fail("batch_multiples", f"{available} held-out records are fewer than the largest batch "
             f"{largest_batch}; use smaller batches or a smaller --heldout_every")
    heldout_file = os.path.join(work_dir, f"heldout-{tag}-first{kept}.tfrecord")
    if not os.path.exists(heldout_file):
        with atomic.replacing(heldout_file) as temporary, tf.io.TFRecordWriter(temporary) as writer:
            for record in tf.data.TFRecordDataset(list(files["heldout"])).take(kept):
                writer.write(record.numpy())
    spec = lambda f: datasets.data_spec(f, FLAGS.max_seq_length, FLAGS.max_predictions_per_seq)  # noqa: E731
    train, heldout = spec(files["train"]), spec((heldout_file,))
    return Data(train, heldout, meta["train"].instances, kept, meta["train"].vocab_size,
                unigram_plateau(train, heldout))


def unigram_plateau(train, heldout) -> float:
    """Held-out MLM accuracy of a model that always predicts the commonest masked training token:
    the level an MLM reaches before it uses any context."""
    import numpy as np
    from bert_pretrain import datasets

    def masked_ids(spec):
        ids = [(b["masked_lm_ids"].numpy(), b["masked_lm_weights"].numpy())
               for b in datasets.examples(spec).batch(4096)]
        return np.concatenate([i[w > 0] for i, w in ids])

    commonest = np.bincount(masked_ids(train)).argmax()
    return float(np.mean(masked_ids(heldout) == commonest))


def train_one(data: Data, work_dir: str, optimizer: str, tuned_lr: float, multiple: int, seed: int) -> tuple:
    """One run (a seed fixes initial weights, data order and dropout); returns (CSV row,
    [(examples seen, train MLM loss)])."""
    import tensorflow as tf
    import tf_keras
    from bert_pretrain import config as config_lib
    from bert_pretrain.plot import read_scalars
    from bert_pretrain.config import TrainConfig
    from bert_pretrain.trainer import NonFiniteError, Trainer
    from lamb_tf.schedules import sqrt_scaled_learning_rate

    batch = multiple * FLAGS.base_batch_size
    steps = int(FLAGS.epochs * data.train_records // batch)
    warmup = min(FLAGS.warmup_steps, steps - 1)   # the same steps at every batch (LEGW)
    if steps < 2:
        fail("epochs", f"batch {batch} gets {steps} steps from {data.train_records} records")
    lr = sqrt_scaled_learning_rate(tuned_lr, FLAGS.tune_multiple * FLAGS.base_batch_size, batch)
    config = TrainConfig(
        train_steps=steps, global_batch_size=batch, learning_rate=lr, warmup_steps=warmup,
        decay_from="step_0", accumulation_steps=batch // min(batch, FLAGS.micro_batch_size),
        optimizer=optimizer, steps_per_loop=max(1, math.ceil(steps / 20)),   # ~20 points per loss curve
        clip_norm=FLAGS.clip_norm, checkpoint_every=0, seed=seed)
    model = config_lib.ModelConfig(vocab_size=data.vocab_size, num_layers=FLAGS.num_layers,
                                   hidden_size=FLAGS.hidden_size, num_heads=FLAGS.num_heads)
    model_dir = tempfile.mkdtemp(dir=work_dir, prefix=f"{optimizer}-{batch}-")
    started = time.perf_counter()
    trainer = Trainer(model, config, tf.distribute.get_strategy(), model_dir)
    try:
        result = trainer.train(data.train, data.heldout, log=lambda line: None)
    except NonFiniteError as error:   # diverged: a result too, recorded as NaN metrics
        print(f"{optimizer} B={batch} lr={lr:.3g}: {error}", flush=True)
        result = {k: math.nan for k in ("eval_mlm_accuracy", "eval_mlm_loss", "eval_nsp_accuracy", "mlm_loss")}
    seconds = time.perf_counter() - started
    curve = [(step * batch, loss) for step, loss in
             read_scalars(os.path.join(model_dir, "train")).get("mlm_loss", [])]
    del trainer
    tf_keras.backend.clear_session()
    shutil.rmtree(model_dir, ignore_errors=True)
    row = dict(optimizer=optimizer, seed=seed, batch_size=batch, batch_multiple=multiple, base_learning_rate=tuned_lr,
               learning_rate=lr, train_steps=steps, warmup_steps=warmup,
               accumulation_steps=config.accumulation_steps, examples=steps * batch,
               train_mlm_loss=result.get("mlm_loss"), skipped_steps=result.get("skipped_steps"),
               seconds=round(seconds, 1))
    row |= {k: result.get(k) for k in COLUMNS if k.startswith(("eval_", "trust_ratio"))}
    print(f"{optimizer:5s} B={batch:5d} lr={lr:.3g} seed={seed} steps={steps}: held-out MLM accuracy "
          f"{row['eval_mlm_accuracy']:.4f} loss {row['eval_mlm_loss']:.4f} ({seconds:.0f} s)", flush=True)
    return row, curve


def run_study(data: Data, work_dir: str, multiples: list) -> tuple:
    """Tune at B_t (extending a grid whose best is at an edge), scale to every other batch without
    retuning, then repeat the deciding points with the other seeds."""
    rows, curves = [], {}
    seeds = [int(seed) for seed in FLAGS.seeds]
    tuned_at = FLAGS.tune_multiple
    for name in FLAGS.optimizers:
        grid, rates = [], learning_rates(name)
        for _ in range(FLAGS.grid_extensions + 1):
            for lr in rates:
                if lr not in [r["base_learning_rate"] for r in grid]:
                    row, curve = train_one(data, work_dir, name, lr, tuned_at, seeds[0])
                    grid.append(row | {"stage": "grid", "selected": 0})
                    curves[(name, row["batch_size"], lr, seeds[0])] = curve
            extension = grid_extension([(r["base_learning_rate"], r["eval_mlm_accuracy"]) for r in grid])
            if extension is None:
                break
            rates = [extension]
        grid.sort(key=lambda r: r["base_learning_rate"])
        best = best_index([r["eval_mlm_accuracy"] for r in grid])
        grid[best]["selected"] = 1
        rows += grid
        tuned = grid[best]["base_learning_rate"]
        for multiple in multiples:
            if multiple != tuned_at:
                row, curve = train_one(data, work_dir, name, tuned, multiple, seeds[0])
                rows.append(row | {"stage": "scaled", "selected": 1})
                curves[(name, row["batch_size"], tuned, seeds[0])] = curve
        for seed in seeds[1:]:
            for multiple in (multiples[0], multiples[-1]):
                row, _ = train_one(data, work_dir, name, tuned, multiple, seed)
                rows.append(row | {"stage": "seed", "selected": 1})
    return rows, curves


def write_atomically(path: str, write) -> None:
    from bert_pretrain import atomic

    with atomic.replacing(path, ".tmp" + os.path.splitext(path)[1]) as temporary:
        write(temporary)


def write_csv(path: str, rows: list, columns) -> None:
    def write(temporary):
        with open(temporary, "w", newline="") as handle:
            writer = csv.DictWriter(handle, columns)
            writer.writeheader()
            writer.writerows(rows)
    write_atomically(path, write)


def plot(path: str, rows: list, curves: dict, plateau: float) -> None:
    """(a) held-out MLM accuracy vs batch, one line per optimizer (the seeds' mean; each seed a dot);
    (b) training MLM loss vs examples seen at the largest batch (solid) and at B0 (dashed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (accuracy_axis, loss_axis) = plt.subplots(1, 2, figsize=(12, 4.5))
    import numpy as np

    largest = max(r["batch_size"] for r in rows)
    seed = int(FLAGS.seeds[0])
    for index, name in enumerate(FLAGS.optimizers):
        color = f"C{index}"
        chosen = [r for r in rows if r["optimizer"] == name and r["selected"]]
        tuned = chosen[0]["base_learning_rate"]
        batches = sorted({r["batch_size"] for r in chosen})
        means = [np.mean([r["eval_mlm_accuracy"] for r in chosen if r["batch_size"] == b]) for b in batches]
        accuracy_axis.plot(batches, means, "o-", color=color, label=f"{name} (lr {tuned:.3g} at B_t)")
        accuracy_axis.plot([r["batch_size"] for r in chosen], [r["eval_mlm_accuracy"] for r in chosen],
                           ".", color=color, alpha=0.5)
        for batch, style in ((largest, "-"), (FLAGS.base_batch_size, "--")):
            points = curves.get((name, batch, tuned, seed), [])
            if points:
                loss_axis.plot(*zip(*points), style, color=color, label=f"{name} B={batch}")
    accuracy_axis.axhline(plateau, color="grey", linestyle=":", label="unigram plateau")
    accuracy_axis.set_xscale("log", base=2)
    accuracy_axis.set_xlabel(f"global batch size (lr = lr_t * sqrt(B / B_t), B_t = "
                             f"{FLAGS.tune_multiple * FLAGS.base_batch_size}; same epochs)")
    accuracy_axis.set_ylabel("held-out MLM accuracy")
    accuracy_axis.set_title("(a) accuracy as the batch grows")
    accuracy_axis.legend()
    loss_axis.set_xlabel("training examples seen")
    loss_axis.set_ylabel("training MLM loss (mean per host call)")
    loss_axis.set_title(f"(b) loss curves at B={largest} (dashed: B={FLAGS.base_batch_size})")
    loss_axis.legend(fontsize="small")
    figure.tight_layout()
    write_atomically(path, lambda temporary: figure.savefig(temporary, dpi=100))
    plt.close(figure)


def machine() -> str:
    import tensorflow as tf
    cpu = platform.processor()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())   # other jobs on the cores inflate wall times
    return (f"{len(os.sched_getaffinity(0))} CPU cores ({cpu}), {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, TensorFlow {tf.__version__}; load average at the end {load}")


def write_report(path: str, rows: list, data: Data, seconds: float, multiples: list) -> None:
    """The generated part of the MD file: command, machine, protocol, results, verdicts. Analysis is
    added by hand."""
    import numpy as np

    tune_batch = FLAGS.tune_multiple * FLAGS.base_batch_size
    lines = [f"# Large-batch study ({'--quick smoke test' if FLAGS.quick else 'full'})", "",
             "Command: `python " + " ".join(sys.argv) + "`", "",
             f"Machine: {machine()}; wall time {seconds / 60:.1f} min.", "",
             f"Setup: BERT {FLAGS.num_layers} layers / hidden {FLAGS.hidden_size} / {FLAGS.num_heads} heads, "
             f"sequence {FLAGS.max_seq_length}, {FLAGS.max_predictions_per_seq} predictions, vocab "
             f"{data.vocab_size}; MLM + NSP on builtin:{CORPUS} ({data.train_records} training records, "
             f"dupe factor {FLAGS.dupe_factor}; {data.heldout_records} held-out records from every "
             f"{FLAGS.heldout_every}th document); {FLAGS.epochs:g} epoch(s) at every batch; "
             f"{FLAGS.warmup_steps} warmup steps at every batch (linear-epoch warmup), then linear decay "
             f"from step 0; clipping {FLAGS.clip_norm:g}, weight decay 0.01, micro-batch "
             f"{FLAGS.micro_batch_size}; seeds {', '.join(FLAGS.seeds)}. Unigram plateau (always the "
             f"commonest masked training token): {data.plateau:.4f}.", "",
             f"Learning-rate grids at B_t = {tune_batch} (held-out MLM accuracy; * = chosen):", ""]
    for name in FLAGS.optimizers:
        grid = [r for r in rows if r["optimizer"] == name and r["stage"] == "grid"]
        lines.append(f"- {name}: " + ", ".join(f"{r['base_learning_rate']:g}{'*' if r['selected'] else ''} "
                                               f"{r['eval_mlm_accuracy']:.4f}" for r in grid))
    batches = [m * FLAGS.base_batch_size for m in multiples]
    lines += ["", f"Held-out MLM accuracy (mean over seeds where there are several; lr_t * sqrt(B/{tune_batch})):",
              "", "| optimizer | lr_t | " + " | ".join(f"B={b}" for b in batches) + " |",
              "|---|---|" + "---|" * len(batches)]
    for name in FLAGS.optimizers:
        chosen = [r for r in rows if r["optimizer"] == name and r["selected"]]
        cells = []
        for m in multiples:
            values = accuracy(rows, name, m)
            cells.append(f"{np.mean(values):.4f}" + (f" ({', '.join(f'{v:.4f}' for v in values)})"
                                                      if len(values) > 1 else ""))
        lines.append(f"| {name} | {chosen[0]['base_learning_rate']:g} | " + " | ".join(cells) + " |")
    lines += ["", "Steps per run: " + ", ".join(
        f"B={r['batch_size']}: {r['train_steps']}" for r in sorted(
            {r["batch_size"]: r for r in rows if r["optimizer"] == FLAGS.optimizers[0]}.values(),
            key=lambda r: r["batch_size"])), "",
        "## Verdict", "", "Rule, fixed before the run: " + VERDICT_RULE, "",
        f"| optimizer | B={batches[0]} | B={batches[-1]} | tolerance | verdict |", "|---|---|---|---|---|"]
    for name in FLAGS.optimizers:
        outcome, base, large, tolerance = verdict(rows, name, multiples, data.plateau)
        lines.append(f"| {name} | {base:.4f} | {large:.4f} | {tolerance:.4f} | **{outcome}** |")
    lines.append("")

    def write(temporary):
        with open(temporary, "w") as handle:
            handle.write("\n".join(lines) + "\n")
    write_atomically(path, write)


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)   # no per-checkpoint INFO lines
    if FLAGS.quick:
        for key, value in QUICK.items():
            if not FLAGS[key].present:
                FLAGS[key].value = value
    try:
        multiples = [int(m) for m in FLAGS.batch_multiples]
    except ValueError:
        fail("batch_multiples", f"{FLAGS.batch_multiples} are not integers")
    check_flags(multiples)
    started = time.perf_counter()
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    work_dir = FLAGS.work_dir or tempfile.mkdtemp(prefix=NAME + "-")
    os.makedirs(work_dir, exist_ok=True)
    try:
        data = make_data(work_dir, multiples[-1] * FLAGS.base_batch_size,
                         QUICK_DOCUMENTS if FLAGS.quick else None)
        print(f"data: {data.train_records} training, {data.heldout_records} held-out records "
              f"({time.perf_counter() - started:.0f} s)", flush=True)
        rows, curves = run_study(data, work_dir, multiples)
    finally:
        if not FLAGS.work_dir:
            shutil.rmtree(work_dir, ignore_errors=True)
    out = os.path.join(FLAGS.output_dir, NAME)
    write_csv(out + ".csv", rows, COLUMNS)
    write_csv(out + ".curves.csv", [dict(optimizer=o, batch_size=b, base_learning_rate=lr, seed=seed, examples=x,
                                         train_mlm_loss=y) for (o, b, lr, seed), c in curves.items() for x, y in c],
              ("optimizer", "batch_size", "base_learning_rate", "seed", "examples", "train_mlm_loss"))
    plot(out + ".png", rows, curves, data.plateau)
    write_report(out + ".md", rows, data, time.perf_counter() - started, multiples)
    print(f"wrote {out}.csv, .curves.csv, .png, .md ({(time.perf_counter() - started) / 60:.1f} min)")


if __name__ == "__main__":
    app.run(main)
