"""What the client and CLI tests share: async test functions, and the brokers to test
against (Roost in a thread, a real Mosquitto process), as one parametrized fixture;
the same with WebSocket listeners (ws and wss, certificates made by trustme).

``async def`` tests run in a fresh event loop each, under a deadline, through the
``pytest_pyfunc_call`` hook that the conftest modules of tests/client and tests/cli
take from here (no async pytest plugin is installed).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

from roost.broker.config import BrokerConfig, ListenerConfig
from tests.support.broker_thread import BrokerThread
from tests.support.mosquitto import Mosquitto, free_port

TEST_DEADLINE = 30.0  # seconds per async test; each waits on events with its own timeouts


def run_async_test(pyfuncitem: pytest.Function) -> bool | None:
    function = pyfuncitem.obj
    if not inspect.iscoroutinefunction(function):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    kwargs: dict[str, Any] = {name: pyfuncitem.funcargs[name] for name in names}

    async def main() -> None:
        async with asyncio.timeout(TEST_DEADLINE):
            await function(**kwargs)

    asyncio.run(main())
    return True


@dataclass
class Server:
    """A broker under test: where it listens, and which implementation it is."""

    kind: str
    port: int
    mosquitto: Mosquitto | None = None
    roost: BrokerThread | None = None


@pytest.fixture(params=["roost", "mosquitto"])
def server(
    request: pytest.FixtureRequest, make_broker: Callable[..., BrokerThread], tmp_path: Path
) -> Iterator[Server]:
    if request.param == "roost":
        thread = make_broker(allow_anonymous=True)
        yield Server("roost", thread.port, roost=thread)
        return
    broker = Mosquitto(tmp_path).start()
    try:
        yield Server("mosquitto", broker.port, mosquitto=broker)
    finally:
        broker.stop()


@pytest.fixture
def roost(make_broker: Callable[..., BrokerThread]) -> Server:
    thread = make_broker(allow_anonymous=True)
    return Server("roost", thread.port, roost=thread)


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Server]:
    broker = Mosquitto(tmp_path).start()
    try:
        yield Server("mosquitto", broker.port, mosquitto=broker)
    finally:
        broker.stop()


class LogWatcher(logging.Handler):
    """Collects the client's log lines; ``wait_for`` waits until one contains a text.

    The client logs every packet (at DEBUG, ``roost.client.packets``) and every
    connection (INFO), so tests wait on what the client saw instead of sleeping.
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self._changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        self._changed.set()

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)

    async def wait_for(self, text: str, count: int = 1, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while self.count(text) < count:
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
def client_log() -> Iterator[LogWatcher]:
    watcher = LogWatcher()
    logger = logging.getLogger("roost.client")
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(watcher)
    yield watcher
    logger.removeHandler(watcher)
    logger.setLevel(previous)


# WebSocket listeners.


@dataclass
class WsServer:
    """A broker with a plain MQTT listener (``port``), a ws and a wss listener."""

    kind: str
    port: int
    ws_port: int
    wss_port: int
    cafile: Path  # the CA that signed the wss listener's certificate (for localhost)


def server_certificate(directory: Path) -> tuple[Path, Path]:
    """(CA file, server certificate chain and key in one PEM) for localhost / 127.0.0.1."""
    ca = trustme.CA()
    cafile = directory / "ws-ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    server_pem = directory / "ws-server.pem"
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    leaf.private_key_and_cert_chain_pem.write_to_path(str(server_pem))
    return cafile, server_pem


def start_roost(*listeners: ListenerConfig, **overrides: Any) -> BrokerThread:
    """A Roost broker with exactly these listeners (stop it with ``.stop()``)."""
    overrides.setdefault("persistence", "memory")
    thread = BrokerThread(BrokerConfig(**overrides))
    thread.config.listeners = list(listeners)  # BrokerThread's one TCP listener, replaced
    return thread.start()


def listener_port(thread: BrokerThread, index: int) -> int:
    port: int = thread.broker.listeners[index].port
    return port


def _wait_listening(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(delay)  # not listening yet: look again, until the deadline
            delay = min(delay * 2, 0.1)


def mosquitto_with_websockets(directory: Path, server_pem: Path) -> tuple[Mosquitto, int, int]:
    """A started Mosquitto with ws and wss listeners: (broker, ws port, wss port).

    Mosquitto 2.0.11 refuses to start with only WebSocket listeners ("Unable to start
    any listening sockets"), so the usual MQTT listener stays first.
    """
    ws_port, wss_port = free_port(), free_port()
    config = (
        f"listener {ws_port} 127.0.0.1\nprotocol websockets\n"
        f"listener {wss_port} 127.0.0.1\nprotocol websockets\n"
        f"certfile {server_pem}\nkeyfile {server_pem}\n"
    )
    broker = Mosquitto(directory, config).start()
    for port in (ws_port, wss_port):
        _wait_listening(port)
    return broker, ws_port, wss_port


@pytest.fixture(params=["roost", "mosquitto"])
def ws_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WsServer]:
    cafile, server_pem = server_certificate(tmp_path)
    if request.param == "roost":
        thread = start_roost(
            ListenerConfig(port=0),
            ListenerConfig(port=0, type="ws"),
            ListenerConfig(port=0, type="wss", certfile=str(server_pem)),
            allow_anonymous=True,
        )
        try:
            tcp, ws, wss = (listener_port(thread, index) for index in range(3))
            yield WsServer("roost", tcp, ws, wss, cafile)
        finally:
            thread.stop()
        return
    broker, ws_port, wss_port = mosquitto_with_websockets(tmp_path, server_pem)
    try:
        yield WsServer("mosquitto", broker.port, ws_port, wss_port, cafile)
    finally:
        broker.stop()
