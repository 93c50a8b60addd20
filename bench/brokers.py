"""Start and stop the brokers under test, each as its own process on a free port.

Roost runs as ``roost broker -p PORT``; Mosquitto runs in the foreground from a
configuration file written here. Each broker is started directly (no shell), so the
process id handed to mqttload's ``-b`` is the broker itself; ``start`` also checks that
this process owns the listening socket. Output goes to a log file that is scanned for
errors after the broker stops.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

READY_TIMEOUT = 15.0  # seconds for a broker to accept connections
STOP_TIMEOUT = 15.0  # seconds for a broker to exit after SIGTERM
# Log lines worth reporting: Python logging levels and tracebacks (Roost), Mosquitto's
# "Error:"/"Warning:" prefixes and its "Outgoing messages are being dropped for client"
# notice. Normal connects and disconnects are logged at INFO/notice and not reported.
LOG_PROBLEM = re.compile(
    r"\b(WARNING|ERROR|CRITICAL|Traceback)\b|\b(Error|Warning):|messages are being dropped"
)

# What Mosquitto is given besides the listener: anonymous access (2.0 refuses it by
# default), no persistence file, and the queue limit Roost also uses (1000 is also
# Mosquitto's default, written out so the parity is visible). Everything else is
# Mosquitto's default, including max_inflight_messages 20 and Nagle on.
MOSQUITTO_SETTINGS = ("allow_anonymous true", "persistence false", "max_queued_messages 1000")
MOSQUITTO_NODELAY = "set_tcp_nodelay true"


class BrokerError(Exception):
    """A broker did not start, or is not the process it claims to be."""


@dataclass(frozen=True, slots=True)
class BrokerSpec:
    """One broker variant: a name for the tables and how to start it."""

    name: str
    executable: str
    kind: str  # "roost" or "mosquitto"
    extra_config: tuple[str, ...] = ()  # Mosquitto: configuration lines; Roost: TOML lines
    # A second listener speaking MQTT over WebSocket (path /mqtt) on this port, if set.
    websocket_port: int = 0
    # Keep state on disk in this directory (Roost: SQLite; Mosquitto: its save file,
    # written at exit) instead of in memory only, if set.
    data_dir: str = ""
    # Roost: more than 1 runs `roost broker --workers N` (a supervisor, N worker
    # processes and a private nats-server); mqttload's -b then samples the supervisor only.
    workers: int = 1

    def mosquitto_config(self, port: int) -> str:
        lines = [
            "# written by python -m bench load; unset options keep Mosquitto's defaults",
            f"listener {port} 127.0.0.1",
            *MOSQUITTO_SETTINGS,
            *self.extra_config,
        ]
        if self.data_dir:
            lines.remove("persistence false")
            lines += ["persistence true", f"persistence_location {self.data_dir}/"]
        if self.websocket_port:
            # Global options come first: Mosquitto applies them to every listener.
            lines += [f"listener {self.websocket_port} 127.0.0.1", "protocol websockets"]
        return "\n".join(lines) + "\n"

    def command(self, port: int, workdir: Path, tag: str) -> list[str]:
        if self.kind == "roost":
            # In memory, like the Mosquitto side's `persistence false`; clean sessions
            # would write nothing anyway, but two runs must not share a data directory.
            state = ["--data-dir", self.data_dir] if self.data_dir else ["--no-persistence"]
            command = [self.executable, "broker", *state]
            if self.workers > 1:
                # The private nats-server keeps its store under the data directory.
                data_dir = self.data_dir or str(workdir / tag)
                command += ["--workers", str(self.workers), "--data-dir", data_dir]
            lines = list(self.extra_config)
            if self.websocket_port:
                # -p would replace the configured listeners: both go in the file.
                lines += [
                    "[[listeners]]",
                    f"port = {port}",
                    "[[listeners]]",
                    'type = "ws"',
                    f"port = {self.websocket_port}",
                ]
            else:
                command += ["-p", str(port)]
            if lines:
                config = workdir / f"{tag}.toml"
                config.write_text("\n".join(lines) + "\n", encoding="utf-8")
                command += ["-c", str(config)]
            return command
        config = workdir / f"{tag}.conf"
        config.write_text(self.mosquitto_config(port), encoding="utf-8")
        return [self.executable, "-c", str(config)]


def roost_executable() -> str:
    """The ``roost`` script of the running interpreter's environment."""
    beside = Path(sys.executable).parent / "roost"
    if beside.exists():
        return str(beside)
    found = shutil.which("roost")
    if found is None:
        raise BrokerError("cannot find the roost command; install the project (make bench)")
    return found


def mosquitto_executable(explicit: str | None) -> str | None:
    """The mosquitto binary: ``explicit`` (which must exist), else from PATH or sbin."""
    if explicit:
        if not (Path(explicit).is_file() and os.access(explicit, os.X_OK)):
            raise BrokerError(f"mosquitto not found or not executable at {explicit}")
        return explicit
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()),
        None,
    )


# Roost without its per-connect and per-disconnect INFO lines (Mosquitto's default is
# to log them, like Roost's): run only when asked, with --brokers.
ROOST_QUIET = "connection_messages = false"


def broker_specs(mosquitto: str | None, nats_url: str | None = None) -> tuple[BrokerSpec, ...]:
    """The brokers a run can compare; "roost-cluster" (with ``nats_url``) is Roost as a
    cluster node of one, to measure what [cluster] costs local traffic."""
    roost = BrokerSpec("roost", roost_executable(), "roost")
    quiet = BrokerSpec("roost-quiet", roost.executable, "roost", (ROOST_QUIET,))
    workers2 = BrokerSpec("roost-workers2", roost.executable, "roost", workers=2)
    clustered: tuple[BrokerSpec, ...] = (workers2,)
    if nats_url is not None:
        cluster = ("[cluster]", f"nats_url = {nats_url!r}", 'node = "bench"')
        clustered += (BrokerSpec("roost-cluster", roost.executable, "roost", cluster),)
    if mosquitto is None:
        return (roost, quiet, *clustered)
    return (
        roost,
        quiet,
        *clustered,
        BrokerSpec("mosquitto", mosquitto, "mosquitto"),
        BrokerSpec("mosquitto-nodelay", mosquitto, "mosquitto", (MOSQUITTO_NODELAY,)),
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(slots=True)
class BrokerExit:
    """How a broker ended, and the problem lines its log holds."""

    returncode: int | None
    killed: bool
    died_early: bool  # exited before it was asked to stop
    log_problems: list[str] = field(default_factory=list)


@dataclass(slots=True)
class RunningBroker:
    spec: BrokerSpec
    port: int
    command: list[str]
    log_path: Path
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> BrokerExit:
        died_early = self.process.poll() is not None
        killed = False
        if not died_early:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                killed = True
        return BrokerExit(self.process.returncode, killed, died_early, scan_log(self.log_path))


def scan_log(path: Path, limit: int = 20) -> list[str]:
    """The log's warning/error lines (at most ``limit``, then a count of the rest)."""
    problems: list[str] = []
    extra = 0
    with path.open(encoding="utf-8", errors="replace") as log:
        for line in log:
            if LOG_PROBLEM.search(line):
                if len(problems) < limit:
                    problems.append(line.rstrip())
                else:
                    extra += 1
    if extra:
        problems.append(f"... and {extra} more")
    return problems


def _listening_inode(port: int) -> str | None:
    # /proc/net/tcp: local address is HEX_IP:HEX_PORT, state 0A is LISTEN, field 9 the inode.
    with Path("/proc/net/tcp").open(encoding="ascii") as table:
        next(table)
        for line in table:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].split(":")[1], 16) == port:
                return fields[9]
    return None


def owns_listener(pid: int, port: int) -> bool:
    """Whether process ``pid`` itself holds the socket listening on ``port``."""
    inode = _listening_inode(port)
    if inode is None:
        return False
    target = f"socket:[{inode}]"
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        with contextlib.suppress(OSError):
            if os.readlink(fd) == target:
                return True
    return False


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def _log_tail(path: Path, lines: int = 15) -> str:
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(text[-lines:])


def _wait_for_workers(broker: RunningBroker, deadline: float) -> None:
    """A supervisor accepts once one worker listens; the run waits for all of them."""
    ready = f"All {broker.spec.workers} workers running"
    while ready not in broker.log_path.read_text(encoding="utf-8", errors="replace"):
        if broker.process.poll() is not None or time.monotonic() > deadline:
            broker.stop()
            raise BrokerError(f"{broker.spec.name}: not all workers started")
        time.sleep(0.05)


def start(spec: BrokerSpec, workdir: Path, tag: str) -> RunningBroker:
    """Start ``spec`` on a free port and return once it accepts TCP connections.

    The readiness probe is a bare TCP connect that is closed at once; both brokers log
    it as a connection closed before CONNECT, which is not counted as a problem.
    """
    port = free_port()
    command = spec.command(port, workdir, tag)
    log_path = workdir / f"{tag}.log"
    with log_path.open("wb") as log:
        try:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        except OSError as exc:
            raise BrokerError(f"cannot start {spec.name} ({command[0]}): {exc}") from exc
    broker = RunningBroker(spec, port, command, log_path, process)
    deadline = time.monotonic() + READY_TIMEOUT
    while not accepts(port):
        if process.poll() is not None:
            raise BrokerError(
                f"{spec.name} exited with status {process.returncode} while starting:\n"
                f"{_log_tail(log_path)}"
            )
        if time.monotonic() > deadline:
            broker.stop()
            raise BrokerError(f"{spec.name} did not accept connections on port {port}")
        time.sleep(0.05)
    if spec.workers > 1:
        _wait_for_workers(broker, deadline)
    elif not owns_listener(process.pid, port):
        broker.stop()
        raise BrokerError(f"pid {process.pid} ({spec.name}) does not own the listener on {port}")
    return broker
