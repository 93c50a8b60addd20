"""What the client and CLI tests share: async test functions, and the brokers to test
against (Roost in a thread, a real Mosquitto process), as one parametrized fixture.

``async def`` tests run in a fresh event loop each, under a deadline, through the
``pytest_pyfunc_call`` hook that the conftest modules of tests/client and tests/cli
take from here (no async pytest plugin is installed).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.broker_thread import BrokerThread
from tests.support.mosquitto import Mosquitto

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
