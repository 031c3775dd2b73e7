"""The shell text that runs on each worker, run here in bash with a stand-in `bert-pretrain` and `gcloud`.

tmp_path plays the worker's home directory, where `gcloud compute tpus tpu-vm ssh --command` runs.
"""

import os
import socket
import subprocess
import time

from bert_pretrain import cloud_tpu
from tpu_helpers import gcloud_calls, install_fake_gcloud

# Prints its arguments, one per line, then runs for $TRAIN_SECONDS and exits with status 7.
_TRAINER = """#!/bin/bash
printf 'arg:%s\\n' "$@"
sleep "$TRAIN_SECONDS"
echo done
exit 7
"""


def _bash(command, home, **env):
    environment = {**os.environ, "PATH": f"{home / 'bin'}{os.pathsep}{os.environ['PATH']}", **env}
    return subprocess.run(["bash", "-c", command], cwd=home, env=environment, capture_output=True, text=True,
                          timeout=30, check=False)


def test_launch_detaches_logs_and_records_the_exit_status(tmp_path):
    install_fake_gcloud(tmp_path / "bin")
    trainer = tmp_path / cloud_tpu.VENV / "bin" / "bert-pretrain"
    trainer.parent.mkdir(parents=True)
    trainer.write_text(_TRAINER)
    trainer.chmod(0o755)
    launch = cloud_tpu.launch_command("paper-64k-32k", "gs://lamb-bkt/data", "gs://lamb-bkt/model",
                                      ("--seed=3",), "gs://lamb-bkt/logs", "bert")

    start = time.monotonic()
    first = _bash(launch, tmp_path, TRAIN_SECONDS="2")
    assert first.returncode == 0 and time.monotonic() - start < 1.5, first.stderr  # did not wait for training
    second = _bash(launch, tmp_path, TRAIN_SECONDS="2")
    assert second.returncode == 1 and second.stderr == "bert-pretrain is already running on this worker\n"
    assert _bash(cloud_tpu.EXIT_STATUS_COMMAND, tmp_path).stdout == ""  # still running

    logs = _bash(cloud_tpu.LOGS_COMMAND, tmp_path)  # follows the log, returns when training ends
    assert logs.stdout.splitlines() == ["arg:run", "arg:--plan=paper-64k-32k", "arg:--data_dir=gs://lamb-bkt/data",
                                        "arg:--model_dir=gs://lamb-bkt/model", "arg:--tpu=local", "arg:--seed=3",
                                        "done"]
    assert _bash(cloud_tpu.EXIT_STATUS_COMMAND, tmp_path).stdout == "7\n"
    final_upload = ["gcloud", "storage", "cp", "bert-pretrain.log",
                    f"gs://lamb-bkt/logs/bert/{socket.gethostname()}.log"]
    assert gcloud_calls(tmp_path / "bin")[-1] == final_upload
