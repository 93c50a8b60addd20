"""Retained messages end to end: stored, replaced, deleted, and sent to new subscribers.

Statement ids name their specification: "(3.1.1)" is OASIS MQTT 3.1.1, "(5.0)" is
OASIS MQTT 5.0 (the two number the RETAIN statements differently).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from roost.codec import (
    MQTT_3_1,
    MQTT_3_1_1,
    MQTT_5,
    Disconnect,
    Publish,
    Subscription,
    Unsuback,
    Unsubscribe,
)
from tests.support.broker_thread import BrokerThread
from tests.support.mosquitto_tools import finish, mosquitto_pub, start_mosquitto_sub
from tests.support.paho import PahoClient
from tests.support.raw import connect, persistent, publish, recv_publish, subscribe_and_sync, sync
from tests.support.waiting import broker_now, wait_for_clock, wait_offline, wait_session_gone

ALL_VERSIONS = [MQTT_3_1, MQTT_3_1_1, MQTT_5]


def retained_count(broker: BrokerThread) -> int:
    """Retained messages outside $SYS (which the broker itself keeps retained)."""
    return broker.call(lambda: len(broker.broker.router.retained_topics("#")))


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_retained_message_is_sent_to_a_new_subscriber_with_retain_set(
    broker: BrokerThread, version: int
) -> None:
    """(3.1.1) [MQTT-3.3.1-5] stored, [MQTT-3.3.1-6] sent to a new subscription,
    [MQTT-3.3.1-8] with RETAIN 1. (5.0) [MQTT-3.3.1-5], [MQTT-3.3.1-9] and 3.3.1.3:
    "These messages are sent with the RETAIN flag set to 1"."""
    pub = connect(broker.port, version, "pub")
    publish(pub, Publish("r/a", b"v1", retain=True))
    sub = connect(broker.port, version, "sub")
    assert subscribe_and_sync(sub, Subscription("r/+")) == [Publish("r/a", b"v1", retain=True)]
    # A later message on the established subscription: RETAIN 0 even though it was
    # published retained, (3.1.1) [MQTT-3.3.1-9]; (5.0) [MQTT-3.3.1-12] (RAP 0).
    publish(pub, Publish("r/a", b"v2", retain=True))
    assert recv_publish(sub) == Publish("r/a", b"v2")
    pub.close()
    sub.close()


@pytest.mark.parametrize("version", [MQTT_3_1_1, MQTT_5])
def test_retained_message_is_replaced(broker: BrokerThread, version: int) -> None:
    """(5.0) [MQTT-3.3.1-5]: the Server MUST replace any existing retained message."""
    pub = connect(broker.port, version, "pub")
    publish(pub, Publish("r/b", b"old", retain=True))
    publish(pub, Publish("r/b", b"new", retain=True))
    sub = connect(broker.port, version, "sub")
    assert subscribe_and_sync(sub, Subscription("r/b")) == [Publish("r/b", b"new", retain=True)]
    assert retained_count(broker) == 1
    pub.close()
    sub.close()


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_empty_retained_payload_deletes_and_is_forwarded_normally(
    broker: BrokerThread, version: int
) -> None:
    """(3.1.1) [MQTT-3.3.1-10] and [MQTT-3.3.1-11]; (5.0) [MQTT-3.3.1-6] and
    [MQTT-3.3.1-7]: a zero-byte retained PUBLISH is delivered as usual to current
    subscribers, removes the retained message, and is not itself stored."""
    pub = connect(broker.port, version, "pub")
    current = connect(broker.port, version, "current")
    subscribe_and_sync(current, Subscription("r/c"))
    publish(pub, Publish("r/c", b"v1", retain=True))
    assert recv_publish(current) == Publish("r/c", b"v1")
    assert retained_count(broker) == 1
    publish(pub, Publish("r/c", b"", retain=True))
    assert recv_publish(current) == Publish("r/c", b"")
    assert retained_count(broker) == 0
    later = connect(broker.port, version, "later")
    assert subscribe_and_sync(later, Subscription("r/#")) == []
    pub.close()
    current.close()
    later.close()


@pytest.mark.parametrize("version", [MQTT_3_1_1, MQTT_5])
def test_a_retained_qos_0_message_replaces_the_previous_one(
    broker: BrokerThread, version: int
) -> None:
    """(3.1.1) [MQTT-3.3.1-7]: a retained QoS 0 message discards the message retained
    before it on its topic, whatever that one's QoS, and is kept in its place (as
    (5.0) [MQTT-3.3.1-5] has for every QoS)."""
    pub = connect(broker.port, version, "pub")
    publish(pub, Publish("r/z", b"old", 2, retain=True, packet_id=1))
    publish(pub, Publish("r/z", b"new", 0, retain=True))
    sub = connect(broker.port, version, "sub")
    assert subscribe_and_sync(sub, Subscription("r/z", 2)) == [Publish("r/z", b"new", retain=True)]
    assert retained_count(broker) == 1


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_retained_messages_outlive_the_sessions_around_them(
    broker: BrokerThread, version: int
) -> None:
    """(3.1.1) [MQTT-3.1.2.7]: retained messages are not session state, so the end of a
    session deletes none: neither the end of the publisher's (Clean Session 1, then
    DISCONNECT) nor that of a subscriber's that received it."""
    pub = connect(broker.port, version, "pub")
    publish(pub, Publish("r/kept", b"stays", retain=True))
    pub.send(Disconnect())
    assert pub.expect_closed() == []
    first = connect(broker.port, version, "first")
    assert subscribe_and_sync(first, Subscription("r/kept")) == [
        Publish("r/kept", b"stays", retain=True)
    ]
    first.close()
    wait_session_gone(broker, "pub")
    wait_session_gone(broker, "first")
    later = connect(broker.port, version, "later")
    assert subscribe_and_sync(later, Subscription("r/#")) == [
        Publish("r/kept", b"stays", retain=True)
    ]


@pytest.mark.parametrize("version", [MQTT_3_1_1, MQTT_5])
def test_non_retained_publish_leaves_the_retained_message_alone(
    broker: BrokerThread, version: int
) -> None:
    """(3.1.1) [MQTT-3.3.1-12]; (5.0) [MQTT-3.3.1-8]: RETAIN 0 neither stores nor
    removes nor replaces, an empty payload included."""
    pub = connect(broker.port, version, "pub")
    publish(pub, Publish("r/d", b"kept", retain=True))
    publish(pub, Publish("r/d", b"live"))
    publish(pub, Publish("r/d", b""))
    publish(pub, Publish("r/e", b"never stored"))
    sub = connect(broker.port, version, "sub")
    assert subscribe_and_sync(sub, Subscription("r/#")) == [Publish("r/d", b"kept", retain=True)]
    pub.close()
    sub.close()


@pytest.mark.parametrize("version", [MQTT_3_1_1, MQTT_5])
@pytest.mark.parametrize(("stored_qos", "granted_qos"), [(2, 1), (1, 2), (2, 0), (0, 2), (2, 2)])
def test_retained_message_is_delivered_at_the_lower_qos(
    broker: BrokerThread, version: int, stored_qos: int, granted_qos: int
) -> None:
    """(3.1.1) [MQTT-3.3.1-5] stores the QoS and [MQTT-3.8.4-6]; (5.0) [MQTT-3.8.4-8]:
    delivered at min(QoS of the published message, granted QoS)."""
    pub = connect(broker.port, version, "pub")
    publish(pub, Publish("r/q", b"m", stored_qos, retain=True, packet_id=stored_qos and 7))
    sub = connect(broker.port, version, "sub")
    qos = min(stored_qos, granted_qos)
    [retained] = subscribe_and_sync(sub, Subscription("r/q", granted_qos))
    assert retained == Publish("r/q", b"m", qos, retain=True, packet_id=retained.packet_id)
    assert (retained.packet_id != 0) == (qos > 0)
    pub.close()
    sub.close()


@pytest.mark.parametrize("version", [MQTT_3_1_1, MQTT_5])
def test_resubscribing_resends_retained_messages(broker: BrokerThread, version: int) -> None:
    """(3.1.1) [MQTT-3.8.4-3]: a SUBSCRIBE replacing a subscription re-sends the
    retained messages; (5.0) [MQTT-3.8.4-4] the same with Retain Handling 0."""
    pub = connect(broker.port, version, "pub")
    publish(pub, Publish("r/s", b"m", retain=True))
    sub = connect(broker.port, version, "sub")
    expected = [Publish("r/s", b"m", retain=True)]
    assert subscribe_and_sync(sub, Subscription("r/s")) == expected
    assert subscribe_and_sync(sub, Subscription("r/s"), packet_id=2) == expected
    pub.close()
    sub.close()


def test_retain_handling_0_sends_on_every_subscribe(broker: BrokerThread) -> None:
    """(5.0) [MQTT-3.3.1-9]."""
    pub = connect(broker.port, MQTT_5, "pub")
    publish(pub, Publish("rh/0", b"m", retain=True))
    sub = connect(broker.port, MQTT_5, "sub")
    for packet_id in (1, 2):
        got = subscribe_and_sync(sub, Subscription("rh/#", retain_handling=0), packet_id=packet_id)
        assert got == [Publish("rh/0", b"m", retain=True)]
    pub.close()
    sub.close()


def test_retain_handling_1_sends_only_for_a_new_subscription(broker: BrokerThread) -> None:
    """(5.0) [MQTT-3.3.1-10]: sent if the subscription did not exist, not when it did."""
    pub = connect(broker.port, MQTT_5, "pub")
    publish(pub, Publish("rh/1", b"m", retain=True))
    sub = connect(broker.port, MQTT_5, "sub")
    rh1 = Subscription("rh/#", 1, retain_handling=1)
    assert subscribe_and_sync(sub, rh1) == [Publish("rh/1", b"m", retain=True)]
    # The same filter again, even with other options: the subscription existed.
    assert subscribe_and_sync(sub, rh1, packet_id=2) == []
    assert subscribe_and_sync(sub, Subscription("rh/#", 0, retain_handling=1), packet_id=3) == []
    # After an UNSUBSCRIBE it is new again.
    sub.send(Unsubscribe(4, ("rh/#",)))
    assert sub.recv() == Unsuback(4, (0,))
    assert subscribe_and_sync(sub, rh1, packet_id=5) == [Publish("rh/1", b"m", retain=True)]
    pub.close()
    sub.close()


def test_retain_handling_1_in_a_resumed_session_is_not_new(broker: BrokerThread) -> None:
    """(5.0) [MQTT-3.3.1-10]: a subscription kept in the session still exists."""
    pub = connect(broker.port, MQTT_5, "pub")
    publish(pub, Publish("rh/k", b"m", retain=True))
    sub = connect(broker.port, MQTT_5, "keeper", session_expiry_interval=60)
    rh1 = Subscription("rh/k", retain_handling=1)
    assert subscribe_and_sync(sub, rh1) == [Publish("rh/k", b"m", retain=True)]
    sub.close()
    wait_offline(broker, "keeper")
    again = connect(broker.port, MQTT_5, "keeper", present=True, **persistent(MQTT_5))
    assert subscribe_and_sync(again, rh1, packet_id=2) == []
    pub.close()
    again.close()


def test_retain_handling_2_never_sends(broker: BrokerThread) -> None:
    """(5.0) [MQTT-3.3.1-11]."""
    pub = connect(broker.port, MQTT_5, "pub")
    publish(pub, Publish("rh/2", b"m", retain=True))
    sub = connect(broker.port, MQTT_5, "sub")
    assert subscribe_and_sync(sub, Subscription("rh/#", retain_handling=2)) == []
    assert subscribe_and_sync(sub, Subscription("rh/#", retain_handling=2), packet_id=2) == []
    # The subscription works for new messages all the same.
    publish(pub, Publish("rh/2", b"live"))
    assert recv_publish(sub) == Publish("rh/2", b"live")
    pub.close()
    sub.close()


@pytest.mark.parametrize("retain_as_published", [False, True])
def test_retain_as_published(broker: BrokerThread, retain_as_published: bool) -> None:
    """(5.0) [MQTT-3.3.1-12] RAP 0 clears RETAIN on forwarding, [MQTT-3.3.1-13] RAP 1
    keeps it as published; retained messages sent because of the subscription carry
    RETAIN 1 either way (3.3.1.3)."""
    pub = connect(broker.port, MQTT_5, "pub")
    publish(pub, Publish("rap/x", b"stored", retain=True))
    sub = connect(broker.port, MQTT_5, "sub")
    option = Subscription("rap/#", retain_as_published=retain_as_published)
    assert subscribe_and_sync(sub, option) == [Publish("rap/x", b"stored", retain=True)]
    publish(pub, Publish("rap/x", b"retained", retain=True))
    publish(pub, Publish("rap/x", b"plain"))
    assert recv_publish(sub) == Publish("rap/x", b"retained", retain=retain_as_published)
    assert recv_publish(sub) == Publish("rap/x", b"plain")
    pub.close()
    sub.close()


def test_retain_as_published_merges_over_overlapping_subscriptions(broker: BrokerThread) -> None:
    """(5.0) [MQTT-3.3.4-2]: one delivery for overlapping subscriptions; one of them
    with RAP 1 keeps the RETAIN flag ([MQTT-3.3.1-13])."""
    pub = connect(broker.port, MQTT_5, "pub")
    sub = connect(broker.port, MQTT_5, "sub")
    subscribe_and_sync(
        sub,
        Subscription("rap/+", retain_handling=2),
        Subscription("rap/#", retain_as_published=True, retain_handling=2),
    )
    publish(pub, Publish("rap/y", b"m", retain=True))
    assert recv_publish(sub) == Publish("rap/y", b"m", retain=True)
    assert sync(sub) == []
    pub.close()
    sub.close()


def test_max_retained_messages_caps_new_topics_only(
    make_broker: Callable[..., BrokerThread],
) -> None:
    """At the cap a new topic is not stored; existing ones can still be replaced and
    deleted, and live delivery is unaffected (a broker limit, not a protocol rule)."""
    broker = make_broker(max_retained_messages=2)
    pub = connect(broker.port, MQTT_5, "pub")
    live = connect(broker.port, MQTT_5, "live")
    subscribe_and_sync(live, Subscription("cap/#"))
    for topic in ("cap/1", "cap/2", "cap/3"):
        publish(pub, Publish(topic, b"first", retain=True))
        assert recv_publish(live) == Publish(topic, b"first")
    assert retained_count(broker) == 2

    def retained_now() -> dict[str, bytes]:
        client = connect(broker.port, MQTT_5, "probe")
        got = subscribe_and_sync(client, Subscription("cap/#"))
        client.close()
        return {p.topic: p.payload for p in got}

    assert retained_now() == {"cap/1": b"first", "cap/2": b"first"}
    publish(pub, Publish("cap/1", b"second", retain=True))
    assert retained_now() == {"cap/1": b"second", "cap/2": b"first"}
    publish(pub, Publish("cap/2", b"", retain=True))
    publish(pub, Publish("cap/3", b"now fits", retain=True))
    assert retained_now() == {"cap/1": b"second", "cap/3": b"now fits"}
    pub.close()
    live.close()


def test_expired_retained_message_is_not_delivered(broker: BrokerThread) -> None:
    """(5.0) [MQTT-3.3.2-5]: past its Message Expiry Interval a retained message is
    not sent to new subscribers; before that it is sent with the remaining interval
    ([MQTT-3.3.2-6])."""
    pub = connect(broker.port, MQTT_5, "pub")
    published_at = broker_now(broker)
    publish(pub, Publish("exp/r", b"short", 1, True, packet_id=1, message_expiry_interval=1))
    publish(pub, Publish("exp/k", b"long", 1, True, packet_id=2, message_expiry_interval=100))
    sub = connect(broker.port, MQTT_5, "sub")
    got = subscribe_and_sync(sub, Subscription("exp/r"))
    assert got == [Publish("exp/r", b"short", retain=True, message_expiry_interval=1)]
    wait_for_clock(broker, published_at + 1.2)
    [long] = subscribe_and_sync(sub, Subscription("exp/#"), packet_id=2)
    assert long == Publish(
        "exp/k", b"long", retain=True, message_expiry_interval=long.message_expiry_interval
    )
    # More than a second has passed: at most 99 of the 100 seconds are left.
    assert long.message_expiry_interval is not None
    assert 90 <= long.message_expiry_interval <= 99
    assert retained_count(broker) == 1  # the expired one is gone from the store
    pub.close()
    sub.close()


@pytest.mark.parametrize("version", ["mqttv31", "mqttv311", "mqttv5"])
def test_mosquitto_pub_retained_reaches_mosquitto_sub(broker: BrokerThread, version: str) -> None:
    """(3.1.1) [MQTT-3.3.1-5], [MQTT-3.3.1-6], [MQTT-3.3.1-8], [MQTT-3.3.1-10] with
    Mosquitto's clients: -r stores, a later mosquitto_sub sees it with the retained
    flag (%r), and -r -n (an empty message) clears it."""
    port = broker.port
    mosquitto_pub(port, "-V", version, "-t", "mq/r", "-m", "hello", "-r", "-q", "1")
    sub = start_mosquitto_sub(port, "-V", version, "-t", "mq/#", "-C", "1", "-F", "%t %r %p")
    assert finish(sub) == ["mq/r 1 hello"]
    mosquitto_pub(port, "-V", version, "-t", "mq/r", "-r", "-n")
    empty = start_mosquitto_sub(port, "-V", version, "-t", "mq/#", "-C", "1", wait=1)
    assert finish(empty, timed_out_ok=True) == []
    assert retained_count(broker) == 0


@pytest.mark.parametrize("version", [MQTT_3_1_1, MQTT_5])
def test_paho_receives_retained_then_live(broker: BrokerThread, version: int) -> None:
    """(3.1.1) [MQTT-3.3.1-8] and [MQTT-3.3.1-9] seen by paho-mqtt: the retained copy
    has retain set, a live one on the same subscription does not."""
    publisher = PahoClient(broker.port, "paho-pub", version)
    publisher.publish("paho/r", b"stored", qos=1, retain=True)
    subscriber = PahoClient(broker.port, "paho-sub", version)
    subscriber.subscribe("paho/#", qos=1)
    first = subscriber.next_message()
    assert (first.topic, first.payload, first.retain, first.qos) == ("paho/r", b"stored", 1, 1)
    publisher.publish("paho/r", b"live", qos=1, retain=True)
    second = subscriber.next_message()
    assert (second.topic, second.payload, second.retain) == ("paho/r", b"live", 0)
    publisher.stop()
    subscriber.stop()


def test_paho_v3_and_v5_see_the_same_retained_message(broker: BrokerThread) -> None:
    """A retained message published at one protocol level is served at the other."""
    publisher = PahoClient(broker.port, "paho-pub", MQTT_3_1_1)
    publisher.publish("mix/r", b"across", qos=1, retain=True)
    subscriber = PahoClient(broker.port, "paho-sub5", MQTT_5)
    subscriber.subscribe("mix/r", qos=1)
    got = subscriber.next_message()
    assert (got.payload, got.retain) == (b"across", 1)
    publisher.stop()
    subscriber.stop()
