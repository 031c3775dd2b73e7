"""What a user configures in LAMB and LARS: the hyperparameters, checked, with their defaults.

Shared by both Keras flavours so that a bad argument fails the same way everywhere, before any
variable is built, with a `ValueError` that names the argument. Frozen dataclasses: the values
an optimizer was built with never change under it.
"""

import dataclasses
import math
import numbers
import re
from typing import Optional, Tuple

from lamb_tf.algorithm import TrustRatioBounds

Patterns = Optional[Tuple[str, ...]]
Paths = Optional[Tuple[str, ...]]

# Variables BERT excludes from weight decay (and, by default, from layer adaptation).
BERT_EXCLUSIONS = ["LayerNorm", "layer_norm", "bias"]


def check_patterns(name: str, patterns) -> Patterns:
    """None, or a list of regular expressions searched in variable paths, returned as a tuple."""
    if patterns is None:
        return None
    if isinstance(patterns, (str, bytes)):
        raise ValueError(
            f"`{name}` must be a list of regex patterns, not the bare string {patterns!r}; "
            f"write {name}=[{patterns!r}].")
    try:
        patterns = tuple(patterns)
    except TypeError:
        raise ValueError(f"`{name}` must be None or a list of regex patterns, got {patterns!r}.")
    for pattern in patterns:
        if not isinstance(pattern, str):
            raise ValueError(f"`{name}` holds {pattern!r}, which is not a string pattern.")
        try:
            re.compile(pattern)
        except re.error as err:
            raise ValueError(f"`{name}` holds an invalid regex {pattern!r}: {err}.")
    return patterns


def _check_paths(name: str, paths) -> Paths:
    if paths is None:
        return None
    if isinstance(paths, (str, bytes)) or not all(isinstance(p, str) for p in paths):
        raise ValueError(f"`{name}` must be a list of variable paths, got {paths!r}.")
    return tuple(paths)


def check_learning_rate(learning_rate) -> None:
    """Numbers must be finite and ≥ 0; schedules and callables are checked by Keras when called."""
    if isinstance(learning_rate, numbers.Real) and not isinstance(learning_rate, bool):
        if not math.isfinite(learning_rate) or learning_rate < 0:
            raise ValueError(f"`learning_rate` must be a finite number >= 0, got {learning_rate}.")


def _check_number(name, value, low, high, low_open=False, high_open=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"`{name}` must be a finite number, got {value!r}.")
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"`{name}` must be in {interval}, got {value}.")
    return float(value)


def _check_optional_bounds(low_name, low, high_name, high):
    for name, value in ((low_name, low), (high_name, high)):
        if value is not None:
            _check_number(name, value, 0.0, math.inf, low_open=False, high_open=True)
    if low is not None and high is not None and low > high:
        raise ValueError(f"`{low_name}` ({low}) must not exceed `{high_name}` ({high}).")
    return (None if low is None else float(low)), (None if high is None else float(high))


@dataclasses.dataclass(frozen=True)
class LayerwiseOptions:
    """What LAMB and LARS share: weight decay, exclusions and trust-ratio bounds.

    Field names are the optimizers' argument names, so `config()` is their `get_config` part;
    the last two hold what the optimizer's `exclude_from_weight_decay()` set (`METHOD_FIELDS`).
    """

    weight_decay: float = 0.0  # None: 0.0, as Keras' own optimizers accept None
    exclude_from_weight_decay: Patterns = None
    exclude_from_layer_adaptation: Patterns = None
    phi_min: Optional[float] = None
    phi_max: Optional[float] = None
    min_trust_ratio: Optional[float] = None
    max_trust_ratio: Optional[float] = None
    record_trust_ratios: bool = False
    float32_slots: bool = False
    excluded_var_names: Patterns = None   # regexes searched in `variable.name`, as Keras does
    excluded_var_paths: Paths = None      # the `var_list` variables, by path (`same_variable`)

    def __post_init__(self):
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        weight_decay = 0.0 if self.weight_decay is None else self.weight_decay
        set_("weight_decay", _check_number("weight_decay", weight_decay, 0.0, math.inf,
                                           high_open=True))
        for name in ("exclude_from_weight_decay", "exclude_from_layer_adaptation",
                     "excluded_var_names"):
            set_(name, check_patterns(name, getattr(self, name)))
        set_("excluded_var_paths", _check_paths("excluded_var_paths", self.excluded_var_paths))
        phi = _check_optional_bounds("phi_min", self.phi_min, "phi_max", self.phi_max)
        ratio = _check_optional_bounds("min_trust_ratio", self.min_trust_ratio,
                                       "max_trust_ratio", self.max_trust_ratio)
        set_("phi_min", phi[0])
        set_("phi_max", phi[1])
        set_("min_trust_ratio", ratio[0])
        set_("max_trust_ratio", ratio[1])
        set_("record_trust_ratios", bool(self.record_trust_ratios))
        set_("float32_slots", bool(self.float32_slots))

    @property
    def bounds(self) -> TrustRatioBounds:
        return TrustRatioBounds(self.phi_min, self.phi_max, self.min_trust_ratio,
                                self.max_trust_ratio)

    def decays(self, path: str, name: Optional[str] = None) -> bool:
        """Whether the variable at `path` gets weight decay. `name` is its `variable.name`
        (by default the path's last part, as in Keras 3)."""
        return self.weight_decay > 0 and not self._excluded_from_decay(path, name)

    def adapts(self, path: str, name: Optional[str] = None) -> bool:
        """Whether the trust ratio applies; exclude_from_layer_adaptation=None means "the
        variables excluded from weight decay", however they were excluded."""
        if self.exclude_from_layer_adaptation is None:
            return not self._excluded_from_decay(path, name)
        return not _matches(self.exclude_from_layer_adaptation, path)

    def _excluded_from_decay(self, path, name):
        name = path.rsplit("/", 1)[-1] if name is None else name
        return (_matches(self.exclude_from_weight_decay, path)
                or _matches(self.excluded_var_names, name)
                or any(same_variable(p, path) for p in self.excluded_var_paths or ()))

    def with_method_exclusions(self, var_names=None, var_paths=None) -> "LayerwiseOptions":
        """A copy with `exclude_from_weight_decay()`'s lists replaced, as Keras' method does."""
        return dataclasses.replace(self, excluded_var_names=var_names,
                                   excluded_var_paths=var_paths)

    def config(self) -> dict:
        return {name: list(value) if isinstance(value, tuple) else value
                for name, value in dataclasses.asdict(self).items()}


# Fields that `exclude_from_weight_decay()` sets: in `get_config`, but no constructor argument.
METHOD_FIELDS = ("excluded_var_names", "excluded_var_paths")


def _matches(patterns: Patterns, text: str) -> bool:
    return any(re.search(pattern, text) for pattern in patterns or ())


def same_variable(saved: str, path: str) -> bool:
    """Whether two variable paths name one variable, allowing for scopes that Keras adds or
    drops in front: a Sequential model's variables are `sequential/dense/kernel` when built and
    `dense/kernel` after `keras.saving.load_model`. Equal, or the shorter path (still at least
    `layer/variable`) ends the longer one after a `/`."""
    if saved == path:
        return True
    short, long = sorted((saved, path), key=len)
    return "/" in short and long.endswith("/" + short)


def split_older_patterns(patterns) -> Tuple[Patterns, Paths]:
    """An older version's `exclude_from_weight_decay` config as (patterns, var_list paths).

    Older versions stored `exclude_from_weight_decay(var_list=...)` among the patterns, as
    `^<escaped path>$`, which misses the variable once `load_model` renames it. Such literal,
    anchored patterns are taken back as paths, which keeps what they were written to exclude.
    """
    kept, paths = [], []
    for pattern in patterns or ():
        literal = re.fullmatch(r"\^(.*)\$", pattern) if isinstance(pattern, str) else None
        path = literal and re.sub(r"\\(.)", r"\1", literal.group(1))
        if path and re.escape(path) == literal.group(1):
            paths.append(path)
        else:
            kept.append(pattern)
    return (None if patterns is None else kept), (paths or None)


@dataclasses.dataclass(frozen=True)
class LambOptions(LayerwiseOptions):
    """LAMB's own hyperparameters on top of the shared ones."""

    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-6
    bias_correction: bool = True
    nvlamb: bool = False

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "beta_1", _check_number("beta_1", self.beta_1, 0.0, 1.0,
                                                         high_open=True))
        object.__setattr__(self, "beta_2", _check_number("beta_2", self.beta_2, 0.0, 1.0,
                                                         high_open=True))
        object.__setattr__(self, "epsilon", _check_number("epsilon", self.epsilon, 0.0, math.inf,
                                                          low_open=True, high_open=True))
        object.__setattr__(self, "bias_correction", bool(self.bias_correction))
        object.__setattr__(self, "nvlamb", bool(self.nvlamb))
        if self.nvlamb:
            if self.exclude_from_layer_adaptation:
                raise ValueError(
                    "`nvlamb=True` applies the trust ratio to every variable; drop "
                    "`exclude_from_layer_adaptation` or set nvlamb=False.")
            object.__setattr__(self, "exclude_from_layer_adaptation", ())


@dataclasses.dataclass(frozen=True)
class LarsOptions(LayerwiseOptions):
    """LARS's own hyperparameter on top of the shared ones."""

    momentum: float = 0.9

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "momentum", _check_number("momentum", self.momentum, 0.0, 1.0,
                                                           high_open=True))


def split_arguments(options_class, arguments: dict):
    """An optimizer's `__init__` arguments (its `locals()`) as (options, base-class kwargs).

    NVLAMB divides all gradients by their global norm when it exceeds 1: global_clipnorm=1.
    """
    names = {field.name for field in dataclasses.fields(options_class)}
    options = options_class(**{k: v for k, v in arguments.items() if k in names})
    kwargs = dict(arguments["kwargs"])
    if getattr(options, "nvlamb", False):
        if (kwargs.get("clipnorm") is not None or kwargs.get("clipvalue") is not None
                or kwargs.get("global_clipnorm") not in (None, 1.0)):
            raise ValueError(
                "`nvlamb=True` clips gradients to global norm 1.0 itself; drop `clipnorm`, "
                "`clipvalue` and `global_clipnorm` (or set global_clipnorm=1.0).")
        kwargs["global_clipnorm"] = 1.0
    return options, kwargs
