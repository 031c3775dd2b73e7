"""Choosing the tf.distribute strategy from flags, before any variable exists."""

import tensorflow as tf

STRATEGIES = ("default", "one_device", "mirrored", "multi_worker")


def make_strategy(strategy: str = "default", tpu: str = "", zone: str = "",
                  project: str = "") -> tf.distribute.Strategy:
    """`tpu` (a TPU name, or "local" on a TPU VM) wins over `strategy`. multi_worker reads TF_CONFIG."""
    if tpu:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
            tpu="" if tpu == "local" else tpu, zone=zone or None, project=project or None)
        if tpu != "local":
            tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    if strategy == "default":
        return tf.distribute.get_strategy()
    if strategy == "one_device":
        return tf.distribute.OneDeviceStrategy("/gpu:0" if tf.config.list_logical_devices("GPU") else "/cpu:0")
    if strategy == "mirrored":
        return tf.distribute.MirroredStrategy(_local_devices())
    if strategy == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"--strategy: unknown {strategy!r}; choose one of {', '.join(STRATEGIES)}")


def _local_devices() -> list[str]:
    """All GPUs, else all logical CPUs (tests split the CPU into several to stand in for GPUs)."""
    gpus = tf.config.list_logical_devices("GPU")
    return [d.name for d in gpus or tf.config.list_logical_devices("CPU")]


def split_cpu(count: int) -> None:
    """Make `count` logical CPU devices; must run before TensorFlow initialises its devices."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
