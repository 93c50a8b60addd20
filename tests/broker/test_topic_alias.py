"""MQTT 5 topic aliases sent by clients (MQTT 5.0 sections 3.3.2.3.4 and 3.3.4).

The receiver of a PUBLISH with a Topic Alias (3.3.4): an alias of 0 or above the
maximum is a Protocol Error answered with DISCONNECT 0x94; an alias with a topic name
sets (or replaces) the mapping; an alias with an empty topic name uses the mapping,
and without one it is a Protocol Error (DISCONNECT 0x82). The aliases the broker sends:
test_topic_alias_out.py.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from roost.codec import MQTT_3_1_1, MQTT_5, Connack, Publish, Subscription
from tests.support.broker_thread import BrokerThread
from tests.support.mosquitto_tools import finish, mosquitto_pub, start_mosquitto_sub
from tests.support.raw import (
    RawClient,
    connect,
    expect_disconnect,
    open_client,
    persistent,
    publish,
    recv_publish,
    subscribe_and_sync,
    sync,
)
from tests.support.waiting import wait_matched, wait_offline

TOPIC_ALIAS_INVALID = 0x94
PROTOCOL_ERROR = 0x82


def subscriber(broker: BrokerThread, version: int = MQTT_5) -> RawClient:
    client = connect(broker.port, version, "sub")
    subscribe_and_sync(client, Subscription("ta/#", 1))
    return client


@pytest.mark.parametrize("qos", [0, 1])
def test_alias_is_set_then_used_with_an_empty_topic(broker: BrokerThread, qos: int) -> None:
    """[MQTT-3.3.2-12]: the server accepts aliases 1..Topic Alias Maximum; 3.3.4: an
    empty topic name takes the alias's topic. Subscribers get the real topic name and
    no alias, having sent no Topic Alias Maximum ([MQTT-3.1.2-27])."""
    sub = subscriber(broker)
    pub = open_client(broker.port, MQTT_5)
    connack = pub.connect("pub")
    assert isinstance(connack, Connack)
    assert connack.topic_alias_maximum == 10
    packet_id = 1 if qos else 0
    publish(pub, Publish("ta/one", b"1", qos, packet_id=packet_id, topic_alias=1))
    publish(pub, Publish("", b"2", qos, packet_id=packet_id, topic_alias=1))
    # The highest alias the CONNACK allows.
    publish(pub, Publish("ta/ten", b"3", qos, packet_id=packet_id, topic_alias=10))
    publish(pub, Publish("", b"4", qos, packet_id=packet_id, topic_alias=10))
    publish(pub, Publish("", b"5", qos, packet_id=packet_id, topic_alias=1))
    for topic, payload in [
        ("ta/one", b"1"),
        ("ta/one", b"2"),
        ("ta/ten", b"3"),
        ("ta/ten", b"4"),
        ("ta/one", b"5"),
    ]:
        got = recv_publish(sub)
        assert got == Publish(topic, payload, qos, packet_id=got.packet_id)
    pub.close()


def test_a_topic_name_with_a_known_alias_replaces_the_mapping(broker: BrokerThread) -> None:
    """3.3.4 step 2b: a non-empty topic name with an alias already mapped updates the
    mapping."""
    sub = subscriber(broker)
    pub = connect(broker.port, MQTT_5, "pub")
    publish(pub, Publish("ta/first", b"1", topic_alias=3))
    publish(pub, Publish("ta/second", b"2", topic_alias=3))
    publish(pub, Publish("", b"3", topic_alias=3))
    assert [recv_publish(sub).topic for _ in range(3)] == ["ta/first", "ta/second", "ta/second"]


def test_v3_subscriber_gets_the_topic_of_an_aliased_publish(broker: BrokerThread) -> None:
    """A 3.1.1 subscriber sees the resolved topic name ([MQTT-3.3.2-3] in both
    versions: the topic name sent matches the subscription's filter)."""
    sub = subscriber(broker, MQTT_3_1_1)
    pub = connect(broker.port, MQTT_5, "pub")
    publish(pub, Publish("ta/v3", b"1", topic_alias=2))
    publish(pub, Publish("", b"2", topic_alias=2))
    assert recv_publish(sub) == Publish("ta/v3", b"1")
    assert recv_publish(sub) == Publish("ta/v3", b"2")


def test_alias_above_the_maximum_is_refused_with_0x94(broker: BrokerThread) -> None:
    """[MQTT-3.3.2-9] a client must not exceed the Topic Alias Maximum of the CONNACK;
    3.3.4: if it does, the server sends DISCONNECT 0x94 (Topic Alias invalid)."""
    sub = subscriber(broker)
    pub = connect(broker.port, MQTT_5, "pub")
    pub.send(Publish("ta/x", b"too high", topic_alias=11))
    expect_disconnect(pub, TOPIC_ALIAS_INVALID)
    assert sync(sub) == []  # nothing was delivered


def test_any_alias_is_refused_when_the_maximum_is_0(
    make_broker: Callable[..., BrokerThread],
) -> None:
    """[MQTT-3.2.2-18]: Topic Alias Maximum 0 means no aliases at all; one is above
    the maximum, so DISCONNECT 0x94 (3.3.4)."""
    broker = make_broker(topic_alias_maximum=0)
    pub = open_client(broker.port, MQTT_5)
    connack = pub.connect("pub")
    assert isinstance(connack, Connack)
    assert not connack.topic_alias_maximum
    pub.send(Publish("ta/x", b"m", topic_alias=1))
    expect_disconnect(pub, TOPIC_ALIAS_INVALID)
    pub.close()


def test_alias_0_is_refused_with_0x94(broker: BrokerThread) -> None:
    """[MQTT-3.3.2-8]: a sender must not send Topic Alias 0; receiving one
    is a Protocol Error answered with DISCONNECT 0x94 (3.3.4)."""
    pub = connect(broker.port, MQTT_5, "pub")
    pub.send(Publish("ta/x", b"m", topic_alias=0))
    expect_disconnect(pub, TOPIC_ALIAS_INVALID)


def test_unknown_alias_with_an_empty_topic_is_a_protocol_error(broker: BrokerThread) -> None:
    """3.3.4 step 3a: an empty topic name with an alias that has no mapping is a
    Protocol Error: DISCONNECT 0x82."""
    sub = subscriber(broker)
    pub = connect(broker.port, MQTT_5, "pub")
    publish(pub, Publish("ta/x", b"mapped", topic_alias=1))
    pub.send(Publish("", b"unmapped", topic_alias=2))
    expect_disconnect(pub, PROTOCOL_ERROR)
    assert recv_publish(sub) == Publish("ta/x", b"mapped", 0)
    assert sync(sub) == []


def test_empty_topic_without_an_alias_is_a_protocol_error(broker: BrokerThread) -> None:
    """3.3.4: "It is a Protocol Error if the Topic Name is zero length and there is no
    Topic Alias" (DISCONNECT 0x82)."""
    pub = connect(broker.port, MQTT_5, "pub")
    pub.send(Publish("", b"m"))
    expect_disconnect(pub, PROTOCOL_ERROR)


def test_aliases_do_not_carry_over_to_a_new_connection(broker: BrokerThread) -> None:
    """[MQTT-3.3.2-7]: Topic Alias mappings belong to a Network Connection, not to
    the session: resuming the session does not bring them back."""
    sub = subscriber(broker)
    first = connect(broker.port, MQTT_5, "pub", session_expiry_interval=60)
    publish(first, Publish("ta/kept?", b"1", topic_alias=4))
    assert recv_publish(sub).topic == "ta/kept?"
    first.close()
    wait_offline(broker, "pub")
    second = connect(broker.port, MQTT_5, "pub", present=True, **persistent(MQTT_5))
    second.send(Publish("", b"2", topic_alias=4))
    expect_disconnect(second, PROTOCOL_ERROR)
    assert sync(sub) == []


def test_mosquitto_pub_topic_alias_for_repeated_lines(broker: BrokerThread) -> None:
    """mosquitto_pub -l with -D publish topic-alias sends the topic once, with the
    alias, and then only the alias (an empty topic name); the subscriber, here
    mosquitto_sub, gets the real topic for every line ([MQTT-3.3.2-12])."""
    sub = start_mosquitto_sub(broker.port, "-V", "mqttv5", "-t", "ta/mq", "-C", "3", "-v")
    wait_matched(broker, "ta/mq", 1)
    lines = "one\ntwo\nthree\n"
    mosquitto_pub(
        broker.port,
        "-V",
        "mqttv5",
        "-t",
        "ta/mq",
        "-D",
        "publish",
        "topic-alias",
        "1",
        "-l",
        "-q",
        "1",
        input_text=lines,
    )
    assert finish(sub) == ["ta/mq one", "ta/mq two", "ta/mq three"]
