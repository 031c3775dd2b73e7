"""What a command prints besides its results: `--help` listing the command's own flags in groups,
and TensorFlow's log lines kept quiet unless `--verbose`.

absl's `--help` lists only the flags of the `__main__` module, which for a console script is
pip's wrapper, so it says nothing but "Try --helpfull"; `--helpfull` lists TensorFlow's and
absl's flags too. Each command here passes its groups of flags instead. TensorFlow's C++ logging
level is read from the environment when TensorFlow loads, so `quiet_tensorflow` must run before
the first `import tensorflow`; the commands import it lazily for that reason. The commands pass
their flags in; this module reads none.
"""

import os
import sys
import textwrap

from absl import logging as absl_logging

HELP_ARGUMENTS = ("--help", "-h", "-?", "--helpshort")


def wants_help(argv: list) -> bool:
    return any(argument in HELP_ARGUMENTS for argument in argv[1:])


def wants_verbose(argv: list) -> bool:
    """--verbose as absl reads it: the last of --verbose, --noverbose, --verbose=<bool> wins."""
    verbose = False
    for argument in argv[1:]:
        if argument in ("--verbose", "--noverbose"):
            verbose = argument == "--verbose"
        elif argument.startswith("--verbose="):
            verbose = argument.split("=", 1)[1].lower() in ("true", "t", "1")
    return verbose


def help_text(usage: str, groups: list, flag_values, shown_defaults: dict | None = None) -> str:
    """`usage`, then each (title, [flag names]) group as `--name=default  help` lines;
    `shown_defaults` says what a run uses where that is not the flag's own default."""
    lines = [usage.rstrip(), ""]
    for title, names in groups:
        lines.append(f"{title}:")
        for name in names:
            flag = flag_values[name]
            if name in (shown_defaults or {}):
                lines.append(f"  --{name}  (default: {shown_defaults[name]})")
            elif flag.default is None:
                lines.append(f"  --{name}  (no default)")
            else:
                lines.append(f"  --{name}={(flag.default_as_str or '').strip(chr(39)) or chr(34) * 2}")
            lines += textwrap.wrap(flag.help, 96, initial_indent=" " * 6, subsequent_indent=" " * 6)
        lines.append("")
    lines.append("Every flag of TensorFlow and absl as well: --helpfull")
    return "\n".join(lines) + "\n"


def quiet_tensorflow(argv: list) -> None:
    """Hides TensorFlow's C++ log lines (XLA start-up, rendezvous, sharding timings, a missing CUDA
    driver) and its Python deprecation warnings, unless --verbose is among the arguments. Errors
    still reach the user as the Python exception that carries them."""
    if wants_verbose(argv):
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        sys.modules["tensorflow"].get_logger().setLevel("ERROR")
    else:
        import logging
        logging.getLogger("tensorflow").setLevel(logging.ERROR)


def quiet_absl_logging(verbose: bool) -> None:
    """absl's INFO lines (e.g. the checkpoint saver's timings) off unless --verbose; call it once
    the flags are parsed, since absl sets its level from them."""
    if not verbose:
        absl_logging.set_verbosity(absl_logging.WARNING)
