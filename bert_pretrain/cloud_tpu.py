"""What to run on Cloud TPU: validated values, gcloud argv lists and the shell text run on the workers.

Nothing here runs anything (scripts/tpu.py decides when to run what), so every command can be checked
as data. Each user value is checked against a strict pattern before any command is built, and every
value that goes into a remote shell string is also shlex-quoted: a value with shell metacharacters is
refused with one line naming its flag, and would be inert even if a pattern were too loose.

TensorFlow drives a TPU from one Python process (docs/cloud_tpu.md):
- one host (v4-8, v5p-8, v5litepod-8, v6e-8, ...): training runs on that worker with `--tpu=local`,
  on the PJRT runtime (the environment Google's own TensorFlow tests set) or, on v2-v4, StreamExecutor;
- several hosts (v2-v4 pods only): every worker runs the StreamExecutor TPU runtime server of the
  tensorflow-tpu wheel (`start_grpc_tpu_worker`, port 8470), and one training process on worker 0
  reaches all of them with `--tpu=NAME`: TPUClusterResolver looks the slice's hosts up in the Cloud
  TPU API. A combination that follows no documented Google recipe is refused before `create`.

The pre-flight check (`preflight_command`, read back by `preflight_failures`) runs right after
`create`, so that a missing permission costs minutes of a slice, not an install and a failed start.
"""

import collections
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
# The venv's libtpu, which the PJRT runtime loads as TensorFlow's pluggable device (a python3.11 venv).
LIBTPU_SO = f"{VENV}/lib/python3.11/site-packages/libtpu/libtpu.so"
RUNTIMES = ("pjrt", "se")
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
    se: bool                   # whether Google documents TensorFlow's StreamExecutor runtime on it (v2-v4)


GENERATIONS = {
    "v2": Generation("tpu-ubuntu2204-base", 8, 8, se=True),
    "v3": Generation("tpu-ubuntu2204-base", 8, 8, se=True),
    "v4": Generation("tpu-ubuntu2204-base", 8, 8, se=True),
    "v5p": Generation("v2-alpha-tpuv5", 8, 8, se=False),
    "v5litepod": Generation("v2-alpha-tpuv5-lite", 4, 8, se=False),
    "v6e": Generation("v2-alpha-tpuv6e", 4, 8, se=False),
}
# Why no slice of several hosts runs PJRT: Google's multi-host PJRT runtime for TensorFlow is the
# grpc_tpu_worker PJRT container of its tpu-vm-tf-X.Y.Z-pod-pjrt images, published for no TensorFlow
# 2.20, and the runtime server in the tensorflow-tpu wheel (start_grpc_tpu_worker) is StreamExecutor.
_NO_POD_PJRT = ("TensorFlow's runtime on several hosts would be PJRT, which Google ships only as the runtime "
                "container of its tpu-vm-tf-X.Y.Z-pod-pjrt images (none for TensorFlow 2.20; tensorflow-tpu's "
                "start_grpc_tpu_worker is StreamExecutor)")

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
    "service_account": (r"[a-z][a-z0-9-]{4,61}@[a-z0-9][a-z0-9.-]*\.gserviceaccount\.com",
                        "a service account looks like NAME@PROJECT.iam.gserviceaccount.com"),
    "scopes": (r"[a-z0-9][a-z0-9._:/-]*(,[a-z0-9][a-z0-9._:/-]*)*",
               "scopes are comma-separated names or URLs, e.g. cloud-platform"),
    "libtpu": (r"[0-9]+(\.[0-9]+)+([.+][a-z0-9.]+)?", "a libtpu version looks like 0.0.20"),
    "tpu_runtime": (r"pjrt|se", "the runtime is pjrt or se"),
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
    runtime: str = ""             # "pjrt" or "se"; "" = PJRT on one host, StreamExecutor on several
    service_account: str = ""     # "" = the project's Compute Engine default service account
    scopes: str = "cloud-platform"

    @property
    def hosts(self) -> int:
        return generation(self.accelerator_type)[2]

    @property
    def version(self) -> str:
        return self.runtime_version or generation(self.accelerator_type)[1].base_image

    @property
    def tpu_runtime(self) -> str:
        return self.runtime or ("pjrt" if self.hosts == 1 else "se")

    def check_supported(self) -> None:
        """Refuses, before anything is created, a slice and runtime that follow no documented Google
        recipe for TensorFlow (docs/cloud_tpu.md, support table)."""
        name, facts, hosts = generation(self.accelerator_type)
        one_host = f"a one-host {name} slice ({name}-{facts.single_host_max})"
        if hosts > 1 and not facts.se:
            raise UsageError("accelerator_type", f"{self.accelerator_type!r} has {hosts} hosts: TensorFlow on {name} "
                             f"runs only on the PJRT runtime (Google's TPU software versions page), and "
                             f"{_NO_POD_PJRT}; use {one_host} or a v2-v4 pod. Nothing was run")
        if hosts > 1 and self.tpu_runtime == "pjrt":
            raise UsageError("tpu_runtime", f"pjrt on {self.accelerator_type} ({hosts} hosts): {_NO_POD_PJRT}; "
                             "leave --tpu_runtime unset (StreamExecutor) for a pod. Nothing was run")
        if self.tpu_runtime == "se" and not facts.se:
            raise UsageError("tpu_runtime", f"se on {self.accelerator_type}: Google documents only the PJRT runtime "
                             f"for TensorFlow on {name} (TPU software versions page); leave --tpu_runtime unset. "
                             "Nothing was run")
        if hosts > 1 and not self.project:
            raise UsageError("project", f"is required for {self.accelerator_type} ({hosts} hosts): the training "
                             "process finds the slice's hosts through the Cloud TPU API, which needs the project; "
                             "pass --project or set it with `gcloud config set project`. Nothing was run")

    def runtime_env(self) -> str:
        """Shell assignments for the training process: PJRT on one host loads the venv's libtpu as
        TensorFlow's pluggable device (the variables Google's own TensorFlow tests export); on a pod,
        TPU_LOAD_LIBRARY=0 leaves worker 0's chips to its runtime server; StreamExecutor on one host
        is the wheel's default and needs nothing."""
        if self.hosts > 1:
            return "TPU_LOAD_LIBRARY=0"
        if self.tpu_runtime == "pjrt":
            return f'NEXT_PLUGGABLE_DEVICE_USE_C_API=true TF_PLUGGABLE_DEVICE_LIBRARY_PATH="$HOME/{LIBTPU_SO}"'
        return ""

    def _gcloud(self, group: str, verb: str, *flags: str) -> list[str]:
        project = [f"--project={self.project}"] if self.project else []
        return ["gcloud", "compute", "tpus", group, verb, self.name, f"--zone={self.zone}", *project, *flags]

    def create(self) -> list[str]:
        spot = ["--spot"] if self.spot else []
        kind = [f"--accelerator-type={self.accelerator_type}"]
        account = [f"--service-account={self.service_account}"] if self.service_account else []
        access = [*account, f"--scopes={self.scopes}"]
        if self.queued:
            return self._gcloud("queued-resources", "create", f"--node-id={self.name}", *kind,
                                f"--runtime-version={self.version}", *access, *spot)
        return self._gcloud("tpu-vm", "create", *kind, f"--version={self.version}", *access, *spot)

    def delete(self) -> list[str]:
        if self.queued:  # --force also deletes the TPU VM the queued resource made.
            return self._gcloud("queued-resources", "delete", "--force", "--quiet")
        return self._gcloud("tpu-vm", "delete", "--quiet")

    def describe(self) -> list[str]:
        """Prints only the state: READY/PREEMPTED/... for a VM, ACTIVE/SUSPENDED/... for a queued resource."""
        if self.queued:
            return self._gcloud("queued-resources", "describe", "--format=value(state.state)")
        return self._gcloud("tpu-vm", "describe", "--format=value(state)")

    def describe_by_name(self) -> list[str]:
        """What training's name lookup needs (tpu.nodes.get), asked from a worker."""
        return self._gcloud("tpu-vm", "describe", "--format=value(name)")

    def ssh(self, command: str, worker: str = "all") -> list[str]:
        """`command` runs in each worker's login shell, in the home directory. --quiet: gcloud makes
        the ssh key on first use without a prompt, which would stall an unattended run."""
        return self._gcloud("tpu-vm", "ssh", "--quiet", f"--worker={worker}", f"--command={command}")

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


def with_libtpu(constraints: str, version: str) -> str:
    """`constraints` with its libtpu pin set to `version` ("" leaves it as it is)."""
    if not version:
        return constraints
    lines = [line for line in constraints.splitlines() if not line.startswith("libtpu==")]
    return "\n".join([*lines, f"libtpu=={version}"]) + "\n"


def install_command(package: str, constraints: str) -> str:
    """Python 3.11 venv, the package (pip requirement or gs:// wheel) and the TPU packages, every version
    from `constraints` (the text of the checkout's constraints.txt: the stack the tests ran on).

    The package depends on `tensorflow`, whose wheel has no TPU support; `tensorflow-tpu` provides the
    same module with it, so the first is removed before the second is installed. Ends by checking that
    libtpu.so is where the PJRT runtime's environment points.
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
              f"{pip} install --quiet -c {CONSTRAINTS} {' '.join(TPU_PACKAGES)}",
              f"test -f {LIBTPU_SO} || (echo \"no ~/{LIBTPU_SO} after installing libtpu\" >&2 && false)"]
    return "; ".join(steps)


def runtime_command(wait_s: int = 300, port: int = RUNTIME_PORT, restart: bool = False) -> str:
    """Starts the TPU runtime server of the tensorflow-tpu wheel on a worker of a multi-host slice,
    detached, and returns once it listens on `port` (or fails with one line after `wait_s`).

    A base image may run Google's own `tpu-runtime` service, which holds the chips; it is stopped
    first. The server reads the worker's number and the slice's hosts from the VM's metadata. With
    `restart`, a server still alive is stopped first (after a training process died, its state is
    not trusted); otherwise one that is alive is left alone.
    """
    alive = f'[ -f {RUNTIME_PID} ] && kill -0 "$(cat {RUNTIME_PID})" 2>/dev/null'
    start = (f"nohup setsid {VENV}/bin/start_grpc_tpu_worker >> {RUNTIME_LOG} 2>&1 < /dev/null & "
             f"echo $! > {RUNTIME_PID}")
    stop = ""
    if restart:
        stop = (f'if {alive}; then kill "$(cat {RUNTIME_PID})"; '
                f"for i in $(seq 30); do {alive} || break; sleep 1; done; fi; ")
    return (f"sudo systemctl stop tpu-runtime 2>/dev/null || true; {stop}"
            f"if ! {{ {alive}; }}; then {start}; fi; "
            f"for i in $(seq {wait_s}); do "
            f"if (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null; then exit 0; fi; sleep 1; done; "
            f"echo \"the TPU runtime is not listening on port {port} after {wait_s} s on $(hostname); "
            f"see ~/{RUNTIME_LOG}\" >&2; exit 1")


def launch_command(plan: str, data_dir: str, model_dir: str, tpu_flags: list[str], extra: tuple[str, ...] = (),
                   log_dir: str = "", name: str = "", env: str = "") -> str:
    """Starts `bert-pretrain run` detached (nohup + setsid) on one worker, so it outlives the ssh session.

    The flags that tie the run to its slice and bucket come after `extra`, so that they win whatever
    `extra` holds. `env` (Slice.runtime_env) picks the TPU runtime. Output is appended to LOG; the
    exit status goes to EXIT when training ends (not when the VM dies); with `log_dir`, LOG is copied
    to LOG_DIR/NAME/HOSTNAME.log every minute and at the end. Refuses to start a second run while one
    is alive on the worker.
    """
    train = shlex.join([f"{VENV}/bin/bert-pretrain", "run", *extra, f"--plan={plan}", f"--data_dir={data_dir}",
                        f"--model_dir={model_dir}", *tpu_flags])
    if env:
        train = f"{env} {train}"
    body = f"{train}; status=$?"
    if log_dir:
        dest = shlex.quote(f"{log_dir.rstrip('/')}/{name}/") + '"$(hostname)".log'
        upload = f"gcloud storage cp {LOG} {dest} >/dev/null 2>&1"
        body = f"( while sleep 60; do {upload}; done ) & sync=$!; {body}; kill $sync; {upload}"
    body += f"; echo $status > {EXIT}"
    return (f'if [ -f {PID} ] && kill -0 "$(cat {PID})" 2>/dev/null; '
            f"then echo 'bert-pretrain is already running on this worker' >&2; exit 1; fi; "
            f"rm -f {EXIT}; nohup setsid bash -c {shlex.quote(body)} >> {LOG} 2>&1 < /dev/null & echo $! > {PID}")


def logs_command(first_line: int = 1) -> str:
    """Streams the log from `first_line` (lines before it were shown already) and returns when the
    training process ends (or the ssh session drops)."""
    return f'tail -n +{first_line} -F --pid="$(cat {PID})" {LOG}'


# Prints training's exit status; `running` while the process lives; `gone` when it died without one
# (killed, or the VM rebooted for maintenance: the slice is READY but training is not).
EXIT_STATUS_COMMAND = (f"if [ -f {EXIT} ]; then cat {EXIT}; "
                       f'elif [ -f {PID} ] && kill -0 "$(cat {PID})" 2>/dev/null; then echo running; '
                       "else echo gone; fi")


# Pre-flight, run on a worker right after `create`. Each step's output lines are prefixed with its
# name; its exit status follows as "NAME status N". The service account is asked of the metadata
# server, which every TPU VM has.
_METADATA = "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/email"
PROBE = ".lamb-tf-preflight"


def preflight_command(data_dir: str, model_dir: str, tpu: "Slice | None" = None) -> str:
    """Lists the data, writes and deletes a test object under `model_dir`, and with `tpu` (several
    hosts: training looks the slice up by name) reads the TPU through the Cloud TPU API."""
    probe = shlex.quote(f"{model_dir.rstrip('/')}/{PROBE}-") + '"$(hostname)"'
    steps = [f"account curl -s -H Metadata-Flavor:Google {_METADATA}",
             f"data gcloud storage ls -l {shlex.quote(data_dir.rstrip('/') + '/**')}",
             f"write gcloud storage cp {PROBE} {probe}",
             f"delete gcloud storage rm {probe}"]
    if tpu is not None:
        steps.append("tpu " + shlex.join(tpu.describe_by_name()))
    step = ('step() { n=$1; shift; "$@" > .lamb-tf-step 2>&1; s=$?; sed "s/^/$n: /" .lamb-tf-step; '
            'echo "$n status $s"; }')
    return "; ".join([step, f"echo probe > {PROBE}", *[f"step {s}" for s in steps],
                      f"rm -f {PROBE} .lamb-tf-step"])


def bucket(uri: str) -> str:
    return uri[len("gs://"):].split("/", 1)[0]


def preflight_failures(output: str, worker: str, tpu: "Slice", data_dir: str, model_dir: str,
                       service_account: str = "") -> list[str]:
    """What `preflight_command` printed on `worker`, as one line per failure (none: all is well)."""
    lines, status = collections.defaultdict(list), {}
    for line in output.splitlines():
        name, _, rest = line.partition(": ")
        if rest and name in ("account", "data", "write", "delete", "tpu"):
            lines[name].append(rest)
        elif re.fullmatch(r"[a-z]+ status [0-9]+", line):
            status[line.split()[0]] = int(line.split()[-1])
    account = service_account or next((a for a in lines["account"] if "@" in a), "") or "SERVICE_ACCOUNT"
    member = f"--member=serviceAccount:{account}"
    text = {name: " ".join(found)[-300:] for name, found in lines.items()}
    where = f"worker {worker}"

    def refused(step, what, grant):
        if "scope" in text.get(step, "").lower():
            return (f"{where} cannot {what}: the VM's access scopes do not allow it; delete the slice and "
                    f"create it with --scopes=cloud-platform")
        return f"{where} cannot {what}; grant it with: {grant}"

    failures = []
    if "data" not in status:
        return [f"{where}: the pre-flight check printed nothing readable (ssh failed?): {output.strip()[-200:]!r}"]
    if status["data"] and "matched no objects" not in text.get("data", ""):
        failures.append(refused("data", f"list {data_dir} (storage.objects.list on bucket {bucket(data_dir)})",
                                f"gcloud storage buckets add-iam-policy-binding gs://{bucket(data_dir)} {member} "
                                "--role=roles/storage.objectViewer"))
    else:
        failures += _too_few_files(lines["data"], data_dir, tpu.hosts)
    role = (f"gcloud storage buckets add-iam-policy-binding gs://{bucket(model_dir)} {member} "
            "--role=roles/storage.objectUser")
    if status.get("write"):
        failures.append(refused("write", f"write to {model_dir} (storage.objects.create on bucket "
                                f"{bucket(model_dir)})", role))
    elif status.get("delete"):
        failures.append(refused("delete", f"delete from {model_dir} (storage.objects.delete on bucket "
                                f"{bucket(model_dir)})", role))
    if status.get("tpu"):
        failures.append(refused("tpu", f"look the TPU {tpu.name} up by name (tpu.nodes.get in project {tpu.project})",
                                f"gcloud projects add-iam-policy-binding {tpu.project} {member} "
                                "--role=roles/tpu.viewer"))
    return failures


def _too_few_files(listing: list[str], data_dir: str, hosts: int) -> list[str]:
    """Each host's input pipeline reads every hosts-th file of a phase's directory, so every directory
    of .tfrecord files needs at least `hosts` non-empty ones (a host with no records fails the input)."""
    non_empty = collections.Counter()
    directories = set()
    for line in listing:
        fields = line.split()
        if len(fields) >= 3 and fields[0].isdigit() and fields[-1].endswith(".tfrecord"):
            directory = fields[-1].rsplit("/", 1)[0]
            directories.add(directory)
            non_empty[directory] += int(fields[0]) > 0
    if not directories:
        return [f"{data_dir} holds no .tfrecord file; write the data there first (bert-pretrain-data)"]
    return [f"{directory} has {non_empty[directory]} non-empty .tfrecord file(s) for {hosts} host(s): each host "
            f"reads its own files; write at least {hosts} (bert-pretrain-data --num_shards={hosts} or more, and "
            "a smaller --block_bytes if it says the input is too small)"
            for directory in sorted(directories) if non_empty[directory] < hosts]
