"""A real nats-server, and Roost brokers as child processes joined through it.

``NatsServer`` runs the Debian ``nats-server`` with JetStream on a loopback port the
system picks (``-p -1``) and can be killed (SIGKILL) and started again on the same
port and store. ``start_node`` runs ``roost broker -c FILE`` with a ``[cluster]``
section pointing at it. ``linked`` waits until a subscription made on one node
receives from another: interest crosses NATS asynchronously after the SUBACK, so a
test first proves the path with probe messages, which ``real`` filters out.
"""

from __future__ import annotations

import json
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import paho.mqtt.client as paho

from tests.persistence.process import BrokerProcess
from tests.support.mosquitto import free_port
from tests.support.paho import PahoClient
from tests.support.raw import TIMEOUT

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
PROBE = b"probe:"
LINK_TIMEOUT = 15.0


class NatsServer:
    """nats-server with JetStream on 127.0.0.1, its store in ``store``; ``extra`` are
    more command-line options (a cluster member's name, routes, monitoring port)."""

    def __init__(self, store: Path, port: int = -1, extra: Sequence[str] = ()) -> None:
        self.store = store
        self.port = port
        self.extra = list(extra)
        self.proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self.start()

    def start(self) -> None:
        """Start (again) on the same port and store."""
        command = [NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port), "-js"]
        self.proc = subprocess.Popen(
            [*command, "-sd", str(self.store), *self.extra],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stderr is not None
        found: list[int] = []
        ready = threading.Event()
        stderr = self.proc.stderr

        def read() -> None:
            for line in stderr:
                match = re.search(r"Listening for client connections on [\d.]+:(\d+)", line)
                if match:
                    found.append(int(match.group(1)))
                    ready.set()
            ready.set()

        self._reader = threading.Thread(target=read, name="nats-log", daemon=True)
        self._reader.start()
        assert ready.wait(LINK_TIMEOUT), "nats-server did not start"
        assert found, "nats-server did not start listening"
        self.port = found[0]

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def kill(self) -> None:
        """SIGKILL: as if its host died. Safe to repeat."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(TIMEOUT)
        if self._reader is not None:
            self._reader.join(TIMEOUT)  # it ends at the pipe's end of file
        assert proc.stderr is not None
        proc.stderr.close()


class NatsCluster:
    """Three nats-servers routed into one JetStream cluster on loopback ports."""

    def __init__(self, root: Path, size: int = 3) -> None:
        route_ports = [free_port() for _ in range(size)]
        self.monitor_ports = [free_port() for _ in range(size)]
        routes = ",".join(f"nats://127.0.0.1:{port}" for port in route_ports)
        self.servers: list[NatsServer] = []
        try:
            for index in range(size):
                extra = [
                    "--name", f"n{index}", "--cluster_name", "roost-test",
                    "--cluster", f"nats://127.0.0.1:{route_ports[index]}", "--routes", routes,
                    "-m", str(self.monitor_ports[index]),
                ]  # fmt: skip
                self.servers.append(NatsServer(root / f"n{index}", extra=extra))
            self.wait_for_leader()
        except BaseException:
            self.kill()
            raise

    @property
    def urls(self) -> list[str]:
        return [server.url for server in self.servers]

    def monitor(self, index: int, path: str) -> dict[str, object]:
        url = f"http://127.0.0.1:{self.monitor_ports[index]}/{path}"
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            answer: dict[str, object] = json.load(response)
            return answer

    def wait_for_leader(self) -> None:
        """Until the servers alive agree on a JetStream meta leader (streams can be made)."""
        deadline = time.monotonic() + LINK_TIMEOUT
        while time.monotonic() < deadline:
            try:
                leaders = {
                    str(self.monitor(index, "jsz").get("meta_cluster", {}).get("leader", ""))  # type: ignore[attr-defined]
                    for index, server in enumerate(self.servers)
                    if server.proc is not None
                }
            except OSError:
                leaders = set()
            if len(leaders) == 1 and "" not in leaders:
                return
            time.sleep(0.2)
        raise AssertionError("the NATS servers elected no JetStream leader")

    def _streams(self) -> dict[str, dict[str, object]]:
        """What the live servers' monitoring says of each stream, by name."""
        found: dict[str, dict[str, object]] = {}
        for index, server in enumerate(self.servers):
            if server.proc is None:
                continue
            jsz = self.monitor(index, "jsz?streams=true&config=true")
            for account in jsz.get("account_details") or []:  # type: ignore[attr-defined]
                for stream in account.get("stream_detail") or []:
                    found.setdefault(stream["name"], stream)
        return found

    def stream_replicas(self, name: str) -> int:
        """How many copies of stream ``name`` the cluster keeps (its configuration)."""
        stream = self._streams().get(name)
        assert stream is not None, f"no stream {name}"
        return int(stream["config"]["num_replicas"])  # type: ignore[index]

    def wait_for_streams(self) -> None:
        """Until every stream (KV buckets too) has a leader among the live servers, as
        after a server died: the JetStream calls of a node starting now then answer."""
        alive = {f"n{index}" for index, server in enumerate(self.servers) if server.proc}

        def led() -> bool:
            streams = self._streams()
            return bool(streams) and all(
                isinstance(stream.get("cluster"), dict) and stream["cluster"].get("leader") in alive  # type: ignore[attr-defined]
                for stream in streams.values()
            )

        deadline = time.monotonic() + LINK_TIMEOUT * 2
        while not led():
            assert time.monotonic() < deadline, f"streams without a leader: {self._streams()}"
            time.sleep(0.2)

    def serving(self, connection_name: str) -> int:
        """The index of the server that has a client connection of this name."""
        deadline = time.monotonic() + LINK_TIMEOUT
        while time.monotonic() < deadline:
            for index, server in enumerate(self.servers):
                if server.proc is None:
                    continue
                connections = self.monitor(index, "connz").get("connections") or []
                if any(c.get("name") == connection_name for c in connections):  # type: ignore[attr-defined]
                    return index
            time.sleep(0.2)
        raise AssertionError(f"no NATS server has a connection named {connection_name!r}")

    def kill(self) -> None:
        for server in self.servers:
            server.kill()


def start_node(
    tmp: Path,
    name: str,
    nats_url: str | Sequence[str],
    *,
    sys_interval: float = 1.0,
    extra: str = "",
    cluster_extra: str = "",
) -> BrokerProcess:
    """``roost broker -c FILE`` as node ``name`` of the cluster at ``nats_url``;
    ``extra`` is TOML before the ``[cluster]`` table, ``cluster_extra`` inside it."""
    urls = json.dumps(nats_url)  # a JSON string or array is TOML too
    config = tmp / f"{name}.toml"
    config.write_text(
        f"sys_interval = {sys_interval}\n{extra}\n[cluster]\nnats_url = {urls}\n"
        f'node = "{name}"\n{cluster_extra}\n',
        encoding="utf-8",
    )
    return BrokerProcess(tmp / f"data-{name}", "-c", str(config))


def linked(publisher: PahoClient, subscriber: PahoClient, topic: str) -> None:
    """Publish probes to ``topic`` until ``subscriber`` (already subscribed to a filter
    matching it, at any QoS) receives one: from then on the path is in place."""
    deadline = time.monotonic() + LINK_TIMEOUT
    attempt = 0
    while time.monotonic() < deadline:
        attempt += 1
        publisher.publish(topic, PROBE + str(attempt).encode())
        try:
            message = subscriber.next_message(0.2)
        except Exception:  # noqa: BLE001, S112  (queue.Empty: try again)
            continue
        if message.payload.startswith(PROBE):
            return
        subscriber.messages.put(message)  # a real one: keep it for the test
        return
    raise AssertionError(f"no probe on {topic!r} crossed between the nodes")


def real(client: PahoClient, count: int, timeout: float = TIMEOUT) -> list[paho.MQTTMessage]:
    """The next ``count`` messages that are not probes."""
    found: list[paho.MQTTMessage] = []
    while len(found) < count:
        message = client.next_message(timeout)
        if not message.payload.startswith(PROBE):
            found.append(message)
    return found


def greeted(client: PahoClient, topic: str, payload: bytes) -> bool:
    """Whether a SUBSCRIBE to ``topic`` is answered now with this retained message. A
    node applies a retained message replayed from the cluster for later subscribers,
    not earlier ones, so a test asks again with each SUBSCRIBE."""
    client.subscribe(topic, 1)
    try:
        message = client.next_message(0.5)
    except queue.Empty:
        return False
    return (message.payload, message.retain) == (payload, True)


def leftovers(client: PahoClient) -> list[paho.MQTTMessage]:
    """Messages already received and not taken, probes left out."""
    found = []
    while not client.messages.empty():
        message = client.messages.get_nowait()
        if not message.payload.startswith(PROBE):
            found.append(message)
    return found
