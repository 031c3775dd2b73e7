"""Model sizes (DESIGN.md §2): named presets and custom sizes, validated once, up front."""

import dataclasses

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
        problems = [f"{name} must be positive" for name in ("vocab_size", "num_layers", "hidden_size",
                                                            "num_heads") if getattr(self, name) <= 0]
        if self.num_heads > 0 and self.hidden_size % self.num_heads:
            problems.append(f"hidden_size {self.hidden_size} is not a multiple of num_heads {self.num_heads}")
        if not 0 <= self.dropout < 1:
            problems.append("dropout must be in [0, 1)")
        if problems:
            raise ValueError("bad model config: " + "; ".join(problems))

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
