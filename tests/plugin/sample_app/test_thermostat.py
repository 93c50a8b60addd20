"""The sample application's tests, written as a user of Roost's pytest plugin would.

They run twice: directly in Roost's suite, and in a fresh pytest process through
``pytester`` (tests/plugin/test_plugin.py), as in a project that only installed Roost.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from roost.broker import Broker, ListenerConfig
from roost.client import Client
from roost.testing import RunningBroker, wait_for_message
from roost.testing.pytest_plugin import BrokerFactory

from .thermostat import report, watch_temperatures


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # Roost's client is asyncio's


async def start_thermostat(broker: RunningBroker) -> asyncio.Task[None]:
    ready = asyncio.Event()
    task = asyncio.create_task(watch_temperatures(broker.host, broker.port, ready))
    await asyncio.wait_for(ready.wait(), 5)
    return task


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# A plain test: the broker fixture needs no async plugin.


def test_report_publishes_a_retained_reading(roost_broker: RunningBroker) -> None:
    with roost_broker.watch("sensors/#") as watcher:
        report(roost_broker.host, roost_broker.port, "kitchen", 21.5)
        message = watcher.get(timeout=5)
    assert (message.topic, message.text) == ("sensors/kitchen/temperature", "21.5")
    with roost_broker.watch("sensors/kitchen/temperature") as late:
        assert late.get(timeout=5).retain  # kept for those who subscribe later


# Async tests under pytest-asyncio, with the connected client fixture.


@pytest.mark.asyncio
async def test_a_hot_room_raises_an_alert(
    roost_broker: RunningBroker, roost_client: Client
) -> None:
    await roost_client.subscribe("alerts/#", qos=1)
    task = await start_thermostat(roost_broker)
    roost_broker.publish("sensors/attic/temperature", "31.0", qos=1)
    alert = await wait_for_message(roost_client, "alerts/#", timeout=5)
    assert (alert.topic, alert.text) == ("alerts/attic", "attic: 31.0")
    await stop(task)


@pytest.mark.asyncio
async def test_the_threshold_comes_from_a_retained_message(
    roost_broker: RunningBroker, roost_client: Client
) -> None:
    roost_broker.publish("config/threshold", "35", qos=1, retain=True)
    await roost_client.subscribe("alerts/#", qos=1)
    task = await start_thermostat(roost_broker)
    watcher = roost_broker.watch("sensors/#")
    roost_broker.publish("sensors/attic/temperature", "31.0", qos=1)
    roost_broker.publish("sensors/attic/temperature", "36.0", qos=1)
    assert [(await watcher.next()).text for _ in range(2)] == ["31.0", "36.0"]
    alert = await wait_for_message(roost_client, "alerts/#", timeout=5)
    assert alert.text == "attic: 36.0"  # 31 was below the retained threshold
    await stop(task)


# The same under anyio (its asyncio backend).


@pytest.mark.anyio
async def test_under_anyio(roost_broker: RunningBroker, roost_client: Client) -> None:
    await roost_client.subscribe("alerts/#", qos=1)
    task = await start_thermostat(roost_broker)
    await roost_client.publish("sensors/hall/temperature", "40", qos=1)
    alert = await wait_for_message(roost_client, "alerts/hall", timeout=5)
    assert alert.text == "hall: 40"
    await stop(task)


# The broker in the test's own event loop: its state read directly.


async def check_in_loop_broker(broker: Broker) -> None:
    assert broker._loop is asyncio.get_running_loop()
    async with Client("127.0.0.1", broker.port) as client:
        await client.publish("config/threshold", "30", qos=1, retain=True)
    assert broker.router.retained_topics("config/#") == ["config/threshold"]


@pytest.mark.asyncio
async def test_a_broker_in_the_tests_loop(roost_async_broker: Broker) -> None:
    await check_in_loop_broker(roost_async_broker)


@pytest.mark.anyio
async def test_a_broker_in_the_tests_loop_under_anyio(roost_async_broker: Broker) -> None:
    await check_in_loop_broker(roost_async_broker)


# Custom configuration, and every listener's port.


@pytest.fixture
async def websocket_client(roost_broker_factory: BrokerFactory) -> AsyncIterator[Client]:
    broker = roost_broker_factory(
        listeners=[
            ListenerConfig(port=0),
            ListenerConfig(port=0, type="ws", name="browsers"),
        ],
        max_queued_messages=10,
    )
    port = broker.ports.by_name("browsers")
    async with Client(broker.host, port, transport="websockets") as client:
        yield client


@pytest.mark.anyio
async def test_a_client_over_websocket(websocket_client: Client) -> None:
    await websocket_client.subscribe("sensors/#")
    await websocket_client.publish("sensors/porch/temperature", "12")
    message = await wait_for_message(websocket_client, timeout=5)
    assert message.text == "12"


# One broker for the session: tests share it, so each uses topics of its own.


@pytest.mark.parametrize("room", ["one", "two"])
def test_the_session_broker_is_shared(roost_session_broker: RunningBroker, room: str) -> None:
    with roost_session_broker.watch(f"session/{room}/#") as watcher:
        assert roost_session_broker.publish(f"session/{room}/x", room) == 1
        assert watcher.get().text == room
