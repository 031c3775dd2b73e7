"""LAMB and LARS as tf_keras (Keras 2) optimizers, for Model Garden and TF_USE_LEGACY_KERAS=1.

Subclasses of the non-legacy `tf_keras.optimizers.Optimizer`; the math lives in
`lamb_tf.algorithm`, shared with the Keras 3 classes.
"""

import re

import tensorflow as tf
import tf_keras

from lamb_tf import xla_sums
from lamb_tf.algorithm import ArrayOps
from lamb_tf.layerwise import LambConstructor, LarsConstructor, LayerwiseOptimizer, stack_groups
from lamb_tf.schedules import WarmupPolynomialRule

TF_OPS = ArrayOps(sqrt=tf.sqrt, sum=tf.reduce_sum, cast=tf.cast, stack=tf.stack,
                  reshape=tf.reshape, unstack=tf.unstack, where=tf.where, minimum=tf.minimum,
                  maximum=tf.maximum, sums_of_squares=xla_sums.sums_of_squares)

_Schedule = tf_keras.optimizers.schedules.LearningRateSchedule


class _CallableLearningRate(_Schedule):
    """tf_keras stores a float or a schedule; a no-argument callable becomes a schedule."""

    def __init__(self, function):
        self.function = function

    def __call__(self, step):
        return self.function()

    def get_config(self):
        raise NotImplementedError("A callable learning rate cannot be serialised; use a "
                                  "LearningRateSchedule to save this optimizer's config.")


class _LayerwiseOptimizer(LayerwiseOptimizer, tf_keras.optimizers.Optimizer):
    """Per-variable plans, float32 math, stacked small variables (outside tf.distribute) and
    diagnostics. The update rule is `_update_rule` (LAMB or LARS, `lamb_tf.layerwise`)."""

    _xp = TF_OPS

    def __init__(self, learning_rate, options, name, **kwargs):
        if options.float32_slots:
            raise ValueError("`float32_slots` is for lamb_tf.keras3: tf_keras makes each slot in "
                             "its variable's dtype; drop it or use the Keras 3 class.")
        super().__init__(name=name, **kwargs)
        if callable(learning_rate) and not isinstance(learning_rate, _Schedule):
            learning_rate = _CallableLearningRate(learning_rate)
        self._learning_rate = self._build_learning_rate(learning_rate)
        self._init_layerwise(options)

    def _variable_path(self, variable):
        return re.sub(r":\d+$", "", variable.name)

    def build(self, var_list):
        super().build(var_list)
        if getattr(self, "_built", False):
            return
        self._built = True
        self._plans = self._make_plans(var_list)
        self._stacks = stack_groups(self._plans, var_list)
        self._slots = [[self.add_variable_from_reference(model_variable=var, variable_name=name)
                        for var in var_list] for name in self._slot_names]
        if self._options.record_trust_ratios:
            self._trust_ratio_stats = [
                self.add_variable((3,), dtype=tf.float32,
                                  name=f"trust_ratio/{plan.path}")
                if plan.layer_adaptation else None
                for plan in self._plans]

    def _index_of(self, variable):
        key = self._var_key(variable)
        if key not in self._index_dict:
            raise KeyError(f"{self.name} was built for other variables than {variable.name}; "
                           "build it with the full list of variables it will update "
                           "(`optimizer.build(model.trainable_variables)`).")
        return self._index_dict[key]

    def _dense_gradient(self, gradient, variable):
        return tf.convert_to_tensor(gradient)  # densifies IndexedSlices: the moments decay everywhere

    def _assign(self, variable, value):
        variable.assign(value)

    def update_step(self, gradient, variable):
        self._update([self._index_of(variable)], [variable], [gradient], self.learning_rate)

    def _distributed_apply_gradients_fn(self, distribution, grads_and_vars, **kwargs):
        """The base class updates each variable in its own `distribution.extended.update`; with
        no tf.distribute strategy (or EMA) in play, small variables go in stacks instead."""
        if tf.distribute.has_strategy() or self.use_ema:
            return super()._distributed_apply_gradients_fn(distribution, grads_and_vars, **kwargs)
        gradients, variables = zip(*grads_and_vars)
        self._update_all(gradients, variables, self.learning_rate, self._update_group)
        return self.iterations.assign_add(1)

    def _update_group(self, indices, variables, gradients, learning_rate):
        # Inside a function that is XLA-compiled already (a jit_compile train step), one XLA
        # function per variable or stack would be inlined into it anyway: trace it directly.
        compile_each = self.jit_compile and not xla_sums.in_xla_function()
        if len(indices) == 1:   # the base class's own path
            (variable,), (gradient,) = variables, gradients
            if compile_each:
                return self._update_step_xla(gradient, variable, id(self._var_key(variable)))
            return self._update_step(gradient, variable)
        if compile_each:
            return self._update_stack_xla(tuple(indices), variables, gradients)
        return self._update(indices, variables, gradients, learning_rate)

    @tf.function(jit_compile=True)
    def _update_stack_xla(self, indices, variables, gradients):
        # `indices` (a Python tuple) keys the trace: same-shape stacks must not share one.
        return self._update(list(indices), variables, gradients, self.learning_rate)

    def get_config(self):
        config = super().get_config()
        config["learning_rate"] = self._serialize_hyperparameter(self._learning_rate)
        return self._with_options_config(config)


@tf_keras.saving.register_keras_serializable(package="lamb_tf")
class LAMB(LambConstructor, _LayerwiseOptimizer):
    """LAMB (You et al. 2020, Algorithm 2) for tf_keras; arguments as `lamb_tf.keras3.LAMB`.

    Exclusion patterns are searched in the variable's name without its `:0` suffix, e.g.
    `transformer/layer_0/self_attention/query/kernel`. `jit_compile` (base option) compiles the
    per-variable update with XLA on GPU, as in every tf_keras optimizer.
    """

    _default_name = "LAMB"


@tf_keras.saving.register_keras_serializable(package="lamb_tf")
class LARS(LarsConstructor, _LayerwiseOptimizer):
    """LARS (You et al. 2020, Algorithm 1) for tf_keras; arguments as `lamb_tf.keras3.LARS`."""

    _default_name = "LARS"


@tf_keras.saving.register_keras_serializable(package="lamb_tf")
class WarmupPolynomialDecay(WarmupPolynomialRule, _Schedule):
    __doc__ = WarmupPolynomialRule.__doc__

    def __call__(self, step):
        return self.rate(step, tf)
