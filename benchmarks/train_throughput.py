"""Our trainer vs Model Garden's (`official.nlp.train`, experiment `bert/pretraining`) on the same
model, data, batch, precision and LAMB settings.

    python benchmarks/train_throughput.py                      # makes data from the built-in corpus
    python benchmarks/train_throughput.py --train_files='data/seq128/*.tfrecord' --rounds=8

Each trainer runs in a process of its own (fresh imports, so start-up is what a user waits for).
The parent starts them one after the other and records the time from process start to the end of
the first training step; then it alternates `--steps_per_round` steps of one with the same of the
other, so that a change in machine load hits both, and reports the median per-round ratio. Both
trainers run the same model class (Model Garden's BertEncoderV2 + BertPretrainerV2) and loop
structure: `steps_per_round` steps per host call, inside a tf.function.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app, flags

STARTED = time.perf_counter()   # before TensorFlow's import: start-up as a user sees it
ENGINES = ("model_garden", "ours", "ours_xla")   # ours_xla: our trainer with --xla=on (the GPU default)

flags.DEFINE_string("train_files", "", "TFRecords (google-research names, seq 128); empty = make them from "
                    "the built-in corpus in a temporary directory.")
flags.DEFINE_integer("vocab_size", 6000, "WordPiece vocab to learn when making the data.")
flags.DEFINE_integer("num_layers", 4, "Encoder layers.")
flags.DEFINE_integer("hidden_size", 256, "Hidden size (intermediate 4x).")
flags.DEFINE_integer("num_heads", 4, "Attention heads.")
flags.DEFINE_integer("global_batch_size", 64, "Sequences per step.")
flags.DEFINE_integer("max_seq_length", 128, "Sequence length of the data.")
flags.DEFINE_integer("max_predictions_per_seq", 20, "Masked positions per sequence in the data.")
flags.DEFINE_float("learning_rate", 1e-3, "LAMB peak learning rate (both trainers).")
flags.DEFINE_integer("steps_per_round", 10, "Steps per host call and per timed round.")
flags.DEFINE_integer("rounds", 6, "Timed rounds per trainer, alternating.")
flags.DEFINE_list("engines", list(ENGINES), "Trainers to run; the ratio is ours / model_garden.")
flags.DEFINE_boolean("breakdown", True, "Also time our step's parts (input, forward+backward, optimizer).")
flags.DEFINE_enum("precision", "float32", ("float32", "mixed_bfloat16"),
                  "float32 (the headline) or mixed_bfloat16 (reported separately).")
flags.DEFINE_enum("worker", "", ("",) + ENGINES, "Internal: run one trainer and obey the parent.")
flags.DEFINE_integer("model_vocab_size", 0, "Internal: the model's vocab size, read from the data by the parent.")
FLAGS = flags.FLAGS

WARMUP, DECAY_POWER, WEIGHT_DECAY = 10, 1.0, 0.01
MODEL_GARDEN_DTYPE = {"float32": "float32", "mixed_bfloat16": "bfloat16"}   # its runtime.mixed_precision_dtype


def total_steps() -> int:
    """Both trainers run the same schedule: 1 first step + 1 untimed round + the timed rounds."""
    return 1 + FLAGS.steps_per_round * (FLAGS.rounds + 1)


# ----- the workers: build, first step, then "run N" commands on stdin -----

def reply(**values) -> None:
    print("RESULT " + json.dumps(values), flush=True)


def serve(build) -> None:
    """`build()` returns (run(n) -> loss, extra) after making the trainer; we time its first step."""
    run, extras = build()
    constructed = time.perf_counter()
    loss = run(1)
    reply(first_step_s=time.perf_counter() - STARTED, build_s=constructed - STARTED,
          first_call_s=time.perf_counter() - constructed, loss=loss)
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "run":
            started = time.perf_counter()
            loss = run(int(argument))
            reply(seconds=time.perf_counter() - started, loss=loss)
        elif command in extras:
            reply(**extras[command]())
        else:
            return


def build_ours():
    import tensorflow as tf
    from bert_pretrain import config as config_lib
    from bert_pretrain import datasets, metrics
    from bert_pretrain.config import TrainConfig
    from bert_pretrain import trainer as trainer_lib

    spec = datasets.data_spec(datasets.resolve_files(FLAGS.train_files, "train_files"),
                                   FLAGS.max_seq_length, FLAGS.max_predictions_per_seq)
    model_config = config_lib.ModelConfig(FLAGS.model_vocab_size, FLAGS.num_layers, FLAGS.hidden_size,
                                          FLAGS.num_heads)
    config = TrainConfig(
        train_steps=total_steps(), global_batch_size=FLAGS.global_batch_size, learning_rate=FLAGS.learning_rate,
        warmup_steps=WARMUP, decay_power=DECAY_POWER, weight_decay=WEIGHT_DECAY, precision=FLAGS.precision,
        steps_per_loop=FLAGS.steps_per_round, checkpoint_every=0, xla="on" if FLAGS.worker == "ours_xla" else "auto")
    strategy = tf.distribute.get_strategy()
    trainer = trainer_lib.Trainer(model_config, config, strategy, tempfile.mkdtemp(prefix="ours-"))
    dataset = strategy.distribute_datasets_from_function(
        datasets.train_dataset_fn(spec, FLAGS.global_batch_size, config.seed))
    iterator = iter(dataset)

    def run(steps):   # what Trainer.train does per host call, without the logging and checkpoints
        totals = {k: float(v) for k, v in trainer.run_steps(iterator, tf.constant(steps)).items()}
        means = metrics.means(totals)
        return means["mlm_loss"] + means["nsp_loss"]

    def breakdown(repeats=5):
        """Seconds per step of the whole loop and of its parts run alone on one batch, back to back.
        Called after the timed rounds: the extra optimizer steps change nothing that is reported."""
        batch = next(iterator)
        gradients = tf.function(trainer._replica_gradients)
        grads = gradients(batch)[0]

        def per_step(function):
            function()   # compiled already, but the first call may still allocate
            started = time.perf_counter()
            for _ in range(repeats):
                result = function()
            tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, result)
            return (time.perf_counter() - started) / repeats

        out = {"step_s": per_step(lambda: run(1)),
               "input_s": 1.0 / metrics.count_batches_per_second(
                   datasets.train_dataset_fn(spec, FLAGS.global_batch_size, 0)(tf.distribute.InputContext()), 50),
               "forward_backward_s": per_step(lambda: gradients(batch)[0]),
               "optimizer_s": per_step(lambda: trainer._apply(grads) or tf.constant(0.0))}
        out["flops_per_step"] = FLAGS.global_batch_size * FLAGS.max_seq_length * metrics.flops_per_token(
            model_config, FLAGS.max_seq_length, FLAGS.max_predictions_per_seq)
        out["op_shares"] = op_time_shares(lambda: run(repeats))
        return out

    return run, {"breakdown": breakdown}


# What each TensorFlow op of a step is part of, by its name (first match wins).
OP_KINDS = (("matmul and einsum", r"Einsum|MatMul"), ("dropout", r"dropout"), ("GELU", r"Gelu|activation"),
            ("layer norm", r"layer_norm|batchnorm|LayerNorm"), ("loss", r"SoftmaxCrossEntropy"),
            ("softmax", r"softmax|Softmax"))


def op_time_shares(function) -> dict:
    """Share of op time (summed over TensorFlow's compute threads) per kind of op, from the
    TensorFlow profiler's trace of `function()`."""
    import glob
    import re

    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    logdir = tempfile.mkdtemp(prefix="op-profile-")
    tf.profiler.experimental.start(logdir)
    function()
    tf.profiler.experimental.stop()
    space = xplane_pb2.XSpace()
    with open(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)[0], "rb") as handle:
        space.ParseFromString(handle.read())
    totals = dict.fromkeys([kind for kind, _ in OP_KINDS] + ["other"], 0.0)
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            ops = sorted(((event.offset_ps, event.duration_ps, plane.event_metadata[event.metadata_id].name)
                          for event in line.events), key=lambda op: (op[0], -op[1]))
            ops = [op for op in ops if re.fullmatch(r"[^:]+:\w+", op[2])]   # "name:Type"; not the executor's own
            for (start, duration, name), after in zip(ops, ops[1:] + [(float("inf"), 0, "")]):
                if after[0] < start + duration:   # it holds the next op (a loop, a function call): count that
                    continue
                kind = next((k for k, pattern in OP_KINDS if re.search(pattern, name)), "other")
                totals[kind] += duration
    whole = sum(totals.values()) or 1
    return {kind: value / whole for kind, value in totals.items()}


def build_model_garden():
    import tensorflow as tf
    from official.common import registry_imports  # noqa: F401  (registers bert/pretraining)
    from official.core import exp_factory, task_factory, train_utils
    from official.modeling import performance

    params = exp_factory.get_exp_config("bert/pretraining")
    encoder = {"vocab_size": FLAGS.model_vocab_size, "num_layers": FLAGS.num_layers,
               "hidden_size": FLAGS.hidden_size, "num_attention_heads": FLAGS.num_heads,
               "intermediate_size": 4 * FLAGS.hidden_size, "max_position_embeddings": 512,
               "type_vocab_size": 2}
    data = {"input_path": FLAGS.train_files, "global_batch_size": FLAGS.global_batch_size,
            "seq_length": FLAGS.max_seq_length, "max_predictions_per_seq": FLAGS.max_predictions_per_seq}
    params.override({
        "runtime": {"mixed_precision_dtype": MODEL_GARDEN_DTYPE[FLAGS.precision]},
        "task": {"model": {"encoder": {"type": "bert_v2", "bert_v2": encoder},
                           "cls_heads": [{"inner_dim": FLAGS.hidden_size, "num_classes": 2,
                                          "dropout_rate": 0.1, "name": "next_sentence"}]},
                 "train_data": data, "validation_data": dict(data, is_training=False)},
        "trainer": {"train_steps": total_steps(), "steps_per_loop": FLAGS.steps_per_round,
                    "optimizer_config": {
                        "optimizer": {"type": "lamb", "lamb": {
                            "weight_decay_rate": WEIGHT_DECAY,
                            "exclude_from_weight_decay": ["LayerNorm", "layer_norm", "bias"]}},
                        "learning_rate": {"type": "polynomial", "polynomial": {
                            "initial_learning_rate": FLAGS.learning_rate, "decay_steps": total_steps(),
                            "end_learning_rate": 0.0, "power": DECAY_POWER}},
                        "warmup": {"type": "polynomial", "polynomial": {"warmup_steps": WARMUP}}}}},
        is_strict=False)
    performance.set_mixed_precision_policy(MODEL_GARDEN_DTYPE[FLAGS.precision])   # as official.nlp.train does
    strategy = tf.distribute.get_strategy()
    with strategy.scope():
        task = task_factory.get_task(params.task, logging_dir=tempfile.mkdtemp(prefix="mg-"))
        trainer = train_utils.create_trainer(params, task, train=True, evaluate=False)
    trainer.init_async()

    def run(steps):   # what Orbit's controller calls per steps_per_loop
        return float(trainer.train(tf.constant(steps, tf.int32))["training_loss"])

    return run, {}


# ----- the parent -----

class Worker:
    def __init__(self, engine: str, argv: list):
        self.engine = engine
        self.process = subprocess.Popen([sys.executable, os.path.abspath(__file__), f"--worker={engine}"] + argv,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def read(self) -> dict:
        for line in self.process.stdout:
            if line.startswith("RESULT "):
                return json.loads(line[len("RESULT "):])
        raise RuntimeError(f"the {self.engine} worker exited with status {self.process.wait()}")

    def ask(self, command: str) -> dict:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.read()

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def make_data(directory: str) -> str:
    from bert_pretrain.data.create import Options, create_pretraining_data
    create_pretraining_data(Options(input="builtin:python-docs", output_dir=directory, vocab_size=FLAGS.vocab_size,
                                    max_seq_length=FLAGS.max_seq_length,
                                    max_predictions_per_seq=FLAGS.max_predictions_per_seq, dupe_factor=2))
    return os.path.join(directory, "*.tfrecord")


def matmul_gflops(size=2048, repeats=10) -> float:
    """The float32 matmul rate of this machine: the ceiling that MFU is measured against."""
    import tensorflow as tf
    a = tf.random.normal((size, size))
    tf.linalg.matmul(a, a).numpy()
    started = time.perf_counter()
    for _ in range(repeats):
        b = tf.linalg.matmul(a, a)
    b.numpy()
    return 2 * size ** 3 * repeats / (time.perf_counter() - started) / 1e9


def parent() -> None:
    from bert_pretrain import datasets
    from bert_pretrain.data.metadata import Metadata

    train_files = FLAGS.train_files or make_data(tempfile.mkdtemp(prefix="throughput-data-"))
    files = datasets.resolve_files(train_files, "train_files")
    metadata = Metadata.of_files(files)
    vocab_size = metadata.vocab_size if metadata else None
    if not vocab_size:   # --vocab_size is what a learned vocab asks for, not what it came out as
        raise app.UsageError(f"--train_files: no metadata.json beside {files[0]} to read the vocab size "
                             "from; make the data with bert-pretrain-data")
    argv = [f"--train_files={train_files}", f"--model_vocab_size={vocab_size}"] + [
        f"--{name}={FLAGS[name].value}" for name in (
            "num_layers", "hidden_size", "num_heads", "global_batch_size", "max_seq_length",
            "max_predictions_per_seq", "learning_rate", "steps_per_round", "rounds", "precision")]
    print(f"model: {FLAGS.num_layers} layers, hidden {FLAGS.hidden_size}, {FLAGS.num_heads} heads, vocab "
          f"{vocab_size}; batch {FLAGS.global_batch_size}, seq {FLAGS.max_seq_length}, {FLAGS.precision}, "
          f"LAMB lr {FLAGS.learning_rate}; {total_steps()} steps each")
    if total_steps() <= WARMUP:
        raise app.UsageError(f"--rounds, --steps_per_round: {total_steps()} steps in all; the schedule's "
                             f"warmup alone is {WARMUP}, so raise them")
    engines = [e for e in ENGINES if e in FLAGS.engines]
    if not {"model_garden", "ours"} <= set(engines) or len(engines) != len(FLAGS.engines):
        raise app.UsageError(f"--engines: need model_garden and ours, from {', '.join(ENGINES)}")
    workers, first = {}, {}
    for engine in engines:          # one at a time: start-up is measured on an otherwise idle machine
        workers[engine] = Worker(engine, argv)
        first[engine] = workers[engine].read()
        print(f"{engine:>12}: first step done {first[engine]['first_step_s']:.1f} s after process start "
              f"(imports and build {first[engine]['build_s']:.1f} s, first call {first[engine]['first_call_s']:.1f} s)",
              flush=True)
    for worker in workers.values():
        worker.ask(f"run {FLAGS.steps_per_round}")      # untimed: the loop with its real step count
    seconds = {engine: [] for engine in engines}
    losses = {}
    for _ in range(FLAGS.rounds):
        for engine, worker in workers.items():
            result = worker.ask(f"run {FLAGS.steps_per_round}")
            seconds[engine].append(result["seconds"])
            losses[engine] = result["loss"]
    rate = {e: FLAGS.global_batch_size * FLAGS.steps_per_round / statistics.median(s) for e, s in seconds.items()}
    ratios = [m / o for m, o in zip(seconds["model_garden"], seconds["ours"])]
    for engine in engines:
        print(f"{engine:>12}: {rate[engine]:6.1f} sequences/s (median of {FLAGS.rounds} rounds of "
              f"{FLAGS.steps_per_round} steps), loss after step {total_steps()}: {losses[engine]:.4f}")
    print(f"ours / Model Garden: {statistics.median(ratios):.2f}x sequences/s (per-round ratios "
          f"{', '.join(f'{r:.2f}' for r in ratios)}); time to first step "
          f"{first['ours']['first_step_s'] / first['model_garden']['first_step_s']:.2f}x")
    if FLAGS.breakdown:
        parts = workers["ours"].ask("breakdown")
        step = parts["step_s"]
        host = step - parts["forward_backward_s"] - parts["optimizer_s"]
        peak = matmul_gflops()
        achieved = parts["flops_per_step"] * rate["ours"] / FLAGS.global_batch_size / 1e9
        print(f"our step, timed again with its parts (one step per call) {step * 1e3:.0f} ms: forward+backward {parts['forward_backward_s'] * 1e3:.0f} ms, "
              f"optimizer {parts['optimizer_s'] * 1e3:.0f} ms, the rest (host, input hand-off) {host * 1e3:.0f} ms; "
              f"the input pipeline alone makes a batch in {parts['input_s'] * 1e3:.1f} ms (overlapped)")
        print(f"model FLOPs {parts['flops_per_step'] / 1e9:.0f} GFLOP/step: ours {achieved:.0f} GFLOP/s, Model "
              f"Garden {achieved / statistics.median(ratios):.0f}; a float32 2048x2048 matmul here {peak:.0f} "
              f"GFLOP/s, so MFU against it {achieved / peak:.0%} (Model Garden "
              f"{achieved / statistics.median(ratios) / peak:.0%})")
        print("our op time by kind (TensorFlow profiler; Model Garden runs the same encoder ops): " + ", ".join(
            f"{kind} {share:.0%}" for kind, share in sorted(parts["op_shares"].items(), key=lambda kv: -kv[1])))
    for worker in workers.values():
        worker.close()


def main(argv):
    if FLAGS.worker:
        serve(build_model_garden if FLAGS.worker == "model_garden" else build_ours)
    else:
        parent()


if __name__ == "__main__":
    app.run(main)
