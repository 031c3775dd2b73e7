"""Plans: the built-in ones hold the paper's numbers, a wrong field is one clear error, and
fitting to the hardware keeps the global batch (or rescales it by the square-root rule)."""

import math

import pytest

from bert_pretrain import plans
from bert_pretrain.errors import UsageError


def test_builtin_plans_load_with_the_papers_numbers():
    assert {"paper-32k", "paper-64k-32k", "bert-baseline"} <= set(plans.available_plans())
    mixed = plans.load_plan("paper-64k-32k")
    one, two = mixed.phases
    assert (one.global_batch_size, one.train_steps, one.learning_rate, one.warmup_steps) == \
        (65536, 7038, 6e-3, 2000)
    assert (two.global_batch_size, two.train_steps, two.learning_rate, two.warmup_steps) == \
        (32768, 1563, 4e-3, 200)
    assert (one.max_seq_length, one.max_predictions_per_seq) == (128, 20)
    assert (two.max_seq_length, two.max_predictions_per_seq) == (512, 80)
    assert one.decay_power == two.decay_power == 0.5 and one.clip_norm == 1.0     # NVIDIA's degree
    assert one.decay_from == two.decay_from == "step_0"                            # PolyWarmUpScheduler
    assert mixed.model == "large" and mixed.carry_optimizer_state is True         # NVIDIA's --phase2
    thirty_two = plans.load_plan("paper-32k")
    assert [p.train_steps for p in thirty_two.phases] == [14063, 1562]
    assert [(p.decay_power, p.decay_from) for p in thirty_two.phases] == [(1.0, "step_0")] * 2
    assert {p.global_batch_size for p in thirty_two.phases} == {32768}
    baseline = plans.load_plan("bert-baseline")
    assert [(p.global_batch_size, p.train_steps) for p in baseline.phases] == \
        [(256, 900000), (256, 100000)]
    assert [(p.decay_power, p.decay_from) for p in baseline.phases] == [(1.0, "step_0")] * 2
    assert baseline.carry_optimizer_state is False and thirty_two.carry_optimizer_state is False


PLAN = """
name = "mine"
model = "tiny"

[[phases]]
name = "phase1"
data = "seq128"
max_seq_length = 128
max_predictions_per_seq = 20
global_batch_size = 64
train_steps = 100
learning_rate = 1e-3
warmup_steps = 10
"""


def write(tmp_path, text):
    path = tmp_path / "plan.toml"
    path.write_text(text)
    return str(path)


def test_plan_file_round_trip_and_defaults(tmp_path):
    plan = plans.load_plan(write(tmp_path, PLAN))
    (phase,) = plan.phases
    assert plan.name == "mine" and phase.decay_power == 1.0 and phase.clip_norm == 0.0
    assert isinstance(phase.learning_rate, float)
    assert plan.dropout == 0.1   # BERT's


def test_a_plans_dropout_reaches_the_model(tmp_path):
    from bert_pretrain import phases   # pylint: disable=import-outside-toplevel

    plan = plans.load_plan(write(tmp_path, PLAN.replace('model = "tiny"', 'model = "tiny"\ndropout = 0')))
    assert plan.dropout == 0.0 and phases._model_config(plan, 100).dropout == 0.0


@pytest.mark.parametrize("edit,message", [
    (lambda t: t.replace("learning_rate = 1e-3", "lr = 1e-3"), "unknown field.*lr"),
    (lambda t: t.replace("warmup_steps = 10", ""), "lacks warmup_steps"),
    (lambda t: t.replace("train_steps = 100", 'train_steps = "100"'), "train_steps = '100' is not a int"),
    (lambda t: t.replace("warmup_steps = 10", "warmup_steps = 100"), "warmup_steps must be in"),
    (lambda t: t.replace("max_seq_length = 128", "max_seq_length = 1024"), "max_seq_length"),
    (lambda t: t.replace('model = "tiny"', 'model = "huge"'), "not a preset"),
    (lambda t: t.replace('name = "mine"', 'name = "mine"\ncolour = "red"'), "unknown field.*colour"),
    (lambda t: t + t[t.index("[[phases]]"):], "phase names repeat"),
    (lambda t: t.replace("= 1e-3", "= [1"), "TOML"),
    (lambda t: t.replace("warmup_steps = 10", "warmup_steps = 10\nmasked_lm_prob = 1.5"),
     "masked_lm_prob must be in"),
    (lambda t: t.replace('model = "tiny"', 'model = "tiny"\ndropout = 1.0'), r"dropout: 1.0 is not in \[0, 1\)"),
    (lambda t: t.replace('model = "tiny"', 'model = "tiny"\nhidden_size = 30\nnum_heads = 4'),
     "hidden_size: 30 is not a multiple of --num_heads=4"),
])
def test_a_wrong_plan_is_one_clear_error(tmp_path, edit, message):
    with pytest.raises(UsageError, match=message) as error:
        plans.load_plan(write(tmp_path, edit(PLAN)))
    assert str(error.value).startswith("--plan: ") and "\n" not in str(error.value)


def test_unknown_plan_name_lists_the_builtin_ones():
    with pytest.raises(UsageError, match="paper-64k-32k"):
        plans.load_plan("paper-128k")


def test_fit_derives_accumulation_and_keeps_the_global_batch():
    phase = plans.load_plan("paper-64k-32k").phases[0]
    fitted = plans.fit(phase, replicas=64, micro_batch_size=32)
    assert fitted.accumulation_steps == 32  # 32 x 64 x 32 = 65,536
    assert "65,536 = 32 per replica x 64 replicas x 32 accumulation steps" in fitted.describe()
    with pytest.raises(UsageError, match="--micro_batch_size: 48 per replica"):
        plans.fit(phase, replicas=64, micro_batch_size=48)


def test_rescale_keeps_epochs_and_scales_lr_by_square_root():
    phase = plans.load_plan("paper-64k-32k").phases[0]
    smaller = plans.rescale(phase, 16384)
    assert smaller.train_steps == 7038 * 4 and smaller.warmup_steps == 8000
    assert math.isclose(smaller.learning_rate, 6e-3 / 2)
    assert smaller.train_steps * smaller.global_batch_size == phase.train_steps * phase.global_batch_size


def test_a_plan_may_name_a_built_in_downstream_task(tmp_path):
    assert plans.load_plan("demo").downstream == "docstrings"
    assert plans.load_plan("paper-32k").downstream == ""
    path = tmp_path / "plan.toml"
    path.write_text('name = "x"\nmodel = "tiny"\ndownstream = "glue"\n' + PLAN.split("model = \"tiny\"", 1)[1])
    with pytest.raises(UsageError, match=r'^--plan: .*downstream = \'glue\' is not a built-in task; use "docstrings"'):
        plans.load_plan(str(path))
