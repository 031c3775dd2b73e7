"""The JAX half of optimizer_step.py: Keras 3 optimizers on the JAX backend (a GPU if there is
one) against optax and, where PyTorch sees a GPU, torch's fused AdamW.

Each Keras optimizer runs as model.fit runs it: `stateless_apply` under `jax.jit`, with the
variables and optimizer state donated so XLA updates them in place.
"""

import contextlib
import functools
import statistics
import time

WEIGHT_DECAY = 0.01
EXCLUSIONS = ["LayerNorm", "layer_norm", "bias"]
LEARNING_RATE = 1e-3


def _median_and_first(step, steps):
    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    for _ in range(3):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times), first


def _keras_row(factory, specs, params, grads, steps):
    import jax
    import keras

    variables = []
    for (path, _), value in zip(specs, params):
        *scopes, leaf = path.split("/")
        with contextlib.ExitStack() as stack:
            for scope in scopes:
                stack.enter_context(keras.name_scope(scope))
            variables.append(keras.Variable(value + 0, name=leaf))  # own buffer: donated
    optimizer = factory()
    optimizer.build(variables)

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def apply(train_values, optimizer_values, grads):
        return optimizer.stateless_apply(optimizer_values, grads, train_values)

    state = {"train": [v.value for v in variables],
             "optimizer": [v.value for v in optimizer.variables]}
    del variables

    def step():
        state["train"], state["optimizer"] = apply(state["train"], state["optimizer"], grads)
        jax.block_until_ready(state["train"])

    result = _median_and_first(step, steps)
    slots = sum(v.size for v in state["optimizer"] if v.ndim > 0)
    return result + (slots,)


def _with_max_stacked_size(size, run):
    from lamb_tf import layerwise

    default, layerwise.MAX_STACKED_SIZE = layerwise.MAX_STACKED_SIZE, size
    try:
        return run()
    finally:
        layerwise.MAX_STACKED_SIZE = default


def _optax_row(transform, params, grads, steps):
    import jax
    import optax

    state = {"params": [p + 0 for p in params]}
    state["opt"] = transform.init(state["params"])

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def apply(params, opt_state, grads):
        updates, opt_state = transform.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    def step():
        state["params"], state["opt"] = apply(state["params"], state["opt"], grads)
        jax.block_until_ready(state["params"])

    result = _median_and_first(step, steps)
    slots = sum(x.size for x in jax.tree_util.tree_leaves(state["opt"]) if x.ndim > 0)
    return result + (slots,)


def _torch_fused_adamw_row(specs, steps):
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    params = [torch.nn.Parameter(torch.randn(shape, device="cuda") * 0.02) for _, shape in specs]
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    optimizer = torch.optim.AdamW(params, lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY, fused=True)

    def step():
        optimizer.step()
        torch.cuda.synchronize()

    result = _median_and_first(step, steps)
    slots = sum(s.numel() for state in optimizer.state.values() for s in state.values()
                if s.dim() > 0)
    del optimizer, params
    torch.cuda.empty_cache()
    return result + (slots,)


def _copy_bandwidth(count):
    """Bytes read + written per second by a device copy of `count` floats."""
    import jax
    import jax.numpy as jnp

    source = jnp.ones((count,), jnp.float32)
    copy = jax.jit(lambda x: x * 1.0)
    jax.block_until_ready(copy(source))
    start = time.perf_counter()
    for _ in range(10):
        jax.block_until_ready(copy(source))
    return 2 * 4 * count * 10 / (time.perf_counter() - start)


def run(specs, steps):
    import jax
    import keras
    import optax

    import lamb_tf.keras3

    keys = jax.random.split(jax.random.PRNGKey(0), 2 * len(specs))
    params = [jax.random.normal(keys[2 * i], shape) * 0.02 for i, (_, shape) in enumerate(specs)]
    grads = [jax.random.normal(keys[2 * i + 1], shape) * 1e-3
             for i, (_, shape) in enumerate(specs)]
    count = sum(p.size for p in params)
    decay_mask = [not any(e in path for e in EXCLUSIONS) for path, _ in specs]
    device = jax.devices()[0]
    print(f"JAX {jax.__version__} on {device.device_kind}, Keras {keras.__version__}: "
          f"{count:,} parameters in {len(specs)} variables")
    bandwidth = _copy_bandwidth(count)
    # LAMB reads g, m, v, x for the norms, then reads them again and writes m, v, x: 11 arrays
    # in two passes; 10 if the norm pass reads m and v after the update. Adam: 7.
    floor = 10 * 4 * count / bandwidth
    print(f"copy bandwidth {bandwidth / 1e12:.2f} TB/s; LAMB memory floor (10 arrays) "
          f"{floor * 1e3:.2f} ms, Adam floor (7 arrays) {0.7 * floor * 1e3:.2f} ms")

    rows = {
        "keras Adam": lambda: _keras_row(lambda: keras.optimizers.Adam(LEARNING_RATE),
                                         specs, params, grads, steps),
        "keras Lamb": lambda: _keras_row(lambda: keras.optimizers.Lamb(LEARNING_RATE),
                                         specs, params, grads, steps),
        "lamb_tf.keras3 LAMB": lambda: _keras_row(
            lambda: lamb_tf.keras3.LAMB(LEARNING_RATE, weight_decay=WEIGHT_DECAY,
                                        exclude_from_weight_decay=EXCLUSIONS),
            specs, params, grads, steps),
        # Every same-shape group stacked, big matrices too: fewer kernels, more copying.
        "lamb_tf LAMB stack-all": lambda: _with_max_stacked_size(1 << 40, lambda: _keras_row(
            lambda: lamb_tf.keras3.LAMB(LEARNING_RATE, weight_decay=WEIGHT_DECAY,
                                        exclude_from_weight_decay=EXCLUSIONS),
            specs, params, grads, steps)),
        "optax.adamw": lambda: _optax_row(
            optax.adamw(LEARNING_RATE, weight_decay=WEIGHT_DECAY, mask=decay_mask),
            params, grads, steps),
        "optax.lamb": lambda: _optax_row(
            optax.lamb(LEARNING_RATE, weight_decay=WEIGHT_DECAY, mask=decay_mask),
            params, grads, steps),
        "torch fused AdamW": lambda: _torch_fused_adamw_row(specs, steps),
    }
    results = {}
    for name, row in rows.items():
        result = row()
        if result is not None:
            results[name] = result
    base_step, base_first, _ = results["keras Adam"]
    print(f"\n{'optimizer':22s} {'step ms':>8s} {'×Adam':>6s} {'first s':>8s} {'×Adam':>6s} "
          f"{'state/params':>12s}")
    for name, (step, first, slots) in results.items():
        print(f"{name:22s} {step * 1e3:8.2f} {step / base_step:6.2f} {first:8.1f} "
              f"{first / base_first:6.2f} {slots / count:12.2f}")
