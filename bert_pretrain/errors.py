"""The one exception every command raises for bad input: `UsageError`.

A usage problem is reported as a single line that names the flag at fault and says how to fix it,
so that a user sees it before any compute is spent and the command prints it without a traceback.
This module imports nothing: every other module may raise it.
"""


class UsageError(Exception):
    """A problem with a command's input, attributed to one command-line flag."""

    def __init__(self, flag: str, problem: str, fix: str = ""):
        self.flag = flag.lstrip("-")
        super().__init__(f"--{self.flag}: {problem}" + (f"; {fix}" if fix else ""))
