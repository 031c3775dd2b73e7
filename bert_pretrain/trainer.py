"""The pretraining loop: gradient accumulation, LAMB, skipped non-finite steps, exact resume.

One host call (`run_steps`) runs up to `steps_per_loop` steps inside one tf.function. A step reads
top to bottom in `run_steps`: each replica sums the gradients of its micro-batches, the sums are
all-reduced across replicas, the result is checked for NaN/Inf, applied only if finite, and the
counters advance. The loss is divided by global totals, so the summed gradient is that of one
batch of the global batch size. The micro-batch gradients' norms and the global one also give the
gradient noise scale (`batch_size.noise_scale`) at no extra pass. `train` is the host side: resume,
the loop, logs, evaluation, checkpoints and preemption.
"""

import json
import os
import signal
import time

import tensorflow as tf
import tf_keras

from bert_pretrain import atomic, checkpoints, data_faults, datasets, metrics
from bert_pretrain import model as model_lib
from bert_pretrain.batch_size import noise_scale
from bert_pretrain.config import ModelConfig, TrainConfig
from bert_pretrain.errors import UsageError
from lamb_tf import BERT_EXCLUSIONS
from lamb_tf.tf_keras import LAMB, LARS, WarmupPolynomialDecay

CONFIG_FILE = "bert_config.json"
STAT_KEYS = model_lib.SUM_KEYS + ("grad_norm", "steps")


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


class DynamicLossScale:
    """float16's loss scale: halved on a step with non-finite gradients, doubled after
    GROWTH_INTERVAL finite steps in a row; 1 and never changed under other precisions, where
    `good_steps` still counts finite steps in a row.

    tf_keras' LossScaleOptimizer does the same inside `apply_gradients`, on the gradients it is
    given, through a cross-replica merge call. Here the finite check must come after gradients
    are accumulated over micro-batches and all-reduced, it also drives the skipped-step counters
    of every precision, and on one replica the update is XLA-compiled, which a merge call cannot
    be. So the scale is kept here, and only here.
    """

    GROWTH_INTERVAL = 2000

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.scale = tf.Variable(2.0 ** 15 if enabled else 1.0, trainable=False)
        self.good_steps = tf.Variable(0, dtype=tf.int64, trainable=False)

    def update(self, finite) -> None:
        if not self.enabled:
            self.good_steps.assign(tf.where(finite, self.good_steps + 1, 0))
            return
        grow = finite & (self.good_steps + 1 >= self.GROWTH_INTERVAL)
        self.scale.assign(self.scale * tf.where(finite, tf.where(grow, 2.0, 1.0), 0.5))
        self.good_steps.assign(tf.where(finite & ~grow, self.good_steps + 1, 0))


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
        self.micro_batches_per_step = strategy.num_replicas_in_sync * config.accumulation_steps
        self.noise_off_reason = noise_scale.off_reason(config.noise_scale, self.micro_batches_per_step)
        self.measure_noise = not self.noise_off_reason
        with strategy.scope():
            self.model = model_lib.build_pretrainer(model_config)
            self.variables = _trained_variables(self.model, strategy)
            schedule = WarmupPolynomialDecay(config.learning_rate, config.warmup_steps, config.train_steps,
                                             power=config.decay_power, decay_from=config.decay_from)
            self.optimizer = make_optimizer(config, schedule)
            self.optimizer.build(self.variables)
            counter = lambda: tf.Variable(0, dtype=tf.int64, trainable=False)  # noqa: E731
            self.step, self.skipped, self.skipped_in_a_row = counter(), counter(), counter()
            self.loss_scale = DynamicLossScale(config.precision == "mixed_float16")
            self.noise = noise_scale.NoiseScale()
        state = dict(model=self.model, optimizer=self.optimizer, step=self.step, skipped=self.skipped,
                     skipped_in_a_row=self.skipped_in_a_row, good_in_a_row=self.loss_scale.good_steps,
                     loss_scale=self.loss_scale.scale)
        self.checkpoint = tf.train.Checkpoint(**state, noise_scale=self.noise)
        # What a resume must find whole; the noise scale's averages are read if present, so that
        # checkpoints written before they existed still resume (their averages start again at 0).
        self._required = tf.train.Checkpoint(**state)
        self.manager = checkpoints.manager(self.checkpoint, self.write_dir, config.keep_checkpoints)
        self._generators = [layer._random_generator._generator for layer in self.model.submodules
                            if getattr(getattr(layer, "_random_generator", None), "_generator", None)]
        self._compile()

    def _compile(self) -> None:
        """Which parts of the step XLA compiles, decided here once. TPU compiles the whole step.

        Forward and backward (`_accumulate`): one XLA cluster where there is a GPU, or with
        --xla=on. On CPU, TensorFlow's graph with oneDNN ran a 4-layer BERT about as fast as
        XLA:CPU and its first call took 30 s instead of 47 (benchmarks/train_throughput.py).
        The update (`_apply`): XLA on one replica, on CPU too (fused, it costs a tenth of the
        graph's per-variable ops), unless --xla=off. Across replicas it holds a cross-replica
        merge, which XLA cannot compile.
        """
        xla = self.config.xla == "on" or (self.config.xla == "auto"
                                          and bool(tf.config.list_logical_devices("GPU")))
        if xla:
            self._accumulate = tf.function(self._accumulate, jit_compile=True)
        elif self.config.accumulation_steps > 1:
            # With the accumulation loop inside the step loop, grappler's arithmetic optimizer turns
            # an add tree into a temporary variable that the next host call finds still alive
            # (AlreadyExistsError; 4-layer hidden-256 model at length 128). Off only then: the
            # optimizer is worth ~25% of a step. Process-wide: there is no per-function switch.
            tf.config.optimizer.set_experimental_options({"arithmetic_optimization": False})
        if (self.config.xla != "off" and self.strategy.num_replicas_in_sync == 1
                and not isinstance(self.strategy, tf.distribute.TPUStrategy)):
            self._apply = tf.function(self._apply, jit_compile=True)

    # ----- the step (device side) -----

    @tf.function
    def run_steps(self, iterator, num_steps):
        """Up to `num_steps` steps in one host call; returns sums over the steps applied."""
        first = lambda x: self.strategy.experimental_local_results(x)[0]  # noqa: E731
        totals = {k: tf.constant(0.0) for k in STAT_KEYS}
        for _ in tf.range(num_steps):
            # 1-2. Accumulate and all-reduce: every replica ends with the global batch's gradient
            # (and Σ of its micro-batch gradients' squared norms).
            grads, sums, grad_norm, finite, micro_sq = self.strategy.run(self._replica_gradients,
                                                                          args=(next(iterator),))
            # 3. Finite check: the same on every replica after the all-reduce; one decides for all.
            finite = first(finite)
            # 4. Apply only a finite gradient: a NaN/Inf step is skipped, not taken.
            tf.cond(finite, lambda: self.strategy.run(self._apply, args=(grads,)), lambda: None)
            # 5. Counters: step, skipped steps, the float16 loss scale.
            self.step.assign_add(1)
            self.skipped.assign_add(tf.cast(~finite, tf.int64))
            self.skipped_in_a_row.assign(tf.where(finite, tf.constant(0, tf.int64), self.skipped_in_a_row + 1))
            self.loss_scale.update(finite)
            if self.measure_noise:   # the gradient noise scale's averages, from this step's norms
                self.noise.update(*noise_scale.estimates(
                    first(micro_sq), tf.square(first(grad_norm)),
                    self.micro_batches_per_step, self.micro_batch), finite)
            # Statistics of the steps applied, for the host's log line.
            kept = tf.cast(finite, tf.float32)
            step_stats = {k: first(sums[k]) for k in model_lib.SUM_KEYS} | {
                "grad_norm": first(grad_norm), "steps": tf.constant(1.0)}
            totals = {k: totals[k] + kept * step_stats[k] for k in STAT_KEYS}
            if self.skipped_in_a_row >= self.config.max_consecutive_skips:
                break
        return totals

    def _replica_gradients(self, batch: dict):
        """Replica context: the per-replica batch as micro-batches, their gradients summed here and
        then across replicas; returns (gradients, metric sums, global norm, all finite, Σ over all
        micro-batches of their gradients' squared norms (0 when the noise scale is off))."""
        context = tf.distribute.get_replica_context()
        micro_batches = {k: tf.reshape(v, [self.config.accumulation_steps, self.micro_batch] + v.shape[1:].as_list())
                         for k, v in batch.items()}
        weight_total = context.all_reduce("sum", tf.reduce_sum(batch["masked_lm_weights"]))
        grads, sums, micro_sq = self._accumulate(micro_batches, weight_total,
                                                 tf.constant(float(self.config.global_batch_size)))
        if self.measure_noise:
            grads, sums, micro_sq = context.all_reduce("sum", (grads, sums, micro_sq))
        else:
            grads, sums = context.all_reduce("sum", (grads, sums))
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])
        return grads, sums, tf.linalg.global_norm(grads), finite, micro_sq

    def _accumulate(self, micro_batches: dict, weight_total, examples_total):
        """Σ over micro-batches of d(loss × loss scale)/dw, unscaled; plus the metric sums and, for
        the noise scale, Σ of each micro-batch gradient's squared norm (unscaled, before clipping)."""
        grads = [tf.zeros_like(v) for v in self.variables]
        sums = {k: tf.constant(0.0) for k in model_lib.SUM_KEYS}
        micro_sq = tf.constant(0.0)
        steps = self.config.accumulation_steps
        scale = self.loss_scale.scale
        for i in range(1) if steps == 1 else tf.range(steps):   # no while loop around a single step
            features = {k: v[i] for k, v in micro_batches.items()}
            with tf.GradientTape() as tape:
                outputs = self.model(model_lib.model_inputs(features), training=True)
                step_sums = model_lib.loss_sums(outputs, features)
                loss = model_lib.total_loss(step_sums, weight_total, examples_total) * scale
            step_grads = [tf.convert_to_tensor(s) for s in tape.gradient(loss, self.variables)]
            grads = [g + s for g, s in zip(grads, step_grads)]
            sums = {k: sums[k] + step_sums[k] for k in sums}
            if self.measure_noise:
                micro_sq += noise_scale.squared_norm(step_grads)
        return [g / scale for g in grads], sums, micro_sq / tf.square(scale)

    def _apply(self, grads):
        self.optimizer.apply_gradients(zip(grads, self.variables), skip_gradients_aggregation=True)

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

    def restore(self, log=print) -> int:
        """Resumes from the newest readable checkpoint in model_dir (every worker reads the chief's),
        if any; returns the step reached."""
        path = checkpoints.restore_newest_readable(self._required, self.model_dir, log,
                                                   rewrite_index=self.write_dir == self.model_dir)
        if path:
            tf.train.Checkpoint(noise_scale=self.noise).read(path).expect_partial()
        if path and self.write_dir == self.model_dir and path != self.manager.latest_checkpoint:
            # The index was rewritten without the damaged ones: the manager must forget them too.
            self.manager = checkpoints.manager(self.checkpoint, self.write_dir, self.config.keep_checkpoints)
        return int(self.step.numpy())

    def save(self, log=print) -> str:
        return checkpoints.save(self.manager, int(self.step.numpy()), log)

    def evaluate(self, spec: datasets.DataSpec, log=print) -> dict:
        return self._evaluate_around_damage(spec, log)[0]

    def _evaluate_around_damage(self, spec: datasets.DataSpec, log) -> tuple[dict, datasets.DataSpec]:
        """Held-out metrics, and the spec to use from now on: a read that fails finds the damaged
        file, which is then read up to its damage (data_faults), and the evaluation is redone."""
        try:
            return self._evaluate(spec), spec
        except tf.errors.DataLossError:
            known = data_faults.load(self.model_dir).keys()
            repaired, damage = self._find_damage(spec, "eval_files", log, read_all=True)
            if damage.keys() <= known:
                raise   # no newly damaged file: not a fault of the data
            return self._evaluate(repaired), repaired

    def _evaluate(self, spec: datasets.DataSpec) -> dict:
        dataset = self.strategy.distribute_datasets_from_function(
            datasets.eval_dataset_fn(spec, self.config.global_batch_size))
        totals = None
        for batch in dataset:
            sums = self._eval_step(batch)
            totals = sums if totals is None else {k: totals[k] + sums[k] for k in totals}
        if totals is None:
            raise UsageError("eval_files", "hold fewer records than one global batch", "add files or lower the batch")
        return metrics.means({k: float(v) for k, v in totals.items()})

    def _find_damage(self, spec: datasets.DataSpec, flag: str, log, read_all: bool = False):
        return data_faults.apply(spec, self.model_dir, self.config.max_bad_record_fraction, flag, log,
                                 write=self.write_dir == self.model_dir, read_all=read_all)

    def _training_stream(self, spec: datasets.DataSpec, step: int):
        return iter(self.strategy.distribute_datasets_from_function(datasets.train_dataset_fn(
            spec, self.config.global_batch_size, self.config.seed, consumed_steps=step,
            masking=self.config.masking)))

    def train(self, train: datasets.DataSpec, eval_spec: datasets.DataSpec | None = None,
              log=print) -> dict:
        """Runs to train_steps from wherever model_dir left off. SIGTERM saves and returns early.

        A damaged data file met on the way is read up to its damage from then on, and training
        goes back to the latest checkpoint (ckpt-0 is written at the start for that), so the run
        equals one that skipped the damage from the start: exact resume still holds."""
        config = self.config
        train, damage = self._find_damage(train, "train_files", log)
        if eval_spec is not None:
            eval_spec, _ = self._find_damage(eval_spec, "eval_files", log)
        step = self.restore(log)
        if step:
            log(f"resuming from step {step} ({self.manager.latest_checkpoint})")
        elif not self.manager.latest_checkpoint:
            self.save(log)
        iterator = self._training_stream(train, step)
        writers = metrics.SummaryWriters(self.write_dir)
        self._record_damage(writers, step, damage)
        meter = metrics.Throughput(config.train_steps, config.global_batch_size, train.max_seq_length,
                                   metrics.flops_per_token(self.model_config, train.max_seq_length,
                                                           train.max_predictions_per_seq),
                                   config.peak_tflops * self.strategy.num_replicas_in_sync)
        if self.noise_off_reason:
            log(self.noise_off_reason)
        result = {}
        with _PreemptionFlag() as preempted:
            while step < config.train_steps and not preempted.raised:
                self._reseed_dropout(step)
                count = min(config.steps_per_loop, config.train_steps - step)
                started = time.perf_counter()
                try:
                    totals = {k: float(v) for k, v in self.run_steps(iterator, tf.constant(count)).items()}
                except tf.errors.DataLossError:
                    known = damage
                    train, damage = self._find_damage(train, "train_files", log, read_all=True)
                    if damage.keys() <= known.keys():
                        raise   # no newly damaged file: not a fault of the data
                    step = self.restore(log)
                    log(f"data: back to step {step} ({self.manager.latest_checkpoint}), reading past the damage")
                    self._record_damage(writers, step, damage)
                    iterator = self._training_stream(train, step)
                    continue
                step = int(self.step.numpy())
                result = self._loop_result(totals) | meter.update(step, count, time.perf_counter() - started)
                writers.write("train", step, result)
                log(metrics.progress_line(step, config.train_steps, result))
                self._stop_if_diverged(step)
                if eval_spec and config.eval_every and step % config.eval_every == 0 and step < config.train_steps:
                    held_out, eval_spec = self._evaluate_around_damage(eval_spec, log)
                    writers.write("eval", step, held_out)
                if config.checkpoint_every and step % config.checkpoint_every == 0:
                    self.save(log)
            if preempted.raised:
                if not self._saved_at(step):   # a checkpoint written as the signal came is not redone
                    self.save(log)
                log(f"SIGTERM: saved {self.manager.latest_checkpoint} at step {step}; restart with the same "
                    "flags to resume")
                return result
        if not self._saved_at(step):
            self.save(log)
        if eval_spec:
            held_out, eval_spec = self._evaluate_around_damage(eval_spec, log)
            writers.write("eval", step, held_out)
            result |= {f"eval_{k}": v for k, v in held_out.items()}
        return result

    @staticmethod
    def _record_damage(writers: metrics.SummaryWriters, step: int, damage: dict) -> None:
        if damage:
            writers.write("train", step, {"unreadable_records": sum(d.lost for d in damage.values())})

    def _saved_at(self, step: int) -> bool:
        return self.manager.latest_checkpoint == os.path.join(self.write_dir, f"ckpt-{step}")

    def _loop_result(self, totals: dict) -> dict:
        """What one host call reports: means over its applied steps and the run's state."""
        result = metrics.means(totals) | {"learning_rate": float(self.optimizer.learning_rate.numpy()),
                                          "skipped_steps": int(self.skipped.numpy()),
                                          "loss_scale": float(self.loss_scale.scale.numpy())}
        if hasattr(self.optimizer, "trust_ratios"):
            result |= metrics.trust_ratio_summary(self.optimizer.trust_ratios())
        if self.measure_noise:
            result |= self.noise.values()
        return result

    def _stop_if_diverged(self, step: int) -> None:
        if int(self.skipped_in_a_row.numpy()) >= self.config.max_consecutive_skips:
            raise NonFiniteError(
                f"stopped at step {step}: {self.config.max_consecutive_skips} consecutive steps had "
                f"non-finite gradients; the last good checkpoint is {self.manager.latest_checkpoint}; "
                "lower --learning_rate, set --clip_norm or check the data")


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
            raise UsageError("model_dir", f"{model_dir} holds a checkpoint of another model ({changed})",
                             "use a new --model_dir or the same model flags")
        return
    tf.io.gfile.makedirs(model_dir)
    atomic.write_text(path, json.dumps(wanted, indent=1, sort_keys=True) + "\n")

