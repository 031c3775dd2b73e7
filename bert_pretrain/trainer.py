"""The pretraining loop: gradient accumulation, LAMB, skipped non-finite steps, exact resume.

One host call runs up to `steps_per_loop` steps. Each step: every replica computes the gradient of
its micro-batches (a while loop over accumulation steps; one XLA cluster on GPU, a TensorFlow graph
on CPU, where oneDNN's kernels match XLA:CPU's and start much sooner; all XLA on TPU),
gradients are summed across replicas, and the update is applied only if they are all finite. The
loss is divided by global totals, so the summed gradient is that of one big batch of the global
batch size.
"""

import dataclasses
import json
import os
import signal
import time

import tensorflow as tf
import tf_keras

from bert_pretrain import input_pipeline, metrics
from bert_pretrain import model as model_lib
from bert_pretrain.config import ModelConfig
from bert_pretrain.data.errors import DataError
from lamb_tf import BERT_EXCLUSIONS
from lamb_tf.schedules import WarmupPolynomialDecay
from lamb_tf.tf_keras import LAMB, LARS

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
OPTIMIZERS = ("lamb", "adamw", "lars")
XLA_CHOICES = ("auto", "on", "off")
CONFIG_FILE = "bert_config.json"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    train_steps: int
    global_batch_size: int
    learning_rate: float
    warmup_steps: int
    decay_power: float = 1.0
    accumulation_steps: int = 1
    steps_per_loop: int = 100
    weight_decay: float = 0.01
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-6
    clip_norm: float = 0.0           # global norm; 0 = no clipping
    precision: str = "float32"
    max_consecutive_skips: int = 20
    checkpoint_every: int = 1000
    keep_checkpoints: int = 5
    eval_every: int = 0              # 0 = evaluate only at the end (if there are eval files)
    seed: int = 12345
    peak_tflops: float = 0.0         # per replica, for the MFU estimate; 0 = do not estimate
    optimizer: str = "lamb"          # "adamw" and "lars" are for comparisons (benchmarks/large_batch_study.py)
    xla: str = "auto"                # auto: XLA on GPU (and TPU, always); on CPU only the update

    def check(self, replicas: int) -> None:
        """Every problem as one line naming the flag, before any compute."""
        def need(ok, flag, problem):
            if not ok:
                raise DataError(flag, problem, "change the flag")
        need(self.precision in PRECISIONS, "precision", f"{self.precision!r} is not one of {PRECISIONS}")
        need(self.xla in XLA_CHOICES, "xla", f"{self.xla!r} is not one of {XLA_CHOICES}")
        need(self.optimizer in OPTIMIZERS, "optimizer", f"{self.optimizer!r} is not one of {OPTIMIZERS}")
        need(self.train_steps > 0 and self.steps_per_loop > 0, "train_steps", "steps must be positive")
        need(self.global_batch_size % (replicas * self.accumulation_steps) == 0, "global_batch_size",
             f"{self.global_batch_size} is not a multiple of {replicas} replicas x "
             f"{self.accumulation_steps} accumulation steps")
        for flag in ("checkpoint_every", "eval_every"):
            every = getattr(self, flag)
            need(every >= 0 and every % self.steps_per_loop == 0, flag,
                 f"{every} is not a multiple of --steps_per_loop={self.steps_per_loop}")
        need(0 <= self.warmup_steps < self.train_steps, "warmup_steps", "must be below --train_steps")


def make_optimizer(config: TrainConfig, schedule):
    """LAMB with BERT's exclusions; AdamW (tf_keras') and LARS (beta_1 as momentum) with the same
    weight decay, exclusions and clipping, so that a comparison changes only the update rule."""
    common = dict(weight_decay=config.weight_decay, global_clipnorm=config.clip_norm or None)
    if config.optimizer == "adamw":
        optimizer = tf_keras.optimizers.AdamW(schedule, beta_1=config.beta_1, beta_2=config.beta_2,
                                              epsilon=config.epsilon, **common)
        optimizer.exclude_from_weight_decay(var_names=BERT_EXCLUSIONS)
        return optimizer
    if config.optimizer == "lars":
        return LARS(schedule, momentum=config.beta_1, exclude_from_weight_decay=BERT_EXCLUSIONS,
                    record_trust_ratios=True, **common)
    return LAMB(schedule, beta_1=config.beta_1, beta_2=config.beta_2, epsilon=config.epsilon,
                exclude_from_weight_decay=BERT_EXCLUSIONS, record_trust_ratios=True, **common)


class NonFiniteError(RuntimeError):
    """Too many consecutive steps had NaN/Inf gradients."""


class Trainer:
    """Owns the model, optimizer, step counters and checkpoints of one model_dir."""

    def __init__(self, model_config: ModelConfig, config: TrainConfig, strategy: tf.distribute.Strategy,
                 model_dir: str):
        config.check(strategy.num_replicas_in_sync)
        self.model_config, self.config, self.strategy, self.model_dir = model_config, config, strategy, model_dir
        self.write_dir = _write_dir(strategy, model_dir)
        if self.write_dir == model_dir:
            _check_model_dir(model_dir, model_config)
        tf_keras.mixed_precision.set_global_policy(config.precision)
        tf_keras.utils.set_random_seed(config.seed)
        # Dropout from tf.random.Generator: XLA ignores the seeds of tf.random.uniform, generators it honours.
        tf_keras.backend.experimental.enable_tf_random_generator()
        self.micro_batch = config.global_batch_size // strategy.num_replicas_in_sync // config.accumulation_steps
        with strategy.scope():
            self.model = model_lib.build_pretrainer(model_config)
            self.variables = _trained_variables(self.model, strategy)
            schedule = WarmupPolynomialDecay(config.learning_rate, config.warmup_steps, config.train_steps,
                                             power=config.decay_power)
            self.optimizer = make_optimizer(config, schedule)
            self.optimizer.build(self.variables)
            counter = lambda: tf.Variable(0, dtype=tf.int64, trainable=False)  # noqa: E731
            self.step, self.skipped, self.skipped_in_a_row, self.good_in_a_row = (counter() for _ in range(4))
            self.loss_scale = tf.Variable(2.0 ** 15 if config.precision == "mixed_float16" else 1.0,
                                          trainable=False)
        self.checkpoint = tf.train.Checkpoint(
            model=self.model, optimizer=self.optimizer, step=self.step, skipped=self.skipped,
            skipped_in_a_row=self.skipped_in_a_row, good_in_a_row=self.good_in_a_row, loss_scale=self.loss_scale)
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.write_dir, config.keep_checkpoints)
        self._generators = [layer._random_generator._generator for layer in self.model.submodules
                            if getattr(getattr(layer, "_random_generator", None), "_generator", None)]
        xla = _use_xla(config.xla)
        if not xla and config.accumulation_steps > 1:
            # With the accumulation loop inside the step loop, grappler's arithmetic optimizer turns
            # an add tree into a temporary variable that the next host call finds still alive
            # (AlreadyExistsError; 4-layer hidden-256 model at length 128). Off only then: the
            # optimizer is worth ~25% of a step. Process-wide: there is no per-function switch.
            tf.config.optimizer.set_experimental_options({"arithmetic_optimization": False})
        if xla:   # one XLA cluster; without XLA the step is inlined in the loop's graph
            self._accumulated_gradients = tf.function(self._accumulated_gradients, jit_compile=True)
        if (config.xla != "off" and strategy.num_replicas_in_sync == 1
                and not isinstance(strategy, tf.distribute.TPUStrategy)):
            # One replica: the LAMB update compiles with XLA, on CPU too (fused, it costs a tenth of
            # the graph's per-variable ops). Across replicas it holds a cross-replica merge, which
            # XLA cannot compile; on TPU the whole step is XLA anyway.
            self._apply = tf.function(self._apply, jit_compile=True)

    # ----- device side -----

    def _accumulated_gradients(self, batches: dict, weight_total, examples_total):
        """Sum over accumulation steps of d(loss x scale)/dw, unscaled; plus the metric sums."""
        variables = self.variables
        grads = [tf.zeros_like(v) for v in variables]
        sums = {k: tf.constant(0.0) for k in model_lib.SUM_KEYS}
        steps = self.config.accumulation_steps
        for i in range(1) if steps == 1 else tf.range(steps):   # no while loop around a single step
            features = {k: v[i] for k, v in batches.items()}
            with tf.GradientTape() as tape:
                outputs = self.model(model_lib.model_inputs(features), training=True)
                step_sums = model_lib.loss_sums(outputs, features)
                loss = model_lib.total_loss(step_sums, weight_total, examples_total) * self.loss_scale
            step_grads = tape.gradient(loss, variables)
            grads = [g + tf.convert_to_tensor(s) for g, s in zip(grads, step_grads)]
            sums = {k: sums[k] + step_sums[k] for k in sums}
        return [g / self.loss_scale for g in grads], sums

    def _replica_gradients(self, batch: dict):
        context = tf.distribute.get_replica_context()
        batches = {k: tf.reshape(v, [self.config.accumulation_steps, self.micro_batch] + v.shape[1:].as_list())
                   for k, v in batch.items()}
        weight_total = context.all_reduce("sum", tf.reduce_sum(batch["masked_lm_weights"]))
        grads, sums = self._accumulated_gradients(batches, weight_total,
                                                  tf.constant(float(self.config.global_batch_size)))
        grads, sums = context.all_reduce("sum", (grads, sums))
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])
        return grads, finite, tf.linalg.global_norm(grads), sums

    def _apply(self, grads):
        self.optimizer.apply_gradients(zip(grads, self.variables), skip_gradients_aggregation=True)

    def _update_counters(self, finite):
        """Dynamic loss scaling (float16 only): halve on overflow, double after 2000 good steps."""
        self.step.assign_add(1)
        self.skipped.assign_add(tf.cast(tf.logical_not(finite), tf.int64))
        self.skipped_in_a_row.assign(tf.where(finite, tf.constant(0, tf.int64), self.skipped_in_a_row + 1))
        self.good_in_a_row.assign(tf.where(finite, self.good_in_a_row + 1, 0))
        if self.config.precision == "mixed_float16":
            grow = self.good_in_a_row >= 2000
            self.loss_scale.assign(tf.where(finite, tf.where(grow, 2.0, 1.0), 0.5) * self.loss_scale)
            self.good_in_a_row.assign(tf.where(grow, tf.constant(0, tf.int64), self.good_in_a_row))

    @tf.function
    def _train_loop(self, iterator, num_steps):
        totals = {k: tf.constant(0.0) for k in model_lib.SUM_KEYS + ("grad_norm", "steps")}
        for _ in tf.range(num_steps):
            grads, finite, grad_norm, sums = self.strategy.run(self._replica_gradients, args=(next(iterator),))
            first = lambda x: self.strategy.experimental_local_results(x)[0]  # noqa: E731  (all equal)
            finite = first(finite)
            tf.cond(finite, lambda: self.strategy.run(self._apply, args=(grads,)), lambda: None)
            self._update_counters(finite)
            kept = tf.cast(finite, tf.float32)
            totals = {k: totals[k] + kept * first(sums[k]) for k in model_lib.SUM_KEYS} | {
                "grad_norm": totals["grad_norm"] + kept * first(grad_norm), "steps": totals["steps"] + kept}
            if self.skipped_in_a_row >= self.config.max_consecutive_skips:
                break
        return totals

    @tf.function
    def _eval_step(self, batch):
        def replica(batch):
            outputs = self.model(model_lib.model_inputs(batch), training=False)
            return tf.distribute.get_replica_context().all_reduce("sum", model_lib.loss_sums(outputs, batch))
        return self.strategy.experimental_local_results(self.strategy.run(replica, args=(batch,)))[0]

    # ----- host side -----

    def _reseed_dropout(self, step: int) -> None:
        """Dropout masks as a function of (seed, step): a resumed run draws the same ones."""
        for index, generator in enumerate(self._generators):
            generator.reset_from_seed(hash((self.config.seed, step, index)) % (1 << 62))

    def restore(self) -> int:
        """Resumes from the latest checkpoint in model_dir (every worker reads the chief's), if any;
        returns the step reached."""
        latest = tf.train.latest_checkpoint(self.model_dir)
        if latest:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
        return int(self.step.numpy())

    def save(self) -> str:
        return self.manager.save(checkpoint_number=int(self.step.numpy()))

    def evaluate(self, spec: input_pipeline.DataSpec) -> dict:
        dataset = self.strategy.distribute_datasets_from_function(
            input_pipeline.eval_dataset_fn(spec, self.config.global_batch_size))
        totals = None
        for batch in dataset:
            sums = self._eval_step(batch)
            totals = sums if totals is None else {k: totals[k] + sums[k] for k in totals}
        if totals is None:
            raise DataError("eval_files", "hold fewer records than one global batch", "add files or lower the batch")
        return metrics.means({k: float(v) for k, v in totals.items()})

    def train(self, train: input_pipeline.DataSpec, eval_spec: input_pipeline.DataSpec | None = None,
              log=print) -> dict:
        """Runs to train_steps from wherever model_dir left off. SIGTERM saves and returns early."""
        config = self.config
        start = self.restore()
        if start:
            log(f"resuming from step {start} ({self.manager.latest_checkpoint})")
        dataset = self.strategy.distribute_datasets_from_function(input_pipeline.train_dataset_fn(
            train, config.global_batch_size, config.seed, consumed_steps=start))
        iterator = iter(dataset)
        writers = metrics.SummaryWriters(self.write_dir)
        meter = metrics.Throughput(config.train_steps, config.global_batch_size, train.max_seq_length,
                                   metrics.flops_per_token(self.model_config, train.max_seq_length,
                                                           train.max_predictions_per_seq),
                                   config.peak_tflops * self.strategy.num_replicas_in_sync)
        with _PreemptionFlag() as preempted:
            result = {}
            step = start
            while step < config.train_steps and not preempted.raised:
                self._reseed_dropout(step)
                count = min(config.steps_per_loop, config.train_steps - step)
                started = time.perf_counter()
                totals = {k: float(v) for k, v in self._train_loop(iterator, tf.constant(count)).items()}
                step = int(self.step.numpy())
                result = metrics.means(totals) | {"learning_rate": float(self.optimizer.learning_rate.numpy()),
                                                  "skipped_steps": int(self.skipped.numpy()),
                                                  "loss_scale": float(self.loss_scale.numpy())}
                result |= meter.update(step, count, time.perf_counter() - started)
                if hasattr(self.optimizer, "trust_ratios"):
                    result |= metrics.trust_ratio_summary(self.optimizer.trust_ratios())
                writers.write("train", step, result)
                log(metrics.progress_line(step, config.train_steps, result))
                if int(self.skipped_in_a_row.numpy()) >= config.max_consecutive_skips:
                    raise NonFiniteError(
                        f"stopped at step {step}: {config.max_consecutive_skips} consecutive steps had non-finite "
                        f"gradients; the last good checkpoint is {self.manager.latest_checkpoint}; lower "
                        "--learning_rate, set --clip_norm or check the data")
                if eval_spec and config.eval_every and step % config.eval_every == 0 and step < config.train_steps:
                    writers.write("eval", step, self.evaluate(eval_spec))
                if config.checkpoint_every and step % config.checkpoint_every == 0:
                    self.save()
            if preempted.raised:
                log(f"SIGTERM: saved {self.save()} at step {step}; restart with the same flags to resume")
                return result
        if self.manager.latest_checkpoint != os.path.join(self.write_dir, f"ckpt-{step}"):
            self.save()
        if eval_spec:
            result |= {f"eval_{k}": v for k, v in self.evaluate(eval_spec).items()}
            writers.write("eval", step, {k[5:]: v for k, v in result.items() if k.startswith("eval_")})
        return result

    def export(self, export_dir: str) -> None:
        """The encoder as a Model Garden checkpoint (`encoder=...`, what fine-tuning's init_checkpoint
        reads) and as a SavedModel."""
        tf.train.Checkpoint(**self.model.checkpoint_items).write(os.path.join(export_dir, "pretrainer"))
        encoder = self.model.encoder_network
        ids = tf.TensorSpec([None, None], tf.int32)

        @tf.function(input_signature=[ids, ids, ids])
        def serve(input_word_ids, input_mask, input_type_ids):
            outputs = encoder({"input_word_ids": input_word_ids, "input_mask": input_mask,
                               "input_type_ids": input_type_ids}, training=False)
            return {"sequence_output": outputs["sequence_output"], "pooled_output": outputs["pooled_output"]}

        tf.saved_model.save(encoder, os.path.join(export_dir, "encoder_savedmodel"),
                            signatures={"serving_default": serve})


class _PreemptionFlag:
    """SIGTERM (preemption notice) only sets a flag; the loop saves at the next host call."""

    def __enter__(self):
        self.raised = False
        self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame):
        self.raised = True

    def __exit__(self, *exc_info):
        signal.signal(signal.SIGTERM, self._previous)


def _use_xla(setting: str) -> bool:
    """Whether forward and backward compile with XLA. auto: where there is a GPU. On CPU, TensorFlow's
    graph with oneDNN ran a 4-layer BERT's forward and backward about as fast as XLA:CPU and its
    first call took 30 s instead of 47 (benchmarks/train_throughput.py)."""
    return setting == "on" or (setting == "auto" and bool(tf.config.list_logical_devices("GPU")))


def _trained_variables(model, strategy: tf.distribute.Strategy) -> list:
    """Builds the model on a dummy batch and returns the variables the loss depends on: the
    encoder's pooler is for fine-tuning (the NSP head has its own), so it gets no gradient here.
    Traced in a replica context, where distributed variables can be differentiated."""
    zeros = tf.zeros((2, 8), tf.int32)
    features = {"input_ids": zeros, "input_mask": tf.ones_like(zeros), "segment_ids": zeros,
                "masked_lm_positions": zeros[:, :2], "masked_lm_ids": zeros[:, :2],
                "masked_lm_weights": tf.ones((2, 2)), "next_sentence_labels": zeros[:, :1]}
    model(model_lib.model_inputs(features), training=True)
    connected = []

    def probe():
        with tf.GradientTape() as tape:
            sums = model_lib.loss_sums(model(model_lib.model_inputs(features), training=True), features)
            loss = model_lib.total_loss(sums, sums["mlm_weight"], sums["examples"])
        connected[:] = [g is not None for g in tape.gradient(loss, model.trainable_variables)]

    tf.function(lambda: strategy.run(probe)).get_concrete_function()
    return [v for v, used in zip(model.trainable_variables, connected) if used]


def _write_dir(strategy: tf.distribute.Strategy, model_dir: str) -> str:
    """Under MultiWorkerMirroredStrategy every worker takes part in each save, but only the chief
    writes model_dir; the others write to a directory of their own inside it (TensorFlow's pattern
    for multi-worker checkpoints), which nothing reads."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return model_dir
    task_type, task_id = resolver.task_type, resolver.task_id
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    if task_type is None or task_type == "chief" or (not has_chief and task_type == "worker" and task_id == 0):
        return model_dir
    return os.path.join(model_dir, f"worker-{task_type}-{task_id}")


def _check_model_dir(model_dir: str, model_config: ModelConfig) -> None:
    """A model_dir is bound to one model: its config is written on first use and compared after."""
    path = os.path.join(model_dir, CONFIG_FILE)
    wanted = model_config.to_dict()
    architecture = ("vocab_size", "num_layers", "hidden_size", "num_heads")   # dropout may change
    if tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path) as handle:
            found = json.load(handle)
        changed = ", ".join(f"{k} {found.get(k)} -> {wanted[k]}" for k in architecture
                            if found.get(k) != wanted[k])
        if changed:
            raise DataError("model_dir", f"{model_dir} holds a checkpoint of another model ({changed})",
                            "use a new --model_dir or the same model flags")
        return
    tf.io.gfile.makedirs(model_dir)
    with tf.io.gfile.GFile(path, "w") as handle:
        handle.write(json.dumps(wanted, indent=1, sort_keys=True) + "\n")

