"""Runs a plan's phases one after another under one model_dir.

Phase k trains in `model_dir/<phase name>` with its own checkpoints, starts from phase k-1's final
weights (and moments, if the plan carries them) and warms its learning rate up again from zero, as
the paper does at the start of phase 2. A finished phase leaves a `DONE` file, so a run killed
anywhere resumes where it stopped: inside a phase from that phase's last checkpoint, at a boundary
with the next phase.
"""

import json
import os

import tensorflow as tf

from bert_pretrain import atomic, plans
from bert_pretrain import config as config_lib
from bert_pretrain import job as job_lib
from bert_pretrain.checkpoint_formats import google_research
from bert_pretrain.config import MAX_POSITION, TrainConfig
from bert_pretrain.batch_size import noise_scale
from bert_pretrain.errors import UsageError
from bert_pretrain.trainer import Trainer
from lamb_tf.tf_keras import WarmupPolynomialDecay

DONE = "DONE"


def phase_dir(model_dir: str, phase: plans.Phase) -> str:
    return os.path.join(model_dir, phase.name)


def _data(data_dir: str, subdir: str, phase: plans.Phase):
    return job_lib.data_from_globs(os.path.join(data_dir, subdir, "*.tfrecord"), phase.max_seq_length,
                        phase.max_predictions_per_seq, "data_dir")


def _model_config(plan: plans.Plan, vocab_size: int, init_from: str = "") -> config_lib.ModelConfig:
    """The plan's model; with `init_from` (a google-research checkpoint) the checkpoint's, which the
    plan's sizes must agree with."""
    planned = config_lib.from_preset(plan.model, vocab_size, plan.dropout, num_layers=plan.num_layers or None,
                                     hidden_size=plan.hidden_size or None, num_heads=plan.num_heads or None)
    if not init_from:
        return planned
    config = google_research.model_config(init_from, plan.dropout)
    google_research.check_sizes(config, planned.to_dict(), plan=plan.name)
    return config


def check_start(plan: plans.Plan, init_from: str):
    """Before any data is made: the google-research checkpoint the plan starts from fits the plan;
    returns its vocab record (the data must be made with that vocab)."""
    record = google_research.vocab(init_from)
    _model_config(plan, record.size, init_from)
    return record


def _mark_done(directory: str, result: dict) -> None:
    """Written atomically: a DONE file is always whole."""
    atomic.write_text(os.path.join(directory, DONE),
                      json.dumps(result, indent=1, sort_keys=True, default=float) + "\n")


def _start_from(trainer: Trainer, checkpoint: str, carry_optimizer_state: bool,
                copy_positions_from: int = 0) -> None:
    """Phase k's first step: phase k-1's weights (and moments), a fresh step count and schedule;
    with `copy_positions_from` L, positions from L on start as copies of the first L."""
    objects = {"model": trainer.model}
    if carry_optimizer_state:
        objects["optimizer"] = trainer.optimizer
    tf.train.Checkpoint(**objects).read(checkpoint).expect_partial()
    trainer.optimizer.iterations.assign(0)   # the schedule restarts: re-warm-up from zero
    if copy_positions_from:
        copy_trained_positions(trainer.model, copy_positions_from)


def copy_trained_positions(model, trained_length: int) -> None:
    """Position p >= trained_length, which no earlier phase reached, takes the embedding of position
    p mod trained_length instead of its random initialisation, as Longformer extended RoBERTa's
    positions (Beltagy et al. 2020, section 5). Meant for a phase 2 too short to learn them;
    docs/demo.md measures what it did for the demo."""
    table = position_table(model)
    table.assign(tf.gather(table, tf.range(table.shape[0]) % trained_length))


def position_table(model) -> tf.Variable:
    """The encoder's position embeddings, [MAX_POSITION, hidden]."""
    return next(v for v in model.encoder_network.variables if "position_embedding" in v.name)


def run_plan(plan: plans.Plan, data_dir: str, model_dir: str, strategy, micro_batch_size: int,
             training: dict | None = None, log=print, init_from: str = "") -> list:
    """Trains every phase not yet done; returns each phase's final metrics. `training` holds
    TrainConfig fields a phase does not set (steps_per_loop, precision, seed, ...), over the plan's
    [engine] table; micro_batch_size 0 means no accumulation. Returns early (preemption) when a
    phase stops before its last step. `init_from`: a google-research checkpoint the first phase
    starts from."""
    replicas = strategy.num_replicas_in_sync
    fitted = [plans.fit(phase, replicas, micro_batch_size or phase.global_batch_size // replicas)
              for phase in plan.phases]
    for fit in fitted:   # print what was derived before anything starts
        log(fit.describe())
    train_data = [_data(data_dir, p.data, p) for p in plan.phases]
    vocab_sizes = {spec.vocab_size for spec in train_data}
    if len(vocab_sizes) != 1 or None in vocab_sizes:
        raise UsageError("data_dir", f"the phases' metadata.json give vocab sizes {vocab_sizes}",
                         "make every phase's data with the same vocab (bert-pretrain-data "
                         "--vocab_file)")
    model_config = _model_config(plan, vocab_sizes.pop(), init_from)
    results, previous = [], None
    trained_length = MAX_POSITION if init_from else 0   # positions trained so far: 0 to this
    for fit, train_spec in zip(fitted, train_data):
        phase = fit.phase
        copy_from = trained_length if plan.copy_positions and trained_length < phase.max_seq_length else 0
        trained_length = max(trained_length, phase.max_seq_length)
        directory = phase_dir(model_dir, phase)
        done_path = os.path.join(directory, DONE)
        if tf.io.gfile.exists(done_path):
            log(f"{phase.name}: already done ({done_path})")
            with tf.io.gfile.GFile(done_path) as handle:
                results.append(json.load(handle))
            previous = tf.train.latest_checkpoint(directory)
            continue
        eval_spec = _data(data_dir, phase.eval_data, phase) if phase.eval_data else None
        train_config = TrainConfig(
            train_steps=phase.train_steps, global_batch_size=phase.global_batch_size,
            learning_rate=phase.learning_rate, warmup_steps=phase.warmup_steps,
            decay_power=phase.decay_power, decay_from=phase.decay_from, clip_norm=phase.clip_norm,
            accumulation_steps=fit.accumulation_steps, **phase_training(plan, phase, training))
        first = fit is fitted[0]
        trainer = job_lib.build_trainer(job_lib.Job(model_config, train_config, directory, train_spec, eval_spec,
                                                    "data_dir", "data_dir", init_from if first else ""), strategy)
        if previous and not trainer.manager.latest_checkpoint:
            log(f"{phase.name}: starting from {previous}")
            _start_from(trainer, previous, plan.carry_optimizer_state, copy_from)
            if copy_from:
                log(f"{phase.name}: positions {copy_from} to {MAX_POSITION - 1} start as copies of "
                    f"0 to {copy_from - 1}")
        result = trainer.train(train_spec, eval_spec, log=log)
        if int(trainer.step.numpy()) < phase.train_steps:
            return results   # preempted: the checkpoint is saved, a restart resumes here
        if "b_simple" in result:
            log(f"{phase.name}: {noise_scale.reading(phase.global_batch_size, result['b_simple'])}")
        if fit is fitted[-1]:
            result |= _final_on_earlier_phases(trainer, plan, data_dir, log)
        _mark_done(directory, result)
        results.append(result)
        previous = trainer.manager.latest_checkpoint
    return results


def phase_training(plan: plans.Plan, phase: plans.Phase, training: dict | None) -> dict:
    """A phase's loop settings: the plan's [engine] table, then what the phase sets itself
    (masking), then the flags a run was given, each over the one before."""
    own = {"masking": phase.masking} if phase.masking else {}
    return {**(plan.engine or {}), **own, **(training or {})}


def _final_on_earlier_phases(trainer: Trainer, plan: plans.Plan, data_dir: str, log) -> dict:
    """The final model on every earlier phase's held-out records: whether a later phase (longer
    sequences, fewer of them) undid what an earlier one learned. Keys eval_<phase>_<metric>."""
    result = {}
    for phase in plan.phases[:-1]:
        if phase.eval_data:
            held_out = trainer.evaluate(_data(data_dir, phase.eval_data, phase), log)
            result |= {f"eval_{phase.name}_{k}": v for k, v in held_out.items()}
    return result


def learning_rate_curve(plan: plans.Plan) -> list:
    """(global step, learning rate) over all phases, from each phase's schedule: for plots."""
    curve, offset = [], 0
    for phase in plan.phases:
        schedule = WarmupPolynomialDecay(phase.learning_rate, phase.warmup_steps, phase.train_steps,
                                         power=phase.decay_power, decay_from=phase.decay_from)
        steps = tf.range(phase.train_steps)
        curve += list(zip(range(offset, offset + phase.train_steps),
                          schedule(steps).numpy().tolist()))
        offset += phase.train_steps
    return curve

