"""The one exception type the data tool raises for bad input.

Every usage problem is reported as a single line that names the flag at fault and says how to fix it,
so that a user sees it before any compute is spent and the CLI can print it without a traceback.
"""


class DataError(Exception):
    """A problem with the tool's input, attributed to one command-line flag."""

    def __init__(self, flag: str, problem: str, fix: str):
        self.flag = flag
        super().__init__(f"--{flag}: {problem}; {fix}")
