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
# does for a missing TPU), `cat bert-pretrain.exit` with $FAKE_EXIT_STATUS, `config get-value project`
# with $FAKE_PROJECT (or "(unset)"), and everything else with nothing; exits with $FAKE_GCLOUD_STATUS.
_FAKE_GCLOUD = """#!{python}
import json, os, sys
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "calls.jsonl"), "a") as calls:
    calls.write(json.dumps(sys.argv[1:]) + "\\n")
if "describe" in sys.argv:
    path = os.path.join(here, "states.txt")
    states = open(path).read().split()
    open(path, "w").write(" ".join(states[1:] or states))
    if states[0] == "NOT_FOUND":
        sys.exit("ERROR: (gcloud.compute.tpus.tpu-vm.describe) NOT_FOUND: Resource not found")
    print(states[0])
if sys.argv[1:4] == ["config", "get-value", "project"]:
    print(os.environ.get("FAKE_PROJECT", "(unset)"))
if any(arg.startswith("--command=cat bert-pretrain.exit") for arg in sys.argv):
    print(os.environ.get("FAKE_EXIT_STATUS", ""))
sys.exit(int(os.environ.get("FAKE_GCLOUD_STATUS", "0")))
"""


def install_fake_gcloud(directory: Path, states: str = "READY") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    gcloud = directory / "gcloud"
    gcloud.write_text(_FAKE_GCLOUD.format(python=sys.executable))
    gcloud.chmod(0o755)
    (directory / "states.txt").write_text(states)
    return directory


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
