"""A dependency-free progress line on stderr: instances, instances/s, share of documents done, ETA."""

import sys
import time


class Progress:
    """Redraws in place on a terminal; prints a plain line every 30 s when stderr is a file."""

    def __init__(self, total_documents: int, enabled: bool = True, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.total = max(total_documents, 1)
        self.start = time.monotonic()
        self._last = 0.0
        self._tty = self.stream.isatty()

    def update(self, documents: int, instances: int, final: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not final and now - self._last < (0.5 if self._tty else 30.0)):
            return
        self._last = now
        elapsed = max(now - self.start, 1e-9)
        done = min(documents / self.total, 1.0)
        eta = elapsed * (1 - done) / done if done > 0 else float("nan")
        eta_text = time.strftime("%H:%M:%S", time.gmtime(eta)) if eta == eta else "--:--:--"
        line = (f"{instances:,} instances | {instances / elapsed:,.0f}/s | "
                f"documents {100 * done:5.1f}% | ETA {eta_text}")
        self.stream.write(("\r" + line + " " * 4) if self._tty else line + "\n")
        if final and self._tty:
            self.stream.write("\n")
        self.stream.flush()
