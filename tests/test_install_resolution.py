"""The pinned stack resolves for every way the project is installed: the README's two commands (the
package, with the test extra) and a TPU worker's (the tpu extra plus tensorflow-tpu and libtpu), all
under constraints.txt. A pip dry run on a copy of the project (editable installs write egg-info);
it asks the package index, as the README's install does."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_constraints_resolve_for_the_tests_and_a_tpu_worker(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    for name in ("setup.py", "README.md", "constraints.txt"):
        shutil.copy(REPO / name, project / name)
    for package in ("lamb_tf", "bert_pretrain"):
        shutil.copytree(REPO / package, project / package, ignore=shutil.ignore_patterns("__pycache__"))
    report = tmp_path / "report.json"
    run = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--report",
         str(report), "-c", str(project / "constraints.txt"), "-e", f"{project}[tpu,test]", "tensorflow-tpu",
         "libtpu"], capture_output=True, text=True, timeout=900, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    resolved = {item["metadata"]["name"].lower().replace("_", "-"): item["metadata"]["version"]
                for item in json.loads(report.read_text())["install"]}
    pinned = dict(line.split("==") for line in (REPO / "constraints.txt").read_text().splitlines()
                  if "==" in line and not line.startswith("#"))
    for name in ("tensorflow", "tensorflow-tpu", "libtpu", "cloud-tpu-client", "tf-models-official",
                 "google-api-python-client", "keras"):
        key = next(k for k in pinned if k.lower().replace("_", "-") == name)
        assert resolved[name] == pinned[key], name
