"""$SYS/broker/... topics in Mosquitto's naming, published every sys_interval."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from roost import __version__
from roost.broker.stats import DropReason
from roost.codec import MQTT_5, Disconnect, Publish, Subscribe, Subscription
from tests.support.broker_thread import BrokerThread
from tests.support.mosquitto_tools import mosquitto_sub
from tests.support.raw import (
    RawClient,
    connect,
    open_client,
    persistent,
    publish,
    subscribe,
    sync,
)
from tests.support.waiting import broker_now, wait_for_clock, wait_offline


def read_sys(client: RawClient, wanted: set[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    while not wanted <= values.keys():
        packet = client.recv()
        assert isinstance(packet, Publish)
        values[packet.topic] = packet.payload.decode()
    return values


def test_sys_topics_report_version_clients_and_messages(
    make_broker: Callable[..., BrokerThread],
) -> None:
    broker = make_broker(sys_interval=1.0)
    watcher = open_client(broker.port)
    watcher.connect("watcher")
    watcher.send(Subscribe(1, (Subscription("$SYS/broker/#"),)))
    watcher.recv()  # SUBACK
    first = read_sys(watcher, {"$SYS/broker/version", "$SYS/broker/clients/connected"})
    assert first["$SYS/broker/version"] == f"roost version {__version__}"
    publisher = open_client(broker.port)
    publisher.connect("publisher")
    for _ in range(3):
        publisher.send(Publish("some/topic", b"x"))
    # Values change within a few intervals: connected clients and received messages.
    later: dict[str, str] = {}
    expected = {"$SYS/broker/messages/received": "3", "$SYS/broker/clients/connected": "2"}
    while any(later.get(topic) != value for topic, value in expected.items()):
        packet = watcher.recv(timeout=5)
        assert isinstance(packet, Publish)
        later[packet.topic] = packet.payload.decode()
    publisher.close()
    watcher.close()


def test_sys_topics_are_not_matched_by_a_leading_wildcard(broker: BrokerThread) -> None:
    """[MQTT-4.7.2-1]: '#' alone does not match $SYS topics."""
    result = mosquitto_sub(broker.port, "-t", "#", "-W", "2", "-v", check=False)
    assert "$SYS" not in result.stdout


def test_sys_version_is_retained_for_mosquitto_sub(broker: BrokerThread) -> None:
    result = mosquitto_sub(
        broker.port, "-t", "$SYS/broker/version", "-C", "1", "-W", "5", check=False
    )
    assert result.stdout.strip() == f"roost version {__version__}"


def test_dropped_messages_are_counted_per_reason_in_sys_and_logged_with_the_client(
    make_broker: Callable[..., BrokerThread],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="roost.broker")
    acl = tmp_path / "acl"
    # Anonymous clients: everything but reading "acl/closed".
    acl.write_text(
        "topic read acl/open\ntopic write acl/#\ntopic readwrite q/#\n"
        "topic readwrite big/#\ntopic readwrite e/#\ntopic read $SYS/#\n"
    )
    broker = make_broker(sys_interval=0.2, acl_file=str(acl), max_queued_messages=1)
    # acl_denied: subscribed to acl/#, may read only acl/open.
    reader = connect(broker.port, MQTT_5, "reader")
    subscribe(reader, Subscription("acl/#", 1))
    # queue_full: offline, room for one message.
    queuer = connect(broker.port, MQTT_5, "queuer", **persistent(MQTT_5))
    subscribe(queuer, Subscription("q/#", 1), Subscription("e/#", 1))
    queuer.send(Disconnect())
    queuer.expect_closed()
    wait_offline(broker, "queuer")
    # too_large: takes packets of 64 bytes at most.
    small = connect(broker.port, MQTT_5, "small", maximum_packet_size=64)
    subscribe(small, Subscription("big/#", 0))
    pub = connect(broker.port, MQTT_5, "pub")
    publish(pub, Publish("acl/closed", b"no", qos=1, packet_id=1))
    publish(pub, Publish("q/1", b"kept", qos=1, packet_id=2))
    publish(pub, Publish("q/2", b"no room", qos=1, packet_id=3))
    publish(pub, Publish("big/x", b"x" * 100, qos=0))
    sync(pub)
    expected = {
        "$SYS/broker/messages/dropped/acl_denied": "1",
        "$SYS/broker/messages/dropped/queue_full": "1",
        "$SYS/broker/messages/dropped/too_large": "1",
        "$SYS/broker/messages/dropped/expired": "0",
        "$SYS/broker/messages/dropped/slow_client": "0",
        "$SYS/broker/publish/messages/dropped": "3",
    }
    watcher = connect(broker.port, MQTT_5, "watcher")
    subscribe(
        watcher,
        Subscription("$SYS/broker/messages/dropped/#", 0),
        Subscription("$SYS/broker/publish/messages/dropped", 0),
    )
    seen: dict[str, str] = {}
    while any(seen.get(topic) != value for topic, value in expected.items()):
        packet = watcher.recv(timeout=5)
        assert isinstance(packet, Publish)
        seen[packet.topic] = packet.payload.decode()
    messages = [record.getMessage() for record in caplog.records]
    for line in (
        "Dropped a message on 'acl/closed' for client reader: acl_denied.",
        "Dropped a message on 'q/2' for client queuer: queue_full.",
        "Dropped a message on 'big/x' for client small: too_large.",
    ):
        assert line in messages


def test_a_message_that_expires_while_queued_is_counted_as_expired(
    make_broker: Callable[..., BrokerThread],
) -> None:
    broker = make_broker(sys_interval=0.0)
    sub = connect(broker.port, MQTT_5, "sub", **persistent(MQTT_5))
    subscribe(sub, Subscription("e/#", 1))
    sub.send(Disconnect())
    sub.expect_closed()
    wait_offline(broker, "sub")
    pub = connect(broker.port, MQTT_5, "pub")
    publish(pub, Publish("e/1", b"brief", qos=1, packet_id=1, message_expiry_interval=1))
    wait_for_clock(broker, broker_now(broker) + 1.1)
    sub = connect(broker.port, MQTT_5, "sub", present=True, **persistent(MQTT_5))
    sync(sub)
    assert broker.call(lambda: broker.broker.stats.dropped[DropReason.EXPIRED]) == 1
