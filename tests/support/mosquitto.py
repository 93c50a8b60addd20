"""A real Mosquitto broker for tests: a config file in tmp_path, a free port, a process.

Mosquitto 2.0.11 needs an explicit port, so one is picked by binding a socket to port 0
and closing it; if another process takes it first, Mosquitto fails to bind and the
start is retried on a new port. The broker is ready when it accepts a TCP connection
(polled until a deadline, never a fixed sleep).
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
START_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Mosquitto:
    """One Mosquitto process. ``start()`` writes the config and waits until it listens."""

    def __init__(self, directory: Path, extra_config: str = "", tls: bool = False) -> None:
        self.directory = directory
        self.extra_config = extra_config
        self.tls = tls
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = directory / "mosquitto.log"

    def _config(self) -> str:
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            # Running as root, Mosquitto would switch to the "mosquitto" user, which
            # cannot read files in a private tmp_path; stay who we are.
            f"user {getpass.getuser()}",
            "persistence false",
            "log_dest stderr",
            "log_type all",
            "max_keepalive 65535",
            self.extra_config,
        ]
        return "\n".join(lines) + "\n"

    def start(self) -> Mosquitto:
        if not Path(MOSQUITTO).exists():
            pytest.skip("mosquitto is not installed")
        for _ in range(5):
            self.port = free_port()
            config = self.directory / "mosquitto.conf"
            config.write_text(self._config())
            log = self.log_path.open("ab")
            try:
                self.process = subprocess.Popen(
                    [MOSQUITTO, "-c", str(config)], stdout=log, stderr=log
                )
            finally:
                log.close()
            if self._wait_listening():
                return self
            self.stop()
        raise RuntimeError(f"mosquitto did not start; see {self.log_path}")

    def _wait_listening(self) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT
        delay = 0.005
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False  # e.g. the port was taken: try another
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return True
            except OSError:
                # Not listening yet: back off a little and look again until the deadline.
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
        return False

    def stop(self) -> None:
        process = self.process
        if process is None:
            return
        self.process = None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def restart(self) -> None:
        """Stop and start again on the same port (a broker restart)."""
        self.stop()
        port = self.port
        config = self.directory / "mosquitto.conf"
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen([MOSQUITTO, "-c", str(config)], stdout=log, stderr=log)
        finally:
            log.close()
        if not self._wait_listening():
            raise RuntimeError(f"mosquitto did not restart on port {port}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def make_password_file(directory: Path, users: dict[str, str]) -> Path:
    """A Mosquitto password file made with mosquitto_passwd."""
    path = directory / "passwords"
    path.touch(mode=0o600)
    for user, password in users.items():
        subprocess.run(
            ["mosquitto_passwd", "-b", str(path), user, password],
            check=True,
            capture_output=True,
        )
    os.chmod(path, 0o600)
    return path


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path).start()
    yield broker
    broker.stop()
