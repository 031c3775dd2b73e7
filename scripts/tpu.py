"""Pretrain BERT on a Cloud TPU slice: `python scripts/tpu.py ACTION --name=... --zone=... [flags] [-- TRAIN_FLAGS]`.

Actions, each a sequence of gcloud commands (bert_pretrain/cloud_tpu.py builds them):
  create   TPU VM with the generation's base image (or --queued resource, waiting until ACTIVE), the
           --service_account and --scopes; --spot for the spot tier; a slice and runtime that follow no
           documented Google recipe for TensorFlow are refused before anything runs
  check    pre-flight, from worker 0 and the last worker: the data lists at least one non-empty
           .tfrecord file per host in each directory, a test object can be written and deleted under
           --model_dir, and (several hosts) the TPU can be looked up by name; one line per failure
  install  this package, tensorflow-tpu, libtpu (--libtpu) and cloud-tpu-client on every worker,
           versions from constraints.txt
  runtime  several hosts only: the StreamExecutor TPU runtime server on every worker (port 8470)
  launch   `bert-pretrain run` on worker 0, detached, logging to a file: --tpu=local on one host (PJRT
           environment unless --tpu_runtime=se), --tpu=NAME on several (one process drives every host)
  logs     stream worker 0's log until training ends
  status   print the slice's state
  watch    stream logs (each line once); on preemption recover; when training died without an exit
           status on a READY slice (a maintenance reboot), restart the runtime servers and relaunch;
           exit with training's exit status
  recover  if the slice was preempted (or --force): delete, create, install, runtime, launch; if it is
           READY but training died without an exit status: restart the runtime servers, launch; training
           resumes from the last checkpoint in --model_dir
  delete   delete the slice (the queued resource too)
  up       create, check (stops with the delete command on a failure), install, runtime, launch, watch

Flags after `--` go to `bert-pretrain run`, before the flags this tool sets itself (which therefore
win). --dry_run prints the gcloud commands, one per line and shell-quoted, instead of running them.
Every value is validated before anything runs.
"""

import os
import shlex
import shutil
import subprocess
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bert_pretrain import cloud_tpu  # noqa: E402  pylint: disable=wrong-import-position
from bert_pretrain.cloud_tpu import check  # noqa: E402  pylint: disable=wrong-import-position
from bert_pretrain.errors import UsageError  # noqa: E402  pylint: disable=wrong-import-position

ACTIONS = ("create", "check", "install", "runtime", "launch", "logs", "status", "watch", "recover", "delete", "up")
# Training flags this tool sets itself, and absl's ways of reading flags from elsewhere.
RESERVED = ("plan", "data_dir", "model_dir", "tpu", "tpu_zone", "tpu_project", "flagfile", "undefok")
CONSTRAINTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "constraints.txt")

FLAGS = flags.FLAGS
flags.DEFINE_string("name", "", "TPU name (and queued resource ID with --queued).")
flags.DEFINE_string("zone", "", "Zone, e.g. us-central2-b.")
flags.DEFINE_string("project", "", "GCP project; default: gcloud's configured project.")
flags.DEFINE_string("accelerator_type", "", "Slice type, e.g. v4-8 (one host), v4-128 (16 hosts).")
flags.DEFINE_string("runtime_version", "", "TPU software version; default: the generation's base image "
                    "(tpu-ubuntu2204-base for v2-v4, v2-alpha-tpuv5 for v5p, v2-alpha-tpuv5-lite for v5e, "
                    "v2-alpha-tpuv6e for v6e).")
flags.DEFINE_enum("tpu_runtime", "", ["", "pjrt", "se"], "TPU runtime: pjrt or se (StreamExecutor); default "
                  "PJRT on one host (the only runtime Google documents for TensorFlow on v5e/v5p/v6e), "
                  "StreamExecutor on a v2-v4 pod (the wheel's runtime server).")
flags.DEFINE_string("libtpu", "", "libtpu version to install instead of constraints.txt's pin (0.0.20), e.g. "
                    "0.0.19 when the TPU does not initialise (docs/cloud_tpu.md).")
flags.DEFINE_string("service_account", "", "Service account of the TPU VMs; default: the project's Compute "
                    "Engine default service account.")
flags.DEFINE_string("scopes", "cloud-platform", "Access scopes of the TPU VMs (comma-separated); "
                    "cloud-platform leaves access to IAM roles alone.")
flags.DEFINE_bool("spot", False, "Spot tier: cheaper, can be preempted.")
flags.DEFINE_bool("queued", False, "Create through a queued resource and wait until it is ACTIVE.")
flags.DEFINE_string("package", "", "What to pip install: a requirement (lamb-tf==0.1.0) or a gs:// wheel.")
flags.DEFINE_string("git_url", "", "Install from this git repository when --package is empty.")
flags.DEFINE_string("git_ref", "main", "Branch, tag or commit of --git_url.")
flags.DEFINE_string("plan", "", "Training plan: a name (paper-64k-32k, demo) or a file.")
flags.DEFINE_string("data_dir", "", "gs:// directory with the pretraining data.")
flags.DEFINE_string("model_dir", "", "gs:// directory for checkpoints; a relaunch resumes from it.")
flags.DEFINE_string("log_uri", "", "gs:// directory that the training log is copied to every minute.")
flags.DEFINE_integer("poll_s", 60, "Seconds between state checks.", lower_bound=1)
flags.DEFINE_integer("max_recoveries", 10, "`watch` gives up after this many recoveries.", lower_bound=0)
flags.DEFINE_bool("force", False, "`recover` recreates the slice even when it looks healthy.")
flags.DEFINE_bool("dry_run", False, "Print the gcloud commands instead of running them.")


class Failed(Exception):
    """A gcloud command failed or the slice is in a state this tool cannot fix; one line, exit 1."""


class Runner:
    """Runs argv lists (never through a shell), or prints them with --dry_run."""

    def __init__(self, dry_run: bool):
        self.dry_run = dry_run
        if not dry_run and not shutil.which("gcloud"):
            raise Failed("gcloud is not on PATH; install the Google Cloud CLI, or pass --dry_run")

    def run(self, argv: list[str], check_status: bool = True) -> int:
        if self.dry_run:
            print(shlex.join(argv), flush=True)
            return 0
        print(f"+ {shlex.join(argv)}", file=sys.stderr, flush=True)
        status = subprocess.run(argv, check=False).returncode
        if status and check_status:
            raise Failed(f"{shlex.join(argv[:5])} exited with status {status}")
        return status

    def stream(self, argv: list[str]) -> int:
        """Runs `argv`, copying its output lines to stdout; returns how many there were."""
        if self.dry_run:
            print(shlex.join(argv), flush=True)
            return 0
        print(f"+ {shlex.join(argv)}", file=sys.stderr, flush=True)
        count = 0
        with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as process:
            for line in process.stdout:
                sys.stdout.write(line)
                sys.stdout.flush()
                count += 1
        return count

    def output(self, argv: list[str]) -> tuple[int, str, str]:
        if self.dry_run:
            print(shlex.join(argv), flush=True)
            return 0, "", ""
        done = subprocess.run(argv, check=False, capture_output=True, text=True)
        return done.returncode, done.stdout, done.stderr


def _note(message: str) -> None:
    print(f"tpu.py: {message}", file=sys.stderr, flush=True)


class Controller:
    """The actions, over one validated slice and one Runner."""

    def __init__(self, tpu: cloud_tpu.Slice, runner: Runner, package: str, extra: tuple[str, ...]):
        self.tpu, self.runner, self.package, self.extra = tpu, runner, package, extra

    def state(self) -> str:
        status, out, err = self.runner.output(self.tpu.describe())
        if status == 0:
            return out.strip()
        if "NOT_FOUND" in err:
            return cloud_tpu.MISSING
        raise Failed(f"could not read the state of {self.tpu.name}: {(err.strip().splitlines() or ['?'])[-1]}")

    def create(self) -> None:
        self.runner.run(self.tpu.create())
        while self.tpu.queued:  # The queued resource exists now; its TPU VM comes when capacity does.
            state = self.state()
            if self.runner.dry_run or self.tpu.ready(state):
                return
            if self.tpu.dead(state):
                raise Failed(f"queued resource {self.tpu.name} is {state}; delete it and create it again")
            _note(f"{self.tpu.name} is {state}; waiting")
            time.sleep(FLAGS.poll_s)

    def check(self) -> list[str]:
        """The pre-flight check from worker 0 and the last worker; prints and returns one line per failure."""
        tpu = self.tpu
        command = cloud_tpu.preflight_command(FLAGS.data_dir, FLAGS.model_dir, tpu if tpu.hosts > 1 else None)
        found: dict[str, list[str]] = {}   # a failure, with its worker as {}, -> the workers it happened on
        for worker in dict.fromkeys(["0", str(tpu.hosts - 1)]):
            _, out, err = self.runner.output(tpu.ssh(command, worker=worker))
            if not self.runner.dry_run:
                for line in cloud_tpu.preflight_failures(out + err, worker, tpu, FLAGS.data_dir, FLAGS.model_dir,
                                                         tpu.service_account):
                    found.setdefault(line.replace(f"worker {worker}", "{}", 1), []).append(worker)
        failures = [line.replace("{}", ("worker " if len(on) == 1 else "workers ") + " and ".join(on), 1)
                    for line, on in found.items()]
        for line in failures:
            _note(f"check: {line}")
        if not failures and not self.runner.dry_run:
            _note(f"check: {tpu.name} can read the data, write to --model_dir"
                  + (" and look itself up" if tpu.hosts > 1 else ""))
        return failures

    def install(self) -> None:
        with open(CONSTRAINTS, encoding="utf-8") as handle:
            constraints = cloud_tpu.with_libtpu(handle.read(), FLAGS.libtpu)
        self.runner.run(self.tpu.ssh(cloud_tpu.install_command(self.package, constraints)))

    def runtime(self, restart: bool = False) -> None:
        """The TPU runtime server on every worker of a multi-host slice; one host needs none."""
        if self.tpu.hosts > 1:
            self.runner.run(self.tpu.ssh(cloud_tpu.runtime_command(restart=restart)))
        else:
            _note(f"{self.tpu.accelerator_type} is one host: training runs the TPU runtime "
                  f"({self.tpu.tpu_runtime}) in its own process, no runtime server")

    def launch(self) -> None:
        """One training process, on worker 0, for the whole slice."""
        self.runner.run(self.tpu.ssh(cloud_tpu.launch_command(
            FLAGS.plan, FLAGS.data_dir, FLAGS.model_dir, self.tpu.tpu_flags(), self.extra, FLAGS.log_uri,
            self.tpu.name, env=self.tpu.runtime_env()), worker="0"))

    def logs(self, first_line: int = 1) -> int:
        return self.runner.stream(self.tpu.ssh(cloud_tpu.logs_command(first_line), worker="0"))

    def status(self) -> None:
        state = self.state()
        if not self.runner.dry_run:
            print(state)

    def delete(self) -> None:
        self.runner.run(self.tpu.delete())

    def recover(self) -> None:
        """Recreates the slice if it is dead (a dry run assumes so) and starts training again; on a
        READY slice whose training died without an exit status, relaunches in place."""
        state = self.state()
        if not (self.runner.dry_run or self.tpu.dead(state) or FLAGS.force):
            if self.tpu.ready(state) and self.training() == "gone":
                self.relaunch()
                return
            _note(f"{self.tpu.name} is {state}: nothing to do (--force recreates it anyway)")
            return
        if state != cloud_tpu.MISSING:
            self.delete()
        self.create()
        self.install()
        self.runtime()
        self.launch()

    def relaunch(self) -> None:
        """After a maintenance reboot (or a killed process): the runtime servers restarted on every
        worker first, then training launched again; it resumes from the last checkpoint."""
        self.runtime(restart=True)
        self.launch()

    def training(self) -> str:
        """Worker 0's training: its exit status, `running`, or `gone` (died without one)."""
        _, out, _ = self.runner.output(self.tpu.ssh(cloud_tpu.EXIT_STATUS_COMMAND, worker="0"))
        return (out.split() or ["running"])[-1]

    def watch(self) -> int:
        """Follows training to its end, recovering from preemption (recreate) and from a training
        process that died without an exit status on a READY slice (runtime servers restarted on every
        worker, then training relaunched; the log is kept, and lines already shown are not shown again)."""
        shown, recoveries = 0, 0
        while True:
            shown += self.logs(shown + 1)
            if self.runner.dry_run:
                return 0
            state = self.state()
            training = self.training() if self.tpu.ready(state) else ""
            if self.tpu.dead(state):
                why, recreate = f"{self.tpu.name} is {state}", True
            elif training == "gone":
                why, recreate = "training on worker 0 died without an exit status (a maintenance reboot?)", False
            elif training.isdigit():
                _note(f"training ended with exit status {training}")
                return int(training)
            else:
                time.sleep(FLAGS.poll_s)  # Still running (the ssh session dropped) or not ready yet.
                continue
            if recoveries == FLAGS.max_recoveries:
                raise Failed(f"{why}, after --max_recoveries={FLAGS.max_recoveries} recoveries; giving up")
            recoveries += 1
            _note(f"{why}; recovering")
            if recreate:
                self.recover()
                shown = 0   # a new VM, a new log
            else:
                self.relaunch()

    def up(self) -> int:
        self.create()
        if self.check() and not self.runner.dry_run:
            raise Failed(f"stopped before install; the slice bills until deleted: {shlex.join(self.tpu.delete())}")
        self.install()
        self.runtime()
        self.launch()
        return self.watch()


def _gcloud_project(dry_run: bool) -> str:
    """gcloud's configured project, when --project is not given (never the metadata server)."""
    if dry_run or not shutil.which("gcloud"):
        return ""
    done = subprocess.run(["gcloud", "config", "get-value", "project"], capture_output=True, text=True, check=False)
    value = done.stdout.strip() if done.returncode == 0 else ""
    return value if value and value != "(unset)" else ""


def _check_train_flags(extra: list[str]) -> None:
    """Flags after `--` may not set what this tool sets, by any of absl's spellings or a flag file."""
    for arg in extra:
        check("-- TRAIN_FLAGS", arg, "train_flag")
        name = arg[2:].split("=")[0]
        if name in RESERVED or (name.startswith("no") and name[2:] in RESERVED):
            raise UsageError(f"--{name}", "cannot be passed after `--`: tpu.py sets the plan, the directories and "
                             "the TPU itself (pass them as tpu.py flags), and reads no flag files. Nothing was run")


def _validated(action: str, extra: list[str]) -> Controller:
    """Checks every flag that has a value, and that the action has the values it needs."""
    needs = {"name", "zone"}
    if action == "check":
        needs.update(("accelerator_type", "data_dir", "model_dir"))
    if action in ("create", "runtime", "launch", "watch", "recover", "up"):   # watch may recover
        needs.add("accelerator_type")
    if action in ("install", "watch", "recover", "up") and not FLAGS.package:
        needs.add("git_url")
    if action in ("launch", "watch", "recover", "up"):
        needs.update(("plan", "data_dir", "model_dir"))
    kinds = {"name": "tpu_name", "zone": "zone", "project": "project", "accelerator_type": "accelerator_type",
             "runtime_version": "runtime_version", "git_url": "git_url", "git_ref": "git_ref", "plan": "plan",
             "data_dir": "gs_uri", "model_dir": "gs_uri", "log_uri": "gs_uri", "service_account": "service_account",
             "scopes": "scopes", "libtpu": "libtpu"}
    for flag, kind in kinds.items():
        if FLAGS[flag].value:
            check(flag, FLAGS[flag].value, kind)
        elif flag in needs:
            raise UsageError(flag, f"required by `{action}`")
    if FLAGS.package:
        check("package", FLAGS.package, "wheel" if FLAGS.package.startswith("gs://") else "requirement")
    _check_train_flags(extra)
    project = FLAGS.project
    if FLAGS.accelerator_type and not project and cloud_tpu.generation(FLAGS.accelerator_type)[2] > 1:
        # The training process names it explicitly (cloud-tpu-client could also ask the TPU VM's metadata
        # server), so what it uses is what this tool printed and checked.
        project = _gcloud_project(FLAGS.dry_run)
        if project:
            check("project", project, "project")
    tpu = cloud_tpu.Slice(FLAGS.name, FLAGS.zone, project, FLAGS.accelerator_type, FLAGS.runtime_version,
                          FLAGS.spot, FLAGS.queued, FLAGS.tpu_runtime, FLAGS.service_account, FLAGS.scopes)
    if FLAGS.accelerator_type:
        tpu.check_supported()
    package = FLAGS.package or cloud_tpu.git_requirement(FLAGS.git_url, FLAGS.git_ref)
    return Controller(tpu, Runner(FLAGS.dry_run), package, tuple(extra))


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] not in ACTIONS:
        print(f"tpu.py: the first argument is the action, one of: {', '.join(ACTIONS)}", file=sys.stderr)
        return 2
    try:
        controller = _validated(argv[1], argv[2:])
        result = getattr(controller, argv[1])()
        if argv[1] == "check":
            result = 1 if result and not FLAGS.dry_run else 0
    except UsageError as error:
        print(f"tpu.py: {error}", file=sys.stderr)
        return 2
    except Failed as error:
        print(f"tpu.py: {error}", file=sys.stderr)
        return 1
    return result or 0


if __name__ == "__main__":
    app.run(main)
