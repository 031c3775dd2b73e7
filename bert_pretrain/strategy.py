"""Choosing the tf.distribute strategy from flags, before any variable exists."""

import tensorflow as tf

from bert_pretrain.data.errors import DataError

STRATEGIES = ("default", "one_device", "mirrored", "multi_worker")


def make_strategy(strategy: str = "default", tpu: str = "", zone: str = "",
                  project: str = "") -> tf.distribute.Strategy:
    """`tpu` (a TPU name, or "local" on a TPU VM) wins over `strategy`. multi_worker reads TF_CONFIG."""
    if tpu:
        return tpu_strategy(tpu, zone, project)
    if strategy == "default":
        return tf.distribute.get_strategy()
    if strategy == "one_device":
        return tf.distribute.OneDeviceStrategy("/gpu:0" if tf.config.list_logical_devices("GPU") else "/cpu:0")
    if strategy == "mirrored":
        return tf.distribute.MirroredStrategy(_local_devices())
    if strategy == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"--strategy: unknown {strategy!r}; choose one of {', '.join(STRATEGIES)}")


def tpu_strategy(tpu: str, zone: str = "", project: str = "") -> tf.distribute.TPUStrategy:
    """TPUStrategy over the chips of this TPU VM (`tpu="local"`, one host) or of a named TPU.

    TensorFlow drives a TPU from one Python process. "local" must reach TPUClusterResolver as exactly
    "local": that is its only directly-attached path (any other value asks the Cloud TPU API). A name
    is looked up through the Cloud TPU API, which returns every host of the slice, and this process
    connects to the TPU runtime on each of them: that is how one controller trains a multi-host slice
    (docs/cloud_tpu.md). Failing to find or reach the TPU is one line, before anything is built.
    """
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
            tpu=tpu, zone=zone or None, project=project or None)
        if tpu != "local":
            tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except Exception as error:  # pylint: disable=broad-except  (resolver, auth, runtime: each one line)
        where = "no TPU is attached to this machine" if tpu == "local" else f"TPU {tpu!r} could not be reached"
        detail = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        raise DataError("tpu", f"{where} ({type(error).__name__}: {detail})",
                        "use --tpu=local on a TPU VM's worker, or a TPU name (with --tpu_zone and "
                        "--tpu_project) from a machine in the same project and network") from None
    return tf.distribute.TPUStrategy(resolver)


def _local_devices() -> list[str]:
    """All GPUs, else all logical CPUs (tests split the CPU into several to stand in for GPUs)."""
    gpus = tf.config.list_logical_devices("GPU")
    return [d.name for d in gpus or tf.config.list_logical_devices("CPU")]


def split_cpu(count: int) -> None:
    """Make `count` logical CPU devices; must run before TensorFlow initialises its devices."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
