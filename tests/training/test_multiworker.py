"""MultiWorkerMirroredStrategy through TF_CONFIG: two worker processes on localhost train the same
model in lock step; only the chief writes model_dir."""

import json
import os
import socket
import subprocess

import numpy as np

from training_helpers import write_shards
from test_resume import ENV, PYTHON, checkpoint_values, flags


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_on_localhost(tmp_path):
    data = str(tmp_path / "data")
    write_shards(data, files=2, records=48)
    model_dir = tmp_path / "model"
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    workers = []
    for index in range(2):
        env = dict(ENV, TF_CONFIG=json.dumps({"cluster": cluster,
                                              "task": {"type": "worker", "index": index}}))
        workers.append(subprocess.Popen(
            PYTHON + flags(data, model_dir, train_steps=6, warmup_steps=2, steps_per_loop=2,
                           checkpoint_every=2,
                           strategy="multi_worker"),
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [worker.communicate(timeout=400) for worker in workers]
    for worker, (out, err) in zip(workers, outputs):
        assert worker.returncode == 0, out[-2000:] + err[-3000:]
    assert "step 6/6" in outputs[0][0]
    chief = checkpoint_values(str(model_dir))
    other = checkpoint_values(str(model_dir / "worker-worker-1"))
    assert int(chief["step/.ATTRIBUTES/VARIABLE_VALUE"]) == 6
    assert chief.keys() == other.keys()
    for name in chief:   # the workers applied the same all-reduced updates
        np.testing.assert_array_equal(chief[name], other[name], err_msg=name)
    assert not os.path.exists(model_dir / "worker-worker-1" / "bert_config.json")
