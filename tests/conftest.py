"""Shared fixtures: a real broker on port 0 and real clients to talk to it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from roost.broker.config import BrokerConfig
from tests.support.broker_thread import BrokerThread


@pytest.fixture
def make_broker() -> Iterator[Callable[..., BrokerThread]]:
    """Start brokers with config overrides: ``make_broker(max_queued_messages=5)``."""
    started: list[BrokerThread] = []

    def start(**overrides: object) -> BrokerThread:
        config = BrokerConfig(**overrides)  # type: ignore[arg-type]
        thread = BrokerThread(config).start()
        started.append(thread)
        return thread

    yield start
    for thread in started:
        thread.stop()


@pytest.fixture
def broker(make_broker: Callable[..., BrokerThread]) -> BrokerThread:
    return make_broker()
