"""`bert-pretrain run` end to end on a tiny plan: text in, both phases, held-out accuracy, a plot;
and a wrong plan is one error line before any compute."""

import os
import random
import subprocess
import sys

PLAN = """
name = "tiny-run"
model = "tiny"
num_layers = 1
hidden_size = 32
num_heads = 2

[[phases]]
name = "phase1"
data = "seq32"
eval_data = "seq32-eval"
max_seq_length = 32
max_predictions_per_seq = 5
global_batch_size = 8
train_steps = 6
learning_rate = 1e-2
warmup_steps = 2

[[phases]]
name = "phase2"
data = "seq64"
eval_data = "seq64-eval"
max_seq_length = 64
max_predictions_per_seq = 10
global_batch_size = 4
train_steps = 4
learning_rate = 5e-3
warmup_steps = 1

[engine]
steps_per_loop = 2
checkpoint_every = 2
"""
WORDS = ("the optimizer scales each layer by its trust ratio while the batch grows and the model "
         "learns masked words from both directions of every sentence").split()


def corpus(path, documents, seed):
    rng = random.Random(seed)
    with open(path, "w") as handle:
        for _ in range(documents):
            for _ in range(rng.randint(3, 8)):
                handle.write(" ".join(rng.choices(WORDS, k=rng.randint(4, 12))) + ".\n")
            handle.write("\n")
    return str(path)


def bert_pretrain(*args):
    return subprocess.run([sys.executable, "-m", "bert_pretrain.cli", "run", *args],
                          capture_output=True, text=True, timeout=600)


def test_run_from_text_to_plot(tmp_path):
    (tmp_path / "plan.toml").write_text(PLAN)
    result = bert_pretrain(
        f"--plan={tmp_path / 'plan.toml'}", f"--data_dir={tmp_path / 'data'}",
        f"--model_dir={tmp_path / 'model'}", f"--corpus={corpus(tmp_path / 'a.txt', 80, 1)}",
        f"--eval_corpus={corpus(tmp_path / 'b.txt', 30, 2)}", "--data_vocab_size=120")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "phase1: seq 32, global batch 8 = 8 per replica x 1 replicas x 1 accumulation" in out
    assert out.index("global batch 4 =") < out.index("step 2/6")   # derived before training
    assert "phase2: starting from" in out
    assert out.count("held-out: MLM accuracy") == 2
    for name in ("phase1", "phase2"):
        assert os.path.exists(tmp_path / "model" / name / "DONE")
    assert os.path.getsize(tmp_path / "model" / "tiny-run.png") > 10_000
    # A second run finds both phases done and trains nothing.
    again = bert_pretrain(f"--plan={tmp_path / 'plan.toml'}", f"--data_dir={tmp_path / 'data'}",
                          f"--model_dir={tmp_path / 'model'}")
    assert again.returncode == 0 and "step " not in again.stdout
    assert again.stdout.count("already done") == 2


def test_wrong_plan_is_one_line(tmp_path):
    (tmp_path / "plan.toml").write_text(PLAN.replace("warmup_steps = 2", "warmup = 2"))
    result = bert_pretrain(f"--plan={tmp_path / 'plan.toml'}", f"--model_dir={tmp_path}")
    assert result.returncode != 0
    message = [line for line in result.stderr.splitlines() if line.startswith("bert-pretrain:")]
    assert len(message) == 1 and "--plan:" in message[0] and "unknown field(s) warmup" in message[0]


def test_data_for_masking_on_the_fly_is_one_unmasked_copy(tmp_path):
    """A phase masked in the input pipeline (the plan's masking, or the run's flag over it) gets
    unmasked training data, one copy; the others ten masked copies; held-out data is always
    masked once, so every run is scored on the same masks."""
    import dataclasses
    import json

    import pytest

    from bert_pretrain import plans, run
    from bert_pretrain.errors import UsageError

    plan_file = tmp_path / "plan.toml"
    plan_file.write_text(PLAN.replace('data = "seq64"', 'data = "seq64"\nmasking = "dynamic"')
                         .replace('data = "seq32"', 'data = "seq32"\nmasked_lm_prob = 0.3'))
    plan = plans.load_plan(str(plan_file))
    text, held_out = corpus(tmp_path / "a.txt", 40, 1), corpus(tmp_path / "b.txt", 10, 2)

    def settings(data_dir, name):
        with open(os.path.join(data_dir, name, "metadata.json")) as handle:
            made = json.load(handle)["settings"]
        return made["masking"], made["dupe_factor"], made["masked_lm_prob"]

    data_dir = str(tmp_path / "data")
    run.ensure_data(plan, data_dir, text, held_out, 120, lambda line: None)
    assert settings(data_dir, "seq32") == ("static", 10, 0.3)       # the phase's share of masks
    assert settings(data_dir, "seq64") == ("none", 1, 0.15)         # the phase's own masking
    for name in ("seq32-eval", "seq64-eval"):
        assert settings(data_dir, name) == ("static", 1, 0.15)      # held out: always BERT's share

    # The run's flag over the plan: phase 1 masked on the fly too, which its share cannot be.
    with pytest.raises(UsageError, match="phase1 sets masked_lm_prob 0.3"):
        run.ensure_data(plan, str(tmp_path / "other"), text, held_out, 120, lambda line: None,
                        {"masking": "dynamic_whole_word"})
    plain = dataclasses.replace(
        plan, phases=(dataclasses.replace(plan.phases[0], masked_lm_prob=0.15), plan.phases[1]))
    run.ensure_data(plain, str(tmp_path / "flag"), text, held_out, 120, lambda line: None,
                    {"masking": "dynamic_whole_word"})
    assert settings(str(tmp_path / "flag"), "seq32") == ("none", 1, 0.15)
    # Finished data masked at another share than the phase asks for is not reused in silence.
    with pytest.raises(UsageError, match="seq32 was masked at masked_lm_prob 0.3, phase1 asks for 0.15"):
        run.ensure_data(plain, data_dir, text, held_out, 120, lambda line: None)
