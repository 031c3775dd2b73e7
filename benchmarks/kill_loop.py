"""Repeated kills: a small run is killed at many moments, restarted each time, and must end with the
weights and optimizer slots of an uninterrupted run, bit for bit.

    python benchmarks/kill_loop.py                  # ~15 minutes on 2 cores
    python benchmarks/kill_loop.py --random_kills=20 --seed=1
    python benchmarks/kill_loop.py --masking=dynamic_whole_word   # masks made in the input pipeline

`bert-pretrain train` (a 2-layer model on the built-in corpus, evaluated every 20 steps,
checkpointed every 10) is killed with SIGKILL
- at random moments (--random_kills of them, uniform over the run's expected length),
- while a checkpoint is being written (as soon as TensorFlow's `ckpt-N_temp` directory appears),
- while the held-out set is evaluated (just after the progress line of an evaluation step),
and sent SIGTERM while a checkpoint is being written (it must exit cleanly, status 0). Then
`bert-pretrain run` on a two-phase plan is killed during phase 2's first steps. Each victim is
restarted with the same command until it finishes; the final checkpoints are compared with an
uninterrupted run's. Prints one line per kill and the verdict; exit status 1 on any difference.
With --masking=dynamic or dynamic_whole_word both commands mask as they read (the train run reads
unmasked records made with `--masking=none`, the plan's phases re-mask their static records), so
the masks must be reproduced too.
"""

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
from absl import app, flags

flags.DEFINE_integer("random_kills", 6, "Kills at random moments of the train run.")
flags.DEFINE_integer("seed", 0, "Seed of the random moments.")
flags.DEFINE_string("work_dir", "", "Where data and runs go (default: a temporary directory).")
flags.DEFINE_enum("masking", "static", ["static", "dynamic", "dynamic_whole_word"], "The runs' --masking.")
FLAGS = flags.FLAGS

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"   # this process reads checkpoints too
TRAIN = ["--preset=tiny", "--num_layers=2", "--hidden_size=128", "--num_heads=2", "--max_seq_length=64",
         "--max_predictions_per_seq=10", "--global_batch_size=16", "--train_steps=300", "--warmup_steps=20",
         "--learning_rate=5e-3", "--steps_per_loop=5", "--checkpoint_every=10", "--eval_every=20",
         "--keep_checkpoints=3", "--seed=3"]
EVAL_STEPS = range(20, 300, 20)   # --eval_every=20 below --train_steps=300
PLAN = """
name = "kill-loop"
model = "tiny"
num_layers = 2
hidden_size = 64
num_heads = 2

[[phases]]
name = "phase1"
data = "seq64"
max_seq_length = 64
max_predictions_per_seq = 10
global_batch_size = 16
train_steps = 40
learning_rate = 5e-3
warmup_steps = 5

[[phases]]
name = "phase2"
data = "seq128"
max_seq_length = 128
max_predictions_per_seq = 20
global_batch_size = 8
train_steps = 30
learning_rate = 2e-3
warmup_steps = 3

[engine]
steps_per_loop = 5
checkpoint_every = 10
"""


def command(*args):
    return [sys.executable, "-m", *args]


def make_data(work: str, masking: str) -> tuple[str, str]:
    """Training and held-out TFRecords from two disjoint parts of the built-in corpus; with dynamic
    masking the training records are unmasked."""
    made = []
    train = "train" if masking == "static" else "train-unmasked"
    for name, corpus in ((train, "builtin:python-docstrings"), ("eval", "builtin:python-topics")):
        out = os.path.join(work, name)
        if not os.path.exists(os.path.join(out, "metadata.json")):
            vocab = [] if name == train else [f"--vocab_file={work}/{train}/vocab.txt"]
            kind = [] if name != train or masking == "static" else ["--masking=none"]
            subprocess.run(command("bert_pretrain.data.cli", f"--input={corpus}", f"--output_dir={out}",
                                   "--vocab_size=4000", "--max_seq_length=64", "--max_predictions_per_seq=10",
                                   "--dupe_factor=1", "--num_shards=4", *vocab, *kind),
                           env=ENV, check=True, capture_output=True)
        made.append(out)
    return made[0], made[1]


def checkpoint_values(model_dir: str) -> dict:
    import tensorflow as tf
    reader = tf.train.load_checkpoint(model_dir)
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
            if k.startswith(("model/", "optimizer/", "step"))}


def compare(expected_dir: str, got_dir: str) -> str:
    expected, got = checkpoint_values(expected_dir), checkpoint_values(got_dir)
    if expected.keys() != got.keys():
        return f"DIFFERENT variables: {sorted(expected.keys() ^ got.keys())[:3]}"
    different = [k for k in expected if not np.array_equal(expected[k], got[k])]
    return (f"DIFFERENT in {len(different)} of {len(expected)} tensors, e.g. {different[0]}" if different
            else f"identical: {len(expected)} weight and slot tensors")


def latest_step(model_dir: str) -> str:
    import tensorflow as tf
    path = tf.train.latest_checkpoint(model_dir)
    return path.rsplit("-", 1)[1] if path else "none"


class Victim:
    """One process of the command, with its stdout read line by line."""

    def __init__(self, argv):
        self.process = subprocess.Popen(argv, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        os.set_blocking(self.process.stdout.fileno(), False)
        self.output = ""

    def read(self) -> None:
        chunk = self.process.stdout.read()   # non-blocking: None when nothing is waiting
        if chunk:
            self.output += chunk.decode(errors="replace")

    def running(self) -> bool:
        self.read()
        return self.process.poll() is None

    def signal(self, number: int) -> None:
        self.process.send_signal(number)
        while self.process.poll() is None:
            self.read()
            time.sleep(0.01)
        self.read()


def last_step(victim: Victim) -> str:
    steps = re.findall(r"^step (\d+)/", victim.output, re.MULTILINE)
    return f"step {steps[-1]}" if steps else "none yet"


def checkpoint_being_written(model_dir: str, since: float) -> bool:
    """A `ckpt-N_temp` directory made after `since` (one a killed write left is older)."""
    if not os.path.isdir(model_dir):
        return False
    for name in os.listdir(model_dir):
        try:
            if name.endswith("_temp") and os.stat(os.path.join(model_dir, name)).st_mtime > since:
                return True
        except FileNotFoundError:
            pass   # the write finished as we looked
    return False


def wait_for(victim: Victim, condition, timeout: float = 600) -> bool:
    """Polls every millisecond; False if the victim finished first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if not victim.running():
            return False
        time.sleep(0.001)
    raise TimeoutError("the moment never came")


def run_to_end(argv) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, env=ENV, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"restart failed ({done.returncode}):\n{done.stdout[-2000:]}")
    return done


def main(argv):
    del argv
    rng = random.Random(FLAGS.seed)
    work = FLAGS.work_dir or tempfile.mkdtemp(prefix="kill_loop_")
    train_dir, eval_dir = make_data(work, FLAGS.masking)
    train = command("bert_pretrain.cli", "train", f"--train_files={train_dir}/*.tfrecord",
                    f"--eval_files={eval_dir}/*.tfrecord", *TRAIN, f"--masking={FLAGS.masking}")
    reference, victim_dir = os.path.join(work, "reference"), os.path.join(work, "victim")
    for name in ("reference", "victim", "run_reference", "run_victim"):   # runs of an earlier call
        shutil.rmtree(os.path.join(work, name), ignore_errors=True)
    started = time.monotonic()
    reference_run = Victim(train + [f"--model_dir={reference}"])
    assert wait_for(reference_run, lambda: "step 5/" in reference_run.output), reference_run.output[-2000:]
    first_loop = time.monotonic() - started     # start-up, compilation and the first host call
    while reference_run.running():
        time.sleep(0.1)
    if reference_run.process.returncode != 0:
        sys.exit(f"the uninterrupted run failed:\n{reference_run.output[-2000:]}")
    run_seconds = time.monotonic() - started
    print(f"uninterrupted train run: {run_seconds:.0f} s, first host call done after {first_loop:.0f} s")

    # Random kills fall between half the start-up and a tenth of the training after it, so each
    # restart advances a little and every planned moment comes before the end.
    moments = ([("random", rng.uniform(first_loop / 2, first_loop + (run_seconds - first_loop) / 10))
                for _ in range(FLAGS.random_kills)]
               + [("checkpoint write", None), ("evaluation", None), ("SIGTERM in checkpoint write", None)])
    rng.shuffle(moments)
    outcomes = []
    for index, (kind, delay) in enumerate(moments, 1):
        launched, launched_at = time.monotonic(), time.time()
        victim = Victim(train + [f"--model_dir={victim_dir}"])
        if kind == "random":
            hit = wait_for(victim, lambda: time.monotonic() - launched > delay)
        elif kind == "evaluation":   # the progress line of an evaluation step comes just before it
            hit = wait_for(victim, lambda: any(f"step {s}/" in victim.output for s in EVAL_STEPS))
            time.sleep(0.05)
        else:
            hit = wait_for(victim, lambda: checkpoint_being_written(victim_dir, launched_at))
        if not hit:
            outcomes.append(f"{index:2d}. {kind}: the run finished first")
            break
        if kind.startswith("SIGTERM"):
            victim.signal(signal.SIGTERM)
            clean = victim.process.returncode == 0 and "SIGTERM: saved" in victim.output
            outcomes.append(f"{index:2d}. {kind}: exit status {victim.process.returncode}, "
                            f"{'saved and exited cleanly' if clean else 'NOT CLEAN'}; latest ckpt {latest_step(victim_dir)}")
        else:
            victim.signal(signal.SIGKILL)
            outcomes.append(f"{index:2d}. kill -9 during {kind} (last progress line: {last_step(victim)}): "
                            f"latest ckpt {latest_step(victim_dir)}")
        print(outcomes[-1], flush=True)
    run_to_end(train + [f"--model_dir={victim_dir}"])
    train_verdict = compare(reference, victim_dir)
    print(f"train: after {len(outcomes)} interruptions and restarts: {train_verdict}")

    plan = os.path.join(work, "plan.toml")
    with open(plan, "w") as handle:
        handle.write(PLAN)
    run = command("bert_pretrain.cli", "run", f"--plan={plan}", "--corpus=builtin:python-docstrings",
                  f"--data_dir={work}/plan_data", "--data_vocab_size=4000", f"--masking={FLAGS.masking}")
    run_to_end(run + [f"--model_dir={work}/run_reference"])
    victim = Victim(run + [f"--model_dir={work}/run_victim"])
    phase2 = os.path.join(work, "run_victim", "phase2")
    wait_for(victim, lambda: os.path.exists(os.path.join(phase2, "ckpt-0.index")))
    time.sleep(rng.uniform(0.5, 3.0))
    victim.signal(signal.SIGKILL)
    print(f"run: kill -9 in phase 2's first steps: latest phase-2 ckpt {latest_step(phase2)}")
    run_to_end(run + [f"--model_dir={work}/run_victim"])
    run_verdict = compare(os.path.join(work, "run_reference", "phase2"), phase2)
    print(f"run: phase 2 after the kill and a restart: {run_verdict}")
    print(f"total {time.monotonic() - started:.0f} s")
    sys.exit(0 if train_verdict.startswith("identical") and run_verdict.startswith("identical") else 1)


if __name__ == "__main__":
    app.run(main)
