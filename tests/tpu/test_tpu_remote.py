"""The shell text that runs on each worker, run here in bash with a stand-in `bert-pretrain` and `gcloud`.

tmp_path plays the worker's home directory, where `gcloud compute tpus tpu-vm ssh --command` runs.
"""

import os
import socket
import subprocess
import sys
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
                                      ["--tpu=local"], ("--seed=3",), "gs://lamb-bkt/logs", "bert")

    start = time.monotonic()
    first = _bash(launch, tmp_path, TRAIN_SECONDS="2")
    assert first.returncode == 0 and time.monotonic() - start < 1.5, first.stderr  # did not wait for training
    second = _bash(launch, tmp_path, TRAIN_SECONDS="2")
    assert second.returncode == 1 and second.stderr == "bert-pretrain is already running on this worker\n"
    assert _bash(cloud_tpu.EXIT_STATUS_COMMAND, tmp_path).stdout == "running\n"

    logs = _bash(cloud_tpu.logs_command(), tmp_path)  # follows the log, returns when training ends
    assert logs.stdout.splitlines() == ["arg:run", "arg:--seed=3", "arg:--plan=paper-64k-32k",
                                        "arg:--data_dir=gs://lamb-bkt/data", "arg:--model_dir=gs://lamb-bkt/model",
                                        "arg:--tpu=local", "done"]
    assert _bash(cloud_tpu.EXIT_STATUS_COMMAND, tmp_path).stdout == "7\n"
    assert _bash(cloud_tpu.logs_command(7), tmp_path).stdout == "done\n"   # only what was not shown yet
    final_upload = ["gcloud", "storage", "cp", "bert-pretrain.log",
                    f"gs://lamb-bkt/logs/bert/{socket.gethostname()}.log"]
    assert gcloud_calls(tmp_path / "bin")[-1] == final_upload


# Stands in for tensorflow-tpu's start_grpc_tpu_worker: counts its starts, listens on $PORT after a
# second (unless $NEVER_LISTEN), and serves until killed.
_RUNTIME = """#!{python}
import os, socket, time
with open("starts", "a") as f:
    f.write("x")
time.sleep(1)
if not os.environ.get("NEVER_LISTEN"):
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", int(os.environ["PORT"])))
    server.listen()
time.sleep(60)
"""


def _install_runtime(home):
    (home / "bin").mkdir(parents=True, exist_ok=True)
    sudo = home / "bin" / "sudo"   # records what would run as root
    sudo.write_text('#!/bin/bash\necho "$@" >> sudo.log\n')
    worker = home / cloud_tpu.VENV / "bin" / "start_grpc_tpu_worker"
    worker.parent.mkdir(parents=True)
    worker.write_text(_RUNTIME.format(python=sys.executable))
    for path in (sudo, worker):
        path.chmod(0o755)


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_runtime_starts_once_and_returns_when_it_listens(tmp_path):
    _install_runtime(tmp_path)
    port = _free_port()
    command = cloud_tpu.runtime_command(wait_s=30, port=port)
    try:
        first = _bash(command, tmp_path, PORT=str(port))
        assert first.returncode == 0, first.stderr
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        again = _bash(command, tmp_path, PORT=str(port))   # alive: not started twice
        assert again.returncode == 0 and (tmp_path / "starts").read_text() == "x"
        assert (tmp_path / "sudo.log").read_text() == "systemctl stop tpu-runtime\n" * 2
    finally:
        subprocess.run(["bash", "-c", f"kill $(cat {cloud_tpu.RUNTIME_PID})"], cwd=tmp_path, check=False)


def test_runtime_that_never_listens_is_one_line(tmp_path):
    _install_runtime(tmp_path)
    port = _free_port()
    try:
        result = _bash(cloud_tpu.runtime_command(wait_s=3, port=port), tmp_path, PORT=str(port), NEVER_LISTEN="1")
        assert result.returncode == 1
        assert result.stderr == (f"the TPU runtime is not listening on port {port} after 3 s on "
                                 f"{socket.gethostname()}; see ~/{cloud_tpu.RUNTIME_LOG}\n")
    finally:
        subprocess.run(["bash", "-c", f"kill $(cat {cloud_tpu.RUNTIME_PID})"], cwd=tmp_path, check=False)


def test_a_killed_trainer_is_gone_without_an_exit_status(tmp_path):
    """What a maintenance reboot leaves: no process, no exit file."""
    install_fake_gcloud(tmp_path / "bin")
    trainer = tmp_path / cloud_tpu.VENV / "bin" / "bert-pretrain"
    trainer.parent.mkdir(parents=True)
    trainer.write_text(_TRAINER)
    trainer.chmod(0o755)
    assert _bash(cloud_tpu.launch_command("demo", "gs://b/d", "gs://b/m", ["--tpu=local"]), tmp_path,
                 TRAIN_SECONDS="30").returncode == 0
    assert _bash(cloud_tpu.EXIT_STATUS_COMMAND, tmp_path).stdout == "running\n"
    _bash(f'kill -9 -- -"$(cat {cloud_tpu.PID})"', tmp_path)   # the whole session, as a reboot would
    for _ in range(50):
        if _bash(cloud_tpu.EXIT_STATUS_COMMAND, tmp_path).stdout == "gone\n":
            break
        time.sleep(0.1)
    assert _bash(cloud_tpu.EXIT_STATUS_COMMAND, tmp_path).stdout == "gone\n"


def test_runtime_restart_replaces_a_live_server(tmp_path):
    _install_runtime(tmp_path)
    port = _free_port()
    try:
        assert _bash(cloud_tpu.runtime_command(wait_s=30, port=port), tmp_path, PORT=str(port)).returncode == 0
        first = (tmp_path / cloud_tpu.RUNTIME_PID).read_text()
        restarted = _bash(cloud_tpu.runtime_command(wait_s=30, port=port, restart=True), tmp_path, PORT=str(port))
        assert restarted.returncode == 0, restarted.stderr
        assert (tmp_path / "starts").read_text() == "xx" and (tmp_path / cloud_tpu.RUNTIME_PID).read_text() != first
        assert subprocess.run(["kill", "-0", first.strip()], check=False, capture_output=True).returncode != 0
    finally:
        subprocess.run(["bash", "-c", f"kill $(cat {cloud_tpu.RUNTIME_PID})"], cwd=tmp_path, check=False)
