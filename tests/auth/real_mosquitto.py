"""Run the real Mosquitto broker and tools against password files, for interop tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
MOSQUITTO_PUB = shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub"

needs_mosquitto = pytest.mark.skipif(
    not (os.access(MOSQUITTO, os.X_OK) and os.access(MOSQUITTO_PUB, os.X_OK)),
    reason="the mosquitto broker and mosquitto_pub are not installed",
)
needs_mosquitto_passwd = pytest.mark.skipif(
    not os.access(MOSQUITTO_PASSWD, os.X_OK), reason="mosquitto_passwd is not installed"
)

STARTUP_DEADLINE = 10.0


def free_port() -> int:
    # Ask the kernel for a free port, then release it for Mosquitto (which cannot be
    # told to listen on port 0 and report back). The window for a clash is tiny.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Mosquitto:
    """A Mosquitto process requiring passwords from ``password_file``, on 127.0.0.1."""

    def __init__(self, password_file: Path, workdir: Path) -> None:
        self.port = free_port()
        self.log_path = workdir / "mosquitto.log"
        conf = workdir / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous false",
            f"password_file {password_file}",
        ]
        if os.geteuid() == 0:
            # Run as root, Mosquitto would switch to the 'mosquitto' user, which cannot
            # read a 0600 file in pytest's private temporary directory.
            lines.insert(0, "user root")
        conf.write_text("\n".join(lines) + "\n")
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [MOSQUITTO, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT
            )
        try:
            self._wait_until_listening()
        except BaseException:
            self.stop()
            raise

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + STARTUP_DEADLINE
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"mosquitto did not listen in time:\n{self.log()}")
            # Waiting on the process doubles as the pause between attempts and notices
            # at once if Mosquitto exited (for example, rejecting the password file).
            try:
                code = self.process.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                continue
            raise AssertionError(f"mosquitto exited with status {code}:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def publish(self, username: str, password: str) -> subprocess.CompletedProcess[str]:
        """Connect and publish with mosquitto_pub; returncode 0 means it was let in."""
        options = {
            "-h": "127.0.0.1",
            "-p": str(self.port),
            "-u": username,
            "-P": password,
            "-t": "roost/auth",
            "-m": "hello",
        }
        argv = [MOSQUITTO_PUB, *(part for option in options.items() for part in option)]
        return subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def mosquitto_passwd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MOSQUITTO_PASSWD, *args], capture_output=True, text=True, timeout=10, check=False
    )
