"""The large-batch study's verdict, fixed before the run: what counts as "LAMB holds its accuracy
as the batch grows", "refuted" and "inconclusive", for every optimizer alike. Kept apart from the
study's flags so that it can be tested on hand-made numbers; with it, the tuning rule that picks
each optimizer's learning rate."""

import math

import numpy as np

VERDICT_RULE = (
    "An optimizer's large-batch accuracy is the mean over seeds at the largest batch, its base "
    "accuracy the mean at B0; the noise s is the pooled standard deviation over the seeds at "
    "those two batches, and the tolerance max(0.005, 2s). **Holds**: the largest batch is no more "
    "than the tolerance below B0 and at least 0.01 above the unigram plateau. **Refuted**: it is "
    "more than 3x the tolerance below B0, or less than 0.01 above the plateau while B0 is not. "
    "**Inconclusive**: anything else, including a run that diverged (NaN).")


def best_index(scores: list) -> int:
    """The best of a grid's held-out accuracies; a diverged run (NaN) counts as the worst."""
    finite = [score if math.isfinite(score) else -1.0 for score in scores]
    return finite.index(max(finite))


def grid_extension(grid: list) -> float | None:
    """The learning rate to add to a tuning grid of (learning rate, held-out accuracy) pairs, or
    None when tuning is done: a grid whose best point is at an edge grows by one point beyond that
    edge, at the grid's own ratio."""
    grid = sorted(grid)
    best = best_index([score for _, score in grid])
    if len(grid) == 1 or 0 < best < len(grid) - 1:
        return None
    ratio = grid[1][0] / grid[0][0]
    return grid[best][0] * ratio if best else grid[best][0] / ratio


def accuracy(rows: list, name: str, multiple: int) -> list:
    """Held-out MLM accuracies of the selected runs of one optimizer at one batch, one per seed."""
    return [r["eval_mlm_accuracy"] for r in rows
            if r["optimizer"] == name and r["selected"] and r["batch_multiple"] == multiple]


def verdict(rows: list, name: str, multiples: list, plateau: float) -> tuple:
    """(verdict, base mean, largest mean, tolerance) by VERDICT_RULE."""
    base, large = accuracy(rows, name, multiples[0]), accuracy(rows, name, multiples[-1])
    spread = [np.var(values, ddof=1) for values in (base, large) if len(values) > 1]
    tolerance = max(0.005, 2 * math.sqrt(np.mean(spread))) if spread else 0.005
    base_mean, large_mean = float(np.mean(base)), float(np.mean(large))
    if not (math.isfinite(base_mean) and math.isfinite(large_mean)):
        return "inconclusive", base_mean, large_mean, tolerance
    above = lambda value: value >= plateau + 0.01  # noqa: E731
    if base_mean - large_mean <= tolerance and above(large_mean):
        outcome = "holds"
    elif base_mean - large_mean > 3 * tolerance or (above(base_mean) and not above(large_mean)):
        outcome = "refuted"
    else:
        outcome = "inconclusive"
    return outcome, base_mean, large_mean, tolerance
