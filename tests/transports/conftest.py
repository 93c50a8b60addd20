"""Fixtures for the transport tests: test certificates, brokers with chosen listeners,
and the broker's log."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from roost.broker.config import ListenerConfig
from tests.support.cleanup import close_all
from tests.transports.helpers import BrokerLog, ListenersBroker
from tests.transports.pki import Pki

StartBroker = Callable[..., ListenersBroker]


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


@pytest.fixture
def start_broker() -> Iterator[StartBroker]:
    """``start_broker(listener, ..., **config overrides)``: a running broker."""
    started: list[ListenersBroker] = []

    def start(*listeners: ListenerConfig, **overrides: Any) -> ListenersBroker:
        thread = ListenersBroker(listeners, **overrides)
        thread.start()
        started.append(thread)
        return thread

    yield start
    try:
        close_all()  # the clients go first, while their broker still runs
    finally:
        for thread in started:
            thread.stop()


@pytest.fixture
def broker_log(caplog: pytest.LogCaptureFixture) -> BrokerLog:
    return BrokerLog(caplog)
