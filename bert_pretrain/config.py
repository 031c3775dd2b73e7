"""What a training run is configured with: the model's size (named presets or custom sizes,
docs/model.md) and the training settings, each checked once, up front."""

import dataclasses

from bert_pretrain.errors import UsageError

# name -> (layers, hidden, heads); intermediate is always 4 x hidden.
PRESETS = {
    "tiny": (2, 128, 2), "mini": (4, 256, 4), "small": (4, 512, 8),
    "medium": (8, 512, 8), "base": (12, 768, 12), "large": (24, 1024, 16),
}
MAX_POSITION = 512     # sized for phase 2 from phase 1 on, so phase 2 can load phase 1's weights
TYPE_VOCAB_SIZE = 2    # segments A and B


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    num_layers: int
    hidden_size: int
    num_heads: int
    dropout: float = 0.1

    @property
    def intermediate_size(self) -> int:
        return 4 * self.hidden_size

    def __post_init__(self):
        """Every bad size as one line naming the flags (a plan's fields have the same names)."""
        problems = [(name, f"{getattr(self, name)} is not positive") for name in
                    ("vocab_size", "num_layers", "hidden_size", "num_heads") if getattr(self, name) <= 0]
        if self.num_heads > 0 and self.hidden_size % self.num_heads:
            problems.append(("hidden_size", f"{self.hidden_size} is not a multiple of --num_heads={self.num_heads}"))
        if not 0 <= self.dropout < 1:
            problems.append(("dropout", f"{self.dropout} is not in [0, 1)"))
        if problems:
            raise UsageError(problems[0][0], "; ".join(f"--{name}={problem}" if index else problem
                                                       for index, (name, problem) in enumerate(problems)),
                             "choose positive sizes, hidden_size a multiple of num_heads (each head gets "
                             "hidden_size / num_heads dimensions)")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def from_preset(preset: str, vocab_size: int, dropout: float = 0.1, **overrides) -> ModelConfig:
    """A preset, with any of num_layers / hidden_size / num_heads overridden (None = keep)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    layers, hidden, heads = PRESETS[preset]
    chosen = {"num_layers": layers, "hidden_size": hidden, "num_heads": heads}
    chosen.update({k: v for k, v in overrides.items() if v is not None})
    return ModelConfig(vocab_size=vocab_size, dropout=dropout, **chosen)


PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
OPTIMIZERS = ("lamb", "adamw", "lars")
XLA_CHOICES = ("auto", "on", "off")
DECAY_FROM = ("warmup_end", "step_0")   # lamb_tf.schedules.DECAY_FROM, without importing TensorFlow
MASKINGS = ("static", "dynamic", "dynamic_whole_word")   # the records' masks, or new ones each read


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    train_steps: int
    global_batch_size: int
    learning_rate: float
    warmup_steps: int
    decay_power: float = 1.0
    decay_from: str = "warmup_end"   # or "step_0" (google-research, NVIDIA): lamb_tf.schedules
    accumulation_steps: int = 1
    steps_per_loop: int = 100
    weight_decay: float = 0.01
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-6
    clip_norm: float = 0.0           # global norm; 0 = no clipping
    precision: str = "float32"
    max_consecutive_skips: int = 20
    max_bad_record_fraction: float = 0.01   # of the records, in damaged files, before a run stops (data_faults)
    checkpoint_every: int = 1000
    keep_checkpoints: int = 5
    eval_every: int = 0              # 0 = evaluate only at the end (if there are eval files)
    seed: int = 12345
    peak_tflops: float = 0.0         # per replica, for the MFU estimate; 0 = do not estimate
    optimizer: str = "lamb"          # "adamw" and "lars" are for comparisons (benchmarks/large_batch_study.py)
    xla: str = "auto"                # auto: XLA on GPU (and TPU, always); on CPU only the update
    masking: str = "static"          # or dynamic / dynamic_whole_word: masked in the input pipeline
    noise_scale: bool = True         # B_simple from the micro-batch gradients, when a step has several

    def check(self, replicas: int) -> None:
        """Every problem as one line naming the flag, before any compute."""
        def need(ok, flag, problem):
            if not ok:
                raise UsageError(flag, problem, "change the flag")
        need(self.precision in PRECISIONS, "precision", f"{self.precision!r} is not one of {PRECISIONS}")
        need(self.xla in XLA_CHOICES, "xla", f"{self.xla!r} is not one of {XLA_CHOICES}")
        need(self.decay_from in DECAY_FROM, "decay_from", f"{self.decay_from!r} is not one of {DECAY_FROM}")
        need(self.optimizer in OPTIMIZERS, "optimizer", f"{self.optimizer!r} is not one of {OPTIMIZERS}")
        need(self.masking in MASKINGS, "masking", f"{self.masking!r} is not one of {MASKINGS}")
        need(self.train_steps > 0 and self.steps_per_loop > 0, "train_steps", "steps must be positive")
        need(self.global_batch_size % (replicas * self.accumulation_steps) == 0, "global_batch_size",
             f"{self.global_batch_size} is not a multiple of {replicas} replicas x "
             f"{self.accumulation_steps} accumulation steps")
        for flag in ("checkpoint_every", "eval_every"):
            every = getattr(self, flag)
            need(every >= 0 and every % self.steps_per_loop == 0, flag,
                 f"{every} is not a multiple of --steps_per_loop={self.steps_per_loop}")
        need(0 <= self.warmup_steps < self.train_steps, "warmup_steps", "must be below --train_steps")
        need(0 <= self.max_bad_record_fraction < 1, "max_bad_record_fraction", "must be in [0, 1)")
