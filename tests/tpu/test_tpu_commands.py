"""bert_pretrain.cloud_tpu: the exact gcloud argv lists, remote shell text, generations and hosts,
validation."""

import subprocess
import sys

import pytest

from bert_pretrain import cloud_tpu
from bert_pretrain.cloud_tpu import Slice, check
from bert_pretrain.errors import UsageError

ZONE = "us-central2-b"


def test_tpu_vm_single_host():
    tpu = Slice("bert-v4-8", ZONE, "my-project", "v4-8", "tpu-ubuntu2204-base")
    assert tpu.create() == ["gcloud", "compute", "tpus", "tpu-vm", "create", "bert-v4-8", "--zone=us-central2-b",
                            "--project=my-project", "--accelerator-type=v4-8", "--version=tpu-ubuntu2204-base",
                            "--scopes=cloud-platform"]
    assert tpu.describe() == ["gcloud", "compute", "tpus", "tpu-vm", "describe", "bert-v4-8",
                              "--zone=us-central2-b", "--project=my-project", "--format=value(state)"]
    assert tpu.delete() == ["gcloud", "compute", "tpus", "tpu-vm", "delete", "bert-v4-8", "--zone=us-central2-b",
                            "--project=my-project", "--quiet"]
    assert tpu.ssh("hostname") == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "bert-v4-8", "--zone=us-central2-b",
                                   "--project=my-project", "--quiet", "--worker=all", "--command=hostname"]


def test_tpu_vm_multi_host_spot_without_project():
    tpu = Slice("pod", "europe-west4-a", "", "v3-32", "tpu-ubuntu2204-base", spot=True,
                service_account="trainer@my-proj-1.iam.gserviceaccount.com", scopes="cloud-platform,userinfo-email")
    assert tpu.create() == ["gcloud", "compute", "tpus", "tpu-vm", "create", "pod", "--zone=europe-west4-a",
                            "--accelerator-type=v3-32", "--version=tpu-ubuntu2204-base",
                            "--service-account=trainer@my-proj-1.iam.gserviceaccount.com",
                            "--scopes=cloud-platform,userinfo-email", "--spot"]
    assert tpu.ssh("tail x", worker="0") == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "pod",
                                             "--zone=europe-west4-a", "--quiet", "--worker=0", "--command=tail x"]


def test_queued_resource_spot():
    tpu = Slice("qr", ZONE, "my-project", "v5litepod-16", "v2-alpha-tpuv5-lite", spot=True, queued=True)
    assert tpu.create() == ["gcloud", "compute", "tpus", "queued-resources", "create", "qr", "--zone=us-central2-b",
                            "--project=my-project", "--node-id=qr", "--accelerator-type=v5litepod-16",
                            "--runtime-version=v2-alpha-tpuv5-lite", "--scopes=cloud-platform", "--spot"]
    assert tpu.describe() == ["gcloud", "compute", "tpus", "queued-resources", "describe", "qr",
                              "--zone=us-central2-b", "--project=my-project", "--format=value(state.state)"]
    assert tpu.delete() == ["gcloud", "compute", "tpus", "queued-resources", "delete", "qr", "--zone=us-central2-b",
                            "--project=my-project", "--force", "--quiet"]
    # The VM a queued resource makes is still reached with tpu-vm ssh, under the node ID.
    assert tpu.ssh("x")[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "qr"]


@pytest.mark.parametrize("accelerator_type, image, hosts", [
    ("v2-8", "tpu-ubuntu2204-base", 1), ("v3-32", "tpu-ubuntu2204-base", 4), ("v4-8", "tpu-ubuntu2204-base", 1),
    ("v4-128", "tpu-ubuntu2204-base", 16), ("v5p-8", "v2-alpha-tpuv5", 1), ("v5p-256", "v2-alpha-tpuv5", 32),
    ("v5litepod-8", "v2-alpha-tpuv5-lite", 1), ("v5litepod-16", "v2-alpha-tpuv5-lite", 4),
    ("v6e-8", "v2-alpha-tpuv6e", 1), ("v6e-4", "v2-alpha-tpuv6e", 1),
])
def test_generations_pick_their_image_and_count_hosts(accelerator_type, image, hosts):
    """Images: Google's "TPU software versions" page; hosts: 4 chips a host, v2-v5p count TensorCores (2 a chip).
    Supported: every one-host slice, and pods of the generations with a StreamExecutor runtime (v2-v4)."""
    tpu = Slice("t", ZONE, "my-project", accelerator_type)
    assert tpu.version == image and tpu.hosts == hosts
    if hosts == 1 or accelerator_type.startswith(("v2", "v3", "v4")):
        tpu.check_supported()
    else:
        with pytest.raises(UsageError, match="^--accelerator_type: .* runs only on the PJRT runtime"):
            tpu.check_supported()
    assert Slice("t", ZONE, "", accelerator_type, "tpu-vm-tf-2.18.0-pod-pjrt").version == "tpu-vm-tf-2.18.0-pod-pjrt"


def test_tpu_flags_one_host_local_several_hosts_the_name():
    assert Slice("t", ZONE, "p-12345", "v4-8").tpu_flags() == ["--tpu=local"]
    assert Slice("bert", ZONE, "p-12345", "v4-32").tpu_flags() == [
        "--tpu=bert", "--tpu_zone=us-central2-b", "--tpu_project=p-12345"]


@pytest.mark.parametrize("accelerator_type, project, message", [
    ("v6e-16", "p-12345", "^--accelerator_type: 'v6e-16' has 4 hosts: TensorFlow on v6e runs only on the PJRT"),
    ("v7-8", "p-12345", "^--accelerator_type: 'v7-8': unknown TPU generation 'v7'; this tool knows v2, v3, v4"),
    ("v4-32", "", "^--project: is required for v4-32 \\(4 hosts\\)"),
])
def test_slices_tensorflow_cannot_train_on_are_refused(accelerator_type, project, message):
    with pytest.raises(UsageError, match=message):
        Slice("t", ZONE, project, accelerator_type).check_supported()


def test_states():
    vm, queued = Slice("a", ZONE), Slice("a", ZONE, queued=True)
    assert [vm.dead(s) for s in ("PREEMPTED", "TERMINATED", "MISSING", "READY", "CREATING")] == [
        True, True, True, False, False]
    assert [queued.dead(s) for s in ("SUSPENDED", "FAILED", "ACTIVE", "WAITING_FOR_RESOURCES", "PREEMPTED")] == [
        True, True, False, False, False]
    assert vm.ready("READY") and queued.ready("ACTIVE") and not queued.ready("READY")


def test_install_from_git_with_the_constraints():
    command = cloud_tpu.install_command(cloud_tpu.git_requirement("https://github.com/org/lamb-tf.git", "v0.1"),
                                        "absl-py==1.4.0\nlibtpu==0.0.20\n")
    assert command.split("; ") == [
        "set -e",
        "sudo apt-get -qq update",
        "sudo DEBIAN_FRONTEND=noninteractive apt-get -qq install -y python3.11 python3.11-venv",
        "printf '%s\\n' absl-py==1.4.0 libtpu==0.0.20 > lamb-tf-constraints.txt",
        "python3.11 -m venv lamb-tf-venv",
        "lamb-tf-venv/bin/pip install --quiet --upgrade pip",
        "lamb-tf-venv/bin/pip install --quiet -c lamb-tf-constraints.txt "
        "'lamb-tf @ git+https://github.com/org/lamb-tf.git@v0.1'",
        "lamb-tf-venv/bin/pip uninstall --yes --quiet tensorflow",
        "lamb-tf-venv/bin/pip install --quiet -c lamb-tf-constraints.txt tensorflow-tpu libtpu cloud-tpu-client",
        'test -f lamb-tf-venv/lib/python3.11/site-packages/libtpu/libtpu.so || '
        '(echo "no ~/lamb-tf-venv/lib/python3.11/site-packages/libtpu/libtpu.so after installing libtpu" >&2 && false)',
    ]


def test_install_writes_the_constraints_file_verbatim(tmp_path):
    text = "tensorflow-tpu==2.20.0\n# a comment with 'quotes' and $(no expansion)\nlibtpu==0.0.20\n"
    command = cloud_tpu.install_command("lamb-tf", text).split("; ")[3]
    subprocess.run(["bash", "-c", command], cwd=tmp_path, check=True)
    assert (tmp_path / cloud_tpu.CONSTRAINTS).read_text() == text


def test_install_from_gs_wheel():
    steps = cloud_tpu.install_command("gs://b/dist/lamb_tf-0.1.0-py3-none-any.whl", "x==1").split("; ")
    assert steps[6:9] == ["mkdir -p lamb-tf-dist",
                          "gcloud storage cp gs://b/dist/lamb_tf-0.1.0-py3-none-any.whl lamb-tf-dist/",
                          "lamb-tf-venv/bin/pip install --quiet -c lamb-tf-constraints.txt "
                          "lamb-tf-dist/lamb_tf-0.1.0-py3-none-any.whl"]


def test_launch_command_one_host():
    command = cloud_tpu.launch_command("paper-64k-32k", "gs://b/data", "gs://b/model", ["--tpu=local"], ("--seed=1",))
    assert command == (
        'if [ -f bert-pretrain.pid ] && kill -0 "$(cat bert-pretrain.pid)" 2>/dev/null; '
        "then echo 'bert-pretrain is already running on this worker' >&2; exit 1; fi; "
        "rm -f bert-pretrain.exit; nohup setsid bash -c 'lamb-tf-venv/bin/bert-pretrain run --seed=1 "
        "--plan=paper-64k-32k --data_dir=gs://b/data --model_dir=gs://b/model --tpu=local; status=$?; "
        "echo $status > bert-pretrain.exit' >> bert-pretrain.log 2>&1 < /dev/null & echo $! > bert-pretrain.pid")


def test_launch_command_several_hosts_names_the_tpu_and_leaves_the_chips_to_the_runtime():
    tpu = Slice("bert", ZONE, "p-12345", "v4-32")
    command = cloud_tpu.launch_command("demo", "gs://b/data", "gs://b/model", tpu.tpu_flags(), env=tpu.runtime_env())
    assert ("nohup setsid bash -c 'TPU_LOAD_LIBRARY=0 lamb-tf-venv/bin/bert-pretrain run --plan=demo "
            "--data_dir=gs://b/data --model_dir=gs://b/model --tpu=bert --tpu_zone=us-central2-b "
            "--tpu_project=p-12345; status=$?;") in command


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
    with pytest.raises(UsageError, match=r"^--flag: .* is not valid; .*Nothing was run$"):
        check("flag", value, kind)


@pytest.mark.parametrize("kind", ["tpu_name", "zone", "project", "accelerator_type", "runtime_version", "gs_uri",
                                  "plan", "wheel", "requirement", "git_url", "git_ref", "train_flag"])
@pytest.mark.parametrize("attack", ["; rm -rf ~", "$(touch /tmp/x)", "`id`", "a|b", "a&&b", "a\nb", "a>b", "'a'"])
def test_shell_metacharacters_are_refused(kind, attack):
    with pytest.raises(UsageError) as error:
        check("zone", "v4-8" + attack, kind)
    assert str(error.value).startswith("--zone: ") and "contains shell characters" in str(error.value)
    assert "\n" not in str(error.value).replace("\\n", "")


def test_launch_quotes_what_it_is_given(tmp_path):
    """Even a value that skipped validation stays one inert word in the remote shell."""
    command = cloud_tpu.launch_command("$(touch pwned)", "gs://b/d", "gs://b/m", ["--tpu=local"],
                                       ("--x=a;touch pwned2",))
    inner = command.split("bash -c ", 1)[1].split(" >> ", 1)[0]
    body = subprocess.run(["bash", "-c", f"printf %s {inner}"], capture_output=True, text=True, check=True).stdout
    words = subprocess.run(["bash", "-c", f"printf '%s\\n' {body.split('; status')[0]}"], cwd=tmp_path,
                           capture_output=True, text=True, check=True).stdout.splitlines()
    assert words[2] == "--x=a;touch pwned2" and words[3] == "--plan=$(touch pwned)"
    assert not list(tmp_path.iterdir())


def test_imports_neither_tensorflow_nor_the_client():
    code = ("import sys, bert_pretrain.cloud_tpu; "
            "print(sorted({'tensorflow', 'cloud_tpu_client'} & set(sys.modules)))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "[]"


def test_libtpu_flag_replaces_the_pin():
    text = "absl-py==1.4.0\n# libtpu: see docs\nlibtpu==0.0.20\ncloud-tpu-client==0.7\n"
    assert cloud_tpu.with_libtpu(text, "") == text
    assert cloud_tpu.with_libtpu(text, "0.0.19") == (
        "absl-py==1.4.0\n# libtpu: see docs\ncloud-tpu-client==0.7\nlibtpu==0.0.19\n")


def test_pjrt_environment_names_the_installed_libtpu(tmp_path):
    """The PJRT variables expand, in the worker's shell, to the file the install step checks for."""
    env = Slice("t", ZONE, "p-12345", "v5p-8").runtime_env()
    shown = subprocess.run(["bash", "-c", f"{env} env"], env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
                           capture_output=True, text=True, check=True).stdout.splitlines()
    assert "NEXT_PLUGGABLE_DEVICE_USE_C_API=true" in shown
    assert f"TF_PLUGGABLE_DEVICE_LIBRARY_PATH={tmp_path}/{cloud_tpu.LIBTPU_SO}" in shown
    assert cloud_tpu.LIBTPU_SO in cloud_tpu.install_command("lamb-tf", "").split("; ")[-1]


def test_preflight_output_is_read_into_one_line_per_failure():
    tpu = Slice("pod", ZONE, "my-proj-1", "v4-32")
    listing = "\n".join([
        "account: trainer@my-proj-1.iam.gserviceaccount.com", "account status 0",
        "data:       1000  2026-12-01T00:00:00Z  gs://bkt/d/p1/a.tfrecord",
        "data:          0  2026-12-01T00:00:00Z  gs://bkt/d/p1/b.tfrecord",
        "data:       1000  2026-12-01T00:00:00Z  gs://bkt/d/p1/metadata.json",
        *[f"data:       1000  2026-12-01T00:00:00Z  gs://bkt/d/p2/{i}.tfrecord" for i in range(4)],
        "data: TOTAL: 7 objects", "data status 0",
        "write: ERROR: Permission 'storage.objects.create' denied. 403", "write status 1",
        "delete status 1", "tpu status 0"])
    assert cloud_tpu.preflight_failures(listing, "3", tpu, "gs://bkt/d", "gs://out-bkt/m") == [
        "gs://bkt/d/p1 has 1 non-empty .tfrecord file(s) for 4 host(s): each host reads its own files; write at "
        "least 4 (bert-pretrain-data --num_shards=4 or more, and a smaller --block_bytes if it says the input is too "
        "small)",
        "worker 3 cannot write to gs://out-bkt/m (storage.objects.create on bucket out-bkt); grant it with: "
        "gcloud storage buckets add-iam-policy-binding gs://out-bkt "
        "--member=serviceAccount:trainer@my-proj-1.iam.gserviceaccount.com --role=roles/storage.objectUser"]
    scopes = "data: ACCESS_TOKEN_SCOPE_INSUFFICIENT: Request had insufficient authentication scopes.\ndata status 1"
    assert cloud_tpu.preflight_failures(scopes, "0", tpu, "gs://bkt/d", "gs://bkt/m")[0] == (
        "worker 0 cannot list gs://bkt/d (storage.objects.list on bucket bkt): the VM's access scopes do not allow "
        "it; delete the slice and create it with --scopes=cloud-platform")
    assert cloud_tpu.preflight_failures("", "0", tpu, "gs://bkt/d", "gs://bkt/m")[0].startswith(
        "worker 0: the pre-flight check printed nothing readable")
