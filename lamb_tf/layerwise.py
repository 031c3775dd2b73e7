"""The optimizer machinery LAMB and LARS share in both Keras flavours.

`LayerwiseOptimizer` is mixed into each flavour's Keras base class. It owns what does not depend
on the flavour: one plan per variable (decay? trust ratio?), stacking small variables, the float32
update through the paper's rule (`lamb_tf.algorithm`), and trust-ratio diagnostics. A flavour
implements the four hooks declared below for its kind of variable. `LambConstructor` and
`LarsConstructor` are the constructors both flavours expose, written once.
"""

import dataclasses
import math

from lamb_tf import algorithm
from lamb_tf.algorithm import ArrayOps, TrustRatio
from lamb_tf.hyperparameters import (METHOD_FIELDS, LambOptions, LarsOptions,
                                     check_learning_rate, check_patterns, split_arguments,
                                     split_older_patterns)


@dataclasses.dataclass(frozen=True)
class VariablePlan:
    """Decided once per variable when the optimizer is built, from its path."""

    path: str
    weight_decay: float  # 0.0 where excluded
    layer_adaptation: bool


# Variables up to this many elements are updated stacked with others of the same shape, dtype
# and plan: stacking copies them, which is cheap for biases and LayerNorm parameters and saves a
# handful of kernels per variable (BERT-large has 250 such vectors among its 398 variables).
MAX_STACKED_SIZE = 1 << 16


def stack_groups(plans, variables):
    """Tuples (two or more) of indices of small variables that can be updated as one array."""
    groups = {}
    for index, (plan, variable) in enumerate(zip(plans, variables)):
        shape = tuple(int(d) for d in variable.shape)
        if math.prod(shape) <= MAX_STACKED_SIZE:
            key = (shape, str(variable.dtype), plan.weight_decay, plan.layer_adaptation)
            groups.setdefault(key, []).append(index)
    return tuple(tuple(group) for group in groups.values() if len(group) > 1)


def lamb_update(xp, options: LambOptions, plan: VariablePlan, x, g, slots, learning_rate, step,
                stacked=False):
    """Algorithm 2 with `options` for one variable (or stack); `step` is the 1-based float t."""
    m, v = slots
    new_x, m, v, ratio = algorithm.lamb_step(
        xp, x, g, m, v, learning_rate=learning_rate, beta_1=options.beta_1,
        beta_2=options.beta_2, epsilon=options.epsilon,
        bias_correction_1=1.0 - options.beta_1 ** step if options.bias_correction else 1.0,
        bias_correction_2=1.0 - options.beta_2 ** step if options.bias_correction else 1.0,
        weight_decay=plan.weight_decay, layer_adaptation=plan.layer_adaptation,
        bounds=options.bounds, stacked=stacked)
    return new_x, (m, v), ratio


def lars_update(xp, options: LarsOptions, plan: VariablePlan, x, g, slots, learning_rate, step,
                stacked=False):
    """Algorithm 1 with `options` (`step` unused: LARS has no bias correction)."""
    (m,) = slots
    new_x, m, ratio = algorithm.lars_step(
        xp, x, g, m, learning_rate=learning_rate, momentum=options.momentum,
        weight_decay=plan.weight_decay, layer_adaptation=plan.layer_adaptation,
        bounds=options.bounds, stacked=stacked)
    return new_x, (m,), ratio


class LayerwiseOptimizer:
    """What both Keras flavours share; mixed in before the flavour's Keras optimizer class.

    Keras' own weight decay is decoupled (applied outside the update); ours lives inside the
    trust ratio, so the base class's decay step does nothing and `weight_decay` reads and sets
    ours. Set by the constructor classes: `_update_rule` (`lamb_update` or `lars_update`) and
    `_slot_names`; by the flavour: `_xp`, its `ArrayOps`.
    """

    _xp: ArrayOps
    _slot_names: tuple
    _update_rule = None

    # ----- hooks each flavour implements for its variables -----

    def _variable_path(self, variable) -> str:
        """The name exclusion patterns are searched in."""
        raise NotImplementedError

    def _index_of(self, variable) -> int:
        """The variable's position in the list the optimizer was built with."""
        raise NotImplementedError

    def _dense_gradient(self, gradient, variable):
        """The gradient as a dense tensor (embedding lookups give sparse ones)."""
        raise NotImplementedError

    def _assign(self, variable, value) -> None:
        raise NotImplementedError

    # ----- shared -----

    def _init_layerwise(self, options):
        self._options = options
        self._plans = None
        self._stacks = ()
        self._trust_ratio_stats = ()

    @property
    def options(self):
        """The validated hyperparameters (a frozen dataclass)."""
        return self._options

    @property
    def weight_decay(self):
        """λ, applied inside the trust ratio; settable until the optimizer is built."""
        options = getattr(self, "_options", None)
        return None if options is None else options.weight_decay

    @weight_decay.setter
    def weight_decay(self, value):
        if getattr(self, "_options", None) is None:
            return  # the Keras base constructor's `weight_decay=None`; the options follow it
        self._check_not_built("Set `weight_decay`")
        self._options = dataclasses.replace(self._options, weight_decay=value)

    def _check_not_built(self, action):
        # Each variable's decay and ratio are decided once, when the optimizer is built, and
        # compiled into its steps: a later change would be silently ignored.
        if getattr(self, "_plans", None) is not None:
            raise ValueError(f"{action} before the optimizer is built (its first step or "
                             "`build()`); construct a new optimizer to change it.")

    def _make_plans(self, variables):
        o = self._options
        plans = []
        for variable in variables:
            path, name = self._variable_path(variable), variable.name
            plans.append(VariablePlan(path, o.weight_decay if o.decays(path, name) else 0.0,
                                      o.adapts(path, name)))
        return tuple(plans)

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """No weight decay for the variables in `var_list`, nor for those whose `name` one of
        the regexes `var_names` searches (the name, not the path: `kernel`, `bias`, `gamma` in
        Keras 3); Keras' method, with Keras' meaning. A second call replaces the first's lists.

        This adds to the constructor's `exclude_from_weight_decay` patterns (searched in the
        path, e.g. `dense/bias`): a variable either excludes gets no decay. With the default
        `exclude_from_layer_adaptation=None`, the variables excluded here also take trust ratio
        1 (a plain Adam step), as for the constructor's patterns; pass that argument a list to
        decide the ratio by it alone. `var_list` variables are kept by path (and so in
        `get_config`), compared as `same_variable` does, so they stay excluded after
        `keras.saving.load_model` renames them. Call it before the optimizer is built.
        """
        self._check_not_built("Call `exclude_from_weight_decay()`")
        var_names = check_patterns("var_names", var_names)
        paths = tuple(self._variable_path(variable) for variable in var_list or ())
        self._options = self._options.with_method_exclusions(var_names or None, paths or None)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """The base class's `from_config`, plus what `exclude_from_weight_decay()` set, which
        `get_config` saves but the constructor does not take."""
        config = dict(config)
        if not any(name in config for name in METHOD_FIELDS):
            patterns, paths = split_older_patterns(config.get("exclude_from_weight_decay"))
            config.update(exclude_from_weight_decay=patterns, excluded_var_paths=paths)
        excluded = {name: config.pop(name, None) for name in METHOD_FIELDS}
        optimizer = super().from_config(config, custom_objects=custom_objects)
        optimizer._options = optimizer._options.with_method_exclusions(
            excluded["excluded_var_names"], excluded["excluded_var_paths"])
        return optimizer

    def _apply_weight_decay(self, variables):
        """No decoupled decay: weight decay is part of the update, inside the trust ratio."""

    def _update(self, indices, variables, gradients, learning_rate):
        """Updates one variable, or several of one shape and plan stacked along a new axis 0."""
        xp, stacked = self._xp, len(indices) > 1

        def as_array(values):
            values = [xp.cast(value, "float32") for value in values]
            return xp.stack(values) if stacked else values[0]

        def part(array, k):
            return array[k] if stacked else array

        x = as_array(variables)
        g = as_array([self._dense_gradient(g, v) for g, v in zip(gradients, variables)])
        slots = [as_array([slot[i] for i in indices]) for slot in self._slots]
        new_x, new_slots, ratio = self._update_rule(
            xp, self._options, self._plans[indices[0]], x, g, slots,
            xp.cast(learning_rate, "float32"), xp.cast(self.iterations + 1, "float32"), stacked)
        for k, (index, variable) in enumerate(zip(indices, variables)):
            self._assign(variable, xp.cast(part(new_x, k), variable.dtype))
            for slot, value in zip(self._slots, new_slots):
                self._assign(slot[index], xp.cast(part(value, k), slot[index].dtype))
            if ratio is not None and self._options.record_trust_ratios:
                self._assign(self._trust_ratio_stats[index], xp.stack([
                    xp.reshape(part(norm, k), ()) for norm in
                    (ratio.x_norm, ratio.update_norm, ratio.ratio)]))

    def _update_all(self, gradients, variables, learning_rate, update_group=None):
        """Small variables in stacks (`stack_groups`), the rest one by one, each through
        `update_group(indices, variables, gradients, learning_rate)` (default `_update`)."""
        update_group = update_group or self._update
        position = {self._index_of(v): k for k, v in enumerate(variables)}
        done = set()
        for group in self._stacks:
            members = [index for index in group if index in position]
            if len(members) > 1:
                update_group(members, [variables[position[i]] for i in members],
                             [gradients[position[i]] for i in members], learning_rate)
                done.update(members)
        for index, k in position.items():
            if index not in done:
                update_group([index], [variables[k]], [gradients[k]], learning_rate)

    def _with_options_config(self, config):
        config.update(self._options.config())
        return config

    def trust_ratios(self):
        """{variable path: TrustRatio(x_norm, update_norm, ratio)} of the last step, as floats.

        Needs `record_trust_ratios=True`; variables excluded from layer adaptation are absent.
        """
        if not self._options.record_trust_ratios:
            raise ValueError("Construct the optimizer with record_trust_ratios=True to read "
                             "trust ratios.")
        stats = {}
        for plan, variable in zip(self._plans or (), self._trust_ratio_stats):
            if variable is not None:
                x_norm, update_norm, ratio = (float(value) for value in variable.numpy())
                stats[plan.path] = TrustRatio(x_norm, update_norm, ratio)
        return stats


class LambConstructor:
    """LAMB's constructor in both flavours; the arguments are documented on `keras3.LAMB`.

    A flavour's class sets `_default_name` (None: the Keras base class names it). The base
    `__init__` it calls takes (learning_rate, options, name, **base-class kwargs).
    """

    _update_rule = staticmethod(lamb_update)
    _slot_names = ("momentum", "velocity")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-6,
                 weight_decay=0.0, exclude_from_weight_decay=None,
                 exclude_from_layer_adaptation=None, bias_correction=True, phi_min=None,
                 phi_max=None, min_trust_ratio=None, max_trust_ratio=None, nvlamb=False,
                 record_trust_ratios=False, float32_slots=False, name=None, **kwargs):
        check_learning_rate(learning_rate)
        options, kwargs = split_arguments(LambOptions, locals())
        super().__init__(learning_rate, options, name or self._default_name, **kwargs)


class LarsConstructor:
    """LARS's constructor in both flavours; the arguments are documented on `keras3.LARS`."""

    _update_rule = staticmethod(lars_update)
    _slot_names = ("momentum",)

    def __init__(self, learning_rate=0.001, momentum=0.9, weight_decay=0.0,
                 exclude_from_weight_decay=None, exclude_from_layer_adaptation=None,
                 phi_min=None, phi_max=None, min_trust_ratio=None, max_trust_ratio=None,
                 record_trust_ratios=False, float32_slots=False, name=None, **kwargs):
        check_learning_rate(learning_rate)
        options, kwargs = split_arguments(LarsOptions, locals())
        super().__init__(learning_rate, options, name or self._default_name, **kwargs)
