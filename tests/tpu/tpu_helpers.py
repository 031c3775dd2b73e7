"""Runs scripts/tpu.py in a subprocess, with a fake `gcloud` on PATH that records its argv.

A subprocess per run keeps scripts/tpu.py's absl flags out of the test process, where
bert_pretrain.cli defines flags of the same names.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "tpu.py"

# Answers `describe` with the next word of states.txt (the last one repeats; NOT_FOUND fails the way gcloud
# does for a missing TPU), the status of training on worker 0 with the next word of training.txt (or
# $FAKE_EXIT_STATUS), `tail -n +K` of the log with lines K..$FAKE_LOG_LINES, `config get-value project`
# with $FAKE_PROJECT (or "(unset)"), and everything else with nothing; exits with $FAKE_GCLOUD_STATUS.
# The pre-flight check's ssh command runs here in bash, in worker-home/, where `gcloud` and `curl` are
# these fakes (their calls go to remote_calls.jsonl): `storage ls -l` lists $FAKE_OBJECTS
# ("path:size,..." under the listed prefix; default four non-empty shards), and a permission named in
# $FAKE_DENY (storage.objects.list/create/delete, tpu.nodes.get) is refused with gcloud's 403 text.
_FAKE_GCLOUD = """#!{python}
import json, os, subprocess, sys
here = os.path.dirname(os.path.abspath(__file__))
args = sys.argv[1:]
remote = os.environ.get("FAKE_REMOTE") == "1"
with open(os.path.join(here, "remote_calls.jsonl" if remote else "calls.jsonl"), "a") as calls:
    calls.write(json.dumps(args) + "\\n")
deny = os.environ.get("FAKE_DENY", "")
command = next((a[len("--command="):] for a in args if a.startswith("--command=")), "")

def refuse(permission):
    sys.exit(f"ERROR: (gcloud) [trainer@my-proj-1.iam.gserviceaccount.com] does not have permission: "
             f"Permission '{{permission}}' denied (or it may not exist). 403")

def next_word(name, default):
    path = os.path.join(here, name)
    words = open(path).read().split() if os.path.exists(path) else [default]
    open(path, "w").write(" ".join(words[1:] or words))
    return words[0]

if "--format=value(name)" in args:
    if "tpu.nodes.get" in deny:
        refuse("tpu.nodes.get")
    print(args[4])
elif "describe" in args:
    state = next_word("states.txt", "READY")
    if state == "NOT_FOUND":
        sys.exit("ERROR: (gcloud.compute.tpus.tpu-vm.describe) NOT_FOUND: Resource not found")
    print(state)
if args[:3] == ["config", "get-value", "project"]:
    print(os.environ.get("FAKE_PROJECT", "(unset)"))
if args[:2] == ["storage", "ls"]:
    if "storage.objects.list" in deny:
        refuse("storage.objects.list")
    prefix = args[-1].rstrip("*").rstrip("/")
    objects = os.environ.get("FAKE_OBJECTS", ",".join(f"p1/pretrain-{{i}}.tfrecord:1000" for i in range(4)))
    if not objects:
        sys.exit("ERROR: (gcloud.storage.ls) One or more URLs matched no objects.")
    for item in objects.split(","):
        path, size = item.split(":")
        print(f"{{size:>10}}  2026-12-01T00:00:00Z  {{prefix}}/{{path}}")
    print("TOTAL: some objects")
if args[:2] == ["storage", "cp"] and args[-1].startswith("gs://") and "storage.objects.create" in deny:
    refuse("storage.objects.create")
if args[:2] == ["storage", "rm"] and "storage.objects.delete" in deny:
    refuse("storage.objects.delete")
if ".lamb-tf-preflight" in command:
    home = os.path.join(here, "worker-home")
    os.makedirs(home, exist_ok=True)
    env = {{**os.environ, "FAKE_REMOTE": "1", "PATH": here + os.pathsep + os.environ["PATH"]}}
    sys.exit(subprocess.run(["bash", "-c", command], cwd=home, env=env).returncode)
if "echo gone" in command:
    print(os.environ.get("FAKE_EXIT_STATUS") or next_word("training.txt", "running"))
if command.startswith("tail -n +"):
    first = int(command.split()[2][1:])
    for i in range(first, int(os.environ.get("FAKE_LOG_LINES", "0")) + 1):
        print(f"log line {{i}}")
sys.exit(int(os.environ.get("FAKE_GCLOUD_STATUS", "0")))
"""
_FAKE_CURL = """#!/bin/bash
echo "${FAKE_SA:-trainer@my-proj-1.iam.gserviceaccount.com}"
"""


def install_fake_gcloud(directory: Path, states: str = "READY", training: str = "running") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    gcloud = directory / "gcloud"
    gcloud.write_text(_FAKE_GCLOUD.format(python=sys.executable))
    (directory / "curl").write_text(_FAKE_CURL)
    for path in (gcloud, directory / "curl"):
        path.chmod(0o755)
    (directory / "states.txt").write_text(states)
    (directory / "training.txt").write_text(training)
    return directory


def remote_calls(directory: Path) -> list[list[str]]:
    """The calls the pre-flight check made on the (fake) worker."""
    path = directory / "remote_calls.jsonl"
    return [["gcloud", *json.loads(line)] for line in path.read_text().splitlines()] if path.exists() else []


def gcloud_calls(directory: Path) -> list[list[str]]:
    """Each recorded call as its argv, with the leading `gcloud` put back."""
    path = directory / "calls.jsonl"
    if not path.exists():
        return []
    return [["gcloud", *json.loads(line)] for line in path.read_text().splitlines()]


def run_tpu(args: list[str], fake_dir: Path | None = None, env: dict | None = None,
            python_path: Path | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FAKE_")}
    if fake_dir is not None:
        environment["PATH"] = f"{fake_dir}{os.pathsep}{environment['PATH']}"
    if python_path is not None:
        environment["PYTHONPATH"] = str(python_path)
    environment.update(env or {})
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          env=environment, timeout=60, check=False)
