"""scripts/tpu.py end to end: exact --dry_run output, refused input, and runs against a fake gcloud."""

import shlex

import pytest

from bert_pretrain import cloud_tpu
from tpu_helpers import gcloud_calls, install_fake_gcloud, run_tpu

VM = ["gcloud", "compute", "tpus", "tpu-vm"]
QR = ["gcloud", "compute", "tpus", "queued-resources"]
GIT = "--git_url=https://github.com/org/lamb-tf.git"
TRAIN = ["--plan=paper-64k-32k", "--data_dir=gs://lamb-bkt/data", "--model_dir=gs://lamb-bkt/runs/p64k"]
INSTALL = cloud_tpu.install_command("lamb-tf @ git+https://github.com/org/lamb-tf.git@main")
LAUNCH = cloud_tpu.launch_command("paper-64k-32k", "gs://lamb-bkt/data", "gs://lamb-bkt/runs/p64k")


def _lines(result):
    assert result.returncode == 0, result.stderr
    return [shlex.split(line) for line in result.stdout.splitlines()]


def test_up_single_host_dry_run():
    result = run_tpu(["up", "--dry_run", "--name=bert-v4-8", "--zone=us-central2-b", "--accelerator_type=v4-8",
                      GIT, *TRAIN])
    assert _lines(result) == [
        [*VM, "create", "bert-v4-8", "--zone=us-central2-b", "--accelerator-type=v4-8",
         "--version=tpu-ubuntu2204-base"],
        [*VM, "ssh", "bert-v4-8", "--zone=us-central2-b", "--worker=all", f"--command={INSTALL}"],
        [*VM, "ssh", "bert-v4-8", "--zone=us-central2-b", "--worker=all", f"--command={LAUNCH}"],
        [*VM, "ssh", "bert-v4-8", "--zone=us-central2-b", "--worker=0",
         '--command=tail -n +1 -F --pid="$(cat bert-pretrain.pid)" bert-pretrain.log'],
    ]


def test_up_multi_host_spot_dry_run():
    """A pod slice: the same command on every worker, --tpu=local, extra flags passed through quoted."""
    result = run_tpu(["up", "--dry_run", "--name=bert-pod", "--zone=us-central2-b", "--project=my-proj-1",
                      "--accelerator_type=v4-128", "--spot",
                      "--package=gs://lamb-bkt/dist/lamb_tf-0.1.0-py3-none-any.whl",
                      "--log_uri=gs://lamb-bkt/logs", "--worker=3", *TRAIN, "--", "--steps_per_loop=500"])
    where = ["bert-pod", "--zone=us-central2-b", "--project=my-proj-1"]
    lines = _lines(result)
    assert lines[0] == [*VM, "create", *where, "--accelerator-type=v4-128", "--version=tpu-ubuntu2204-base", "--spot"]
    assert lines[1][:9] == [*VM, "ssh", *where, "--worker=all"]
    assert "gcloud storage cp gs://lamb-bkt/dist/lamb_tf-0.1.0-py3-none-any.whl lamb-tf-dist/" in lines[1][9]
    assert lines[2] == [*VM, "ssh", *where, "--worker=all", "--command=" + (
        'if [ -f bert-pretrain.pid ] && kill -0 "$(cat bert-pretrain.pid)" 2>/dev/null; '
        "then echo 'bert-pretrain is already running on this worker' >&2; exit 1; fi; "
        "rm -f bert-pretrain.exit; nohup setsid bash -c '( while sleep 60; do gcloud storage cp bert-pretrain.log "
        "gs://lamb-bkt/logs/bert-pod/\"$(hostname)\".log >/dev/null 2>&1; done ) & sync=$!; "
        "lamb-tf-venv/bin/bert-pretrain run --plan=paper-64k-32k --data_dir=gs://lamb-bkt/data "
        "--model_dir=gs://lamb-bkt/runs/p64k --tpu=local --steps_per_loop=500; status=$?; kill $sync; "
        "gcloud storage cp bert-pretrain.log gs://lamb-bkt/logs/bert-pod/\"$(hostname)\".log >/dev/null 2>&1; "
        "echo $status > bert-pretrain.exit' >> bert-pretrain.log 2>&1 < /dev/null & echo $! > bert-pretrain.pid")]
    assert lines[3][:9] == [*VM, "ssh", *where, "--worker=3"]
    assert len(lines) == 4


def test_queued_spot_create_dry_run():
    result = run_tpu(["create", "--dry_run", "--queued", "--spot", "--name=qr-1", "--zone=us-east5-a",
                      "--accelerator_type=v5litepod-16", "--runtime_version=v2-alpha-tpuv5-lite"])
    assert _lines(result) == [
        [*QR, "create", "qr-1", "--zone=us-east5-a", "--node-id=qr-1", "--accelerator-type=v5litepod-16",
         "--runtime-version=v2-alpha-tpuv5-lite", "--spot"],
        [*QR, "describe", "qr-1", "--zone=us-east5-a", "--format=value(state.state)"],
    ]


def test_recover_and_delete_queued_dry_run():
    flags = ["--dry_run", "--queued", "--name=qr-1", "--zone=us-east5-a", "--accelerator_type=v4-32", GIT, *TRAIN]
    lines = _lines(run_tpu(["recover", *flags]))
    assert [line[:5] for line in lines] == [[*QR, "describe"], [*QR, "delete"], [*QR, "create"], [*QR, "describe"],
                                            [*VM, "ssh"], [*VM, "ssh"]]
    assert lines[1] == [*QR, "delete", "qr-1", "--zone=us-east5-a", "--force", "--quiet"]
    assert lines[5][-1] == f"--command={LAUNCH}"
    assert _lines(run_tpu(["delete", *flags])) == [lines[1]]


@pytest.mark.parametrize("args, flag", [
    (["--name=bert;rm -rf ~"], "--name"),
    (["--zone=us-central2-b$(id)"], "--zone"),
    (["--project=p`id`xyz"], "--project"),
    (["--accelerator_type=v4-8 && id"], "--accelerator_type"),
    (["--runtime_version=base|id"], "--runtime_version"),
    (["--data_dir=gs://lamb-bkt/a b"], "--data_dir"),
    (["--model_dir=/local/dir"], "--model_dir"),
    (["--log_uri=gs://lamb-bkt/$HOME"], "--log_uri"),
    (["--plan=paper;id"], "--plan"),
    (["--package=lamb-tf; curl x | sh"], "--package"),
    (["--git_ref=main;id"], "--git_ref"),
    (["--", "--seed=1;id"], "-- TRAIN_FLAGS"),
    (["--", "--tpu=other"], "--tpu"),
    (["--plan="], "--plan"),
])
def test_bad_values_are_refused_before_anything_runs(tmp_path, args, flag):
    fake = install_fake_gcloud(tmp_path / "bin")
    base = {"--name": "bert-v4", "--zone": "us-central2-b", "--accelerator_type": "v4-8", "--git_url": GIT[10:],
            "--plan": "demo", "--data_dir": "gs://lamb-bkt/d", "--model_dir": "gs://lamb-bkt/m"}
    given = {a.split("=")[0] for a in args}
    result = run_tpu(["up", *[f"{k}={v}" for k, v in base.items() if k not in given], *args], fake)
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith(f"tpu.py: {flag}: "), result.stderr
    assert gcloud_calls(fake) == []


def test_legacy_node_refuses_vm_actions():
    result = run_tpu(["launch", "--dry_run", "--legacy_node", "--name=node", "--zone=us-central1-b"])
    assert result.returncode == 2 and result.stderr.startswith("tpu.py: --legacy_node: `launch` is for TPU VMs")


def test_missing_gcloud_is_one_line(tmp_path):
    result = run_tpu(["status", "--name=bert", "--zone=us-central2-b"], env={"PATH": str(tmp_path)})
    assert result.returncode == 1
    assert result.stderr == "tpu.py: gcloud is not on PATH; install the Google Cloud CLI, or pass --dry_run\n"


def test_recover_after_preemption(tmp_path):
    fake = install_fake_gcloud(tmp_path / "bin", "PREEMPTED")
    result = run_tpu(["recover", "--name=bert-v3", "--zone=europe-west4-a", "--accelerator_type=v3-32", "--spot",
                      GIT, *TRAIN], fake)
    assert result.returncode == 0, result.stderr
    where = ["bert-v3", "--zone=europe-west4-a"]
    assert gcloud_calls(fake) == [
        [*VM, "describe", *where, "--format=value(state)"],
        [*VM, "delete", *where, "--quiet"],
        [*VM, "create", *where, "--accelerator-type=v3-32", "--version=tpu-ubuntu2204-base", "--spot"],
        [*VM, "ssh", *where, "--worker=all", f"--command={INSTALL}"],
        [*VM, "ssh", *where, "--worker=all", f"--command={LAUNCH}"],
    ]


@pytest.mark.parametrize("state, verbs", [("READY", ["describe"]),
                                          ("NOT_FOUND", ["describe", "create", "ssh", "ssh"])])
def test_recover_healthy_or_missing(tmp_path, state, verbs):
    fake = install_fake_gcloud(tmp_path / "bin", state)
    result = run_tpu(["recover", "--name=bert", "--zone=us-central2-b", "--accelerator_type=v4-8", GIT, *TRAIN], fake)
    assert result.returncode == 0, result.stderr
    assert [call[4] for call in gcloud_calls(fake)] == verbs


def test_watch_recovers_then_returns_the_training_status(tmp_path):
    fake = install_fake_gcloud(tmp_path / "bin", "PREEMPTED PREEMPTED READY")
    result = run_tpu(["watch", "--name=bert", "--zone=us-central2-b", "--accelerator_type=v4-8", GIT, *TRAIN], fake,
                     env={"FAKE_EXIT_STATUS": "3"})
    assert result.returncode == 3, result.stderr
    calls = gcloud_calls(fake)
    assert [call[4] for call in calls] == ["ssh", "describe", "describe", "delete", "create", "ssh", "ssh", "ssh",
                                           "describe", "ssh"]
    assert calls[0][-1].startswith("--command=tail") and calls[-1][-2:] == [
        "--worker=0", "--command=cat bert-pretrain.exit 2>/dev/null || true"]


def test_queued_create_waits_until_active(tmp_path):
    fake = install_fake_gcloud(tmp_path / "bin", "WAITING_FOR_RESOURCES ACTIVE")
    result = run_tpu(["create", "--queued", "--poll_s=1", "--name=qr", "--zone=us-central2-b",
                      "--accelerator_type=v4-8"], fake)
    assert result.returncode == 0, result.stderr
    assert [call[3:5] for call in gcloud_calls(fake)] == [["queued-resources", "create"],
                                                          ["queued-resources", "describe"]] + [
        ["queued-resources", "describe"]]
    assert "qr is WAITING_FOR_RESOURCES; waiting" in result.stderr


def test_failed_gcloud_stops_the_sequence(tmp_path):
    fake = install_fake_gcloud(tmp_path / "bin")
    result = run_tpu(["up", "--name=bert", "--zone=us-central2-b", "--accelerator_type=v4-8", GIT, *TRAIN], fake,
                     env={"FAKE_GCLOUD_STATUS": "1"})
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == "tpu.py: gcloud compute tpus tpu-vm create exited with status 1"
    assert len(gcloud_calls(fake)) == 1


def test_no_credentials_are_printed(tmp_path):
    fake = install_fake_gcloud(tmp_path / "bin", "PREEMPTED READY")
    secrets = {"GOOGLE_APPLICATION_CREDENTIALS": "/secret/sa-key-7f3a.json",
               "CLOUDSDK_AUTH_ACCESS_TOKEN": "ya29.SECRET-TOKEN-91b2", "FAKE_EXIT_STATUS": "0"}
    args = ["--name=bert", "--zone=us-central2-b", "--accelerator_type=v4-8", GIT, *TRAIN]
    for result in (run_tpu(["up", *args], fake, env=secrets), run_tpu(["up", "--dry_run", *args], env=secrets),
                   run_tpu(["up", "--zone=bad zone", *args[1:]], fake, env=secrets)):
        for secret in ("/secret/sa-key-7f3a.json", "sa-key-7f3a", "ya29.SECRET-TOKEN-91b2"):
            assert secret not in result.stdout + result.stderr
    assert all("SECRET" not in arg for call in gcloud_calls(fake) for arg in call)


_FAKE_CLIENT = """
import json, os
RECORD = os.path.join(os.path.dirname(__file__), "client.jsonl")

class Client:
    def __init__(self, tpu=None, zone=None, project=None):
        self.args = [tpu, zone, project]

    def _log(self, *what):
        with open(RECORD, "a") as f:
            f.write(json.dumps([*self.args, *what]) + "\\n")

    def recoverable(self):
        self._log("recoverable")
        return os.environ["FAKE_RECOVERABLE"] == "1"

    def wait_for_healthy(self, timeout_s=1200, interval=30):
        self._log("wait_for_healthy", interval)
"""


@pytest.mark.parametrize("recoverable", ["0", "1"])
def test_legacy_node_recover_uses_cloud_tpu_client(tmp_path, recoverable):
    fake = install_fake_gcloud(tmp_path / "bin")
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "cloud_tpu_client.py").write_text(_FAKE_CLIENT)
    result = run_tpu(["recover", "--legacy_node", "--spot", "--name=node", "--zone=us-central1-b",
                      "--accelerator_type=v3-8", "--runtime_version=2.12.0", "--poll_s=5"], fake,
                     env={"FAKE_RECOVERABLE": recoverable}, python_path=tmp_path / "mods")
    assert result.returncode == 0, result.stderr
    client_calls = [line for line in (tmp_path / "mods" / "client.jsonl").read_text().splitlines()]
    if recoverable == "1":
        assert gcloud_calls(fake) == [] and client_calls == ['["node", "us-central1-b", null, "recoverable"]']
        return
    assert gcloud_calls(fake) == [
        ["gcloud", "compute", "tpus", "delete", "node", "--zone=us-central1-b", "--quiet"],
        ["gcloud", "compute", "tpus", "create", "node", "--zone=us-central1-b", "--accelerator-type=v3-8",
         "--version=2.12.0", "--preemptible"]]
    assert client_calls[-1] == '["node", "us-central1-b", null, "wait_for_healthy", 5]'
    assert "restart `bert-pretrain run --tpu=node` on your VM" in result.stderr
