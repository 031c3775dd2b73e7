"""Reported numbers from summed statistics: means, throughput/MFU/ETA, the console line."""

import pytest

from bert_pretrain import config as config_lib
from bert_pretrain import metrics


def test_means_are_weighted_by_tokens_and_examples():
    totals = {"mlm_loss": 30.0, "mlm_correct": 3.0, "mlm_weight": 12.0, "nsp_loss": 4.0, "nsp_correct": 5.0,
              "examples": 8.0, "grad_norm": 6.0, "steps": 2.0}
    assert metrics.means(totals) == {"mlm_loss": 2.5, "mlm_accuracy": 0.25, "nsp_loss": 0.5,
                                     "nsp_accuracy": 0.625, "grad_norm": 3.0}
    assert metrics.means({**totals, "examples": 0.0, "steps": 0.0}) == {}   # every step skipped


def test_throughput_mfu_and_eta():
    base = config_lib.from_preset("base", vocab_size=30522)
    per_token = metrics.flops_per_token(base, 128, 20)
    h, v = 768, 30522
    assert per_token == pytest.approx(12 * 6 * 12 * h * h + 12 * 12 * h * 128 + 6 * (h * h + v * h) * 20 / 128
                                      + 6 * (h * h + 2 * h) / 128)
    # The mini preset (4 layers, hidden 256) at vocab 4.5k, batch 64 x 128 tokens, 20 predictions: ~177 GFLOP a step.
    mini = config_lib.from_preset("mini", vocab_size=4500)
    assert 64 * 128 * metrics.flops_per_token(mini, 128, 20) == pytest.approx(177e9, rel=0.01)
    meter = metrics.Throughput(1000, 256, 128, per_token, peak_tflops=100.0)
    assert meter.update(100, 100, 50.0) == {}           # compile time is not a rate
    rates = meter.update(200, 100, 10.0)
    assert rates["sequences_per_second"] == pytest.approx(2560) and rates["tokens_per_second"] == pytest.approx(327680)
    assert rates["eta_seconds"] == pytest.approx(80.0)
    assert rates["mfu"] == pytest.approx(327680 * per_token / 100e12)
    line = metrics.progress_line(200, 1000, {"mlm_loss": 2.5, "mlm_accuracy": 0.25, "nsp_loss": 0.5,
                                             "nsp_accuracy": 0.625, "learning_rate": 1e-3, "grad_norm": 3.0,
                                             "skipped_steps": 2, **rates})
    assert line.startswith("step 200/1000 | mlm 2.5000 acc 0.250 | nsp 0.5000 acc 0.625 | lr 0.001 | gnorm 3")
    assert "skipped 2" in line and "2560.0 seq/s 327680 tok/s MFU" in line and line.endswith("ETA 0:01:20")
