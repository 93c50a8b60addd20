"""`roost broker` as a separate process, its log read as it is written.

A thread drains the process's stderr into ``lines`` all along: a fuzz run makes the
broker log thousands of protocol violations, and a pipe nobody reads would fill up and
block the broker in the middle of its logging.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

STARTUP_TIMEOUT = 15.0
# What a broker that did not cope would log: an uncaught exception or the handler's
# "Internal error handling client ..." (levels as cli/broker.py formats them).
TROUBLE = re.compile(r"Traceback|Internal error| ERROR | CRITICAL ")


class BrokerProcess:
    def __init__(self, config: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "roost", "broker", "-p", "0", "--no-persistence", "-c", config],
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._trouble: list[str] = []
        self._checked = 0  # lines of the log looked at by trouble()
        self._listening = threading.Event()
        self._reader = threading.Thread(target=self._read, name="broker-log", daemon=True)
        self._reader.start()
        if not self._listening.wait(STARTUP_TIMEOUT):
            self.stop()
            raise AssertionError("the broker did not start:\n" + "".join(self.lines))
        match = re.search(r"Listening on 127\.0\.0\.1:(\d+)", "".join(self.lines))
        assert match is not None
        self.port = int(match.group(1))

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if "Listening on" in line:
                self._listening.set()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def trouble(self) -> list[str]:
        """The log lines so far that show a failure inside the broker."""
        lines = self.lines[self._checked :]  # only the new ones: a run logs many
        self._checked += len(lines)
        self._trouble.extend(line for line in lines if TROUBLE.search(line))
        return list(self._trouble)

    def count(self, text: str) -> int:
        return sum(text in line for line in list(self.lines))

    def rss_kib(self) -> int | None:
        """The process's resident memory (Linux), or None where /proc does not say."""
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return None
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        return int(match.group(1)) if match else None

    def stop(self) -> int:
        """SIGTERM (a clean shutdown); the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(STARTUP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._reader.join(STARTUP_TIMEOUT)
        assert self.proc.stderr is not None
        self.proc.stderr.close()
        return code
