"""scripts/tpu.py end to end: exact --dry_run output, refused input, and runs against a fake gcloud."""

import shlex

import pytest

from bert_pretrain import cloud_tpu
from tpu_helpers import REPO, gcloud_calls, install_fake_gcloud, remote_calls, run_tpu

VM = ["gcloud", "compute", "tpus", "tpu-vm"]
QR = ["gcloud", "compute", "tpus", "queued-resources"]
GIT = "--git_url=https://github.com/org/lamb-tf.git"
TRAIN = ["--plan=paper-64k-32k", "--data_dir=gs://lamb-bkt/data", "--model_dir=gs://lamb-bkt/runs/p64k"]
INSTALL = cloud_tpu.install_command("lamb-tf @ git+https://github.com/org/lamb-tf.git@main",
                                    (REPO / "constraints.txt").read_text())
PJRT = ('NEXT_PLUGGABLE_DEVICE_USE_C_API=true '
        'TF_PLUGGABLE_DEVICE_LIBRARY_PATH="$HOME/lamb-tf-venv/lib/python3.11/site-packages/libtpu/libtpu.so"')
LAUNCH = cloud_tpu.launch_command("paper-64k-32k", "gs://lamb-bkt/data", "gs://lamb-bkt/runs/p64k", ["--tpu=local"],
                                  env=PJRT)
SCOPES = "--scopes=cloud-platform"
CHECK = cloud_tpu.preflight_command("gs://lamb-bkt/data", "gs://lamb-bkt/runs/p64k")


def _lines(result):
    assert result.returncode == 0, result.stderr
    return [shlex.split(line) for line in result.stdout.splitlines()]


def test_up_single_host_dry_run():
    result = run_tpu(["up", "--dry_run", "--name=bert-v4-8", "--zone=us-central2-b", "--accelerator_type=v4-8",
                      GIT, *TRAIN])
    assert _lines(result) == [
        [*VM, "create", "bert-v4-8", "--zone=us-central2-b", "--accelerator-type=v4-8",
         "--version=tpu-ubuntu2204-base", SCOPES],
        [*VM, "ssh", "bert-v4-8", "--zone=us-central2-b", "--quiet", "--worker=0", f"--command={CHECK}"],
        [*VM, "ssh", "bert-v4-8", "--zone=us-central2-b", "--quiet", "--worker=all", f"--command={INSTALL}"],
        [*VM, "ssh", "bert-v4-8", "--zone=us-central2-b", "--quiet", "--worker=0", f"--command={LAUNCH}"],
        [*VM, "ssh", "bert-v4-8", "--zone=us-central2-b", "--quiet", "--worker=0",
         '--command=tail -n +1 -F --pid="$(cat bert-pretrain.pid)" bert-pretrain.log'],
    ]
    assert "v4-8 is one host: training runs the TPU runtime (pjrt) in its own process" in result.stderr


def test_up_pod_dry_run_runtime_everywhere_one_trainer_with_the_name():
    """v4-128 (16 hosts): the runtime on every worker, then exactly one training process, on worker 0,
    naming the TPU; extra flags passed through quoted, before the flags tpu.py sets."""
    result = run_tpu(["up", "--dry_run", "--name=bert-pod", "--zone=us-central2-b", "--project=my-proj-1",
                      "--accelerator_type=v4-128", "--spot",
                      "--package=gs://lamb-bkt/dist/lamb_tf-0.1.0-py3-none-any.whl",
                      "--log_uri=gs://lamb-bkt/logs", *TRAIN, "--", "--steps_per_loop=500"])
    where = ["bert-pod", "--zone=us-central2-b", "--project=my-proj-1"]
    lines = _lines(result)
    assert lines[0] == [*VM, "create", *where, "--accelerator-type=v4-128", "--version=tpu-ubuntu2204-base", SCOPES,
                        "--spot"]
    check = cloud_tpu.preflight_command("gs://lamb-bkt/data", "gs://lamb-bkt/runs/p64k",
                                        cloud_tpu.Slice("bert-pod", "us-central2-b", "my-proj-1"))
    assert lines[1:3] == [[*VM, "ssh", *where, "--quiet", f"--worker={w}", f"--command={check}"] for w in (0, 15)]
    del lines[1:3]
    assert lines[1][:10] == [*VM, "ssh", *where, "--quiet", "--worker=all"]
    assert "gcloud storage cp gs://lamb-bkt/dist/lamb_tf-0.1.0-py3-none-any.whl lamb-tf-dist/" in lines[1][10]
    assert lines[2] == [*VM, "ssh", *where, "--quiet", "--worker=all", f"--command={cloud_tpu.runtime_command()}"]
    assert lines[3] == [*VM, "ssh", *where, "--quiet", "--worker=0", "--command=" + (
        'if [ -f bert-pretrain.pid ] && kill -0 "$(cat bert-pretrain.pid)" 2>/dev/null; '
        "then echo 'bert-pretrain is already running on this worker' >&2; exit 1; fi; "
        "rm -f bert-pretrain.exit; nohup setsid bash -c '( while sleep 60; do gcloud storage cp bert-pretrain.log "
        "gs://lamb-bkt/logs/bert-pod/\"$(hostname)\".log >/dev/null 2>&1; done ) & sync=$!; "
        "TPU_LOAD_LIBRARY=0 lamb-tf-venv/bin/bert-pretrain run --steps_per_loop=500 --plan=paper-64k-32k "
        "--data_dir=gs://lamb-bkt/data --model_dir=gs://lamb-bkt/runs/p64k --tpu=bert-pod --tpu_zone=us-central2-b "
        "--tpu_project=my-proj-1; status=$?; kill $sync; "
        "gcloud storage cp bert-pretrain.log gs://lamb-bkt/logs/bert-pod/\"$(hostname)\".log >/dev/null 2>&1; "
        "echo $status > bert-pretrain.exit' >> bert-pretrain.log 2>&1 < /dev/null & echo $! > bert-pretrain.pid")]
    assert lines[4][:10] == [*VM, "ssh", *where, "--quiet", "--worker=0"]
    assert len(lines) == 5
    trainers = [line for line in lines if "bert-pretrain run" in line[-1]]
    assert len(trainers) == 1 and trainers[0][9] == "--worker=0"


@pytest.mark.parametrize("accelerator_type, image", [("v5p-8", "v2-alpha-tpuv5"), ("v6e-8", "v2-alpha-tpuv6e"),
                                                     ("v5litepod-8", "v2-alpha-tpuv5-lite")])
def test_newer_generations_pick_their_image(accelerator_type, image):
    lines = _lines(run_tpu(["create", "--dry_run", "--name=t", "--zone=us-east5-a",
                            f"--accelerator_type={accelerator_type}"]))
    assert lines == [[*VM, "create", "t", "--zone=us-east5-a", f"--accelerator-type={accelerator_type}",
                      f"--version={image}", SCOPES]]


def test_unsupported_slice_is_refused_before_anything_is_created(tmp_path):
    fake = install_fake_gcloud(tmp_path / "bin")
    result = run_tpu(["up", "--name=t", "--zone=us-east5-a", "--project=my-proj-1", "--accelerator_type=v6e-16",
                      GIT, *TRAIN], fake)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("tpu.py: --accelerator_type: 'v6e-16' has 4 hosts: TensorFlow on v6e runs only "
                                    "on the PJRT runtime")
    assert "use a one-host v6e slice (v6e-8) or a v2-v4 pod. Nothing was run" in result.stderr
    assert gcloud_calls(fake) == []


def test_pod_project_comes_from_gcloud_config_or_is_required(tmp_path):
    fake = install_fake_gcloud(tmp_path / "bin")
    args = ["launch", "--name=pod", "--zone=us-central2-b", "--accelerator_type=v4-32", *TRAIN]
    refused = run_tpu(args, fake)
    assert refused.returncode == 2 and refused.stderr.startswith("tpu.py: --project: is required for v4-32 (4 hosts)")
    assert gcloud_calls(fake) == [["gcloud", "config", "get-value", "project"]]
    configured = run_tpu(args, fake, env={"FAKE_PROJECT": "proj-from-config"})
    assert configured.returncode == 0, configured.stderr
    assert "--tpu_project=proj-from-config" in gcloud_calls(fake)[-1][-1]


def test_queued_spot_create_dry_run():
    result = run_tpu(["create", "--dry_run", "--queued", "--spot", "--name=qr-1", "--zone=us-east5-a",
                      "--project=my-proj-1", "--accelerator_type=v5litepod-8"])
    where = ["qr-1", "--zone=us-east5-a", "--project=my-proj-1"]
    assert _lines(result) == [
        [*QR, "create", *where, "--node-id=qr-1", "--accelerator-type=v5litepod-8",
         "--runtime-version=v2-alpha-tpuv5-lite", SCOPES, "--spot"],
        [*QR, "describe", *where, "--format=value(state.state)"],
    ]


def test_recover_and_delete_queued_dry_run():
    flags = ["--dry_run", "--queued", "--name=qr-1", "--zone=us-east5-a", "--accelerator_type=v4-8", GIT, *TRAIN]
    lines = _lines(run_tpu(["recover", *flags]))
    assert [line[:5] for line in lines] == [[*QR, "describe"], [*QR, "delete"], [*QR, "create"], [*QR, "describe"],
                                            [*VM, "ssh"], [*VM, "ssh"]]
    assert lines[1] == [*QR, "delete", "qr-1", "--zone=us-east5-a", "--force", "--quiet"]
    assert lines[5][-2:] == ["--worker=0", f"--command={LAUNCH}"]
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
    (["--", "--flagfile=gs://lamb-bkt/flags.txt"], "--flagfile"),
    (["--", "--notpu"], "--notpu"),
    (["--", "--undefok=tpu"], "--undefok"),
    (["--", "--model_dir=gs://lamb-bkt/other"], "--model_dir"),
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


def test_missing_gcloud_is_one_line(tmp_path):
    result = run_tpu(["status", "--name=bert", "--zone=us-central2-b"], env={"PATH": str(tmp_path)})
    assert result.returncode == 1
    assert result.stderr == "tpu.py: gcloud is not on PATH; install the Google Cloud CLI, or pass --dry_run\n"


def test_recover_after_preemption(tmp_path):
    fake = install_fake_gcloud(tmp_path / "bin", "PREEMPTED")
    result = run_tpu(["recover", "--name=bert-v3", "--zone=europe-west4-a", "--project=my-proj-1",
                      "--accelerator_type=v3-32", "--spot", GIT, *TRAIN], fake)
    assert result.returncode == 0, result.stderr
    where = ["bert-v3", "--zone=europe-west4-a", "--project=my-proj-1"]
    launch = cloud_tpu.launch_command("paper-64k-32k", "gs://lamb-bkt/data", "gs://lamb-bkt/runs/p64k",
                                      ["--tpu=bert-v3", "--tpu_zone=europe-west4-a", "--tpu_project=my-proj-1"],
                                      env="TPU_LOAD_LIBRARY=0")
    assert gcloud_calls(fake) == [
        [*VM, "describe", *where, "--format=value(state)"],
        [*VM, "delete", *where, "--quiet"],
        [*VM, "create", *where, "--accelerator-type=v3-32", "--version=tpu-ubuntu2204-base", SCOPES, "--spot"],
        [*VM, "ssh", *where, "--quiet", "--worker=all", f"--command={INSTALL}"],
        [*VM, "ssh", *where, "--quiet", "--worker=all", f"--command={cloud_tpu.runtime_command()}"],
        [*VM, "ssh", *where, "--quiet", "--worker=0", f"--command={launch}"],
    ]


@pytest.mark.parametrize("state, training, verbs", [
    ("READY", "running", ["describe", "ssh"]),
    ("READY", "gone", ["describe", "ssh", "ssh"]),   # status, then launch (one host: no runtime server)
    ("NOT_FOUND", "running", ["describe", "create", "ssh", "ssh"])])
def test_recover_healthy_or_missing(tmp_path, state, training, verbs):
    fake = install_fake_gcloud(tmp_path / "bin", state, training)
    result = run_tpu(["recover", "--name=bert", "--zone=us-central2-b", "--accelerator_type=v4-8", GIT, *TRAIN], fake)
    assert result.returncode == 0, result.stderr
    assert [call[4] for call in gcloud_calls(fake)] == verbs
    if training == "gone":
        assert gcloud_calls(fake)[-1][-1] == f"--command={LAUNCH}"


def test_watch_recovers_then_returns_the_training_status(tmp_path):
    fake = install_fake_gcloud(tmp_path / "bin", "PREEMPTED PREEMPTED READY")
    result = run_tpu(["watch", "--name=bert", "--zone=us-central2-b", "--accelerator_type=v4-8", GIT, *TRAIN], fake,
                     env={"FAKE_EXIT_STATUS": "3"})
    assert result.returncode == 3, result.stderr
    calls = gcloud_calls(fake)
    assert [call[4] for call in calls] == ["ssh", "describe", "describe", "delete", "create", "ssh", "ssh", "ssh",
                                           "describe", "ssh"]
    assert calls[0][-1].startswith("--command=tail") and calls[-1][-2:] == [
        "--worker=0", f"--command={cloud_tpu.EXIT_STATUS_COMMAND}"]


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


def test_watch_needs_what_a_recovery_needs(tmp_path):
    fake = install_fake_gcloud(tmp_path / "bin")
    result = run_tpu(["watch", "--name=bert", "--zone=us-central2-b"], fake)
    assert result.returncode == 2 and result.stderr == "tpu.py: --accelerator_type: required by `watch`\n"
    assert gcloud_calls(fake) == []


RUNTIME_CASES = [   # accelerator type, extra flags, the environment training gets (or the refusal's start)
    ("v4-8", [], PJRT),
    ("v4-8", ["--tpu_runtime=se"], ""),
    ("v4-32", [], "TPU_LOAD_LIBRARY=0"),
    ("v4-32", ["--tpu_runtime=pjrt"], "tpu.py: --tpu_runtime: pjrt on v4-32 (4 hosts): TensorFlow's runtime on "
                                      "several hosts would be PJRT"),
    ("v5p-8", [], PJRT),
    ("v5p-8", ["--tpu_runtime=se"], "tpu.py: --tpu_runtime: se on v5p-8: Google documents only the PJRT runtime"),
    ("v5p-16", [], "tpu.py: --accelerator_type: 'v5p-16' has 2 hosts: TensorFlow on v5p runs only on the PJRT"),
    ("v5litepod-8", [], PJRT),
    ("v6e-8", [], PJRT),
]


@pytest.mark.parametrize("accelerator_type, extra, expected", RUNTIME_CASES)
def test_each_slice_gets_its_runtime_environment_or_one_refusal(accelerator_type, extra, expected):
    result = run_tpu(["launch", "--dry_run", "--name=t", "--zone=us-east5-a", "--project=my-proj-1",
                      f"--accelerator_type={accelerator_type}", *extra, *TRAIN])
    if expected.startswith("tpu.py: "):
        assert result.returncode == 2 and result.stdout == "" and len(result.stderr.splitlines()) == 1
        assert result.stderr.startswith(expected) and result.stderr.endswith("Nothing was run\n")
        return
    (line,) = _lines(result)
    body = shlex.split(line[-1].split("nohup setsid bash -c ", 1)[1])[0]
    assert body.split("lamb-tf-venv/bin/bert-pretrain run")[0] == (expected + " " if expected else "")


def test_libtpu_service_account_and_scopes_flags_dry_run():
    result = run_tpu(["up", "--dry_run", "--name=t", "--zone=us-central2-b", "--accelerator_type=v4-8", GIT, *TRAIN,
                      "--libtpu=0.0.19", "--service_account=trainer@my-proj-1.iam.gserviceaccount.com",
                      "--scopes=cloud-platform,userinfo-email"])
    lines = _lines(result)
    assert lines[0][-2:] == ["--service-account=trainer@my-proj-1.iam.gserviceaccount.com",
                             "--scopes=cloud-platform,userinfo-email"]
    install = lines[2][-1]
    assert " libtpu==0.0.19 " in install and "libtpu==0.0.20" not in install


def _up_pod(tmp_path, **env):
    fake = install_fake_gcloud(tmp_path / "bin")
    result = run_tpu(["up", "--name=pod", "--zone=us-central2-b", "--project=my-proj-1", "--accelerator_type=v4-32",
                      GIT, *TRAIN], fake, env=env)
    return fake, result


DELETE = "tpu.py: stopped before install; the slice bills until deleted: gcloud compute tpus tpu-vm delete pod " \
         "--zone=us-central2-b --project=my-proj-1 --quiet"
SA = "--member=serviceAccount:trainer@my-proj-1.iam.gserviceaccount.com"


@pytest.mark.parametrize("env, failure", [
    ({"FAKE_DENY": "storage.objects.list"},
     "workers 0 and 3 cannot list gs://lamb-bkt/data (storage.objects.list on bucket lamb-bkt); grant it with: gcloud "
     f"storage buckets add-iam-policy-binding gs://lamb-bkt {SA} --role=roles/storage.objectViewer"),
    ({"FAKE_OBJECTS": "p1/a.tfrecord:900,p1/b.tfrecord:900,p1/c.tfrecord:0,p1/d.tfrecord:0,p1/metadata.json:50"},
     "gs://lamb-bkt/data/p1 has 2 non-empty .tfrecord file(s) for 4 host(s): each host reads its own files; write "
     "at least 4 (bert-pretrain-data --num_shards=4 or more, and a smaller --block_bytes if it says the input is "
     "too small)"),
    ({"FAKE_DENY": "tpu.nodes.get"},
     f"workers 0 and 3 cannot look the TPU pod up by name (tpu.nodes.get in project my-proj-1); grant it with: gcloud "
     f"projects add-iam-policy-binding my-proj-1 {SA} --role=roles/tpu.viewer"),
    ({"FAKE_DENY": "storage.objects.create"},
     "workers 0 and 3 cannot write to gs://lamb-bkt/runs/p64k (storage.objects.create on bucket lamb-bkt); grant it "
     f"with: gcloud storage buckets add-iam-policy-binding gs://lamb-bkt {SA} --role=roles/storage.objectUser"),
])
def test_up_stops_after_a_failed_preflight_before_install(tmp_path, env, failure):
    """Through the fake gcloud: the check's shell text runs in bash on the fake worker, where gcloud refuses
    the permission or lists too few files; `up` prints one line per failure and the delete command."""
    fake, result = _up_pod(tmp_path, **env)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-2:] == [f"tpu.py: check: {failure}", DELETE]
    assert [call[4] for call in gcloud_calls(fake)] == ["create", "ssh", "ssh"]   # worker 0 and worker 3, no install
    assert [call[-3:-1] for call in gcloud_calls(fake)[1:]] == [["--quiet", "--worker=0"], ["--quiet", "--worker=3"]]
    assert [call[1:3] for call in remote_calls(fake)][:3] == [["storage", "ls"], ["storage", "cp"], ["storage", "rm"]]


def test_preflight_passes_then_up_installs_and_trains(tmp_path):
    fake, result = _up_pod(tmp_path, FAKE_EXIT_STATUS="0")
    assert result.returncode == 0, result.stderr
    assert "tpu.py: check: pod can read the data, write to --model_dir and look itself up" in result.stderr
    verbs = [call[4] for call in gcloud_calls(fake)]
    assert verbs[:6] == ["create", "ssh", "ssh", "ssh", "ssh", "ssh"]   # check x2, install, runtime, launch
    assert "--format=value(name)" in remote_calls(fake)[-1]


def test_watch_after_a_maintenance_reboot_restarts_the_runtimes_and_relaunches(tmp_path):
    """READY, no exit file, the training process gone: a failure. The runtime servers are restarted on every
    worker, training is launched again, and the log is followed from the first line not yet shown."""
    fake = install_fake_gcloud(tmp_path / "bin", "READY", training="gone 0")
    result = run_tpu(["watch", "--poll_s=1", "--name=pod", "--zone=us-central2-b", "--project=my-proj-1",
                      "--accelerator_type=v4-32", GIT, *TRAIN], fake, env={"FAKE_LOG_LINES": "3"})
    assert result.returncode == 0, result.stderr
    assert result.stdout == "log line 1\nlog line 2\nlog line 3\n"
    launch = cloud_tpu.launch_command("paper-64k-32k", "gs://lamb-bkt/data", "gs://lamb-bkt/runs/p64k",
                                      ["--tpu=pod", "--tpu_zone=us-central2-b", "--tpu_project=my-proj-1"],
                                      env="TPU_LOAD_LIBRARY=0")
    describe = ("describe", "--project=my-proj-1", "--format=value(state)")

    def ssh(worker, command):
        return "ssh", f"--worker={worker}", f"--command={command}"

    assert [(call[4], call[-2], call[-1]) for call in gcloud_calls(fake)] == [
        ssh(0, cloud_tpu.logs_command(1)), describe, ssh(0, cloud_tpu.EXIT_STATUS_COMMAND),
        ssh("all", cloud_tpu.runtime_command(restart=True)), ssh(0, launch),
        ssh(0, cloud_tpu.logs_command(4)), describe, ssh(0, cloud_tpu.EXIT_STATUS_COMMAND)]
    assert "training on worker 0 died without an exit status (a maintenance reboot?); recovering" in result.stderr


def test_watch_gives_up_after_max_recoveries(tmp_path):
    fake = install_fake_gcloud(tmp_path / "bin", "READY", training="gone")
    result = run_tpu(["watch", "--max_recoveries=1", "--name=b", "--zone=us-central2-b", "--accelerator_type=v4-8",
                      GIT, *TRAIN], fake)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == ("tpu.py: training on worker 0 died without an exit status (a "
                                              "maintenance reboot?), after --max_recoveries=1 recoveries; giving up")
    assert [call[-1][10:] for call in gcloud_calls(fake)].count(LAUNCH) == 1


def test_check_alone_on_one_host(tmp_path):
    """One host: worker 0 only, no name lookup (training uses --tpu=local); exit 1 with one line per failure."""
    fake = install_fake_gcloud(tmp_path / "bin")
    args = ["check", "--name=b", "--zone=us-central2-b", "--accelerator_type=v5litepod-8", *TRAIN[1:]]
    assert run_tpu(args, fake).returncode == 0
    assert [call[-2] for call in gcloud_calls(fake)] == ["--worker=0"]
    assert not any("describe" in call for call in remote_calls(fake))
    failed = run_tpu(args, fake, env={"FAKE_DENY": "storage.objects.delete"})
    assert failed.returncode == 1 and failed.stderr.splitlines() == [
        "tpu.py: check: worker 0 cannot delete from gs://lamb-bkt/runs/p64k (storage.objects.delete on bucket "
        f"lamb-bkt); grant it with: gcloud storage buckets add-iam-policy-binding gs://lamb-bkt {SA} "
        "--role=roles/storage.objectUser"]
