"""Shared fixtures: a real broker on port 0 and real clients to talk to it."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator

import pytest

from roost.broker.config import BrokerConfig
from tests.support.broker_thread import BrokerThread
from tests.support.cleanup import close_all


@pytest.fixture(autouse=True)
def close_clients() -> Iterator[None]:
    """Close what the support helpers opened (raw sockets, paho, mosquitto_sub), pass or fail."""
    yield
    close_all()


@pytest.fixture(autouse=True, scope="module")
def collect_leaks_per_module() -> Iterator[None]:
    """Collect garbage after each module, so a socket or file left unclosed by one of its
    tests warns (an error under ``filterwarnings = error``) at that module's last test,
    not in whichever later test the collector happens to run."""
    yield
    gc.collect()


@pytest.fixture
def make_broker() -> Iterator[Callable[..., BrokerThread]]:
    """Start brokers with config overrides: ``make_broker(max_queued_messages=5)``."""
    started: list[BrokerThread] = []

    def start(**overrides: object) -> BrokerThread:
        overrides.setdefault("persistence", "memory")  # tests/persistence asks for "sqlite"
        config = BrokerConfig(**overrides)  # type: ignore[arg-type]
        thread = BrokerThread(config).start()
        started.append(thread)
        return thread

    yield start
    try:
        close_all()  # the clients go first, while their broker still runs
    finally:
        for thread in started:
            thread.stop()


@pytest.fixture
def broker(make_broker: Callable[..., BrokerThread]) -> BrokerThread:
    return make_broker()
