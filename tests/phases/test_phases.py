"""Two phases in one model_dir: phase 2 starts from phase 1's weights with a fresh schedule,
positions are sized 512 from phase 1 on, and a restart at the boundary changes nothing."""

import os
import sys

import numpy as np
import pytest
import tensorflow as tf

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "training"))
import training_helpers  # noqa: E402

from bert_pretrain import phases, plans  # noqa: E402

PLAN = """
name = "test"
model = "tiny"
num_layers = 1
hidden_size = 32
num_heads = 2
carry_optimizer_state = {carry}

[[phases]]
name = "phase1"
data = "seq16"
max_seq_length = 16
max_predictions_per_seq = 4
global_batch_size = 8
train_steps = 4
learning_rate = 1e-2
warmup_steps = 2
eval_data = "seq16"
{extra}
"""
PHASE_TWO = """
[[phases]]
name = "phase2"
data = "seq32"
max_seq_length = 32
max_predictions_per_seq = 4
global_batch_size = 8
train_steps = 3
learning_rate = 5e-3
warmup_steps = 1
"""
TRAINING = {"steps_per_loop": 1, "checkpoint_every": 1, "seed": 7}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    training_helpers.write_shards(str(root / "seq16"), seq=16, pred=4, seed=1)
    training_helpers.write_shards(str(root / "seq32"), seq=32, pred=4, seed=2)
    return str(root)


def plan(tmp_path, carry=False, two_phases=True):
    path = tmp_path / f"plan-{carry}-{two_phases}.toml"
    path.write_text(PLAN.format(carry=str(carry).lower(), extra=PHASE_TWO if two_phases else ""))
    return plans.load_plan(str(path))


def run(tmp_path, data_dir, model_dir, **kwargs):
    return phases.run_plan(plan(tmp_path, **kwargs), data_dir, str(model_dir),
                           tf.distribute.get_strategy(), micro_batch_size=8, training=TRAINING,
                           log=lambda line: None)


def checkpoint_values(directory, contains):
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(directory)))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if contains in name and "OPTIMIZER_SLOT" not in name and "optimizer" not in name}


def test_phases_chain_and_restart_at_the_boundary(tmp_path, data_dir):
    straight = tmp_path / "straight"
    results = run(tmp_path, data_dir, straight)
    assert len(results) == 2
    assert all(os.path.exists(straight / name / phases.DONE) for name in ("phase1", "phase2"))
    # Position embeddings are 512 long from phase 1 on, so phase 2 (and fine-tuning) can load them.
    positions = checkpoint_values(straight / "phase1", "position_embedding")
    assert positions and all(v.shape[0] == 512 for v in positions.values())

    # Killed at the boundary: phase 1 alone, then the whole plan in the same model_dir.
    restarted = tmp_path / "restarted"
    run(tmp_path, data_dir, restarted, two_phases=False)
    assert not os.path.exists(restarted / "phase2")
    run(tmp_path, data_dir, restarted)
    final, again = (checkpoint_values(d / "phase2", "model") for d in (straight, restarted))
    assert final.keys() == again.keys() and final
    for name in final:
        np.testing.assert_array_equal(final[name], again[name], err_msg=name)


def test_the_final_model_is_scored_on_phase_ones_held_out_records(tmp_path, data_dir):
    """Whether phase 2 undid phase 1 shows only if the final model meets phase 1's records."""
    model_dir = tmp_path / "model"
    results = run(tmp_path, data_dir, model_dir)
    two = plan(tmp_path)
    spec = phases._data(data_dir, "seq16", two.phases[0])
    scorer = phases.Trainer(phases._model_config(two, spec.vocab_size),
                            phases.TrainConfig(train_steps=1, global_batch_size=8, learning_rate=1e-3,
                                               warmup_steps=0, **TRAINING),
                            tf.distribute.get_strategy(), str(tmp_path / "scorer"))
    scores = {}
    for name in ("phase1", "phase2"):
        tf.train.Checkpoint(model=scorer.model).read(tf.train.latest_checkpoint(str(model_dir / name))).expect_partial()
        scores[name] = scorer.evaluate(spec, log=lambda line: None)
    assert results[0]["eval_mlm_loss"] == pytest.approx(scores["phase1"]["mlm_loss"], rel=1e-5)
    assert scores["phase1"]["mlm_loss"] != pytest.approx(scores["phase2"]["mlm_loss"], rel=1e-5)
    for metric in ("mlm_loss", "mlm_accuracy", "nsp_loss", "nsp_accuracy"):
        assert results[1][f"eval_phase1_{metric}"] == pytest.approx(scores["phase2"][metric], rel=1e-5)
    assert "eval_phase2_mlm_loss" not in results[1]   # phase 2 itself has no held-out data here


def test_copy_positions_starts_the_new_positions_as_copies(tmp_path, data_dir, monkeypatch):
    """copy_positions: phase 2 (length 32, after 16) starts with position p holding phase 1's
    position p mod 16; positions 0-15 keep phase 1's values."""
    seen = []

    def recording(model, trained_length):
        table = phases.position_table(model)
        before = table.numpy()
        copy(model, trained_length)
        seen.append((trained_length, before, table.numpy()))

    copy = phases.copy_trained_positions
    monkeypatch.setattr(phases, "copy_trained_positions", recording)
    path = tmp_path / "plan.toml"
    path.write_text(PLAN.format(carry="false", extra=PHASE_TWO).replace(
        "carry_optimizer_state = false", "carry_optimizer_state = false\ncopy_positions = true"))
    model_dir = tmp_path / "model"
    phases.run_plan(plans.load_plan(str(path)), data_dir, str(model_dir), tf.distribute.get_strategy(),
                    micro_batch_size=8, training=TRAINING, log=lambda line: None)
    [(trained_length, before, after)] = seen
    [trained] = checkpoint_values(model_dir / "phase1", "position_embedding").values()
    assert trained_length == 16 and after.shape == (512, 32)
    np.testing.assert_array_equal(before, trained)          # phase 1's weights were loaded first
    np.testing.assert_array_equal(after[:16], trained[:16])
    np.testing.assert_array_equal(after, trained[np.arange(512) % 16])
    assert not np.array_equal(after[16:32], trained[16:32])


@pytest.mark.parametrize("carry", [False, True])
def test_phase_two_starts_from_phase_one(tmp_path, data_dir, carry):
    model_dir = tmp_path / "model"
    run(tmp_path, data_dir, model_dir, carry=carry, two_phases=False)
    two = plan(tmp_path, carry=carry)
    fitted = plans.fit(two.phases[1], 1, 8)
    spec = phases._data(data_dir, "seq32", two.phases[1])
    trainer = phases.Trainer(
        phases._model_config(two, spec.vocab_size),
        phases.TrainConfig(train_steps=3, global_batch_size=8, learning_rate=5e-3, warmup_steps=1,
                           accumulation_steps=fitted.accumulation_steps, **TRAINING),
        tf.distribute.get_strategy(), str(tmp_path / "phase2"))
    previous = tf.train.latest_checkpoint(str(model_dir / "phase1"))
    phases._start_from(trainer, previous, carry)
    reader = tf.train.load_checkpoint(previous)
    by_shape = {}
    for name, shape in reader.get_variable_to_shape_map().items():
        if name.startswith("model/") and "OPTIMIZER_SLOT" not in name:
            by_shape.setdefault(tuple(shape), []).append(reader.get_tensor(name))
    for variable in trainer.model.trainable_variables:
        candidates = by_shape.get(tuple(variable.shape), [])
        assert any(np.array_equal(variable.numpy(), c) for c in candidates), variable.name
    assert int(trainer.optimizer.iterations.numpy()) == 0   # the schedule warms up again
    slots = [v for v in trainer.optimizer.variables if "iteration" not in v.name and v.shape.rank]
    moved = any(np.abs(v.numpy()).sum() > 0 for v in slots)
    assert moved == carry


def test_learning_rate_warms_up_again_at_phase_two(tmp_path):
    curve = dict(phases.learning_rate_curve(plan(tmp_path)))
    assert curve[0] == 0.0 and curve[1] == pytest.approx(5e-3)   # phase 1: warmup 2 to 1e-2
    assert curve[2] == pytest.approx(1e-2)
    assert curve[3] < curve[2]                                     # decaying
    assert curve[4] == 0.0                                         # phase 2, step 0: from zero
    assert curve[5] == pytest.approx(5e-3)                         # its peak after 1 warmup step
    assert curve[6] < curve[5]
