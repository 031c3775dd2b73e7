"""A PNG of a plan's run: loss, MLM accuracy and learning rate over both phases, the phase
boundary marked. Reads the TensorBoard events the trainer wrote, so it works on a resumed run."""

import os

import tensorflow as tf

from bert_pretrain import atomic


def read_scalars(directory: str) -> dict:
    """{tag: [(step, value), ...]} from the event files in `directory` (latest value per step)."""
    series = {}
    for path in sorted(tf.io.gfile.glob(os.path.join(directory, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                series.setdefault(value.tag, {})[event.step] = float(tf.make_ndarray(value.tensor))
    return {tag: sorted(points.items()) for tag, points in series.items()}


def plot_run(phase_dirs: list, names: list, phase_steps: list, learning_rates: list,
             path: str) -> str:
    """Phases laid end to end on one step axis, the learning rate drawn from the schedule itself
    (`learning_rates`: (step, rate) pairs) so the re-warm-up shows; written to a temporary name,
    then renamed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (loss_axis, accuracy_axis, rate_axis) = plt.subplots(3, 1, figsize=(8, 9), sharex=True)
    offset = 0
    for directory, name, steps in zip(phase_dirs, names, phase_steps):
        train, held_out = (read_scalars(os.path.join(directory, split))
                           for split in ("train", "eval"))
        for axis, tag in ((loss_axis, "mlm_loss"), (accuracy_axis, "mlm_accuracy")):
            for series, style, label in ((train, "-", "train"), (held_out, "o", "held-out")):
                points = series.get(tag, [])
                if points:
                    x, y = zip(*points)
                    axis.plot([offset + step for step in x], y, style, label=f"{name} {label}")
        offset += steps
        for axis in (loss_axis, accuracy_axis, rate_axis):
            axis.axvline(offset, color="grey", linestyle="--", linewidth=0.8)
    rate_axis.plot(*zip(*learning_rates), color="black")
    loss_axis.set_ylabel("MLM loss")
    accuracy_axis.set_ylabel("MLM accuracy")
    rate_axis.set_ylabel("learning rate")
    loss_axis.legend(fontsize="small")
    rate_axis.set_xlabel("step (phases end to end; dashed: end of a phase)")
    figure.tight_layout()
    with atomic.replacing(path, ".tmp.png") as temporary:
        figure.savefig(temporary, dpi=100)
    plt.close(figure)
    return path


def plot_scores(scores: dict, title: str, path: str, chance: float | None = None) -> str:
    """Bars of {encoder: {metric: percent, or one percent per seed}}, one group per metric: a bar
    is the mean, each seed a dot on it; `chance` (percent) a dashed line. Written atomically."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(scores)
    metrics = list(scores[names[0]])
    figure, axis = plt.subplots(figsize=(6, 4))
    width = 0.8 / len(names)
    for k, name in enumerate(names):
        runs = [scores[name][metric] if isinstance(scores[name][metric], list) else [scores[name][metric]]
                for metric in metrics]
        x = [i + k * width for i in range(len(metrics))]
        bars = axis.bar(x, [sum(r) / len(r) for r in runs], width, label=name)
        axis.bar_label(bars, labels=[f"{sum(r) / len(r):.1f}" + (f"\n({min(r):.1f}-{max(r):.1f})" if len(r) > 1 else "")
                                     for r in runs])
        if any(len(r) > 1 for r in runs):
            for position, r in zip(x, runs):
                axis.plot([position] * len(r), r, "o", color="black", markersize=4)
    tallest = max(max(v) if isinstance(v, list) else v for by_metric in scores.values() for v in by_metric.values())
    axis.set_ylim(0, tallest * 1.2)   # room for the labels above the bars
    if chance is not None:
        axis.axhline(chance, color="grey", linestyle="--", linewidth=0.8, label=f"chance ({chance:.1f})")
    axis.set_xticks([i + width * (len(names) - 1) / 2 for i in range(len(metrics))], metrics)
    axis.set_ylabel("percent")
    axis.set_title(title)
    axis.legend(fontsize="small")
    figure.tight_layout()
    with atomic.replacing(path, ".tmp.png") as temporary:
        figure.savefig(temporary, dpi=100)
    plt.close(figure)
    return path
