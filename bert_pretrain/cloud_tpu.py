"""What to run on Cloud TPU: validated values, gcloud argv lists and the shell text run on the workers.

Nothing here runs anything (scripts/tpu.py decides when to run what), so every command can be checked
as data. Each user value is checked against a strict pattern before any command is built, and every
value that goes into a remote shell string is also shlex-quoted: a value with shell metacharacters is
refused with one line naming its flag, and would be inert even if a pattern were too loose.

TensorFlow drives a TPU from one Python process (docs/cloud_tpu.md):
- one host (v4-8, v5p-8, v5litepod-8, v6e-8, ...): training runs on that worker with `--tpu=local`;
- several hosts (v4-128, ...): every worker runs the TPU runtime server of the tensorflow-tpu wheel
  (`start_grpc_tpu_worker`, port 8470), and one training process on worker 0 reaches all of them with
  `--tpu=NAME`: TPUClusterResolver looks the slice's hosts up in the Cloud TPU API.
"""

import dataclasses
import re
import shlex

from bert_pretrain.errors import UsageError

# Files on each worker, relative to the ssh login directory (the home directory).
VENV = "lamb-tf-venv"
DIST = "lamb-tf-dist"
CONSTRAINTS = "lamb-tf-constraints.txt"
LOG = "bert-pretrain.log"
PID = "bert-pretrain.pid"
EXIT = "bert-pretrain.exit"
RUNTIME_LOG = "tpu-runtime.log"
RUNTIME_PID = "tpu-runtime.pid"
RUNTIME_PORT = 8470
# Installed on every worker after the package, at the versions constraints.txt pins: the TPU build of
# TensorFlow (same module as `tensorflow`, which is removed first), its libtpu, and the client that
# TPUClusterResolver uses to look a named TPU up.
TPU_PACKAGES = ("tensorflow-tpu", "libtpu", "cloud-tpu-client")

# States after which a slice will not come back by itself and must be deleted and created again.
VM_DEAD = ("PREEMPTED", "TERMINATED")
QUEUED_DEAD = ("SUSPENDING", "SUSPENDED", "FAILED")
MISSING = "MISSING"


@dataclasses.dataclass(frozen=True)
class Generation:
    """How gcloud names a TPU generation's slices and what runs on them."""

    base_image: str            # the TPU VM runtime version (Google's "TPU software versions" page)
    per_host: int              # the accelerator type's number (cores for v2-v5p, chips for v5e/v6e) a host
    single_host_max: int       # the largest single-host slice
    multi_host: bool = True    # whether TensorFlow 2.20's TPU runtime server can serve its hosts
    why_not: str = ""


GENERATIONS = {
    "v2": Generation("tpu-ubuntu2204-base", 8, 8),
    "v3": Generation("tpu-ubuntu2204-base", 8, 8),
    "v4": Generation("tpu-ubuntu2204-base", 8, 8),
    "v5p": Generation("v2-alpha-tpuv5", 8, 8),
    "v5litepod": Generation("v2-alpha-tpuv5-lite", 4, 8),
    "v6e": Generation("v2-alpha-tpuv6e", 4, 8, multi_host=False, why_not=(
        "tensorflow-tpu 2.20's TPU runtime server (start_grpc_tpu_worker) has no host topology for v6e, "
        "and there is no TensorFlow pod image for v6e")),
}

_BUCKET = r"gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]"
_GS = _BUCKET + r"(/[A-Za-z0-9._=+@,-]+)*/?"
_PATTERNS = {
    "tpu_name": (r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?",
                 "a TPU name is lowercase letters, digits and hyphens, starts with a letter, at most 63"),
    "zone": (r"[a-z]+(-[a-z]+)*[0-9]+-[a-z]", "a zone looks like us-central2-b"),
    "project": (r"([a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]",
                "a project ID is 6-30 lowercase letters, digits and hyphens, starting with a letter"),
    "accelerator_type": (r"v[0-9]+[a-z]*-[0-9]+", "an accelerator type looks like v4-8, v4-128, v5litepod-16"),
    "runtime_version": (r"[a-z0-9][a-z0-9._-]{0,99}", "a runtime version looks like tpu-ubuntu2204-base"),
    "gs_uri": (_GS, "a gs:// URI is gs://BUCKET/PATH with letters, digits and . _ - = + @ , in the path"),
    "wheel": (_BUCKET + r"(/[A-Za-z0-9._=+@,-]+)+\.(whl|tar\.gz)",
              "a package on gs:// is the URI of a .whl or .tar.gz"),
    "plan": (r"[A-Za-z0-9_.][A-Za-z0-9_./-]{0,199}|" + _GS,
             "a plan is a name (paper-64k-32k), a path on the worker, or a gs:// URI"),
    "requirement": (r"[A-Za-z0-9][A-Za-z0-9._-]*(\[[a-z0-9_,-]+\])?((==|~=)[0-9][0-9a-z.*+!]*)?",
                    "a requirement is NAME, NAME[extra] or NAME==VERSION"),
    "git_url": (r"https://[A-Za-z0-9.-]+(/[A-Za-z0-9._~-]+)+", "a git URL looks like https://HOST/ORG/lamb-tf.git"),
    "git_ref": (r"[A-Za-z0-9._][A-Za-z0-9._/-]{0,99}", "a git ref is a branch, tag or commit"),
    "train_flag": (r"--[A-Za-z][A-Za-z0-9_]*(=[A-Za-z0-9._/:,=+@-]*)?",
                   "a training flag looks like --name=value, with no spaces or shell characters"),
}
_SHELL_CHARACTERS = set(" \t\n\r;&|$`<>(){}[]*?!~#'\"\\^%")


def check(flag: str, value: str, kind: str) -> str:
    """Returns `value` if it fully matches the pattern for `kind`, else raises UsageError."""
    pattern, rule = _PATTERNS[kind]
    if re.fullmatch(pattern, value):
        return value
    bad = "".join(sorted(_SHELL_CHARACTERS.intersection(value)))
    why = f"contains shell characters {bad!r}" if bad else "is not valid"
    raise UsageError(flag, f"{value!r} {why}; {rule}. Nothing was run")


def generation(accelerator_type: str) -> tuple[str, Generation, int]:
    """(generation name, its facts, number of hosts) of an accelerator type such as v4-128."""
    name, size = accelerator_type.rsplit("-", 1)
    if name not in GENERATIONS:
        raise UsageError("accelerator_type", f"{accelerator_type!r}: unknown TPU generation {name!r}; this tool "
                         f"knows {', '.join(GENERATIONS)}. Nothing was run")
    facts = GENERATIONS[name]
    hosts = 1 if int(size) <= facts.single_host_max else -(-int(size) // facts.per_host)
    return name, facts, hosts


@dataclasses.dataclass(frozen=True)
class Slice:
    """One TPU VM slice, created directly or through a queued resource."""

    name: str
    zone: str
    project: str = ""
    accelerator_type: str = ""
    runtime_version: str = ""     # "" = the generation's base image
    spot: bool = False
    queued: bool = False

    @property
    def hosts(self) -> int:
        return generation(self.accelerator_type)[2]

    @property
    def version(self) -> str:
        return self.runtime_version or generation(self.accelerator_type)[1].base_image

    def check_supported(self) -> None:
        """Refuses, before anything is created, a slice that TensorFlow 2.20 cannot train on."""
        name, facts, hosts = generation(self.accelerator_type)
        if hosts > 1 and not facts.multi_host:
            raise UsageError("accelerator_type", f"{self.accelerator_type!r} has {hosts} hosts, but {facts.why_not}; "
                             f"use a one-host {name} slice ({name}-{facts.single_host_max}) or a v4/v5p pod. "
                             "Nothing was run")
        if hosts > 1 and not self.project:
            raise UsageError("project", f"is required for {self.accelerator_type} ({hosts} hosts): the training "
                             "process finds the slice's hosts through the Cloud TPU API, which needs the project; "
                             "pass --project or set it with `gcloud config set project`. Nothing was run")

    def _gcloud(self, group: str, verb: str, *flags: str) -> list[str]:
        project = [f"--project={self.project}"] if self.project else []
        return ["gcloud", "compute", "tpus", group, verb, self.name, f"--zone={self.zone}", *project, *flags]

    def create(self) -> list[str]:
        spot = ["--spot"] if self.spot else []
        kind = [f"--accelerator-type={self.accelerator_type}"]
        if self.queued:
            return self._gcloud("queued-resources", "create", f"--node-id={self.name}", *kind,
                                f"--runtime-version={self.version}", *spot)
        return self._gcloud("tpu-vm", "create", *kind, f"--version={self.version}", *spot)

    def delete(self) -> list[str]:
        if self.queued:  # --force also deletes the TPU VM the queued resource made.
            return self._gcloud("queued-resources", "delete", "--force", "--quiet")
        return self._gcloud("tpu-vm", "delete", "--quiet")

    def describe(self) -> list[str]:
        """Prints only the state: READY/PREEMPTED/... for a VM, ACTIVE/SUSPENDED/... for a queued resource."""
        if self.queued:
            return self._gcloud("queued-resources", "describe", "--format=value(state.state)")
        return self._gcloud("tpu-vm", "describe", "--format=value(state)")

    def ssh(self, command: str, worker: str = "all") -> list[str]:
        """`command` runs in each worker's login shell, in the home directory."""
        return self._gcloud("tpu-vm", "ssh", f"--worker={worker}", f"--command={command}")

    def dead(self, state: str) -> bool:
        """Whether the slice must be deleted and created again for training to go on."""
        return state == MISSING or state in (QUEUED_DEAD if self.queued else VM_DEAD)

    def ready(self, state: str) -> bool:
        return state == ("ACTIVE" if self.queued else "READY")

    def tpu_flags(self) -> list[str]:
        """How the one training process names its TPU: `local` on one host, the slice's name on several."""
        if self.hosts == 1:
            return ["--tpu=local"]
        return [f"--tpu={self.name}", f"--tpu_zone={self.zone}", f"--tpu_project={self.project}"]


def git_requirement(git_url: str, git_ref: str) -> str:
    """The pip requirement that installs this project from its git repository at `git_ref`."""
    return f"lamb-tf @ git+{git_url}@{git_ref}"


def install_command(package: str, constraints: str) -> str:
    """Python 3.11 venv, the package (pip requirement or gs:// wheel) and the TPU packages, every version
    from `constraints` (the text of the checkout's constraints.txt: the stack the tests ran on).

    The package depends on `tensorflow`, whose wheel has no TPU support; `tensorflow-tpu` provides the
    same module with it, so the first is removed before the second is installed.
    """
    pip = f"{VENV}/bin/pip"
    steps = ["set -e", "sudo apt-get -qq update",
             "sudo DEBIAN_FRONTEND=noninteractive apt-get -qq install -y python3.11 python3.11-venv",
             f"printf '%s\\n' {shlex.join(constraints.splitlines())} > {CONSTRAINTS}",   # one line, any text
             f"python3.11 -m venv {VENV}", f"{pip} install --quiet --upgrade pip"]
    target = package
    if package.startswith("gs://"):
        target = f"{DIST}/{package.rsplit('/', 1)[1]}"
        steps += [f"mkdir -p {DIST}", f"gcloud storage cp {shlex.quote(package)} {DIST}/"]
    steps += [f"{pip} install --quiet -c {CONSTRAINTS} {shlex.quote(target)}",
              f"{pip} uninstall --yes --quiet tensorflow",
              f"{pip} install --quiet -c {CONSTRAINTS} {' '.join(TPU_PACKAGES)}"]
    return "; ".join(steps)


def runtime_command(wait_s: int = 300, port: int = RUNTIME_PORT) -> str:
    """Starts the TPU runtime server of the tensorflow-tpu wheel on a worker of a multi-host slice,
    detached, and returns once it listens on `port` (or fails with one line after `wait_s`).

    A base image may run Google's own `tpu-runtime` service, which holds the chips; it is stopped
    first. The server reads the worker's number and the slice's hosts from the VM's metadata.
    """
    start = (f"nohup setsid {VENV}/bin/start_grpc_tpu_worker >> {RUNTIME_LOG} 2>&1 < /dev/null & "
             f"echo $! > {RUNTIME_PID}")
    return (f"sudo systemctl stop tpu-runtime 2>/dev/null || true; "
            f'if ! {{ [ -f {RUNTIME_PID} ] && kill -0 "$(cat {RUNTIME_PID})" 2>/dev/null; }}; then {start}; fi; '
            f"for i in $(seq {wait_s}); do "
            f"if (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null; then exit 0; fi; sleep 1; done; "
            f"echo \"the TPU runtime is not listening on port {port} after {wait_s} s on $(hostname); "
            f"see ~/{RUNTIME_LOG}\" >&2; exit 1")


def launch_command(plan: str, data_dir: str, model_dir: str, tpu_flags: list[str], extra: tuple[str, ...] = (),
                   log_dir: str = "", name: str = "") -> str:
    """Starts `bert-pretrain run` detached (nohup + setsid) on one worker, so it outlives the ssh session.

    The flags that tie the run to its slice and bucket come after `extra`, so that they win whatever
    `extra` holds. With a TPU name (several hosts), TPU_LOAD_LIBRARY=0 keeps this process from taking
    the chips that the worker's runtime server holds. Output is appended to LOG; the exit status goes
    to EXIT when training ends (not when the VM dies); with `log_dir`, LOG is copied to
    LOG_DIR/NAME/HOSTNAME.log every minute and at the end. Refuses to start a second run while one is
    alive on the worker.
    """
    train = shlex.join([f"{VENV}/bin/bert-pretrain", "run", *extra, f"--plan={plan}", f"--data_dir={data_dir}",
                        f"--model_dir={model_dir}", *tpu_flags])
    if tpu_flags != ["--tpu=local"]:
        train = f"TPU_LOAD_LIBRARY=0 {train}"
    body = f"{train}; status=$?"
    if log_dir:
        dest = shlex.quote(f"{log_dir.rstrip('/')}/{name}/") + '"$(hostname)".log'
        upload = f"gcloud storage cp {LOG} {dest} >/dev/null 2>&1"
        body = f"( while sleep 60; do {upload}; done ) & sync=$!; {body}; kill $sync; {upload}"
    body += f"; echo $status > {EXIT}"
    return (f'if [ -f {PID} ] && kill -0 "$(cat {PID})" 2>/dev/null; '
            f"then echo 'bert-pretrain is already running on this worker' >&2; exit 1; fi; "
            f"rm -f {EXIT}; nohup setsid bash -c {shlex.quote(body)} >> {LOG} 2>&1 < /dev/null & echo $! > {PID}")


# Streams the log from the start and returns when the training process ends (or the ssh session drops).
LOGS_COMMAND = f'tail -n +1 -F --pid="$(cat {PID})" {LOG}'
# Prints the training exit status, or nothing while it runs (or if it was killed with the VM).
EXIT_STATUS_COMMAND = f"cat {EXIT} 2>/dev/null || true"
