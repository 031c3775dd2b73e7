"""Time one optimizer apply step over BERT-shaped variables; print ratios to Keras Adam.

TensorFlow (default): each optimizer gets fresh variables and the same gradients; a
`tf.function` applies them, with and without XLA. "first" is the first call (trace + compile +
one step), "step" the median of --steps later calls, each row's steps alternating with Keras
Adam's so that both see the same load. Ratios are to Keras Adam measured in this
process, so a noisy machine slows numerator and denominator alike.

    python benchmarks/optimizer_step.py --size=base            # 2-core CPU, TF backend
    KERAS_BACKEND=jax python benchmarks/optimizer_step.py --size=large   # GPU, JAX backend
"""

import contextlib
import gc
import os
import statistics
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bert_shapes  # noqa: E402

flags.DEFINE_enum("size", "base", list(bert_shapes.SIZES), "BERT variable set.")
flags.DEFINE_integer("steps", 10, "Timed steps after the first (median reported).")
flags.DEFINE_list("only", [], "Run only these rows (names as printed).")
flags.DEFINE_list("modes", ["xla", "graph"], "TensorFlow modes: xla, graph.")
FLAGS = flags.FLAGS

WEIGHT_DECAY = 0.01
EXCLUSIONS = ["LayerNorm", "layer_norm", "bias"]
LEARNING_RATE = 1e-3


def tf_rows():
    """name -> (variable kind, optimizer factory). Imported lazily: only what a row needs."""
    import keras
    import tf_keras

    import lamb_tf.keras3
    import lamb_tf.tf_keras

    def model_garden_lamb():
        from official.modeling.optimization import lamb
        return lamb.LAMB(LEARNING_RATE, weight_decay_rate=WEIGHT_DECAY,
                         exclude_from_weight_decay=EXCLUSIONS)

    return {
        "keras Adam": ("keras", lambda: keras.optimizers.Adam(LEARNING_RATE)),
        "keras AdamW": ("keras", lambda: keras.optimizers.AdamW(LEARNING_RATE, WEIGHT_DECAY)),
        "keras Lamb": ("keras", lambda: keras.optimizers.Lamb(LEARNING_RATE)),
        "lamb_tf.keras3 LAMB": ("keras", lambda: lamb_tf.keras3.LAMB(
            LEARNING_RATE, weight_decay=WEIGHT_DECAY, exclude_from_weight_decay=EXCLUSIONS)),
        "tf_keras Adam": ("tf", lambda: tf_keras.optimizers.Adam(LEARNING_RATE)),
        "lamb_tf.tf_keras LAMB": ("tf", lambda: lamb_tf.tf_keras.LAMB(
            LEARNING_RATE, weight_decay=WEIGHT_DECAY, exclude_from_weight_decay=EXCLUSIONS)),
        "Model Garden LAMB": ("tf", model_garden_lamb),
    }


def make_tf_variables(kind, specs):
    import keras
    import tensorflow as tf

    variables = []
    for index, (path, shape) in enumerate(specs):
        value = tf.random.stateless_normal(shape, seed=[index, 0], stddev=0.02)
        if kind == "tf":
            variables.append(tf.Variable(value, name=path))
        else:
            *scopes, leaf = path.split("/")
            with contextlib.ExitStack() as stack:
                for scope in scopes:  # Keras names hold no '/': nest scopes to get the path
                    stack.enter_context(keras.name_scope(scope))
                variables.append(keras.Variable(value, name=leaf))
            assert variables[-1].path == path, variables[-1].path
    return variables


def _prod(shape):
    count = 1
    for dim in shape:
        count *= int(dim)
    return count


def make_tf_gradients(specs):
    import tensorflow as tf

    return [tf.random.stateless_normal(shape, seed=[i, 1], stddev=1e-3)
            for i, (_, shape) in enumerate(specs)]


def build_tf_row(kind, factory, specs, xla):
    """Fresh variables, the row's optimizer, and a `tf.function` applying gradients to them."""
    import tensorflow as tf

    variables = make_tf_variables(kind, specs)
    optimizer = factory()

    @tf.function(jit_compile=xla)
    def apply(gradients):
        optimizer.apply_gradients(zip(gradients, variables))

    return optimizer, apply


def prepare_tf_row(kind, factory, specs, grads, xla):
    """Builds the row and runs its first step; returns (timed step function, first, slots)."""
    optimizer, apply = build_tf_row(kind, factory, specs, xla)

    def timed():
        start = time.perf_counter()
        apply(grads)
        float(optimizer.iterations.numpy())  # wait for the step
        return time.perf_counter() - start

    first = timed()
    timed()  # warm-up
    state = optimizer.variables() if callable(optimizer.variables) else optimizer.variables
    slots = sum(_prod(v.shape) for v in state if len(v.shape) > 0)
    return timed, first, slots


def run_tensorflow(specs):
    import tensorflow as tf

    params = bert_shapes.parameter_count(specs)
    grads = make_tf_gradients(specs)
    rows = tf_rows()
    names = [n for n in rows if not FLAGS.only or n in FLAGS.only or n == "keras Adam"]
    print(f"TensorFlow {tf.__version__}, BERT-{FLAGS.size}: {params:,} parameters in "
          f"{len(specs)} variables, {os.cpu_count()} CPUs")
    for mode in FLAGS.modes:
        xla = mode == "xla"
        baseline = prepare_tf_row(*rows["keras Adam"], specs, grads, xla=xla)
        print(f"\n[{mode}] {'optimizer':24s} {'step s':>8s} {'×Adam':>6s} {'first s':>8s} "
              f"{'×Adam':>6s} {'state/params':>12s}")
        for name in names:
            # Each row alternates with Keras Adam, step by step, so a change of load hits both;
            # only two rows' state is alive at a time.
            row = baseline if name == "keras Adam" else prepare_tf_row(*rows[name], specs, grads,
                                                                         xla=xla)
            row_steps, base_steps = [], []
            for _ in range(FLAGS.steps):
                row_steps.append(row[0]())
                base_steps.append(baseline[0]())
            step, base_step = statistics.median(row_steps), statistics.median(base_steps)
            print(f"[{mode}] {name:24s} {step:8.3f} {step / base_step:6.2f} {row[1]:8.1f} "
                  f"{row[1] / baseline[1]:6.2f} {row[2] / params:12.2f}")
            sys.stdout.flush()
            del row
            gc.collect()
        del baseline
        gc.collect()


def main(argv):
    del argv
    import keras

    specs = bert_shapes.bert_variables(FLAGS.size)
    if keras.backend.backend() == "jax":
        import optimizer_step_jax
        optimizer_step_jax.run(specs, FLAGS.steps)
    else:
        run_tensorflow(specs)


if __name__ == "__main__":
    app.run(main)
