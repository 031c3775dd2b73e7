"""Choosing the tf.distribute strategy from flags, before any variable exists."""

import time

import tensorflow as tf

from bert_pretrain.errors import UsageError

STRATEGIES = ("default", "one_device", "mirrored", "multi_worker")
# How long a named TPU may take to become HEALTHY (a slice that was just created or recreated).
HEALTH_TIMEOUT_S, HEALTH_INTERVAL_S = 1200, 30


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
        if tpu != "local" and not tpu.startswith("grpc://"):
            _wait_until_healthy(tpu, zone, project)
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
            tpu=tpu, zone=zone or None, project=project or None)
        if tpu != "local":
            tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except UsageError:
        raise
    except Exception as error:  # pylint: disable=broad-except  (resolver, auth, runtime: each one line)
        where = "no TPU is attached to this machine" if tpu == "local" else f"TPU {tpu!r} could not be reached"
        detail = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        raise UsageError("tpu", f"{where} ({type(error).__name__}: {detail})",
                         "use --tpu=local on a one-host TPU VM, or the TPU's name (with --tpu_zone and "
                         "--tpu_project) on worker 0 of a slice whose workers run the TPU runtime") from None
    return tf.distribute.TPUStrategy(resolver)


def _wait_until_healthy(tpu: str, zone: str, project: str) -> None:
    """Asks the Cloud TPU API (cloud-tpu-client, which TPUClusterResolver also uses for names) for the
    TPU's state: a preempted slice is one line saying how to recreate it; a slice still coming up is
    waited for. READY counts as healthy when its `health` is HEALTHY or not filled in (the API leaves
    it out on slices it does not check), so a slice that never reports health is not waited on.
    Zone and project are required: scripts/tpu.py passes both, so the training process uses what the
    tool printed rather than what the client would ask the VM's metadata server for."""
    for flag, value in (("tpu_zone", zone), ("tpu_project", project)):
        if not value:
            raise UsageError(flag, f"is required with --tpu={tpu}", f"pass --{flag}=... (scripts/tpu.py passes it)")
    try:
        import cloud_tpu_client  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise UsageError("tpu", f"a TPU name ({tpu}) needs cloud-tpu-client", "pip install 'lamb-tf[tpu]'") from None
    client = cloud_tpu_client.Client(tpu=tpu, zone=zone, project=project)
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    while True:
        # One API read a poll (state() and health() would each read again, and could disagree); the
        # private call is the one both use in the pinned cloud-tpu-client 0.7.
        node = client._fetch_cloud_tpu_metadata()  # pylint: disable=protected-access
        state, health = node.get("state"), node.get("health")
        if state in ("PREEMPTED", "TERMINATED"):
            raise UsageError("tpu", f"TPU {tpu!r} is {state}", "recreate it (python scripts/tpu.py recover ...); "
                             "training resumes from the last checkpoint")
        if state == "READY" and health in (None, "", "HEALTHY", "HEALTH_UNSPECIFIED"):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"TPU {tpu!r} is {state} with health {health or 'unset'} after {HEALTH_TIMEOUT_S} s")
        time.sleep(HEALTH_INTERVAL_S)


def _local_devices() -> list[str]:
    """All GPUs, else all logical CPUs (tests split the CPU into several to stand in for GPUs)."""
    gpus = tf.config.list_logical_devices("GPU")
    return [d.name for d in gpus or tf.config.list_logical_devices("CPU")]


def split_cpu(count: int) -> None:
    """Make `count` logical CPU devices; must run before TensorFlow initialises its devices."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
