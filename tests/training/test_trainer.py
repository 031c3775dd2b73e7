"""The training step against invariants: accumulation equals one big batch, a non-finite step leaves
weights and slots untouched, repeated ones stop the run with the last good checkpoint intact."""


import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from bert_pretrain import config as config_lib
from bert_pretrain import datasets
from bert_pretrain.config import OPTIMIZERS, TrainConfig
from bert_pretrain import trainer as trainer_lib
from bert_pretrain.errors import UsageError
from training_helpers import PRED, SEQ, VOCAB, write_shards

MODEL = config_lib.ModelConfig(VOCAB, num_layers=2, hidden_size=32, num_heads=2, dropout=0.0)


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    return datasets.data_spec(tuple(write_shards(str(tmp_path_factory.mktemp("data")), files=2, records=48)), SEQ, PRED)


def make(model_dir, model=MODEL, **overrides):
    settings = dict(train_steps=3, global_batch_size=8, learning_rate=2e-3, warmup_steps=1, steps_per_loop=3,
                    checkpoint_every=3, seed=7)
    settings.update(overrides)
    return trainer_lib.Trainer(model, TrainConfig(**settings), tf.distribute.get_strategy(),
                               str(model_dir))


def weights(trainer):
    return [v.numpy() for v in trainer.variables]


def test_accumulation_equals_one_big_batch(tmp_path, spec):
    big = make(tmp_path / "big", accumulation_steps=1)
    initial = weights(big)
    lines = []
    result = big.train(spec, eval_spec=spec, log=lines.append)
    assert result["eval_mlm_loss"] > 0 and 0 <= result["eval_nsp_accuracy"] <= 1
    assert lines[-1].startswith("step 3/3 | mlm ") and "lr " in lines[-1]
    assert {"mlm_loss", "nsp_accuracy", "learning_rate", "grad_norm", "trust_ratio_median"} <= summaries(
        tmp_path / "big" / "train") and "mlm_accuracy" in summaries(tmp_path / "big" / "eval")
    accumulated = make(tmp_path / "acc", accumulation_steps=4)   # 4 micro-batches of 2
    assert all(np.array_equal(a, b) for a, b in zip(initial, weights(accumulated)))
    accumulated.train(spec, log=lambda line: None)
    moved = max(float(np.max(np.abs(a - b))) for a, b in zip(initial, weights(big)))
    assert moved > 1e-3
    for a, b in zip(weights(big), weights(accumulated)):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)


def summaries(directory):
    """Scalar tags in a TensorBoard log directory."""
    tags = set()
    for path in directory.glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            tags |= {value.tag for value in event.summary.value}
    return tags


def batches_of(spec, poisoned_rows=(), count=2):
    """Real global batches; rows listed get masked_lm_weights = inf (so the loss is NaN)."""
    dataset = datasets.train_dataset_fn(spec, 8, seed=1)(tf.distribute.InputContext()).take(count)
    batches = [{k: v.numpy() for k, v in b.items()} for b in dataset]
    for index, row in poisoned_rows:
        batches[index]["masked_lm_weights"][row] = np.inf
    return tf.distribute.get_strategy().distribute_datasets_from_function(
        lambda context: tf.data.Dataset.from_tensor_slices(
            {k: np.stack([b[k] for b in batches]) for k in batches[0]}))


def test_non_finite_steps_below_the_limit_are_skipped_and_counted(tmp_path, spec):
    trainer = make(tmp_path, max_consecutive_skips=3)
    iterator = iter(batches_of(spec, poisoned_rows=[(0, 3), (1, 0)], count=3))
    state = lambda: weights(trainer) + [v.numpy() for v in trainer.optimizer.variables]  # noqa: E731
    before = state()
    totals = trainer.run_steps(iterator, tf.constant(2))      # two NaN steps in a row, the limit is 3
    after = state()
    assert all(np.array_equal(a, b) for a, b in zip(before, after))   # weights, slots, iterations
    assert (int(trainer.step.numpy()), int(trainer.skipped.numpy()), int(trainer.skipped_in_a_row.numpy())) == (2, 2, 2)
    assert float(totals["steps"]) == 0
    trainer.run_steps(iterator, tf.constant(1))
    assert not all(np.array_equal(a, b) for a, b in zip(after, state()))
    assert (int(trainer.skipped.numpy()), int(trainer.skipped_in_a_row.numpy())) == (2, 0)
    assert int(trainer.optimizer.iterations.numpy()) == 1


def test_consecutive_skips_stop_with_last_good_checkpoint(tmp_path, spec):
    good = make(tmp_path)
    good.train(spec, log=lambda line: None)
    saved = weights(good)
    poisoned_dir = tmp_path / "poisoned"
    write_shards(str(poisoned_dir), files=2, records=48, seed=5)
    poisoned = datasets.data_spec(tuple(sorted(str(p) for p in poisoned_dir.glob("*.tfrecord"))), SEQ, PRED)
    for path in poisoned.files:   # every record's masked_lm_weights -> inf
        records = [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(path)]
        with tf.io.TFRecordWriter(path) as writer:
            for example in records:
                weights_feature = example.features.feature["masked_lm_weights"].float_list.value
                weights_feature[:] = [np.inf] * len(weights_feature)
                writer.write(example.SerializeToString())
    again = make(tmp_path, train_steps=9, max_consecutive_skips=2)
    with pytest.raises(trainer_lib.NonFiniteError, match="2 consecutive steps had non-finite gradients; "
                                                         "the last good checkpoint is .*ckpt-3"):
        again.train(poisoned, log=lambda line: None)
    assert int(again.step.numpy()) == 5     # the device loop stopped at the second skip
    assert again.manager.latest_checkpoint.endswith("ckpt-3")
    tf.train.Checkpoint(model=again.model).read(again.manager.latest_checkpoint).expect_partial()
    assert all(np.array_equal(a, b) for a, b in zip(saved, weights(again)))


def test_model_dir_of_another_model_is_refused(tmp_path):
    make(tmp_path)
    other = config_lib.ModelConfig(VOCAB, num_layers=3, hidden_size=32, num_heads=2)
    with pytest.raises(UsageError, match=r"^--model_dir: .* holds a checkpoint of another model \(num_layers 2 -> 3\)"):
        make(tmp_path, model=other)


def test_bad_train_flags_are_one_line_errors(tmp_path):
    with pytest.raises(UsageError, match="--global_batch_size: 8 is not a multiple of 1 replicas x 3 accumulation"):
        make(tmp_path, accumulation_steps=3)
    with pytest.raises(UsageError, match="--checkpoint_every: 4 is not a multiple of --steps_per_loop=3"):
        make(tmp_path, checkpoint_every=4)


def compute_dtypes(trainer):
    return {m.compute_dtype for m in trainer.model.submodules if m.name == "intermediate"}


def test_mixed_precision(tmp_path, spec):
    """bfloat16 is only built (no loss scale); float16 trains with dynamic loss scaling, float32 weights."""
    try:
        bfloat16 = make(tmp_path / "bf16", precision="mixed_bfloat16")
        float16 = make(tmp_path / "f16", precision="mixed_float16", train_steps=3)
        result = float16.train(spec, log=lambda line: None)
    finally:
        tf_keras.mixed_precision.set_global_policy("float32")
    assert compute_dtypes(bfloat16) == {"bfloat16"} and float(bfloat16.loss_scale.scale.numpy()) == 1.0
    assert compute_dtypes(float16) == {"float16"}
    assert all(v.dtype == tf.float32 for v in float16.variables)
    assert np.isfinite(result["mlm_loss"]) and abs(result["mlm_loss"] - np.log(VOCAB)) < 0.5
    assert result["loss_scale"] == 2.0 ** 15 and result["skipped_steps"] == 0


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_choice_first_step(tmp_path, spec, name):
    """The first step tells the three update rules apart. LAMB and LARS: every layer-adapted
    variable moves by exactly lr x its norm (the trust ratio's whole point). AdamW: bias-corrected
    m/sqrt(v) is sign(g), so elements move by about lr each, excluded ones (LayerNorm, biases)
    without the decay term (a tiny epsilon keeps that exact for small gradients)."""
    lr, decay = 1e-2, 0.01
    trainer = make(tmp_path, optimizer=name, learning_rate=lr, weight_decay=decay, train_steps=1,
                   epsilon=1e-12, warmup_steps=0, steps_per_loop=1, checkpoint_every=1)
    before = weights(trainer)
    trainer.train(spec, log=lambda line: None)
    adam_steps = []
    for variable, old in zip(trainer.variables, before):
        delta = (variable.numpy() - old).astype(np.float64)
        excluded = any(pattern in variable.name for pattern in trainer_lib.BERT_EXCLUSIONS)
        if name == "adamw":
            # Keras' AdamW decays first (x -= lr wd x), then takes the Adam step.
            step = np.abs(delta + (0 if excluded else lr * decay * old))
            moved = step[step > 1e-7]                   # the rest had no gradient (unused rows)
            assert np.all(moved <= lr * (1 + 1e-4)), variable.name
            adam_steps.append(moved)
        elif not excluded:
            np.testing.assert_allclose(np.linalg.norm(delta), lr * np.linalg.norm(old), rtol=1e-4,
                                       err_msg=variable.name)
    if name == "adamw":   # (a few gradients are rounding noise, e.g. attention key biases')
        assert np.median(np.concatenate(adam_steps)) > 0.99 * lr
    with pytest.raises(UsageError, match="--optimizer: 'sgd' is not one of"):
        make(tmp_path / "bad", optimizer="sgd")


def test_xla_and_graph_steps_agree(tmp_path, spec):
    """--xla=on (the GPU default) and off (the CPU default) train the same weights."""
    graph = make(tmp_path / "graph", xla="off")
    xla = make(tmp_path / "xla", xla="on")
    assert all(np.array_equal(a, b) for a, b in zip(weights(graph), weights(xla)))
    graph.train(spec, log=lambda line: None)
    xla.train(spec, log=lambda line: None)
    for a, b in zip(weights(graph), weights(xla)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    with pytest.raises(UsageError, match="--xla: 'yes' is not one of"):
        make(tmp_path / "bad", xla="yes")


def test_graph_mode_loop_of_a_wider_model(tmp_path):
    """A 4-layer, hidden-256 model in graph mode (the CPU default) with accumulation runs several
    steps per host call, call after call. Grappler's arithmetic optimizer broke this
    (AlreadyExistsError on a temporary variable in the second call); tiny models did not show it."""
    spec = datasets.data_spec(tuple(write_shards(str(tmp_path / "data"), files=1, records=32, vocab=1000, seq=128,
                                          pred=20)), 128, 20)
    wider = config_lib.ModelConfig(1000, num_layers=4, hidden_size=256, num_heads=4)
    trainer = make(tmp_path / "model", model=wider, global_batch_size=64, accumulation_steps=2, xla="off",
                   train_steps=6)
    result = trainer.train(spec, log=lambda line: None)     # two host calls of three steps
    assert int(trainer.step.numpy()) == 6 and np.isfinite(result["mlm_loss"])
