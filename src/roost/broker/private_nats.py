"""The private ``nats-server`` of ``roost broker --workers N`` without ``[cluster]``.

The supervisor (``broker/workers.py``) runs one NATS server with JetStream for its
workers to meet through: on a loopback port the system picks the first time (read back
from the server's ports file, so there is no race for a free port) and the same port on
every restart, its JetStream store in ``<data_dir>/nats``, its log in
``<data_dir>/nats/nats-server.log``. It counts as up once it accepts a connection and
greets with NATS's ``INFO`` line.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

log = logging.getLogger("roost.broker")

NATS_PACKAGE = "nats-server"  # the Debian (and Ubuntu) package with the binary
START_TIMEOUT = 15.0  # seconds for a started server to accept connections
STOP_TIMEOUT = 10.0  # seconds after SIGTERM before SIGKILL
_PR_SET_PDEATHSIG = 1


class PrivateNatsError(OSError):
    """The private nats-server cannot be found or started; the message says why."""


def find_nats_server() -> str:
    """The nats-server executable, or an error naming the package that has it."""
    found = shutil.which("nats-server") or shutil.which("nats-server", path="/usr/sbin:/sbin")
    if found is None:
        raise PrivateNatsError(
            "--workers without [cluster] runs a private nats-server, and none is installed: "
            f"install it (Debian/Ubuntu: apt install {NATS_PACKAGE}) or set [cluster] "
            "nats_url to a NATS server with JetStream"
        )
    return found


class PrivateNats:
    """One nats-server child process with JetStream on 127.0.0.1."""

    def __init__(self, store: Path) -> None:
        self.executable = find_nats_server()
        self.store = store
        self.port = -1  # -1: the system picks one at the first start
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self.store.mkdir(parents=True, exist_ok=True)
        logfile = self.store / "nats-server.log"
        # Left by a server that was killed: a stale ports file must not be read.
        for stale in self.store.glob("*.ports"):
            stale.unlink(missing_ok=True)
        command = [
            self.executable,
            "-a",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-js",
            "-sd",
            str(self.store / "jetstream"),
            "-l",
            str(logfile),
            "--ports_file_dir",
            str(self.store),
        ]
        parent = os.getpid()
        try:
            self.proc = subprocess.Popen(  # noqa: S603  (our own command line)
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # a terminal's ^C reaches the supervisor, not it
                preexec_fn=lambda: die_with_parent(parent),  # noqa: PLW1509  (no threads here)
            )
        except OSError as exc:
            raise PrivateNatsError(f"cannot start {self.executable}: {exc}") from exc
        self._wait_ready(logfile)
        log.info(
            "Private nats-server (pid %d) with JetStream on %s; store %s, log %s.",
            self.proc.pid,
            self.url,
            self.store / "jetstream",
            logfile,
        )

    def _wait_ready(self, logfile: Path) -> None:
        proc = self.proc
        assert proc is not None  # noqa: S101  (started)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise PrivateNatsError(
                    f"nats-server exited at start (status {proc.returncode}); see {logfile}"
                )
            if self.port == -1:
                self.port = _read_port(self.store, proc.pid)
            if self.port != -1 and _greets(self.port):
                return
            time.sleep(0.05)
        self.stop()
        raise PrivateNatsError(
            f"nats-server did not accept connections within {START_TIMEOUT:g} s; see {logfile}"
        )

    def exited(self) -> int | None:
        """The exit status if the server has ended (-1: stopped, or never started), else
        None while it runs."""
        return -1 if self.proc is None else self.proc.poll()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not ended in time. Safe to repeat."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            log.warning("nats-server (pid %d) did not stop on SIGTERM: killed.", proc.pid)
            proc.kill()
            proc.wait()
        log.info("Private nats-server (pid %d) stopped.", proc.pid)


def _read_port(directory: Path, pid: int) -> int:
    """The client port from nats-server's ports file, or -1 while there is none."""
    for path in directory.glob(f"*_{pid}.ports"):
        try:
            urls = json.loads(path.read_text(encoding="utf-8"))["nats"]
            return int(urls[0].rsplit(":", 1)[1])
        except (OSError, ValueError, KeyError, IndexError):
            return -1  # being written: read it again
    return -1


def _greets(port: int) -> bool:
    """Whether a NATS server on the port accepts a connection and sends INFO."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            return sock.recv(5) == b"INFO "
    except OSError:
        return False


def die_with_parent(parent: int) -> None:
    """Linux: this (child) process gets SIGTERM when ``parent`` ends, even by SIGKILL, so
    a supervisor that is killed leaves no broker or nats-server behind."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: no such call
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it ended before the line above: too late to be told
        os.kill(os.getpid(), signal.SIGTERM)
