"""Connections the broker ends are logged as its doing, with the reason, and counted in
``$SYS/broker/connections/closed_by_broker/<reason>``; a client that leaves is not."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from roost.codec import MQTT_3_1_1, MQTT_5, Connect, Publish, Pubrec, Subscribe, Subscription
from tests.support.broker_thread import BrokerThread
from tests.support.raw import connect, drop, expect_disconnect
from tests.support.waiting import wait_offline, wait_until

BROKER_CLOSED = "Broker closed the connection of client"


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in list(caplog.records)]


def closed_by_broker(broker: BrokerThread) -> dict[str, int]:
    return broker.call(lambda: dict(broker.broker.stats.closed_by_broker))


def test_receive_maximum_exceeded_is_logged_as_the_brokers_close(
    make_broker: Callable[..., BrokerThread], caplog: pytest.LogCaptureFixture
) -> None:
    """An MQTT 5 client over the Receive Maximum it was told: DISCONNECT 0x93, and a
    warning that names the client, its address and the reason, not "closed its
    connection" as if it had left."""
    caplog.set_level(logging.INFO, logger="roost")
    broker = make_broker(receive_maximum=1)
    bad = connect(broker.port, MQTT_5, "bad")
    bad.send(Publish("t", b"", 2, packet_id=1))
    assert bad.recv() == Pubrec(1, 0x10)
    bad.send(Publish("t", b"", 2, packet_id=2))
    expect_disconnect(bad, 0x93)
    wait_offline(broker, "bad")
    wait_until(lambda: any(BROKER_CLOSED in line for line in messages(caplog)))
    (line,) = [line for line in messages(caplog) if BROKER_CLOSED in line]
    assert line.startswith(f"{BROKER_CLOSED} bad (127.0.0.1:")
    assert line.endswith("): receive_maximum_exceeded, receive maximum exceeded.")
    record = next(r for r in caplog.records if BROKER_CLOSED in r.getMessage())
    assert record.levelno == logging.WARNING
    assert not [line for line in messages(caplog) if "bad closed its connection" in line]
    assert closed_by_broker(broker) == {"receive_maximum_exceeded": 1}


def test_a_protocol_violation_at_3_1_1_is_logged_and_counted(
    broker: BrokerThread, caplog: pytest.LogCaptureFixture
) -> None:
    """3.1.1 cannot be told why (the connection just closes); the log and the count say."""
    caplog.set_level(logging.INFO, logger="roost")
    bad = connect(broker.port, MQTT_3_1_1, "twice")
    bad.send(Connect("twice", MQTT_3_1_1))
    expect_disconnect(bad, None, MQTT_3_1_1)
    wait_offline(broker, "twice")
    wait_until(lambda: any(BROKER_CLOSED in line for line in messages(caplog)))
    (line,) = [line for line in messages(caplog) if BROKER_CLOSED in line]
    assert "twice" in line
    assert line.endswith("): protocol_error, protocol violation.")
    assert not [line for line in messages(caplog) if "closed its connection" in line]
    assert closed_by_broker(broker) == {"protocol_error": 1}


def test_a_client_that_leaves_is_not_counted_as_closed_by_the_broker(
    broker: BrokerThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="roost")
    client = connect(broker.port, MQTT_3_1_1, "leaving")
    drop(client)
    wait_offline(broker, "leaving")
    wait_until(lambda: any("leaving closed its connection" in m for m in messages(caplog)))
    assert not [line for line in messages(caplog) if BROKER_CLOSED in line]
    assert closed_by_broker(broker) == {}


def test_closes_by_reason_are_published_in_sys(make_broker: Callable[..., BrokerThread]) -> None:
    broker = make_broker(sys_interval=0.1)
    watcher = connect(broker.port, MQTT_3_1_1, "watcher")
    watcher.send(Subscribe(1, (Subscription("$SYS/broker/connections/#"),)))
    watcher.recv()  # SUBACK
    for _ in range(2):
        bad = connect(broker.port, MQTT_3_1_1, "twice")
        bad.send(Connect("twice", MQTT_3_1_1))
        expect_disconnect(bad, None, MQTT_3_1_1)
    topic = "$SYS/broker/connections/closed_by_broker/protocol_error"
    values: dict[str, str] = {}
    while values.get(topic) != "2":
        packet = watcher.recv()
        assert isinstance(packet, Publish), packet
        values[packet.topic] = packet.payload.decode()
    assert values["$SYS/broker/connections/paused/store"] == "0"
