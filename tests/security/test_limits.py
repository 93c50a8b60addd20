"""max_topic_length, max_topic_levels, max_subscriptions_per_client and
max_client_id_length, over real sockets.

How each refusal is answered (docs/security.md): an MQTT 5 PUBLISH at QoS 1/2 gets
PUBACK/PUBREC 0x90 "Topic Name invalid" and the connection stays; at QoS 0 there is no
acknowledgement to refuse with, so DISCONNECT 0x90. A will gets CONNACK 0x90. A filter
gets SUBACK 0x8F "Topic Filter invalid", a subscription over the quota SUBACK 0x97
"Quota exceeded". MQTT 3.1.x has no reason codes: a PUBLISH or will closes the
connection, a filter gets SUBACK 0x80.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from roost.broker.limits import TopicLimits
from roost.codec import (
    MQTT_3_1,
    MQTT_3_1_1,
    MQTT_5,
    Connack,
    Connect,
    Puback,
    Publish,
    Pubrec,
    Suback,
    Subscribe,
    Subscription,
    Unsuback,
    Unsubscribe,
    Will,
)
from tests.support.broker_thread import BrokerThread
from tests.support.raw import (
    RawClient,
    connect,
    expect_disconnect,
    open_client,
    publish,
    recv_publish,
    subscribe,
    sync,
)

VERSIONS = [MQTT_3_1, MQTT_3_1_1, MQTT_5]

# The limits of the brokers below: 32 bytes, 4 levels.
LIMITS = {"max_topic_length": 32, "max_topic_levels": 4}
LONGEST = "a" * 32
TOO_LONG = "a" * 33
DEEPEST = "a/b/c/d"
TOO_DEEP = "a/b/c/d/e"


@pytest.fixture
def limited(make_broker: Callable[..., BrokerThread]) -> BrokerThread:
    return make_broker(**LIMITS)


def watcher(port: int) -> RawClient:
    """A client subscribed to everything, to show what was (not) delivered."""
    client = connect(port, MQTT_5, "watcher")
    subscribe(client, Subscription("#", 1))
    return client


@pytest.mark.parametrize("topic", [LONGEST, DEEPEST, "é" * 16, "/" * 3])
@pytest.mark.parametrize("version", VERSIONS)
def test_topics_at_the_limits_are_delivered(
    limited: BrokerThread, version: int, topic: str
) -> None:
    # "é" is two UTF-8 bytes: 16 of them are exactly 32 bytes; "///" is 4 empty levels.
    everyone = watcher(limited.port)
    client = connect(limited.port, version, "publisher")
    publish(client, Publish(topic, b"fits", qos=1, packet_id=1))
    assert recv_publish(everyone).topic == topic


@pytest.mark.parametrize("topic", [TOO_LONG, TOO_DEEP, "é" * 17, "/" * 4])
@pytest.mark.parametrize("qos", [1, 2])
def test_publish_over_a_limit_is_refused_in_its_acknowledgement_5(
    limited: BrokerThread, topic: str, qos: int
) -> None:
    everyone = watcher(limited.port)
    client = connect(limited.port, MQTT_5, "publisher")
    client.send(Publish(topic, b"refused", qos=qos, packet_id=7))
    ack = client.recv()
    assert type(ack) is (Puback if qos == 1 else Pubrec)
    assert (ack.packet_id, ack.reason_code) == (7, 0x90)
    # The exchange is over (no PUBREL expected) and the connection goes on.
    publish(client, Publish("fine", b"next", qos=qos, packet_id=7))
    # The first the watcher gets is the second message: the first was not delivered.
    assert recv_publish(everyone).payload == b"next"


@pytest.mark.parametrize("topic", [TOO_LONG, TOO_DEEP])
def test_qos0_publish_over_a_limit_is_a_disconnect_5(limited: BrokerThread, topic: str) -> None:
    everyone = watcher(limited.port)
    client = connect(limited.port, MQTT_5, "publisher")
    client.send(Publish(topic, b"refused"))
    expect_disconnect(client, 0x90)
    assert sync(everyone) == []


@pytest.mark.parametrize("qos", [0, 1, 2])
@pytest.mark.parametrize("topic", [TOO_LONG, TOO_DEEP])
@pytest.mark.parametrize("version", [MQTT_3_1, MQTT_3_1_1])
def test_publish_over_a_limit_closes_the_connection_3(
    limited: BrokerThread, version: int, topic: str, qos: int
) -> None:
    everyone = watcher(limited.port)
    client = connect(limited.port, version, "publisher")
    client.send(Publish(topic, b"refused", qos=qos, packet_id=1 if qos else 0))
    expect_disconnect(client, None, version)
    assert sync(everyone) == []


@pytest.mark.parametrize("topic", [TOO_LONG, TOO_DEEP])
@pytest.mark.parametrize("version", VERSIONS)
def test_a_will_over_a_limit_is_refused_at_connect(
    limited: BrokerThread, version: int, topic: str
) -> None:
    client = open_client(limited.port, version)
    client.send(Connect("with-will", version, will=Will(topic, b"gone")))
    packets = client.expect_closed()
    if version == MQTT_5:
        assert len(packets) == 1
        connack = packets[0]
        assert isinstance(connack, Connack)
        assert connack.reason_code == 0x90
    else:
        # No return code says it: closed without a CONNACK (3.1.1 [MQTT-3.2.2-6]).
        assert packets == []


@pytest.mark.parametrize("version", VERSIONS)
def test_filters_over_a_limit_are_refused_one_by_one(limited: BrokerThread, version: int) -> None:
    client = connect(limited.port, version, "subscriber")
    refused = 0x8F if version == MQTT_5 else 0x80
    wanted = [
        Subscription(LONGEST, 1),
        Subscription("a" * 30 + "/#", 1),  # 32 bytes: fits
        Subscription(TOO_LONG, 1),
        Subscription("+/+/+/#", 1),
        Subscription("+/+/+/+/#", 1),  # 5 levels
        # Of a shared subscription, the levels after $share/{group}/ count (the length
        # is the whole filter's).
        Subscription("$share/g/+/+/+/+", 1),
        Subscription("$share/g/+/+/+/+/+", 1),
        Subscription("$share/group-name-here/" + "a" * 10, 1),  # 33 bytes
    ]
    if version == MQTT_3_1:
        wanted = [sub for sub in wanted if not sub.topic_filter.startswith("$share/")]
    client.send(Subscribe(1, tuple(wanted)))
    codes = client.recv()
    assert isinstance(codes, Suback)
    expected = [1, 1, refused, 1, refused, 1, refused, refused]
    if version == MQTT_3_1:
        expected = expected[:5]
    assert list(codes.reason_codes) == expected
    # The refused filters hold nothing: unsubscribing finds no subscription.
    client.send(Unsubscribe(2, (TOO_LONG, "+/+/+/+/#", LONGEST)))
    unsuback = client.recv()
    assert isinstance(unsuback, Unsuback)
    if version == MQTT_5:
        assert unsuback.reason_codes == (0x11, 0x11, 0x00)


def test_the_default_limits(make_broker: Callable[..., BrokerThread]) -> None:
    """200 levels (as Mosquitto) and 65,535 bytes, MQTT's own limit, by default."""
    broker = make_broker()
    client = connect(broker.port, MQTT_5, "deep")
    deepest = "/".join(["l"] * 200)
    too_deep = deepest + "/l"
    client.send(Subscribe(1, (Subscription(deepest, 1), Subscription(too_deep, 1))))
    assert client.recv() == Suback(1, (1, 0x8F))
    client.send(Publish(deepest, b"in", qos=1, packet_id=2))
    delivered, acknowledged = sorted(
        [client.recv(), client.recv()], key=lambda packet: isinstance(packet, Puback)
    )
    assert isinstance(delivered, Publish)
    assert delivered.topic == deepest
    assert acknowledged == Puback(2)
    client.send(Publish(too_deep, b"out", qos=1, packet_id=3))
    assert client.recv() == Puback(3, 0x90)
    longest = "x" * 65535
    client.send(Subscribe(4, (Subscription(longest, 0),)))
    assert client.recv() == Suback(4, (0,))


@pytest.mark.parametrize("version", [MQTT_3_1_1, MQTT_5])
def test_subscriptions_over_the_quota_are_refused(
    make_broker: Callable[..., BrokerThread], version: int
) -> None:
    broker = make_broker(max_subscriptions_per_client=3)
    client = connect(broker.port, version, "greedy")
    over = 0x97 if version == MQTT_5 else 0x80
    subscribe(client, Subscription("one", 0), Subscription("two", 1))
    client.send(Subscribe(2, (Subscription("three", 0), Subscription("four", 0))))
    assert client.recv() == Suback(2, (0, over))
    # Subscribing again to a filter it has replaces it: no new subscription.
    client.send(Subscribe(3, (Subscription("two", 2), Subscription("$share/g/five", 0))))
    assert client.recv() == Suback(3, (2, over))
    # An unsubscribe makes room.
    client.send(Unsubscribe(4, ("one",)))
    client.recv()
    subscribe(client, Subscription("four", 0), packet_id=5)
    assert broker.call(lambda: len(broker.broker.sessions["greedy"].subscriptions)) == 3


def test_no_subscription_quota_with_zero(make_broker: Callable[..., BrokerThread]) -> None:
    broker = make_broker(max_subscriptions_per_client=0)
    client = connect(broker.port, MQTT_5, "unlimited")
    filters = [Subscription(f"t/{n}", 0) for n in range(2000)]
    client.send(Subscribe(1, tuple(filters)))
    assert client.recv() == Suback(1, (0,) * 2000)


def test_the_client_id_limit_counts_bytes(make_broker: Callable[..., BrokerThread]) -> None:
    broker = make_broker(max_client_id_length=23)
    connect(broker.port, MQTT_5, "a" * 23)
    client = open_client(broker.port, MQTT_5)
    client.send(Connect("é" * 12, MQTT_5))  # 12 characters, 24 bytes
    (connack,) = client.expect_closed()
    assert isinstance(connack, Connack)
    assert connack.reason_code == 0x85


# The fast path: only topics longer than the gate are measured, and none shorter can
# break a limit.

_topics = st.text(st.sampled_from("ab/é€𝄞"), max_size=40)


@given(
    topic=_topics,
    max_length=st.integers(1, 80),
    max_levels=st.integers(1, 30),
)
def test_the_gate_lets_through_only_topics_within_both_limits(
    topic: str, max_length: int, max_levels: int
) -> None:
    limits = TopicLimits(max_length, max_levels)
    within = len(topic.encode()) <= max_length and topic.count("/") < max_levels
    assert (limits.topic_refusal(topic) is None) == within
    if len(topic) <= limits.gate:
        assert within
