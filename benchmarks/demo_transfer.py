"""Does the demo's pretraining transfer? The built-in docstring task, fine-tuned from the demo's
encoder and from a random one with the same recipe, over several seeds.

    python benchmarks/demo_transfer.py runs/demo/model/phase2                  # seeds 12345,1,2
    python benchmarks/demo_transfer.py runs/demo/model/phase2 --seeds=12345,1,2,3,4

The demo itself runs one seed (12345); this runs each seed for both encoders (the seed sets the
classifier's initialisation, the data order and dropout; the encoder weights are the demo's or a
random initialisation drawn by the same seed), then writes
benchmarks/results/demo_transfer.md (every seed, the mean and range of each encoder and of the
difference, the commit) and demo_transfer.png (bars at the means, a dot per seed).
"""

import datetime
import os
import subprocess
import tempfile

from absl import app, flags

flags.DEFINE_list("seeds", ["12345", "1", "2"], "Fine-tuning seeds.")
flags.DEFINE_string("out", os.path.join(os.path.dirname(__file__), "results", "demo_transfer"),
                    "Output path without extension (.md and .png are written).")
flags.DEFINE_string("work_dir", "", "Fine-tuning runs (default: a temporary directory).")
flags.DEFINE_string("model_commit", "", "The commit the model was pretrained at, for the write-up.")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) != 2:
        raise app.UsageError("usage: demo_transfer.py MODEL_DIR (a pretraining phase directory)")
    from bert_pretrain import atomic, plot
    from bert_pretrain import strategy as strategy_lib
    from bert_pretrain.finetune import docstrings, tasks

    strategy = strategy_lib.make_strategy()
    work_dir = FLAGS.work_dir or tempfile.mkdtemp(prefix="demo_transfer-")
    seeds = [int(seed) for seed in FLAGS.seeds]
    runs = {}
    for seed in seeds:
        scores = tasks.pretrained_against_random("docstrings", argv[1], os.path.join(work_dir, f"seed-{seed}"),
                                                 strategy, seed=seed)
        runs[seed] = {name: scores[name]["accuracy"] for name in ("pretrained", "random")}
        print(f"seed {seed}: pretrained {runs[seed]['pretrained']:.1f}%, random {runs[seed]['random']:.1f}%",
              flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=os.path.dirname(os.path.abspath(__file__)), check=False).stdout.strip()
    columns = {"pretrained": [runs[s]["pretrained"] for s in seeds], "random": [runs[s]["random"] for s in seeds]}
    columns["difference"] = [p - r for p, r in zip(columns["pretrained"], columns["random"])]
    summary = {name: (sum(v) / len(v), min(v), max(v)) for name, v in columns.items()}
    lines = [f"# Docstring task: the demo's encoder against a random one ({len(seeds)} seeds)", "",
             f"`python benchmarks/demo_transfer.py {argv[1]} --seeds={','.join(map(str, seeds))}`, "
             f"commit {commit}, {datetime.date.today()}; model: `{argv[1]}`"
             + (f", pretrained at commit {FLAGS.model_commit}" if FLAGS.model_commit else "")
             + "; held-out accuracy (%), "
             f"{len(docstrings.examples('eval'))} examples, guessing the commonest package "
             f"{docstrings.commonest_share():.1f}%.", "",
             "| seed | pretrained | random | difference |", "|---|---|---|---|"]
    lines += [f"| {s} | {runs[s]['pretrained']:.1f} | {runs[s]['random']:.1f} | "
              f"{runs[s]['pretrained'] - runs[s]['random']:+.1f} |" for s in seeds]
    lines += ["| **mean (min–max)** | " + " | ".join(
        f"**{m:+.1f}** ({lo:+.1f} to {hi:+.1f})" if name == "difference" else f"**{m:.1f}** ({lo:.1f}–{hi:.1f})"
        for name, (m, lo, hi) in summary.items()) + " |"]
    os.makedirs(os.path.dirname(FLAGS.out), exist_ok=True)
    atomic.write_text(FLAGS.out + ".md", "\n".join(lines) + "\n")
    plot.plot_scores({"pretrained": {"accuracy": columns["pretrained"]},
                      "random": {"accuracy": columns["random"]}},
                     f"docstrings: held-out accuracy, {len(seeds)} fine-tuning seeds", FLAGS.out + ".png",
                     chance=docstrings.commonest_share())
    print("\n".join(lines))


if __name__ == "__main__":
    app.run(main)
