"""bert_pretrain.cloud_tpu: the exact gcloud argv lists, remote shell text, validation, legacy client."""

import subprocess
import sys
import types

import pytest

from bert_pretrain import cloud_tpu
from bert_pretrain.cloud_tpu import FlagError, Slice, check

ZONE = "us-central2-b"


def test_tpu_vm_single_host():
    tpu = Slice("bert-v4-8", ZONE, "my-project", "v4-8", "tpu-ubuntu2204-base")
    assert tpu.create() == ["gcloud", "compute", "tpus", "tpu-vm", "create", "bert-v4-8", "--zone=us-central2-b",
                            "--project=my-project", "--accelerator-type=v4-8", "--version=tpu-ubuntu2204-base"]
    assert tpu.describe() == ["gcloud", "compute", "tpus", "tpu-vm", "describe", "bert-v4-8",
                              "--zone=us-central2-b", "--project=my-project", "--format=value(state)"]
    assert tpu.delete() == ["gcloud", "compute", "tpus", "tpu-vm", "delete", "bert-v4-8", "--zone=us-central2-b",
                            "--project=my-project", "--quiet"]
    assert tpu.ssh("hostname") == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "bert-v4-8", "--zone=us-central2-b",
                                   "--project=my-project", "--worker=all", "--command=hostname"]


def test_tpu_vm_multi_host_spot_without_project():
    tpu = Slice("pod", "europe-west4-a", "", "v3-32", "tpu-ubuntu2204-base", spot=True)
    assert tpu.create() == ["gcloud", "compute", "tpus", "tpu-vm", "create", "pod", "--zone=europe-west4-a",
                            "--accelerator-type=v3-32", "--version=tpu-ubuntu2204-base", "--spot"]
    assert tpu.ssh("tail x", worker="0") == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "pod",
                                             "--zone=europe-west4-a", "--worker=0", "--command=tail x"]


def test_queued_resource_spot():
    tpu = Slice("qr", ZONE, "my-project", "v5litepod-16", "v2-alpha-tpuv5-lite", spot=True, queued=True)
    assert tpu.create() == ["gcloud", "compute", "tpus", "queued-resources", "create", "qr", "--zone=us-central2-b",
                            "--project=my-project", "--node-id=qr", "--accelerator-type=v5litepod-16",
                            "--runtime-version=v2-alpha-tpuv5-lite", "--spot"]
    assert tpu.describe() == ["gcloud", "compute", "tpus", "queued-resources", "describe", "qr",
                              "--zone=us-central2-b", "--project=my-project", "--format=value(state.state)"]
    assert tpu.delete() == ["gcloud", "compute", "tpus", "queued-resources", "delete", "qr", "--zone=us-central2-b",
                            "--project=my-project", "--force", "--quiet"]
    # The VM a queued resource makes is still reached with tpu-vm ssh, under the node ID.
    assert tpu.ssh("x")[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "qr"]


def test_legacy_node():
    tpu = Slice("node", ZONE, "", "v3-8", "2.12.0", spot=True, legacy_node=True)
    assert tpu.create() == ["gcloud", "compute", "tpus", "create", "node", "--zone=us-central2-b",
                            "--accelerator-type=v3-8", "--version=2.12.0", "--preemptible"]
    assert tpu.delete() == ["gcloud", "compute", "tpus", "delete", "node", "--zone=us-central2-b", "--quiet"]


def test_states():
    vm, queued = Slice("a", ZONE), Slice("a", ZONE, queued=True)
    assert [vm.dead(s) for s in ("PREEMPTED", "TERMINATED", "MISSING", "READY", "CREATING")] == [
        True, True, True, False, False]
    assert [queued.dead(s) for s in ("SUSPENDED", "FAILED", "ACTIVE", "WAITING_FOR_RESOURCES", "PREEMPTED")] == [
        True, True, False, False, False]
    assert vm.ready("READY") and queued.ready("ACTIVE") and not queued.ready("READY")


def test_install_from_git():
    command = cloud_tpu.install_command(cloud_tpu.git_requirement("https://github.com/org/lamb-tf.git", "v0.1"))
    assert command.split("; ") == [
        "set -e",
        "sudo apt-get -qq update",
        "sudo DEBIAN_FRONTEND=noninteractive apt-get -qq install -y python3.11 python3.11-venv",
        "python3.11 -m venv lamb-tf-venv",
        "lamb-tf-venv/bin/pip install --quiet --upgrade pip",
        "lamb-tf-venv/bin/pip install --quiet 'lamb-tf @ git+https://github.com/org/lamb-tf.git@v0.1'",
        "lamb-tf-venv/bin/pip uninstall --yes --quiet tensorflow",
        "lamb-tf-venv/bin/pip install --quiet tensorflow-tpu==2.20.0 "
        "--find-links https://storage.googleapis.com/libtpu-tf-releases/index.html",
    ]


def test_install_from_gs_wheel():
    steps = cloud_tpu.install_command("gs://b/dist/lamb_tf-0.1.0-py3-none-any.whl").split("; ")
    assert steps[5:8] == ["mkdir -p lamb-tf-dist",
                          "gcloud storage cp gs://b/dist/lamb_tf-0.1.0-py3-none-any.whl lamb-tf-dist/",
                          "lamb-tf-venv/bin/pip install --quiet lamb-tf-dist/lamb_tf-0.1.0-py3-none-any.whl"]


def test_launch_command():
    command = cloud_tpu.launch_command("paper-64k-32k", "gs://b/data", "gs://b/model", ("--seed=1",))
    assert command == (
        'if [ -f bert-pretrain.pid ] && kill -0 "$(cat bert-pretrain.pid)" 2>/dev/null; '
        "then echo 'bert-pretrain is already running on this worker' >&2; exit 1; fi; "
        "rm -f bert-pretrain.exit; nohup setsid bash -c 'lamb-tf-venv/bin/bert-pretrain run --plan=paper-64k-32k "
        "--data_dir=gs://b/data --model_dir=gs://b/model --tpu=local --seed=1; status=$?; "
        "echo $status > bert-pretrain.exit' >> bert-pretrain.log 2>&1 < /dev/null & echo $! > bert-pretrain.pid")


@pytest.mark.parametrize("kind, value", [
    ("tpu_name", "bert-v4-128"), ("zone", "us-central2-b"), ("zone", "northamerica-northeast1-a"),
    ("project", "my-project-123"), ("project", "example.com:my-project"), ("accelerator_type", "v3-8"),
    ("accelerator_type", "v4-128"), ("accelerator_type", "v5litepod-8"), ("accelerator_type", "v5p-256"),
    ("runtime_version", "tpu-vm-tf-2.17.1-pod-pjrt"), ("gs_uri", "gs://my_bucket.eu/runs/p64k/"),
    ("plan", "paper-64k-32k"), ("plan", "plans/my.json"), ("plan", "gs://my-bucket/plans/p.json"),
    ("wheel", "gs://bkt/dist/lamb_tf-0.1.0-py3-none-any.whl"), ("requirement", "lamb-tf[tpu]==0.1.0"),
    ("git_url", "https://github.com/org/lamb-tf.git"), ("train_flag", "--learning_rate=6e-3"),
])
def test_valid_values(kind, value):
    assert check("x", value, kind) == value


@pytest.mark.parametrize("kind, value", [
    ("tpu_name", "Bert"), ("tpu_name", "bert-"), ("tpu_name", "1bert"), ("tpu_name", "b" * 64),
    ("zone", "us-central2"), ("project", "abc"), ("accelerator_type", "v4"), ("accelerator_type", "tpu-v4-8"),
    ("gs_uri", "s3://b/x"), ("gs_uri", "gs://B/x"), ("gs_uri", "gs://"), ("gs_uri", "gs://ab/x"),
    ("wheel", "gs://bkt/x.zip"), ("wheel", "gs://bucket.whl"), ("requirement", "lamb-tf=0.1"),
    ("git_url", "http://github.com/o/r"), ("train_flag", "-x"), ("plan", "-rf"),
])
def test_invalid_values(kind, value):
    with pytest.raises(FlagError, match=r"^--flag: .* is not valid; .*Nothing was run$"):
        check("flag", value, kind)


@pytest.mark.parametrize("kind", ["tpu_name", "zone", "project", "accelerator_type", "runtime_version", "gs_uri",
                                  "plan", "wheel", "requirement", "git_url", "git_ref", "train_flag"])
@pytest.mark.parametrize("attack", ["; rm -rf ~", "$(touch /tmp/x)", "`id`", "a|b", "a&&b", "a\nb", "a>b", "'a'"])
def test_shell_metacharacters_are_refused(kind, attack):
    with pytest.raises(FlagError) as error:
        check("zone", "v4-8" + attack, kind)
    assert str(error.value).startswith("--zone: ") and "contains shell characters" in str(error.value)
    assert "\n" not in str(error.value).replace("\\n", "")


def test_launch_quotes_what_it_is_given(tmp_path):
    """Even a value that skipped validation stays one inert word in the remote shell."""
    command = cloud_tpu.launch_command("$(touch pwned)", "gs://b/d", "gs://b/m", ("--x=a;touch pwned2",))
    inner = command.split("bash -c ", 1)[1].split(" >> ", 1)[0]
    body = subprocess.run(["bash", "-c", f"printf %s {inner}"], capture_output=True, text=True, check=True).stdout
    words = subprocess.run(["bash", "-c", f"printf '%s\\n' {body.split('; status')[0]}"], cwd=tmp_path,
                           capture_output=True, text=True, check=True).stdout.splitlines()
    assert words[2] == "--plan=$(touch pwned)" and words[-1] == "--x=a;touch pwned2"
    assert not list(tmp_path.iterdir())


class _FakeClient:
    made = []

    def __init__(self, tpu=None, zone=None, project=None):
        self.made.append((tpu, zone, project))


def test_node_client_uses_cloud_tpu_client(monkeypatch):
    monkeypatch.setitem(sys.modules, "cloud_tpu_client", types.SimpleNamespace(Client=_FakeClient))
    client = cloud_tpu.node_client(Slice("node", ZONE, "", legacy_node=True))
    assert isinstance(client, _FakeClient) and _FakeClient.made[-1] == ("node", ZONE, None)


def test_node_client_without_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "cloud_tpu_client", None)  # `import cloud_tpu_client` raises ImportError
    with pytest.raises(FlagError, match=r"^--legacy_node: needs cloud-tpu-client: pip install 'lamb-tf\[tpu\]'$"):
        cloud_tpu.node_client(Slice("node", ZONE, legacy_node=True))


def test_imports_neither_tensorflow_nor_the_client():
    code = ("import sys, bert_pretrain.cloud_tpu; "
            "print(sorted({'tensorflow', 'cloud_tpu_client'} & set(sys.modules)))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "[]"
