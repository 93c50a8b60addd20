"""`roost broker` as a child process with a data directory: start, SIGTERM, SIGKILL.

A thread reads the broker's log as it comes, so that a chatty broker never blocks on
a full pipe and a test can wait for a line (with a timeout) instead of sleeping.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

STARTUP_TIMEOUT = 15.0


class BrokerProcess:
    def __init__(self, data_dir: Path, *args: str, cwd: Path | None = None) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "roost",
                "broker",
                "-p",
                "0",
                "--data-dir",
                str(data_dir),
                *args,
            ],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._ended = False
        self._reader = threading.Thread(target=self._read, name="broker-log", daemon=True)
        self._reader.start()
        self.port = int(self.wait_for(r"Listening on 127\.0\.0\.1:(\d+)").group(1))

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float = STARTUP_TIMEOUT) -> re.Match[str]:
        """The first log line matching ``pattern``, waiting for it to be written."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    if match := re.search(pattern, line):
                        return match
                seen = len(self.lines)
                remaining = deadline - time.monotonic()
                if self._ended or remaining <= 0:
                    log = "".join(self.lines)
                    raise AssertionError(f"no log line matching {pattern!r} in:\n{log}")
                self._changed.wait(remaining)

    @property
    def log(self) -> str:
        with self._changed:
            return "".join(self.lines)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs; what is on disk is all that survives."""
        self.proc.send_signal(signal.SIGKILL)
        self._end()

    def reload(self) -> None:
        """SIGHUP: re-read the TLS and auth files."""
        # Before its handler is installed, SIGHUP would end the process.
        self.wait_for(r"Roost broker running")
        self.proc.send_signal(signal.SIGHUP)

    def stop(self) -> int:
        """SIGTERM: a clean shutdown; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self._end()

    def _end(self) -> int:
        code = self.proc.wait(STARTUP_TIMEOUT)
        self._reader.join(STARTUP_TIMEOUT)
        assert self.proc.stderr is not None
        self.proc.stderr.close()
        return code
