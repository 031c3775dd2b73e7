"""Time to first step of optimizer rows, each in a fresh process, repeated (target: LAMB ≤ 1.3× Adam).

`optimizer_step.py` times every row's first step once, in one process, where the rows after the
first reuse what that one warmed up and one sample moves by ±30%. Here each row runs in a process
of its own (import, variables, then trace, then XLA compile and one step). Each pair runs its
baseline, then its row, every round; the row's ratio is to the baseline of the same round, and
the median over rounds is reported.

    python benchmarks/first_step.py --rounds=3
    python benchmarks/first_step.py --pairs="tf_keras Adam=lamb_tf.tf_keras LAMB" --rounds=5
"""

import json
import os
import statistics
import subprocess
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bert_shapes  # noqa: E402
import optimizer_step  # noqa: E402  (its rows, and its --size flag)

flags.DEFINE_list("pairs", ["keras Adam=lamb_tf.keras3 LAMB",
                           "tf_keras Adam=lamb_tf.tf_keras LAMB"],
                  "baseline=row pairs of optimizer_step.py's rows.")
flags.DEFINE_integer("rounds", 3, "Fresh processes per row.")
flags.DEFINE_string("worker", None, "Internal: time this one row and print JSON.")
FLAGS = flags.FLAGS


def time_row(name):
    """Trace, then compile and run once, under XLA: seconds of each."""
    specs = bert_shapes.bert_variables(FLAGS.size)
    grads = optimizer_step.make_tf_gradients(specs)
    optimizer, apply = optimizer_step.build_tf_row(*optimizer_step.tf_rows()[name], specs,
                                                   xla=True)
    start = time.perf_counter()
    apply.get_concrete_function(grads)
    traced = time.perf_counter()
    apply(grads)
    float(optimizer.iterations.numpy())
    return {"trace": traced - start, "compile": time.perf_counter() - traced}


def run_worker(name):
    result = subprocess.run(
        [sys.executable, os.path.abspath(__file__), f"--worker={name}", f"--size={FLAGS.size}"],
        capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    if result.returncode:
        sys.exit(f"first_step.py: row {name!r} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv):
    del argv
    if FLAGS.worker:
        print(json.dumps(time_row(FLAGS.worker)))
        return
    pairs = [tuple(pair.split("=")) for pair in FLAGS.pairs]
    if any(len(pair) != 2 for pair in pairs):
        sys.exit(f"--pairs: write baseline=row pairs, got {FLAGS.pairs}")
    unknown = {name for pair in pairs for name in pair} - set(optimizer_step.tf_rows())
    if unknown:
        sys.exit(f"--pairs: no such rows {sorted(unknown)}; rows are "
                 f"{sorted(optimizer_step.tf_rows())}")
    ratios = {pair: [] for pair in pairs}
    print(f"BERT-{FLAGS.size}, XLA, {os.cpu_count()} CPUs; seconds of trace + compile and first "
          "step = first step; ratio to the pair's baseline in the same round")
    for round_ in range(1, FLAGS.rounds + 1):
        for baseline, row in pairs:
            firsts = {}
            for name in (baseline, row):
                times = run_worker(name)
                firsts[name] = times["trace"] + times["compile"]
                print(f"round {round_} {name:24s} {times['trace']:5.1f} + "
                      f"{times['compile']:5.1f} = {firsts[name]:5.1f} s", flush=True)
            ratios[baseline, row].append(firsts[row] / firsts[baseline])
    for (baseline, row), values in ratios.items():
        print(f"{row} / {baseline}: median {statistics.median(values):.2f} "
              f"(rounds: {', '.join(f'{r:.2f}' for r in values)})")


if __name__ == "__main__":
    app.run(main)
