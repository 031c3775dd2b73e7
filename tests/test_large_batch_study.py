"""benchmarks/large_batch_study.py --quick end to end (its CI smoke test): every optimizer at every
batch size gets a row with finite held-out metrics, and the plot is written; a bad flag is one
error line before any work."""

import csv
import math
import os
import subprocess
import sys

SCRIPT = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks", "large_batch_study.py")


def study(*args):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=900)


def test_quick_study_writes_every_run_and_the_plot(tmp_path):
    done = study("--quick", f"--output_dir={tmp_path}")
    assert done.returncode == 0, done.stderr[-3000:]
    with open(tmp_path / "large_batch_study.csv") as handle:
        rows = list(csv.DictReader(handle))
    selected = [r for r in rows if r["selected"] == "1"]
    batches = sorted({int(r["batch_size"]) for r in selected})
    assert len(batches) == 2 and batches[1] == 4 * batches[0]
    assert sorted((r["optimizer"], int(r["batch_size"])) for r in selected) == sorted(
        (o, b) for o in ("lamb", "adamw", "lars") for b in batches)
    for row in rows:
        for key in ("eval_mlm_accuracy", "eval_mlm_loss", "train_mlm_loss"):
            assert math.isfinite(float(row[key])), row
        assert 0 <= float(row["eval_mlm_accuracy"]) <= 1
    # Same epochs at every batch: 4x the batch, a quarter of the steps; sqrt-scaled learning rate;
    # the same warmup steps (linear-epoch warmup).
    for name in ("lamb", "adamw", "lars"):
        small, large = sorted((r for r in selected if r["optimizer"] == name), key=lambda r: int(r["batch_size"]))
        assert int(small["examples"]) - int(large["examples"]) < int(large["batch_size"])
        assert math.isclose(float(large["learning_rate"]), 2 * float(small["learning_rate"]))
        assert small["warmup_steps"] == large["warmup_steps"] == "2"
    report = (tmp_path / "large_batch_study.md").read_text()
    assert "## Verdict" in report and "Unigram plateau" in report
    for suffix in (".png", ".md", ".curves.csv"):
        assert (tmp_path / f"large_batch_study{suffix}").stat().st_size > 0
    assert not [name for name in os.listdir(tmp_path) if ".tmp" in name]


def test_bad_flag_is_one_line(tmp_path):
    done = study("--quick", "--optimizers=lamb,sgd", f"--output_dir={tmp_path}")
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1].startswith("--optimizers: 'sgd' is not one of")


def test_verdict_rule_by_hand():
    """The rule on hand-made accuracies: two seeds at B0 and at the largest batch."""
    sys.path.insert(0, os.path.dirname(SCRIPT))
    import study_verdict as study_lib

    def rows(base, large):
        return [{"optimizer": "x", "selected": 1, "batch_multiple": m, "eval_mlm_accuracy": a}
                for m, values in ((1, base), (64, large)) for a in values]

    plateau = 0.05
    # s = sqrt(mean(var)) with var = 0.002**2/2 at both points: 0.001414; tolerance max(0.005, 2s) = 0.005.
    assert study_lib.verdict(rows([0.150, 0.152], [0.148, 0.146]), "x", [1, 64], plateau)[0] == "holds"
    assert study_lib.verdict(rows([0.150, 0.152], [0.120, 0.122]), "x", [1, 64], plateau)[0] == "refuted"
    assert study_lib.verdict(rows([0.150, 0.152], [0.052, 0.053]), "x", [1, 64], plateau)[0] == "refuted"
    assert study_lib.verdict(rows([0.150, 0.152], [0.140, 0.141]), "x", [1, 64], plateau)[0] == "inconclusive"
    outcome, base, large, tolerance = study_lib.verdict(rows([0.10, 0.14], [0.10, 0.12]), "x", [1, 64], plateau)
    # var 0.0008 and 0.0002: s = sqrt(0.0005) = 0.02236, tolerance 0.0447; drop 0.01 -> holds.
    assert (outcome, round(tolerance, 4)) == ("holds", 0.0447)


def test_tuning_grid_grows_past_an_edge_best_and_stops_at_an_interior_one():
    sys.path.insert(0, os.path.dirname(SCRIPT))
    import study_verdict as study_lib

    grid = [(1e-3, 0.10), (3.16e-3, 0.12), (1e-2, 0.13), (3.16e-2, 0.14)]    # best at the top edge
    assert math.isclose(study_lib.grid_extension(grid), 3.16e-2 * 3.16, rel_tol=1e-9)   # the grid's ratio
    grid = [(1e-3, 0.15), (3.16e-3, 0.12), (1e-2, math.nan), (3.16e-2, 0.05)]  # best at the bottom
    assert math.isclose(study_lib.grid_extension(grid), 1e-3 / 3.16, rel_tol=1e-9)
    # The AdamW grid the study measured at B = 64: the best (3.16e-3) is inside, tuning is done.
    assert study_lib.grid_extension([(3.16e-4, 0.0621), (1e-3, 0.1085), (3.16e-3, 0.1288), (1e-2, 0.0501)]) is None
    assert study_lib.grid_extension([(1e-2, 0.1)]) is None
    assert study_lib.best_index([0.1, math.nan, 0.2, 0.15]) == 2
