"""The training loop with its devices in other TensorFlow servers, the shape of a TPU pod's single
controller: this process drives `tf.distribute.Server`s on localhost through
`tf.config.experimental_connect_to_cluster`, with every variable, the input pipeline and the step on
`/job:worker/task:1`. Train, save on a preemption notice, resume from that checkpoint in a new
Trainer, evaluate; the result equals an uninterrupted run on this process's own CPU bit for bit.

(MirroredStrategy over remote CPUs is refused by TensorFlow in eager mode; OneDeviceStrategy on a
remote device is the closest multi-host emulation that runs without a TPU.)
"""

import subprocess
import sys

import numpy as np

from tpu_helpers import REPO

SCRIPT = """
import os, signal, socket, sys
import numpy as np
import tensorflow as tf
sys.path.insert(0, {training_tests!r})
from training_helpers import PRED, SEQ, VOCAB, write_shards
from bert_pretrain import config as config_lib, datasets
from bert_pretrain.config import TrainConfig
from bert_pretrain.trainer import Trainer

# Exact equality below needs every kernel to reduce in a fixed order, also on a busy machine.
tf.config.experimental.enable_op_determinism()

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

out = sys.argv[1]
cluster = tf.train.ClusterSpec({{"worker": [f"localhost:{{free_port()}}" for _ in range(2)]}})
servers = [tf.distribute.Server(cluster, job_name="worker", task_index=i) for i in range(2)]
files = tuple(write_shards(out + "/data", files=2, records=48))
spec = datasets.data_spec(files, SEQ, PRED)
model_config = config_lib.from_preset("tiny", VOCAB, 0.1, hidden_size=32)

def trainer(strategy, model_dir, steps):
    config = TrainConfig(train_steps=steps, global_batch_size=8, learning_rate=1e-3, warmup_steps=2,
                         steps_per_loop=5, checkpoint_every=5, seed=7)
    return Trainer(model_config, config, strategy, model_dir)

local = trainer(tf.distribute.OneDeviceStrategy("/cpu:0"), out + "/local", 20)
local.train(spec, spec, log=print)

tf.config.experimental_connect_to_cluster(cluster)
remote_device = "/job:worker/replica:0/task:1/device:CPU:0"
strategy = tf.distribute.OneDeviceStrategy(remote_device)
first = trainer(strategy, out + "/remote", 20)
assert all(v.device == remote_device for v in first.variables + first.optimizer.variables), "not remote"

def preempt_at_10(line):   # a preemption notice after step 10: the loop saves and returns
    print(line)
    if line.startswith("step 10/"):
        os.kill(os.getpid(), signal.SIGTERM)

first.train(spec, spec, log=preempt_at_10)
assert int(first.step.numpy()) == 10
second = trainer(strategy, out + "/remote", 20)   # a restart: resumes from ckpt-10
result = second.train(spec, spec, log=print)
print("REMOTE_EVAL", result["eval_mlm_loss"])
"""


def checkpoint_values(model_dir):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    reader = tf.train.load_checkpoint(str(model_dir))
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
            if k.startswith(("model/", "optimizer/", "step"))}


def test_train_checkpoint_resume_and_eval_on_remote_devices(tmp_path):
    script = SCRIPT.format(training_tests=str(REPO / "tests" / "training"))
    run = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True,
                         timeout=600, check=False)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    assert "resuming from step 10" in run.stdout and "REMOTE_EVAL" in run.stdout
    local, remote = checkpoint_values(tmp_path / "local"), checkpoint_values(tmp_path / "remote")
    assert len(local) > 40 and local.keys() == remote.keys()
    assert int(remote["step/.ATTRIBUTES/VARIABLE_VALUE"]) == 20
    for key in local:
        np.testing.assert_array_equal(local[key], remote[key], err_msg=key)
