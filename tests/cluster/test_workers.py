"""`roost broker --workers N`: a supervisor, worker processes on one port, a private NATS.

Every test runs the real command as a child process (``BrokerProcess``) and talks to it
with paho and Mosquitto's tools. Which worker a connection landed on is read from the
``$SYS/broker/cluster/node`` topic each worker retains for its own clients.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from roost.broker import private_nats
from roost.codec import MQTT_3_1_1, MQTT_5
from tests.cluster.nodes import NatsServer, linked, real
from tests.persistence.process import BrokerProcess
from tests.support.mosquitto_tools import mosquitto_pub
from tests.support.paho import PahoClient
from tests.support.raw import TIMEOUT
from tests.support.waiting import wait_until
from tests.transports.helpers import Paho

NODE_TOPIC = "$SYS/broker/cluster/node"


StartWorkers = Callable[..., "Workers"]


@pytest.fixture
def start_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StartWorkers]:
    """``start_workers(2)``; every supervisor started is stopped (SIGTERM) at the end."""
    monkeypatch.setenv("PYTHONFAULTHANDLER", "1")
    started: list[BrokerProcess] = []

    def start(count: int, extra: str = "") -> Workers:
        return Workers(tmp_path, count, extra, started)

    yield start
    for process in started:
        if process.proc.poll() is None:
            process.stop()


class Workers:
    """A running ``roost broker --workers N`` and what its log says about its children."""

    def __init__(self, tmp: Path, count: int, extra: str, started: list[BrokerProcess]) -> None:
        config = tmp / "workers.toml"
        config.write_text(f"sys_interval = 1\n{extra}\n", encoding="utf-8")
        self.count = count
        self.process = BrokerProcess(tmp / "data", "--workers", str(count), "-c", str(config))
        started.append(self.process)  # stopped at the end even if the start fails below
        self.process.wait_for(rf"All {count} workers running")
        self.port = self.process.port

    def pid(self, index: int) -> int:
        """The pid of worker ``index``'s latest start."""
        pids = re.findall(rf"Worker {index} \(pid (\d+)\) is running", self.process.log)
        return int(pids[-1])

    def client_on(self, node: str, name: str, version: int = MQTT_5) -> PahoClient:
        """A client connected to worker ``node``: connect until the kernel places one there."""
        for attempt in range(60):
            client = PahoClient(self.port, f"{name}-{attempt}", version)
            if node_of(client) == node:
                return client
            client.stop()
        raise AssertionError(f"60 connections and none on {node}")


def node_of(client: PahoClient) -> str:
    """The node a connected client is on, from the retained $SYS topic of its worker."""
    client.subscribe(NODE_TOPIC, 0)
    while True:
        message = client.next_message(TIMEOUT)
        if message.topic == NODE_TOPIC:
            client.client.unsubscribe(NODE_TOPIC)
            return message.payload.decode()


def host_node() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_connections_spread_and_messages_cross(start_workers: StartWorkers) -> None:
    workers = start_workers(2)
    node = host_node()
    assert "Private nats-server (pid" in workers.process.log
    # Many clients: the kernel (SO_REUSEPORT) places them on both workers.
    clients = [PahoClient(workers.port, f"many-{i}", MQTT_3_1_1) for i in range(16)]
    placed = [node_of(client) for client in clients]
    assert set(placed) == {f"{node}-w0", f"{node}-w1"}, placed

    subscriber = clients[placed.index(f"{node}-w1")]
    publisher = clients[placed.index(f"{node}-w0")]
    subscriber.subscribe("work/#", 1)
    linked(publisher, subscriber, "work/probe")
    publisher.publish("work/item", b"from w0", 1)
    assert [(m.topic, m.payload) for m in real(subscriber, 1)] == [("work/item", b"from w0")]
    # And the other way, with Mosquitto's client at one end (whichever worker it reaches).
    back = workers.client_on(f"{node}-w0", "back")
    back.subscribe("back/#", 0)
    linked(subscriber, back, "back/probe")
    mosquitto_pub(workers.port, "-t", "back/mosquitto", "-m", "hello", "-q", "1")
    assert [(m.topic, m.payload) for m in real(back, 1)] == [("back/mosquitto", b"hello")]


def test_retained_through_one_worker_seen_on_the_other(start_workers: StartWorkers) -> None:
    workers = start_workers(2)
    node = host_node()
    setter = workers.client_on(f"{node}-w0", "setter")
    setter.publish("config/colour", b"blue", 1, retain=True)
    reader = workers.client_on(f"{node}-w1", "reader")

    def seen() -> bool:
        # The retained set crosses through JetStream asynchronously: ask again until it has.
        reader.subscribe("config/colour", 1)
        try:
            message = reader.next_message(0.5)
        except Exception:  # noqa: BLE001  (queue.Empty)
            return False
        finally:
            reader.client.unsubscribe("config/colour")
        return (message.topic, message.payload, message.retain) == ("config/colour", b"blue", True)

    wait_until(seen, timeout=TIMEOUT * 2)


def test_worker_killed_is_restarted(start_workers: StartWorkers) -> None:
    workers = start_workers(2)
    node = host_node()
    stays = workers.client_on(f"{node}-w0", "stays")
    stays.subscribe("after/#", 1)
    victim = workers.pid(1)
    os.kill(victim, signal.SIGKILL)
    workers.process.wait_for(r"Worker 1 \(node \S+\) ended \(killed by SIGKILL\)")
    workers.process.wait_for(rf"Worker 1 \(pid (?!{victim}\))\d+\) is running", timeout=TIMEOUT * 3)
    assert workers.pid(1) != victim
    # The client on the surviving worker was not disconnected, and the new worker 1
    # serves clients and reaches it.
    assert not stays.disconnected.is_set()
    newcomer = workers.client_on(f"{node}-w1", "newcomer")
    linked(newcomer, stays, "after/probe")
    newcomer.publish("after/kill", b"still here", 1)
    assert [(m.topic, m.payload) for m in real(stays, 1)] == [("after/kill", b"still here")]


def test_sigterm_stops_every_child(start_workers: StartWorkers) -> None:
    workers = start_workers(2)
    log = workers.process.log
    nats = int(re.findall(r"Private nats-server \(pid (\d+)\)", log)[0])
    children = [workers.pid(0), workers.pid(1), nats]
    assert all(alive(pid) for pid in children)
    assert workers.process.stop() == 0
    # The supervisor reaped its children before it ended: none is left, not even a zombie.
    assert [pid for pid in children if alive(pid)] == []
    log = workers.process.log
    assert "Worker 0 stopped (exit status 0)" in log
    assert "Worker 1 stopped (exit status 0)" in log
    # NATS goes last: the workers publish their clients' wills through it while stopping.
    assert log.index("Private nats-server (pid") < log.index("Worker 1 stopped")
    assert log.rindex("Worker 1 stopped") < log.rindex(f"Private nats-server (pid {nats}) stopped")


def test_configured_nats_url_is_used(start_workers: StartWorkers, nats_server: NatsServer) -> None:
    workers = start_workers(2, f'[cluster]\nnats_url = "{nats_server.url}"\nnode = "edge"\n')
    assert "Private nats-server" not in workers.process.log
    assert {node_of(workers.client_on(f"edge-w{i}", f"c{i}")) for i in (0, 1)} == {
        "edge-w0",
        "edge-w1",
    }


def test_worker_that_cannot_start_stops_the_supervisor(tmp_path: Path) -> None:
    # Worker 0's [http] port is taken, so worker 0 cannot start.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "workers.toml"
        config.write_text(f"[http]\nport = {port}\n", encoding="utf-8")
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "roost",
                "broker",
                "--workers",
                "2",
                "-p",
                "0",
                "--data-dir",
                str(tmp_path / "data"),
                "-c",
                str(config),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1, result.stderr
    # Worker 1's port (port + 1) may happen to be taken too: whichever is seen first.
    assert re.search(r"Worker [01] could not start \(exit status 1\): stopping", result.stderr), (
        result.stderr
    )
    assert "Private nats-server (pid" in result.stderr
    assert re.search(r"Private nats-server \(pid \d+\) stopped", result.stderr)


def test_one_worker_is_the_single_process(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "data", "--workers", "1")
    try:
        broker.wait_for("Roost broker running")
    finally:
        assert broker.stop() == 0
    assert "Supervisor" not in broker.log
    assert "Cluster node" not in broker.log


def test_missing_nats_server_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
    with pytest.raises(private_nats.PrivateNatsError, match="apt install nats-server"):
        private_nats.find_nats_server()


def test_websocket_listener_shared_by_the_workers(tmp_path: Path) -> None:
    # Two listeners on port 0 (which -p would replace): the supervisor fixes one port each.
    config = tmp_path / "workers.toml"
    config.write_text(
        'sys_interval = 1\n[[listeners]]\nport = 0\n[[listeners]]\ntype = "ws"\nport = 0\n',
        encoding="utf-8",
    )
    log = tmp_path / "log"
    with log.open("w", encoding="utf-8") as output:
        command = [sys.executable, "-m", "roost", "broker", "--workers", "2", "-c", str(config)]
        command += ["--data-dir", str(tmp_path / "data")]
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stderr=output)
    try:
        wait_until(lambda: "All 2 workers running" in log.read_text(encoding="utf-8"))
        text = log.read_text(encoding="utf-8")
        found = re.search(
            r"starting 2 workers on tcp 127\.0\.0\.1:(\d+), ws 127\.0\.0\.1:(\d+)", text
        )
        assert found, text
        ws_port = int(found.group(2))
        for worker in ("w0", "w1"):
            line = f"[{worker}] Listening on 127.0.0.1:{ws_port} (MQTT over WebSocket"

            def listening(line: str = line) -> bool:
                return line in log.read_text(encoding="utf-8")

            wait_until(listening)
        # WebSocket clients land on both workers, and a message crosses between them.
        by_node: dict[str, Paho] = {}
        for attempt in range(60):
            client = Paho(ws_port, f"ws-{attempt}", transport="websockets")
            client.subscribe(NODE_TOPIC, 0)
            node = client.next_message().payload.decode()
            if node in by_node:
                client.stop()
                continue
            by_node[node] = client
            if len(by_node) == 2:
                break
        assert len(by_node) == 2, by_node
        first, second = by_node.values()
        second.subscribe("ws/#", 0)

        def crossed() -> bool:
            first.publish("ws/hello", b"across", 0)
            try:
                while True:
                    message = second.messages.get(timeout=0.2)
                    if message.topic == "ws/hello":
                        return True
            except queue.Empty:
                return False

        wait_until(crossed, timeout=TIMEOUT * 2)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(TIMEOUT * 3) == 0


def test_port_held_by_another_program_stops_the_start(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = [sys.executable, "-m", "roost", "broker", "--workers", "2", "-p", str(port)]
        command += ["--data-dir", str(tmp_path / "data")]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1, result.stderr
    assert f"listeners[0] (tcp 127.0.0.1:{port}): cannot listen: " in result.stderr
    # Nothing was started: no nats-server, no worker.
    assert "Private nats-server" not in result.stderr
    assert "Worker 0" not in result.stderr


def test_private_nats_killed_is_restarted_on_its_port(start_workers: StartWorkers) -> None:
    workers = start_workers(2)
    node = host_node()
    first = re.search(
        r"Private nats-server \(pid (\d+)\) with JetStream on (\S+);", workers.process.log
    )
    assert first, workers.process.log
    pid, url = int(first.group(1)), first.group(2)
    os.kill(pid, signal.SIGKILL)
    workers.process.wait_for(r"Private nats-server ended \(status -9\)")
    again = workers.process.wait_for(
        rf"Private nats-server \(pid (?!{pid}\))(\d+)\) with JetStream on (\S+);", TIMEOUT * 3
    )
    assert again.group(2) == url  # the same port: the workers' nats-py reconnects to it
    for index in (0, 1):
        workers.process.wait_for(rf"WARNING \[w{index}\] Cluster node {node}-w{index}: connected")
    subscriber = workers.client_on(f"{node}-w1", "after-nats")
    subscriber.subscribe("nats/#", 0)
    publisher = workers.client_on(f"{node}-w0", "before-nats")
    linked(publisher, subscriber, "nats/probe")


@pytest.mark.parametrize("version", [MQTT_3_1_1, MQTT_5])
def test_a_persistent_session_follows_its_client_to_the_other_worker(
    start_workers: StartWorkers, version: int
) -> None:
    """Workers are cluster nodes: a reconnection the kernel places on the other worker
    resumes the session there (session present, the message queued meanwhile)."""
    workers = start_workers(2)
    node = host_node()
    publisher = workers.client_on(f"{node}-w1", "publisher")
    options: dict[str, object] = {"clean": False}
    if version == MQTT_5:
        options["session_expiry"] = 300
    # w0's interest in keep/# reaches w1 (asynchronously): prove it before relying on
    # it, and keep it for the whole test.
    watcher = workers.client_on(f"{node}-w0", "watcher")
    watcher.subscribe("keep/#", 1)
    linked(publisher, watcher, "keep/probe")

    keeper = PahoClient(workers.port, "keeper", version, **options)  # type: ignore[arg-type]
    keeper.subscribe("keep/#", 1)
    start = node_of(keeper)
    keeper.disconnect()
    for attempt in range(30):
        payload = f"while away {attempt}".encode()
        publisher.publish("keep/x", payload, 1)
        keeper = PahoClient(workers.port, "keeper", version, **options)  # type: ignore[arg-type]
        assert keeper.session_present, attempt
        (message,) = real(keeper, 1)
        assert (message.topic, message.payload) == ("keep/x", payload)
        landed = node_of(keeper)
        keeper.disconnect()
        if landed != start:
            return  # the other worker had it: handed over, message and all
    raise AssertionError(f"30 reconnections, all on {start}")
