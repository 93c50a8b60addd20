"""A nats-server for the cluster benchmarks, with its monitoring port, and process RSS.

``NatsServer`` runs ``nats-server -js`` on loopback ports picked here, with the HTTP
monitoring endpoint (``-m``) whose ``/varz`` counts the messages and payload bytes the
server took in (``in_msgs``, ``in_bytes``) and handed out (``out_msgs``,
``out_bytes``). ``rss_bytes`` reads any process's resident set from /proc.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from bench.brokers import free_port

READY_TIMEOUT = 15.0


class NatsError(Exception):
    """nats-server is missing or did not start."""


def nats_executable() -> str:
    found = shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not Path(found).exists():
        raise NatsError("nats-server not found (Debian: apt-get install nats-server)")
    return found


def rss_bytes(pid: int) -> int:
    """VmRSS of process ``pid``."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise NatsError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (clock-tick resolution)."""
    stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class NatsServer:
    """One nats-server with JetStream, its store and log in ``workdir``.

    ``extra`` are more command-line arguments (e.g. ``-c FILE`` for a clustered server,
    whose ports then come from the file: pass ``port`` and ``monitor`` to match it).
    """

    def __init__(
        self,
        workdir: Path,
        name: str = "nats",
        extra: tuple[str, ...] = (),
        port: int = 0,
        monitor: int = 0,
    ) -> None:
        self.port = port or free_port()
        self.monitor = monitor or free_port()
        store = workdir / f"{name}-js"
        store.mkdir(parents=True, exist_ok=True)
        self.log = workdir / f"{name}.log"
        command = [
            *(nats_executable(), "-a", "127.0.0.1", "-p", str(self.port)),
            *("-m", str(self.monitor), "-js", "-sd", str(store), *extra),
        ]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                self.varz()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise NatsError(f"nats-server did not start; see {self.log}") from None
                time.sleep(0.1)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def varz(self) -> dict[str, object]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor}/varz", timeout=5) as response:
            data: dict[str, object] = json.load(response)
            return data

    def counters(self) -> dict[str, int]:
        """in_msgs, out_msgs, in_bytes, out_bytes (payload bytes) now."""
        varz = self.varz()
        return {k: int(str(varz[k])) for k in ("in_msgs", "out_msgs", "in_bytes", "out_bytes")}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_cluster(workdir: Path, size: int) -> list[NatsServer]:
    """``size`` nats-servers with JetStream, routed to each other on loopback (one
    cluster named ``roost``): a cluster of 3 is the smallest JetStream cluster that
    keeps its quorum when one server is lost."""
    if size == 1:
        return [NatsServer(workdir)]
    routes = [free_port() for _ in range(size)]
    all_routes = ",".join(f"nats://127.0.0.1:{p}" for p in routes)
    servers: list[NatsServer] = []
    try:
        for i, route in enumerate(routes):
            extra = (
                *("-n", f"s{i + 1}", "--cluster_name", "roost"),
                *("--cluster", f"nats://127.0.0.1:{route}", "--routes", all_routes),
            )
            servers.append(NatsServer(workdir, f"nats-s{i + 1}", extra))
    except NatsError:
        for server in servers:
            server.stop()
        raise
    return servers


def total(servers: list[NatsServer]) -> dict[str, int]:
    """Every server's counters, summed (a message crossing a route counts on both)."""
    sums: dict[str, int] = {}
    for server in servers:
        for key, value in server.counters().items():
            sums[key] = sums.get(key, 0) + value
    return sums
