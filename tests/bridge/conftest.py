"""Fixtures for the bridge tests: Roost brokers with bridges, Mosquitto as the remote."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from roost.broker.bridge_config import BridgeConfig, BridgeTopic
from roost.broker.config import BrokerConfig
from tests.support.broker_thread import BrokerThread
from tests.support.mosquitto import Mosquitto

StartRoost = Callable[..., BrokerThread]


def bridge(port: int, *topics: BridgeTopic, **options: Any) -> BridgeConfig:
    """A bridge named "up" to 127.0.0.1:port, reconnecting quickly."""
    options.setdefault("addresses", [f"127.0.0.1:{port}"])
    options.setdefault("restart_timeout", [0.05, 0.2])
    options.setdefault("client_id", "roost-edge")
    return BridgeConfig(name="up", topics=list(topics), **options)


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[Mosquitto]:
    directory = tmp_path / "mosquitto"
    directory.mkdir()
    broker = Mosquitto(directory).start()
    yield broker
    broker.stop()


@pytest.fixture
def start_roost() -> Iterator[StartRoost]:
    """``start_roost(bridges=[...], **config)``: a Roost broker thread, stopped at the end."""
    started: list[BrokerThread] = []

    def start(**overrides: Any) -> BrokerThread:
        overrides.setdefault("persistence", "memory")
        thread = BrokerThread(BrokerConfig(**overrides)).start()
        started.append(thread)
        return thread

    yield start
    for thread in started:
        thread.stop()
