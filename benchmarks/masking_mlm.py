"""Held-out MLM accuracy after the same steps with static, dynamic and dynamic whole-word masking,
with the demo's phase-1 settings as they were until commit cd360f6 (tiny model, dropout 0.1, length
128, batch 64, 300 steps, learning rate 1e-2 after 30 warmup steps; the demo now trains 1,100 steps).

    python benchmarks/masking_mlm.py                       # 300 steps, seeds 1 and 2
    python benchmarks/masking_mlm.py --train_steps=100 --seeds=1

Static trains on google-research records made with dupe_factor 10 (what the demo makes); dynamic
and dynamic_whole_word on unmasked records (`--masking=none`, one copy) of the same text, masked
anew each time they are read. All are scored on the same held-out records (builtin:python-topics,
static masks, dupe_factor 1), as the demo scores them. Each run is `bert-pretrain train` in a
process of its own. Prints one line per run and the mean per masking.
"""

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

from absl import app, flags

flags.DEFINE_integer("train_steps", 300, "Steps of each run.")
flags.DEFINE_list("seeds", ["1", "2"], "Seeds (initialisation, data order, masks, dropout).")
flags.DEFINE_list("maskings", ["static", "dynamic", "dynamic_whole_word"], "Maskings to compare.")
flags.DEFINE_string("work_dir", "", "Where data and runs go (default: a temporary directory); data made "
                    "by an earlier call there is reused.")
FLAGS = flags.FLAGS

DEMO_PHASE_1 = ["--preset=tiny", "--max_seq_length=128", "--max_predictions_per_seq=20", "--global_batch_size=64",
                "--learning_rate=1e-2", "--warmup_steps=30", "--clip_norm=1.0", "--steps_per_loop=10",
                "--checkpoint_every=0"]


def make(work: str, name: str, *args: str) -> str:
    out = os.path.join(work, name)
    if not os.path.exists(os.path.join(out, "metadata.json")):
        subprocess.run([sys.executable, "-m", "bert_pretrain.data.cli", f"--output_dir={out}", "--max_seq_length=128",
                        "--max_predictions_per_seq=20", "--num_shards=8", *args], check=True, capture_output=True)
    return out


def main(argv):
    del argv
    work = FLAGS.work_dir or tempfile.mkdtemp(prefix="masking_mlm_")
    static = make(work, "static", "--input=builtin:python-docstrings", "--vocab_size=8000", "--dupe_factor=10")
    vocab = f"--vocab_file={static}/vocab.txt"
    unmasked = make(work, "unmasked", "--input=builtin:python-docstrings", vocab, "--masking=none")
    held_out = make(work, "eval", "--input=builtin:python-topics", vocab, "--dupe_factor=1")
    results = {m: [] for m in FLAGS.maskings}
    for seed in FLAGS.seeds:
        for masking in FLAGS.maskings:
            data = static if masking == "static" else unmasked
            model_dir = os.path.join(work, f"{masking}-seed{seed}-steps{FLAGS.train_steps}")
            run = subprocess.run([sys.executable, "-m", "bert_pretrain.cli", "train", f"--train_files={data}/*.tfrecord",
                                  f"--eval_files={held_out}/*.tfrecord", f"--model_dir={model_dir}",
                                  f"--masking={masking}", f"--seed={seed}", f"--train_steps={FLAGS.train_steps}",
                                  *DEMO_PHASE_1], capture_output=True, text=True)
            if run.returncode:
                sys.exit(f"{masking} seed {seed} failed:\n{run.stderr[-2000:]}")
            held = _final_eval(run.stdout, model_dir)
            results[masking].append(held)
            print(f"{masking} seed {seed}: held-out MLM accuracy {held['mlm_accuracy']:.4f}, "
                  f"loss {held['mlm_loss']:.4f}", flush=True)
    for masking, runs in results.items():
        accuracy = [r["mlm_accuracy"] for r in runs]
        print(f"{masking}: mean held-out MLM accuracy {statistics.mean(accuracy):.4f} over seeds "
              f"{', '.join(FLAGS.seeds)} ({', '.join(f'{a:.4f}' for a in accuracy)}); mean loss "
              f"{statistics.mean(r['mlm_loss'] for r in runs):.4f}")
    print(json.dumps({m: runs for m, runs in results.items()}))


def _final_eval(stdout: str, model_dir: str) -> dict:
    """The held-out metrics of the run's end, from its TensorBoard events."""
    import tensorflow as tf

    values = {}
    for path in tf.io.gfile.glob(os.path.join(model_dir, "eval", "events.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                values[value.tag] = float(tf.make_ndarray(value.tensor)) if value.HasField("tensor") else value.simple_value
    if "mlm_accuracy" not in values:
        raise SystemExit(f"no held-out metrics in {model_dir}:\n{stdout[-1000:]}")
    return {k: values[k] for k in ("mlm_accuracy", "mlm_loss")}


if __name__ == "__main__":
    app.run(main)
