"""Pretraining plans: the paper's two phases as data (TOML files users copy and edit), checked up
front, and fitted to the hardware at hand.

A plan names a model preset and lists phases; each phase has its own data, sequence length,
global batch, steps, peak learning rate, warmup and decay. Built-in plans live in
`bert_pretrain/plans/NAME.toml`, with the source of every number in a comment.
"""

import dataclasses
import os
import tomllib

from bert_pretrain.config import DECAY_FROM, MASKINGS, MAX_POSITION, PRESETS, TrainConfig, from_preset
from bert_pretrain.errors import UsageError
from lamb_tf.schedules import sqrt_scaled_learning_rate

PLANS_DIR = os.path.join(os.path.dirname(__file__), "plans")


@dataclasses.dataclass(frozen=True)
class Phase:
    name: str
    data: str                      # directory of this phase's TFRecords, relative to --data_dir
    max_seq_length: int
    max_predictions_per_seq: int
    global_batch_size: int
    train_steps: int
    learning_rate: float           # peak, reached after warmup
    warmup_steps: int              # linear from 0: phase 2 warms up again (the paper's re-warm-up)
    decay_power: float = 1.0
    decay_from: str = "warmup_end" # "step_0": decay over all steps, warmup replacing the first ones
    clip_norm: float = 0.0         # global gradient norm; 0 = no clipping
    eval_data: str = ""            # held-out TFRecords relative to --data_dir; "" = no evaluation
    masking: str = ""              # static / dynamic / dynamic_whole_word; "" = the [engine] table's
    masked_lm_prob: float = 0.15   # share of tokens masked in the training data `run` makes (static
                                   # masking; held-out data is always masked at BERT's 0.15)


@dataclasses.dataclass(frozen=True)
class Plan:
    name: str
    model: str                     # a preset of bert_pretrain.config
    phases: tuple
    carry_optimizer_state: bool = False   # phase 2 starts from phase 1's moments, or fresh ones
    copy_positions: bool = False   # a longer phase's new positions start as copies of the trained
                                   # ones (phases.copy_trained_positions), not at their initialisation
    num_layers: int = 0            # 0: the preset's; otherwise a custom size
    hidden_size: int = 0
    num_heads: int = 0
    dropout: float = 0.1           # pretraining dropout (BERT's 0.1); fine-tuning sets its own
    engine: dict = None            # trainer settings (steps_per_loop, eval_every, ...); flags win
    downstream: str = ""           # a built-in fine-tuning task to score the result on, against a
                                   # random encoder ("docstrings"); "" = none


@dataclasses.dataclass(frozen=True)
class FittedPhase:
    """A phase as it will run: the batch split over replicas and accumulation steps."""

    phase: Phase
    micro_batch_size: int          # per replica per accumulation step
    replicas: int
    accumulation_steps: int

    def describe(self) -> str:
        p = self.phase
        return (f"{p.name}: seq {p.max_seq_length}, global batch {p.global_batch_size:,} = "
                f"{self.micro_batch_size} per replica x {self.replicas} replicas x "
                f"{self.accumulation_steps} accumulation steps; {p.train_steps:,} steps, "
                f"peak lr {p.learning_rate:.4g} after {p.warmup_steps:,} warmup steps, "
                f"decay power {p.decay_power:g} from {p.decay_from.replace('_', ' ')}")


def available_plans() -> list:
    return sorted(name[:-5] for name in os.listdir(PLANS_DIR) if name.endswith(".toml"))


def load_plan(name_or_path: str) -> Plan:
    """A built-in plan by name, or a plan file; every problem is one error naming --plan."""
    path = name_or_path
    if not os.path.exists(path):
        path = os.path.join(PLANS_DIR, f"{name_or_path}.toml")
        if not os.path.exists(path):
            raise UsageError("plan", f"{name_or_path!r} is neither a file nor a built-in plan",
                             f"use one of {', '.join(available_plans())} or a .toml file")
    try:
        with open(path, "rb") as handle:
            raw = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise UsageError("plan", f"cannot read {path}: {error}", "fix the file's TOML syntax")
    return _parse(raw, path)


# Python type of a field -> what TOML may give for it (an int is a fine float).
_TOML_TYPES = {str: str, int: int, float: (int, float), bool: bool, tuple: list, dict: dict}
# What a phase sets itself, so a plan's [engine] table may not.
_PHASE_SETTINGS = {"train_steps", "global_batch_size", "learning_rate", "warmup_steps",
                   "decay_power", "decay_from", "accumulation_steps", "clip_norm"}


def _fields(cls, raw: dict, where: str, path: str) -> dict:
    """raw's keys checked against the dataclass's fields: unknown, missing and mistyped ones."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise UsageError("plan", f"{path}: {where} has unknown field(s) {', '.join(unknown)}",
                         f"use only {', '.join(fields)}")
    missing = [name for name, f in fields.items()
               if name not in raw and f.default is dataclasses.MISSING]
    if missing:
        raise UsageError("plan", f"{path}: {where} lacks {', '.join(missing)}", "add the field(s)")
    for name, value in raw.items():
        kind = fields[name].type
        if not isinstance(value, _TOML_TYPES[kind]) or (kind is not bool and isinstance(value, bool)):
            raise UsageError("plan", f"{path}: {where}: {name} = {value!r} is not a {kind.__name__}",
                             "fix its type")
    return {name: float(value) if fields[name].type is float else value
            for name, value in raw.items()}


def _parse(raw: dict, path: str) -> Plan:
    raw = dict(_fields(Plan, raw, "the plan", path))
    if raw["model"] not in PRESETS:
        raise UsageError("plan", f"{path}: model {raw['model']!r} is not a preset",
                         f"use one of {', '.join(PRESETS)}")
    phases = []
    for index, entry in enumerate(raw["phases"], 1):
        if not isinstance(entry, dict):
            raise UsageError("plan", f"{path}: phases entry {index} is not a table",
                             "write each phase as a [[phases]] table")
        phase = Phase(**_fields(Phase, entry, f"phase {index}", path))
        _check_phase(phase, f"{path}: phase {index} ({phase.name})")
        phases.append(phase)
    if not phases:
        raise UsageError("plan", f"{path}: no phases", "add [[phases]] tables")
    names = [p.name for p in phases]
    if len(set(names)) != len(names):
        raise UsageError("plan", f"{path}: phase names repeat ({', '.join(names)})",
                         "give each phase its own name: it names its checkpoint directory")
    try:   # the model's sizes, checked before any data is made
        from_preset(raw["model"], 1, raw.get("dropout", 0.1), num_layers=raw.get("num_layers") or None,
                    hidden_size=raw.get("hidden_size") or None, num_heads=raw.get("num_heads") or None)
    except UsageError as error:
        raise UsageError("plan", f"{path}: {error}") from None
    if raw.get("downstream", "") not in ("", "docstrings"):
        raise UsageError("plan", f"{path}: downstream = {raw['downstream']!r} is not a built-in task",
                         'use "docstrings" or leave it out')
    raw["phases"] = tuple(phases)
    _check_engine(raw.get("engine") or {}, path)
    return Plan(**raw)


def _check_engine(engine: dict, path: str) -> None:
    allowed = {f.name for f in dataclasses.fields(TrainConfig)} - _PHASE_SETTINGS
    unknown = sorted(set(engine) - allowed)
    if unknown:
        raise UsageError("plan", f"{path}: [engine] has unknown setting(s) {', '.join(unknown)}",
                         f"use only {', '.join(sorted(allowed))}")


def _check_phase(phase: Phase, where: str) -> None:
    checks = [
        (phase.max_seq_length, 5 <= phase.max_seq_length <= MAX_POSITION,
         f"max_seq_length must be in [5, {MAX_POSITION}]"),
        (phase.max_predictions_per_seq, 1 <= phase.max_predictions_per_seq <= phase.max_seq_length,
         "max_predictions_per_seq must be in [1, max_seq_length]"),
        (phase.global_batch_size, phase.global_batch_size >= 1, "global_batch_size must be >= 1"),
        (phase.train_steps, phase.train_steps >= 1, "train_steps must be >= 1"),
        (phase.learning_rate, 0 < phase.learning_rate < 1, "learning_rate must be in (0, 1)"),
        (phase.warmup_steps, 0 <= phase.warmup_steps < phase.train_steps,
         "warmup_steps must be in [0, train_steps)"),
        (phase.decay_power, phase.decay_power > 0, "decay_power must be > 0"),
        (phase.decay_from, phase.decay_from in DECAY_FROM, f"decay_from must be one of {', '.join(DECAY_FROM)}"),
        (phase.clip_norm, phase.clip_norm >= 0, "clip_norm must be >= 0"),
        (phase.masking, phase.masking in ("",) + MASKINGS, f"masking must be one of {', '.join(MASKINGS)}"),
        (phase.masked_lm_prob, 0 < phase.masked_lm_prob < 1, "masked_lm_prob must be in (0, 1)"),
    ]
    for value, ok, rule in checks:
        if not ok:
            raise UsageError("plan", f"{where}: {value!r} breaks the rule: {rule}", "fix the value")


def rescale(phase: Phase, global_batch_size: int) -> Phase:
    """The phase at another global batch: the learning rate scales with the square root of the
    batch ratio (You et al. 2020) and the steps and warmup inversely, so the epochs stay the same."""
    ratio = global_batch_size / phase.global_batch_size
    steps = max(1, round(phase.train_steps / ratio))
    return dataclasses.replace(
        phase, global_batch_size=global_batch_size, train_steps=steps,
        warmup_steps=min(round(phase.warmup_steps / ratio), steps - 1),
        learning_rate=sqrt_scaled_learning_rate(phase.learning_rate, phase.global_batch_size,
                                                global_batch_size))


def fit(phase: Phase, replicas: int, micro_batch_size: int) -> FittedPhase:
    """Gradient accumulation so that micro-batch x replicas x accumulation = the plan's batch."""
    per_step = micro_batch_size * replicas
    if micro_batch_size < 1 or phase.global_batch_size % per_step:
        fitting = [m for m in range(1, min(phase.global_batch_size // replicas, 4096) + 1)
                   if phase.global_batch_size % (m * replicas) == 0]
        raise UsageError("micro_batch_size",
                         f"{micro_batch_size} per replica x {replicas} replicas does not divide "
                         f"{phase.name}'s global batch {phase.global_batch_size}",
                         f"use one of {', '.join(map(str, fitting[-6:]))} (the largest that fits "
                         f"memory)")
    return FittedPhase(phase, micro_batch_size, replicas, phase.global_batch_size // per_step)
