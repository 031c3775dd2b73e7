"""What to run on Cloud TPU: validated values, gcloud argv lists and the shell text run on the workers.

Nothing here runs anything (scripts/tpu.py decides when to run what), so every command can be checked
as data. Each user value is checked against a strict pattern before any command is built, and every
value that goes into a remote shell string is also shlex-quoted: a value with shell metacharacters is
refused with one line naming its flag, and would be inert even if a pattern were too loose.

TPU VMs (everything here by default) need no client library: training runs on every worker with
`--tpu=local`, i.e. `TPUClusterResolver('local')`. Only legacy TPU Nodes use cloud-tpu-client
(`pip install 'lamb-tf[tpu]'`), imported lazily by `node_client`.
"""

import dataclasses
import re
import shlex

# Files on each worker, relative to the ssh login directory (the home directory).
VENV = "lamb-tf-venv"
DIST = "lamb-tf-dist"
LOG = "bert-pretrain.log"
PID = "bert-pretrain.pid"
EXIT = "bert-pretrain.exit"
# The TPU build of the TensorFlow that setup.py pins, and where its libtpu comes from.
TF_TPU = "tensorflow-tpu==2.20.0"
LIBTPU_INDEX = "https://storage.googleapis.com/libtpu-tf-releases/index.html"

# States after which a slice will not come back by itself and must be deleted and created again.
VM_DEAD = ("PREEMPTED", "TERMINATED")
QUEUED_DEAD = ("SUSPENDING", "SUSPENDED", "FAILED")
MISSING = "MISSING"

_BUCKET = r"gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]"
_GS = _BUCKET + r"(/[A-Za-z0-9._=+@,-]+)*/?"
_PATTERNS = {
    "tpu_name": (r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?",
                 "a TPU name is lowercase letters, digits and hyphens, starts with a letter, at most 63"),
    "zone": (r"[a-z]+(-[a-z]+)*[0-9]+-[a-z]", "a zone looks like us-central2-b"),
    "project": (r"([a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]",
                "a project ID is 6-30 lowercase letters, digits and hyphens, starting with a letter"),
    "accelerator_type": (r"v[0-9]+[a-z]*-[0-9]+", "an accelerator type looks like v3-8, v4-32, v5litepod-8"),
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


class FlagError(Exception):
    """A bad command-line value, reported as one line that names the flag, before anything runs."""

    def __init__(self, flag: str, problem: str):
        super().__init__(f"{flag if flag.startswith('-') else '--' + flag}: {problem}")


def check(flag: str, value: str, kind: str) -> str:
    """Returns `value` if it fully matches the pattern for `kind`, else raises FlagError."""
    pattern, rule = _PATTERNS[kind]
    if re.fullmatch(pattern, value):
        return value
    bad = "".join(sorted(_SHELL_CHARACTERS.intersection(value)))
    why = f"contains shell characters {bad!r}" if bad else "is not valid"
    raise FlagError(flag, f"{value!r} {why}; {rule}. Nothing was run")


@dataclasses.dataclass(frozen=True)
class Slice:
    """One TPU slice and how it is provisioned: a TPU VM, a queued resource, or a legacy TPU Node."""

    name: str
    zone: str
    project: str = ""
    accelerator_type: str = ""
    runtime_version: str = ""
    spot: bool = False
    queued: bool = False
    legacy_node: bool = False

    def _gcloud(self, group: str, verb: str, *flags: str) -> list[str]:
        project = [f"--project={self.project}"] if self.project else []
        return ["gcloud", "compute", "tpus", *group.split(), verb, self.name, f"--zone={self.zone}", *project, *flags]

    def create(self) -> list[str]:
        spot = ["--spot"] if self.spot else []
        kind = [f"--accelerator-type={self.accelerator_type}"]
        if self.legacy_node:  # Nodes take a TensorFlow version and have no spot tier, only preemptible.
            return self._gcloud("", "create", *kind, f"--version={self.runtime_version}",
                                *(["--preemptible"] if self.spot else []))
        if self.queued:
            return self._gcloud("queued-resources", "create", f"--node-id={self.name}", *kind,
                                f"--runtime-version={self.runtime_version}", *spot)
        return self._gcloud("tpu-vm", "create", *kind, f"--version={self.runtime_version}", *spot)

    def delete(self) -> list[str]:
        if self.queued:  # --force also deletes the TPU VM the queued resource made.
            return self._gcloud("queued-resources", "delete", "--force", "--quiet")
        return self._gcloud("" if self.legacy_node else "tpu-vm", "delete", "--quiet")

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


def git_requirement(git_url: str, git_ref: str) -> str:
    """The pip requirement that installs this project from its git repository at `git_ref`."""
    return f"lamb-tf @ git+{git_url}@{git_ref}"


def install_command(package: str) -> str:
    """Python 3.11 venv, the package (pip requirement or gs:// wheel), then the TPU build of TensorFlow.

    The package depends on `tensorflow`, whose wheel has no TPU support; `tensorflow-tpu` provides the
    same module with it, so the first is removed before the second is installed.
    """
    pip = f"{VENV}/bin/pip"
    steps = ["set -e", "sudo apt-get -qq update",
             "sudo DEBIAN_FRONTEND=noninteractive apt-get -qq install -y python3.11 python3.11-venv",
             f"python3.11 -m venv {VENV}", f"{pip} install --quiet --upgrade pip"]
    target = package
    if package.startswith("gs://"):
        target = f"{DIST}/{package.rsplit('/', 1)[1]}"
        steps += [f"mkdir -p {DIST}", f"gcloud storage cp {shlex.quote(package)} {DIST}/"]
    steps += [f"{pip} install --quiet {shlex.quote(target)}", f"{pip} uninstall --yes --quiet tensorflow",
              f"{pip} install --quiet {TF_TPU} --find-links {LIBTPU_INDEX}"]
    return "; ".join(steps)


def launch_command(plan: str, data_dir: str, model_dir: str, extra: tuple[str, ...] = (),
                   log_dir: str = "", name: str = "") -> str:
    """Starts `bert-pretrain run ... --tpu=local` detached (nohup + setsid), so it outlives the ssh session.

    Output is appended to LOG; the exit status goes to EXIT when training ends (not when the VM dies);
    with `log_dir`, LOG is copied to LOG_DIR/NAME/HOSTNAME.log every minute and at the end. Refuses to
    start a second run while one is alive on the worker.
    """
    train = shlex.join([f"{VENV}/bin/bert-pretrain", "run", f"--plan={plan}", f"--data_dir={data_dir}",
                        f"--model_dir={model_dir}", "--tpu=local", *extra])
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


def node_client(tpu: Slice):
    """A cloud_tpu_client.Client for a legacy TPU Node (the `tpu` extra). TPU VMs never need this."""
    try:
        import cloud_tpu_client  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise FlagError("legacy_node", "needs cloud-tpu-client: pip install 'lamb-tf[tpu]'") from None
    return cloud_tpu_client.Client(tpu=tpu.name, zone=tpu.zone, project=tpu.project or None)
