"""A real nats-server, and Roost brokers as child processes joined through it.

``NatsServer`` runs the Debian ``nats-server`` with JetStream on a loopback port the
system picks (``-p -1``) and can be killed (SIGKILL) and started again on the same
port and store. ``start_node`` runs ``roost broker -c FILE`` with a ``[cluster]``
section pointing at it. ``linked`` waits until a subscription made on one node
receives from another: interest crosses NATS asynchronously after the SUBACK, so a
test first proves the path with probe messages, which ``real`` filters out.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho

from tests.persistence.process import BrokerProcess
from tests.support.paho import PahoClient
from tests.support.raw import TIMEOUT

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
PROBE = b"probe:"
LINK_TIMEOUT = 15.0


class NatsServer:
    """nats-server with JetStream on 127.0.0.1, its store in ``store``."""

    def __init__(self, store: Path, port: int = -1) -> None:
        self.store = store
        self.port = port
        self.proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self.start()

    def start(self) -> None:
        """Start (again) on the same port and store."""
        self.proc = subprocess.Popen(
            [NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store)],
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


def start_node(
    tmp: Path,
    name: str,
    nats_url: str,
    *,
    sys_interval: float = 1.0,
    extra: str = "",
    cluster: str = "",
) -> BrokerProcess:
    """``roost broker -c FILE`` as node ``name`` of the cluster at ``nats_url``;
    ``extra``: top-level keys, ``cluster``: more ``[cluster]`` keys."""
    config = tmp / f"{name}.toml"
    config.write_text(
        f'sys_interval = {sys_interval}\n{extra}\n[cluster]\nnats_url = "{nats_url}"\n'
        f'node = "{name}"\n{cluster}\n',
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


def leftovers(client: PahoClient) -> list[paho.MQTTMessage]:
    """Messages already received and not taken, probes left out."""
    found = []
    while not client.messages.empty():
        message = client.messages.get_nowait()
        if not message.payload.startswith(PROBE):
            found.append(message)
    return found
