"""What a pretraining run reports: means from summed statistics, throughput, MFU, TensorBoard, console."""

import os
import time

import numpy as np
import tensorflow as tf


def means(totals: dict) -> dict:
    """Sums over a span of steps (see model.loss_sums) -> the per-token / per-example means."""
    out = {"mlm_loss": totals["mlm_loss"] / totals["mlm_weight"],
           "mlm_accuracy": totals["mlm_correct"] / totals["mlm_weight"],
           "nsp_loss": totals["nsp_loss"] / totals["examples"],
           "nsp_accuracy": totals["nsp_correct"] / totals["examples"]} if totals.get("examples") else {}
    if totals.get("steps"):
        out["grad_norm"] = totals["grad_norm"] / totals["steps"]
    return out


def flops_per_token(model_config, seq_length: int, max_predictions: int) -> float:
    """Training FLOPs per token (forward + backward = 6 per weight a token meets; Kaplan et al.,
    2020; PaLM appendix B): the layers' 4 H^2 attention and 2 H I feed-forward weights; attention
    scores and values, 12 x hidden x sequence length per layer; the MLM head (H^2 + vocab x H) and
    the NSP head (H^2 + 2 H) only at the positions they read. Embedding lookups are not FLOPs."""
    hidden, intermediate = model_config.hidden_size, model_config.intermediate_size
    layers = model_config.num_layers * (6.0 * (4 * hidden ** 2 + 2 * hidden * intermediate)
                                        + 12.0 * hidden * seq_length)
    mlm = 6.0 * (hidden ** 2 + model_config.vocab_size * hidden) * max_predictions / seq_length
    nsp = 6.0 * (hidden ** 2 + 2 * hidden) / seq_length
    return layers + mlm + nsp


class Throughput:
    """Sequences/s, tokens/s, MFU and ETA from the wall time of each host call."""

    def __init__(self, total_steps, global_batch_size, seq_length, flops_per_token, peak_tflops):
        self.total_steps, self.batch, self.seq = total_steps, global_batch_size, seq_length
        self.flops_per_token, self.peak = flops_per_token, peak_tflops * 1e12
        self.first_call = True

    def update(self, step: int, steps: int, seconds: float) -> dict:
        """The first call includes tracing and XLA compilation, so it reports no rate."""
        if self.first_call:
            self.first_call = False
            return {}
        sequences = steps * self.batch / seconds
        out = {"steps_per_second": steps / seconds, "sequences_per_second": sequences,
               "tokens_per_second": sequences * self.seq,
               "eta_seconds": (self.total_steps - step) * seconds / steps}
        if self.peak:
            out["mfu"] = out["tokens_per_second"] * self.flops_per_token / self.peak
        return out


def trust_ratio_summary(ratios: dict) -> dict:
    """min / median / max of LAMB's layer-wise trust ratios at the last step."""
    values = np.array([float(tf.convert_to_tensor(r.ratio)) for r in ratios.values()])
    if not values.size:
        return {}
    return {"trust_ratio_min": values.min(), "trust_ratio_median": float(np.median(values)),
            "trust_ratio_max": values.max()}


class SummaryWriters:
    """TensorBoard scalars under model_dir/train and model_dir/eval."""

    def __init__(self, model_dir: str):
        self.model_dir = model_dir
        self.writers = {}

    def write(self, name: str, step: int, scalars: dict) -> None:
        if name not in self.writers:
            self.writers[name] = tf.summary.create_file_writer(os.path.join(self.model_dir, name))
        with self.writers[name].as_default(step=step):
            for key, value in scalars.items():
                tf.summary.scalar(key, value)
        self.writers[name].flush()


def progress_line(step: int, total: int, m: dict) -> str:
    parts = [f"step {step}/{total}"]
    if "mlm_loss" in m:
        parts.append(f"mlm {m['mlm_loss']:.4f} acc {m['mlm_accuracy']:.3f} | "
                     f"nsp {m['nsp_loss']:.4f} acc {m['nsp_accuracy']:.3f}")
    parts.append(f"lr {m['learning_rate']:.3g} | gnorm {m.get('grad_norm', float('nan')):.3g}")
    if "b_simple" in m:
        parts.append(f"B_simple {m['b_simple']:.4g}")
    if m.get("skipped_steps"):
        parts.append(f"skipped {m['skipped_steps']}")
    if "sequences_per_second" in m:
        rate = f"{m['sequences_per_second']:.1f} seq/s {m['tokens_per_second']:.0f} tok/s"
        if "mfu" in m:
            rate += f" MFU {100 * m['mfu']:.1f}%"
        eta = int(m["eta_seconds"])
        parts.append(f"{rate} | ETA {eta // 3600}:{eta // 60 % 60:02d}:{eta % 60:02d}")
    return " | ".join(parts)


def count_batches_per_second(dataset: tf.data.Dataset, batches: int, warmup: int = 5) -> float:
    """Input throughput alone, to compare with what the model consumes."""
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    started = time.perf_counter()
    for _ in range(batches):
        tf.nest.map_structure(np.asarray, next(iterator))
    return batches / (time.perf_counter() - started)
