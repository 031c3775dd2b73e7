"""The gradient noise scale against the large-batch study: does B_simple predict where LAMB falls off?

    python benchmarks/noise_scale_study.py     # benchmarks/results/noise_scale_study.md (and .csv)

The study (large_batch_study.py, benchmarks/results/large_batch_study.md) found LAMB within 0.012 of
its batch-4 accuracy up to batch 64 and refuted at 256, with the same epochs at every batch: the
critical batch of that model and data lies between 64 and 256 sequences. McCandlish et al. (2018)
predict the critical batch with B_simple. This script trains LAMB at the study's settings (its data,
model, epochs, warmup, decay, clipping and sqrt-scaled learning rate, seed 12345) at the batches
given, each step accumulated over --micro_batches micro-batches so the trainer measures B_simple
(at batch 256 that is the study's own run: 4 micro-batches of 64), and writes B_simple over
training next to the study's accuracies. Its flags are the study's, plus the three below.
"""

import csv
import math
import os
import shutil
import sys
import tempfile
import time

from absl import app, flags, logging

import large_batch_study as study

flags.DEFINE_list("noise_batch_sizes", ["64", "256"], "Global batches to measure B_simple at.")
flags.DEFINE_integer("micro_batches", 4, "Micro-batches per step (the small batch is B / this).")
flags.DEFINE_float("lamb_lr", 0.01, "LAMB's learning rate at B_t, the one the study's grid chose.")
FLAGS = flags.FLAGS
NAME = "noise_scale_study"
# The study's held-out MLM accuracy for LAMB (mean over seeds where it ran two), its verdict's inputs.
STUDY_ACCURACY = {4: 0.1564, 16: 0.1537, 64: 0.1450, 256: 0.0885}


def measure(data, work_dir: str, batch: int) -> dict:
    """One LAMB run at `batch` with the study's settings; B_simple and the loss per host call."""
    import tensorflow as tf
    import tf_keras
    from bert_pretrain import config as config_lib
    from bert_pretrain.config import TrainConfig
    from bert_pretrain.plot import read_scalars
    from bert_pretrain.trainer import Trainer
    from lamb_tf.schedules import sqrt_scaled_learning_rate

    steps = int(FLAGS.epochs * data.train_records // batch)
    config = TrainConfig(
        train_steps=steps, global_batch_size=batch,
        learning_rate=sqrt_scaled_learning_rate(FLAGS.lamb_lr, FLAGS.tune_multiple * FLAGS.base_batch_size, batch),
        warmup_steps=min(FLAGS.warmup_steps, steps - 1), decay_from="step_0", accumulation_steps=FLAGS.micro_batches,
        optimizer="lamb", steps_per_loop=max(1, math.ceil(steps / 20)), clip_norm=FLAGS.clip_norm,
        checkpoint_every=0, seed=int(FLAGS.seeds[0]))
    model = config_lib.ModelConfig(vocab_size=data.vocab_size, num_layers=FLAGS.num_layers,
                                   hidden_size=FLAGS.hidden_size, num_heads=FLAGS.num_heads)
    model_dir = tempfile.mkdtemp(dir=work_dir, prefix=f"noise-{batch}-")
    started = time.perf_counter()
    trainer = Trainer(model, config, tf.distribute.get_strategy(), model_dir)
    result = trainer.train(data.train, data.heldout, log=lambda line: None)
    seconds = time.perf_counter() - started
    scalars = read_scalars(os.path.join(model_dir, "train"))
    del trainer
    tf_keras.backend.clear_session()
    shutil.rmtree(model_dir, ignore_errors=True)
    series = {key: dict(scalars.get(key, [])) for key in ("b_simple", "mlm_loss", "noise_gradient_sq", "noise_trace")}
    points = [dict(batch_size=batch, step=step, examples=step * batch, **{k: series[k].get(step) for k in series})
              for step in sorted(series["mlm_loss"])]
    print(f"B={batch} ({steps} steps, {seconds:.0f} s): held-out MLM accuracy {result['eval_mlm_accuracy']:.4f}; "
          "B_simple " + ", ".join(f"{p['b_simple']:.0f}" for p in points if p["b_simple"] is not None), flush=True)
    return dict(batch=batch, steps=steps, accuracy=result["eval_mlm_accuracy"], seconds=seconds, points=points)


def write_report(path: str, runs: list, data, seconds: float) -> None:
    lines = [f"# Gradient noise scale at the large-batch study's settings", "",
             "Command: `python " + " ".join(sys.argv) + "`", "",
             f"Machine: {study.machine()}; wall time {seconds / 60:.1f} min.", "",
             f"Setup (the study's): BERT {FLAGS.num_layers} layers / hidden {FLAGS.hidden_size}, sequence "
             f"{FLAGS.max_seq_length}, vocab {data.vocab_size}, {data.train_records} training records, "
             f"{FLAGS.epochs:g} epochs, {FLAGS.warmup_steps} warmup steps, linear decay from step 0, clipping "
             f"{FLAGS.clip_norm:g}, LAMB lr {FLAGS.lamb_lr:g} at batch {FLAGS.tune_multiple * FLAGS.base_batch_size} "
             f"scaled by sqrt(B / {FLAGS.tune_multiple * FLAGS.base_batch_size}), seed {FLAGS.seeds[0]}; each step "
             f"accumulated over {FLAGS.micro_batches} micro-batches. B_simple is the trainer's (bias-corrected "
             "EMAs of |G|² and tr(Σ), decay 0.99 a step), read at each host call.", "",
             "| batch | steps | held-out MLM accuracy (study's) | B_simple at 10% / 25% / 50% / 75% / 100% of training |",
             "|---|---|---|---|"]
    for run in runs:
        values = [p["b_simple"] for p in run["points"]]

        def at(share):
            index = min(len(values) - 1, max(0, math.ceil(share * len(values)) - 1))
            return "n/a" if values[index] is None else f"{values[index]:.0f}"
        lines.append(f"| {run['batch']} | {run['steps']} | {run['accuracy']:.4f} "
                     f"({STUDY_ACCURACY.get(run['batch'], float('nan')):.4f}) | "
                     + " / ".join(at(s) for s in (0.1, 0.25, 0.5, 0.75, 1.0)) + " |")
    lines += ["", "Per host call: batch, step, training MLM loss, |G|² and tr(Σ) averages, B_simple:", "",
              "| batch | step | mlm loss | abs(G)² | tr(Σ) | B_simple |", "|---|---|---|---|---|---|"]
    for run in runs:
        for p in run["points"]:
            cell = lambda v, f: "n/a" if v is None else format(v, f)  # noqa: E731
            lines.append(f"| {p['batch_size']} | {p['step']} | {p['mlm_loss']:.3f} | "
                         f"{cell(p['noise_gradient_sq'], '.3g')} | {cell(p['noise_trace'], '.3g')} | "
                         f"{cell(p['b_simple'], '.0f')} |")
    lines.append("")

    def write(temporary):
        with open(temporary, "w") as handle:
            handle.write("\n".join(lines) + "\n")
    study.write_atomically(path, write)


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    batches = [int(b) for b in FLAGS.noise_batch_sizes]
    for batch in batches:
        if FLAGS.micro_batches < 2 or batch % FLAGS.micro_batches:
            study.fail("noise_batch_sizes", f"{batch} is not a multiple of --micro_batches={FLAGS.micro_batches} "
                       "(2 or more)")
    started = time.perf_counter()
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    work_dir = FLAGS.work_dir or tempfile.mkdtemp(prefix=NAME + "-")
    os.makedirs(work_dir, exist_ok=True)
    try:
        # The held-out records are cut to a multiple of the study's largest batch, as in the study.
        data = study.make_data(work_dir, max(int(m) for m in FLAGS.batch_multiples) * FLAGS.base_batch_size, None)
        print(f"data: {data.train_records} training, {data.heldout_records} held-out records", flush=True)
        runs = [measure(data, work_dir, batch) for batch in batches]
    finally:
        if not FLAGS.work_dir:
            shutil.rmtree(work_dir, ignore_errors=True)
    out = os.path.join(FLAGS.output_dir, NAME)
    study.write_csv(out + ".csv", [p for run in runs for p in run["points"]],
                    ("batch_size", "step", "examples", "mlm_loss", "noise_gradient_sq", "noise_trace", "b_simple"))
    write_report(out + ".md", runs, data, time.perf_counter() - started)
    print(f"wrote {out}.md, .csv ({(time.perf_counter() - started) / 60:.1f} min)")


if __name__ == "__main__":
    app.run(main)
