"""The gradient noise scale against known answers: linear regression with Gaussian noise, where
|G|² and tr(Σ) follow from the model; the trainer's estimate against gradients taken here; the same
estimate from accumulation as from replicas; and what `bert-pretrain run` prints."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from bert_pretrain import config as config_lib
from bert_pretrain import datasets, phases, plans
from bert_pretrain import model as model_lib
from bert_pretrain import trainer as trainer_lib
from bert_pretrain.batch_size import noise_scale
from bert_pretrain.config import TrainConfig
from training_helpers import PRED, SEQ, VOCAB, write_shards

MODEL = config_lib.ModelConfig(VOCAB, num_layers=1, hidden_size=32, num_heads=2, dropout=0.0)


def regression_truth(scales, delta, sigma):
    """y = x·w* + ε, x ~ N(0, C = diag(scales)), ε ~ N(0, σ²), loss ½(x·w − y)², w = w* + δ.
    One example's gradient is g = x (x·δ − ε), so G = E g = C δ and, by Isserlis' theorem
    (E[x xᵀ (xᵀδ)²] = (δᵀCδ) C + 2 CδδᵀC), Σ = E g gᵀ − G Gᵀ = (δᵀCδ + σ²) C + C δ δᵀ C:
    tr(Σ) = tr(C) (δᵀCδ + σ²) + |Cδ|², |G|² = |Cδ|²."""
    c_delta = scales * delta
    gradient_sq = float(c_delta @ c_delta)
    trace = float(scales.sum() * (delta @ c_delta + sigma ** 2) + gradient_sq)
    return gradient_sq, trace


def test_regression_truth_by_sampling():
    """The closed form above against per-example gradients drawn in float64."""
    rng = np.random.default_rng(3)
    scales, delta, sigma = np.array([0.5, 1.0, 2.0]), np.array([0.3, -0.7, 0.4]), 1.5
    x = rng.normal(size=(400_000, 3)) * np.sqrt(scales)
    g = x * (x @ delta - sigma * rng.normal(size=400_000))[:, None]
    gradient_sq, trace = regression_truth(scales, delta, sigma)
    assert np.sum(g.mean(0) ** 2) == pytest.approx(gradient_sq, rel=0.03)
    assert np.trace(np.cov(g.T)) == pytest.approx(trace, rel=0.01)


@pytest.mark.parametrize("sigma", [0.5, 4.0])
def test_linear_regression_mean_estimate_is_the_analytic_noise_scale(sigma):
    """Steps of batch 64 as 4 accumulated micro-batches of 16, gradients by TensorFlow's autodiff
    of each micro-batch's share of the batch-mean loss (as the trainer accumulates); the mean of the
    per-step estimates is within 10% of the analytic |G|², tr(Σ) and B_simple. The two noise levels
    put B_simple below the micro-batch (~8) and between the two batch sizes (~80)."""
    steps, micro_batches, micro = 8000, 4, 16
    scales = np.array([0.5, 1.0, 1.5, 2.0, 0.8, 1.2])
    rng = np.random.default_rng(int(sigma * 10))
    w_star, delta = rng.normal(size=6), np.array([0.4, -0.5, 0.3, 0.2, -0.6, 0.1])
    x = rng.normal(size=(steps, micro_batches, micro, 6)) * np.sqrt(scales)
    y = x @ w_star + sigma * rng.normal(size=(steps, micro_batches, micro))
    # One copy of w per (step, micro-batch): the gradient with respect to each copy is that
    # micro-batch's gradient, all in one tape call.
    w = tf.Variable(np.broadcast_to(w_star + delta, (steps, micro_batches, 6)).astype(np.float32))
    with tf.GradientTape() as tape:
        residual = tf.einsum("skbd,skd->skb", tf.constant(x, tf.float32), w) - tf.constant(y, tf.float32)
        loss = tf.reduce_sum(0.5 * tf.square(residual)) / (micro_batches * micro)   # the batch-mean loss
    micro_grads = tape.gradient(loss, w)
    micro_sq = tf.reduce_sum(tf.square(micro_grads), axis=[1, 2])
    global_sq = tf.reduce_sum(tf.square(tf.reduce_sum(micro_grads, axis=1)), axis=1)
    gradient_sq, trace = noise_scale.estimates(micro_sq, global_sq, micro_batches, micro)
    want_gradient_sq, want_trace = regression_truth(scales, delta, sigma)
    got_gradient_sq, got_trace = float(np.mean(gradient_sq)), float(np.mean(trace))
    assert got_gradient_sq == pytest.approx(want_gradient_sq, rel=0.1)
    assert got_trace == pytest.approx(want_trace, rel=0.1)
    assert got_trace / got_gradient_sq == pytest.approx(want_trace / want_gradient_sq, rel=0.1)


def test_averages_are_bias_corrected_and_skip_skipped_steps():
    """Averages of |G|² and tr(Σ), not of the ratio: B_simple of two steps (1, 10) and (3, 2) is
    the ratio of the means 12/4 = 3 weighted by the EMA, never the mean of 10 and 2/3."""
    average = noise_scale.NoiseScale()
    assert average.values() == {}
    average.update(tf.constant(1.0), tf.constant(10.0), tf.constant(True))
    assert average.values()["b_simple"] == pytest.approx(10.0)   # bias-corrected: the step itself
    average.update(tf.constant(np.nan), tf.constant(np.nan), tf.constant(False))   # skipped
    average.update(tf.constant(3.0), tf.constant(2.0), tf.constant(True))
    d = noise_scale.DECAY
    weight = 1 - d ** 2
    gradient_sq, trace = (d * (1 - d) * 1 + (1 - d) * 3) / weight, (d * (1 - d) * 10 + (1 - d) * 2) / weight
    got = average.values()
    assert got["noise_gradient_sq"] == pytest.approx(gradient_sq, rel=1e-5)
    assert got["b_simple"] == pytest.approx(trace / gradient_sq, rel=1e-5)
    average.update(tf.constant(-50.0), tf.constant(5.0), tf.constant(True))   # |G|² average ≤ 0
    assert "b_simple" not in average.values()


def test_readings_name_the_regime():
    assert "far above it" in noise_scale.reading(4096, 100.0)
    assert "far below it" in noise_scale.reading(32, 1000.0)
    assert "near it" in noise_scale.reading(256, 200.0)
    assert noise_scale.off_reason(True, 4) == ""
    assert "--accumulation_steps" in noise_scale.off_reason(True, 1)
    assert "--noise_scale=false" in noise_scale.off_reason(False, 8)


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    return datasets.data_spec(tuple(write_shards(str(tmp_path_factory.mktemp("data")), files=2, records=32)),
                              SEQ, PRED)


def make(model_dir, **overrides):
    settings = dict(train_steps=1, global_batch_size=8, learning_rate=1e-3, warmup_steps=0, steps_per_loop=1,
                    checkpoint_every=0, seed=7, accumulation_steps=4)
    settings.update(overrides)
    return trainer_lib.Trainer(MODEL, TrainConfig(**settings), tf.distribute.get_strategy(), str(model_dir))


def test_the_trainers_step_estimate_from_gradients_taken_here(tmp_path, spec):
    """One step of 4 micro-batches of 2: the trainer's estimate equals Appendix A's formulas in
    float64 on each micro-batch's gradient of its share of the batch loss, taken here. Under
    float16 (loss scale 2^15) the estimate is the same within rounding: the norms are unscaled."""
    batch = {k: v.numpy() for k, v in next(iter(
        datasets.train_dataset_fn(spec, 8, seed=1)(tf.distribute.InputContext()))).items()}
    trainer = make(tmp_path / "f32")
    weight_total, examples = batch["masked_lm_weights"].sum(), 8.0
    micro = []
    for i in range(4):
        features = {k: tf.constant(v[2 * i:2 * i + 2]) for k, v in batch.items()}
        with tf.GradientTape() as tape:
            sums = model_lib.loss_sums(trainer.model(model_lib.model_inputs(features), training=True), features)
            loss = sums["mlm_loss"] / weight_total + sums["nsp_loss"] / examples
        micro.append(np.concatenate([np.ravel(tf.convert_to_tensor(g).numpy()).astype(np.float64)
                                     for g in tape.gradient(loss, trainer.variables)]))
    micro = np.array(micro)
    small = np.mean([np.sum((4 * g) ** 2) for g in micro])      # |G_b|², b = 2
    big = np.sum(micro.sum(0) ** 2)                              # |G_B|², B = 8
    want_gradient_sq = (8 * big - 2 * small) / 6
    want_trace = (small - big) / (1 / 2 - 1 / 8)

    def one_step(trainer):
        dataset = tf.data.Dataset.from_tensors({k: tf.constant(v) for k, v in batch.items()}).repeat()
        trainer.run_steps(iter(tf.distribute.get_strategy().experimental_distribute_dataset(dataset)),
                          tf.constant(1))
        return trainer.noise.values()

    got = one_step(trainer)
    assert got["noise_gradient_sq"] == pytest.approx(want_gradient_sq, rel=1e-3)
    assert got["noise_trace"] == pytest.approx(want_trace, rel=1e-4)
    try:
        float16 = make(tmp_path / "f16", precision="mixed_float16")
        assert float(float16.loss_scale.scale.numpy()) == 2.0 ** 15
        half = one_step(float16)
    finally:
        tf_keras.mixed_precision.set_global_policy("float32")
    assert half["noise_trace"] == pytest.approx(want_trace, rel=0.05)


REPLICAS = """
import json, sys
import tensorflow as tf
from bert_pretrain import strategy, datasets
strategy.split_cpu(2)
from bert_pretrain import config as config_lib, trainer as trainer_lib
from bert_pretrain.config import TrainConfig
spec = datasets.data_spec(tuple(sys.argv[1:3]), 16, 4)
model = config_lib.ModelConfig(120, num_layers=1, hidden_size=32, num_heads=2, dropout=0.0)
out = {}
for name, accumulation, chosen in (("accumulation", 2, tf.distribute.get_strategy()),
                                   ("replicas", 1, tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))):
    config = TrainConfig(train_steps=4, global_batch_size=8, learning_rate=1e-3, warmup_steps=1,
                         steps_per_loop=2, checkpoint_every=0, seed=7, accumulation_steps=accumulation)
    trainer = trainer_lib.Trainer(model, config, chosen, sys.argv[3] + "/" + name)
    lines = []
    result = trainer.train(spec, log=lines.append)
    out[name] = {"values": trainer.noise.values(), "lines": lines, "replicas": chosen.num_replicas_in_sync}
print(json.dumps(out))
"""


def test_accumulation_and_replicas_give_the_same_estimate(tmp_path, spec):
    """Two micro-batches of 4 accumulated on one device, or one on each of 2 replicas
    (MirroredStrategy on 2 logical CPUs): the same records, so the same estimates; logged on the
    progress line and to TensorBoard."""
    run = subprocess.run([sys.executable, "-c", REPLICAS, *spec.files, str(tmp_path)], capture_output=True,
                         text=True, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    accumulated, replicated = out["accumulation"], out["replicas"]
    assert replicated["replicas"] == 2
    for key in noise_scale.KEYS:
        assert replicated["values"][key] == pytest.approx(accumulated["values"][key], rel=1e-4), key
    assert f"B_simple {accumulated['values']['b_simple']:.4g}" in accumulated["lines"][-1]
    from test_trainer import summaries
    assert set(noise_scale.KEYS) <= summaries(tmp_path / "accumulation" / "train")


PLAN = """
name = "noise"
model = "tiny"
num_layers = 1
hidden_size = 32
num_heads = 2

[[phases]]
name = "phase1"
data = "seq16"
max_seq_length = 16
max_predictions_per_seq = 4
global_batch_size = 8
train_steps = 2
learning_rate = 1e-3
warmup_steps = 1

[[phases]]
name = "phase2"
data = "seq16"
max_seq_length = 16
max_predictions_per_seq = 4
global_batch_size = 4
train_steps = 1
learning_rate = 1e-3
warmup_steps = 0
"""


def test_a_run_prints_the_noise_scale_after_each_measured_phase(tmp_path, spec):
    """Micro-batches of 4: phase 1 (batch 8) is measured and its B_simple printed next to its
    batch; phase 2 (batch 4, one micro-batch) says in one line why it is not."""
    data = tmp_path / "data" / "seq16"
    os.makedirs(data)
    write_shards(str(data), files=2, records=32)
    (tmp_path / "plan.toml").write_text(PLAN)
    lines = []
    results = phases.run_plan(plans.load_plan(str(tmp_path / "plan.toml")), str(tmp_path / "data"),
                              str(tmp_path / "model"), tf.distribute.get_strategy(), micro_batch_size=4,
                              training={"steps_per_loop": 1, "checkpoint_every": 0}, log=lines.append)
    printed = [line for line in lines if "gradient noise scale" in line]
    assert printed == [f"phase1: {noise_scale.reading(8, results[0]['b_simple'])}"]
    assert sum(line.startswith("noise scale: off, a step has one micro-batch") for line in lines) == 1


def test_a_checkpoint_without_the_averages_still_resumes(tmp_path, spec):
    """Checkpoints written before the noise scale existed hold no `noise_scale` entry: a run resumes
    from them (averages start again at 0), and from its own checkpoints with the averages restored."""
    first = make(tmp_path / "run")
    first.train(spec, log=lambda line: None)
    saved = first.noise.values()
    assert saved["noise_trace"] != 0
    old_layout = tmp_path / "old"
    manager = tf.train.CheckpointManager(first._required, str(old_layout), 1)
    manager.save(checkpoint_number=1)
    resumed = make(old_layout)
    assert resumed.restore(log=lambda line: None) == 1 and resumed.noise.values() == {}
    again = make(tmp_path / "run")
    assert again.restore(log=lambda line: None) == 1 and again.noise.values() == saved
