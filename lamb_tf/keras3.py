"""LAMB and LARS as Keras 3 optimizers.

Written with `keras.ops`, so this module imports without TensorFlow and runs on the TensorFlow
and JAX backends; only the TensorFlow backend's XLA reduction (`lamb_tf.xla_sums`) is imported
when that backend is in use. The math lives in `lamb_tf.algorithm`.
"""

import re

import keras
from keras import ops

from lamb_tf.algorithm import ArrayOps
from lamb_tf.layerwise import LambConstructor, LarsConstructor, LayerwiseOptimizer, stack_groups
from lamb_tf.schedules import WarmupPolynomialRule


def _sums_of_squares(a, b, axes):
    """On the TensorFlow backend, XLA's float64 pair reduction where it applies."""
    if keras.backend.backend() != "tensorflow":
        return None
    from lamb_tf import xla_sums  # TensorFlow is installed: it is the backend

    return xla_sums.sums_of_squares(a, b, axes)


KERAS_OPS = ArrayOps(sqrt=ops.sqrt, sum=ops.sum, cast=ops.cast, stack=ops.stack,
                     reshape=ops.reshape, unstack=ops.unstack, where=ops.where,
                     minimum=ops.minimum, maximum=ops.maximum, sums_of_squares=_sums_of_squares)


def _dense(gradient, shape):
    """Embedding lookups give tf.IndexedSlices; the moments decay everywhere, so densify."""
    if hasattr(gradient, "indices") and hasattr(gradient, "dense_shape"):
        indices = ops.expand_dims(ops.cast(gradient.indices, "int32"), -1)
        return ops.scatter(indices, gradient.values, shape)  # sums duplicate rows
    return gradient


def _under_tf_distribute():
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf  # the TensorFlow backend is in use, so it is installed

    return tf.distribute.has_strategy()


class _LayerwiseOptimizer(LayerwiseOptimizer, keras.optimizers.Optimizer):
    """Per-variable plans, float32 math, stacked small variables, diagnostics, and clipping
    after the replica sum. The update rule is `_update_rule` (LAMB or LARS, `lamb_tf.layerwise`)."""

    _xp = KERAS_OPS

    def __init__(self, learning_rate, options, name, **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self._init_layerwise(options)

    def _variable_path(self, variable):
        # A native tf.Variable has no path; Keras itself falls back to its name then.
        return getattr(variable, "path", None) or re.sub(r":\d+$", "", variable.name)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._plans = self._make_plans(variables)
        self._stacks = stack_groups(self._plans, variables)
        self._slots = [self._add_slots(variables, name) for name in self._slot_names]
        if self._options.record_trust_ratios:
            self._trust_ratio_stats = [
                self.add_variable((3,), dtype="float32",
                                  name=f"{plan.path.replace('/', '_')}_trust_ratio")
                if plan.layer_adaptation else None
                for plan in self._plans]

    def _add_slots(self, variables, name):
        """One slot per variable, as `add_optimizer_variables` makes them; float32 where
        `float32_slots` asks it for a float16 or bfloat16 variable, whose own dtype cannot hold
        a moment's small changes (v = 0.999·v + 0.001 stops rising at 0.25 in bfloat16)."""
        if not self._options.float32_slots:
            return self.add_optimizer_variables(variables, name)
        slots = []
        for variable in variables:
            if self._overwrite_variable_with_gradient(variable):
                slots.append(None)
            elif keras.backend.standardize_dtype(variable.dtype) in ("float16", "bfloat16"):
                slots.append(self.add_variable(
                    tuple(variable.shape), dtype="float32", layout=getattr(variable, "_layout", None),
                    name=f"{self._variable_path(variable).replace('/', '_')}_{name}"))
            else:
                slots.append(self.add_variable_from_reference(variable, name))
        return slots

    def _index_of(self, variable):
        return self._get_variable_index(variable)

    def _dense_gradient(self, gradient, variable):
        return _dense(gradient, tuple(variable.shape))

    def _assign(self, variable, value):
        self.assign(variable, value)

    def update_step(self, gradient, variable, learning_rate):
        self._update([self._get_variable_index(variable)], [variable], [gradient],
                     learning_rate)

    def _clip_gradients(self, grads):
        # Keras clips here, which on TensorFlow is before the cross-replica gradient sum;
        # `_backend_update_step` clips the summed gradients instead.
        return grads

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        if not _under_tf_distribute():
            return self._update_all(super()._clip_gradients(grads), trainable_variables,
                                    learning_rate)
        import tensorflow as tf

        # tf.distribute updates each variable in its own context (no stacking), after the sum.
        variables = [getattr(v, "value", v) for v in trainable_variables]
        summed = self._all_reduce_sum_gradients(list(zip(grads, variables)))
        clipped = super()._clip_gradients([grad for grad, _ in summed])
        tf.__internal__.distribute.interim.maybe_merge_call(
            self._distributed_tf_update_step, self._distribution_strategy,
            list(zip(clipped, variables)), learning_rate)

    def get_config(self):
        return self._with_options_config(super().get_config())


@keras.saving.register_keras_serializable(package="lamb_tf")
class LAMB(LambConstructor, _LayerwiseOptimizer):
    """LAMB: layer-wise adaptive moments (You et al. 2020, Algorithm 2).

    Adam's direction plus weight decay, rescaled per variable by the trust ratio
    φ(‖x‖)/‖m̂/(√v̂+ε) + λx‖, so every layer moves by a step proportional to its own norm.

    Args:
        learning_rate: float, `keras.optimizers.schedules.LearningRateSchedule`, or callable.
        beta_1, beta_2: decay rates of the first and second moments, in [0, 1).
        epsilon: added to √v̂ (outside the square root), > 0.
        weight_decay: λ, applied INSIDE the trust ratio (not Keras' decoupled decay).
        exclude_from_weight_decay: list of regex patterns searched in `variable.path`; matching
            variables get no decay. BERT uses `lamb_tf.BERT_EXCLUSIONS`.
        exclude_from_layer_adaptation: list of patterns whose variables take ratio 1 (a plain
            Adam step). None: the weight-decay list; []: no variable is excluded.
        bias_correction: divide the moments by 1-β^t (the paper's Algorithm 2; NVIDIA's and
            Model Garden's LAMB); False drops it, as google-research/bert's AdamWeightDecay does.
        phi_min, phi_max: bounds of φ(z) = min(max(z, phi_min), phi_max) on ‖x‖.
        min_trust_ratio, max_trust_ratio: bounds on the ratio itself.
        nvlamb: NVIDIA's variant: divide all gradients by their global norm when it exceeds 1
            (global_clipnorm=1.0) and apply the ratio to every variable.
        record_trust_ratios: keep ‖x‖, ‖update‖ and the ratio of the last step per variable,
            readable with `trust_ratios()` (for TensorBoard); costs three floats per variable.
        float32_slots: keep the moments of float16 and bfloat16 variables in float32 (Keras
            gives slots the variable's dtype); not in the tf_keras flavour.
        name: the optimizer's name; None gives "lamb", "lamb_1", ..., as Keras names its own
            ("LAMB" in the tf_keras flavour).
        **kwargs: the base class options (`clipnorm`, `global_clipnorm`, `clipvalue`,
            `use_ema`, `loss_scale_factor`, `gradient_accumulation_steps`, ...). Clipping is
            applied to the gradients summed across replicas.

    `weight_decay` is also an attribute, settable until the optimizer is built (None is 0).
    `exclude_from_weight_decay()` is Keras' method with Keras' meaning; what it excludes adds
    to the constructor's patterns and is saved in `get_config` (its docstring has the details).

    A ratio is 1 where the update is zero, and where ‖x‖ = 0 unless `phi_min` is set (then the
    paper's φ(0) = phi_min gives phi_min/‖update‖). Norms and the update are computed in
    float32 whatever the variable's dtype. Wrap in `keras.optimizers.LossScaleOptimizer`
    (automatic under a mixed_float16 policy) to skip steps with non-finite gradients.
    """

    _default_name = None


@keras.saving.register_keras_serializable(package="lamb_tf")
class LARS(LarsConstructor, _LayerwiseOptimizer):
    """LARS: layer-wise adaptive rate scaling with momentum (You et al. 2020, Algorithm 1).

    m ← β1·m + (1-β1)·(g + λx);  x ← x - η·φ(‖x‖)/‖m‖·m.

    Args:
        learning_rate: float, schedule or callable.
        momentum: β1, in [0, 1).
        weight_decay, exclude_from_weight_decay, exclude_from_layer_adaptation, phi_min,
        phi_max, min_trust_ratio, max_trust_ratio, record_trust_ratios, float32_slots,
        **kwargs: as in `LAMB`.
        name: None gives "lars", "lars_1", ... ("LARS" in the tf_keras flavour).
    """

    _default_name = None


@keras.saving.register_keras_serializable(package="lamb_tf")
class WarmupPolynomialDecay(WarmupPolynomialRule, keras.optimizers.schedules.LearningRateSchedule):
    __doc__ = WarmupPolynomialRule.__doc__

    def __call__(self, step):
        return self.rate(step, ops)
