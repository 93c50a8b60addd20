"""Messages cross between nodes: real brokers (`roost broker -c`), a real nats-server,
paho clients on each node."""

from __future__ import annotations

import pytest

from roost.codec import MQTT_3_1_1, MQTT_5
from tests.cluster.conftest import NodeFactory
from tests.cluster.nodes import leftovers, linked, real
from tests.support.paho import PahoClient, prop, user_properties


@pytest.mark.parametrize("version", [MQTT_3_1_1, MQTT_5])
@pytest.mark.parametrize(("published", "granted"), [(0, 0), (1, 1), (1, 0), (0, 1), (2, 1)])
def test_a_message_published_on_one_node_reaches_a_subscriber_on_another(
    make_node: NodeFactory, version: int, published: int, granted: int
) -> None:
    a, b = make_node("a"), make_node("b")
    subscriber = PahoClient(b.port, "sub", version)
    subscriber.subscribe("sensors/+/temp", granted)
    publisher = PahoClient(a.port, "pub", version)
    linked(publisher, subscriber, "sensors/probe/temp")

    publisher.publish("sensors/kitchen/temp", b"21.5", published)

    (message,) = real(subscriber, 1)
    assert (message.topic, message.payload) == ("sensors/kitchen/temp", b"21.5")
    assert message.qos == min(published, granted)


def test_mqtt5_properties_cross_with_the_message(make_node: NodeFactory) -> None:
    a, b = make_node("a"), make_node("b")
    subscriber = PahoClient(b.port, "sub", MQTT_5)
    subscriber.subscribe("rpc/#", 1)
    publisher = PahoClient(a.port, "pub", MQTT_5)
    linked(publisher, subscriber, "rpc/probe")

    publisher.publish(
        "rpc/call",
        b"{}",
        1,
        ContentType="application/json",
        ResponseTopic="rpc/reply",
        CorrelationData=b"id-7",
        UserProperty=[("k", "v")],
    )

    (message,) = real(subscriber, 1)
    assert prop(message, "ContentType") == "application/json"
    assert prop(message, "ResponseTopic") == "rpc/reply"
    assert prop(message, "CorrelationData") == b"id-7"
    assert ("k", "v") in user_properties(message)


# Levels that are not plain NATS tokens: dots, spaces, NATS wildcards, empty levels, '%'.
ODD_TOPICS = [
    "odd/a.b",
    "odd/with space",
    "odd/*",
    "odd/>",
    "odd//x",
    "odd/x/",
    "odd/%41",
    "odd/ünïcödé",
    "odd/tab\there",
]


def test_topics_that_are_not_nats_tokens_cross_unchanged(make_node: NodeFactory) -> None:
    a, b = make_node("a"), make_node("b")
    subscriber = PahoClient(b.port, "sub", MQTT_5)
    subscriber.subscribe("odd/#", 1)
    exact = PahoClient(b.port, "exact", MQTT_5)
    exact.subscribe("odd/*", 1)  # '*' is a literal level in MQTT, not NATS's wildcard
    publisher = PahoClient(a.port, "pub", MQTT_5)
    linked(publisher, subscriber, "odd/probe")
    linked(publisher, exact, "odd/*")

    for topic in ODD_TOPICS:
        publisher.publish(topic, topic.encode(), 1)

    assert [m.topic for m in real(subscriber, len(ODD_TOPICS))] == ODD_TOPICS
    (star,) = real(exact, 1)
    assert star.topic == "odd/*"
    # Nothing else matched "odd/*" (a wildcard would have taken every one-level topic).
    publisher.publish("odd/*", b"marker", 1)
    assert real(exact, 1)[0].payload == b"marker"


def test_a_hash_filter_also_gets_its_parent_level(make_node: NodeFactory) -> None:
    a, b = make_node("a"), make_node("b")
    subscriber = PahoClient(b.port, "sub")
    subscriber.subscribe("home/#", 0)
    publisher = PahoClient(a.port, "pub")
    linked(publisher, subscriber, "home/probe")

    publisher.publish("home", b"parent", 1)
    publisher.publish("home/hall/light", b"deep", 1)

    assert [(m.topic, m.payload) for m in real(subscriber, 2)] == [
        ("home", b"parent"),
        ("home/hall/light", b"deep"),
    ]


def test_each_subscriber_gets_one_copy_in_order_wherever_it_is(make_node: NodeFactory) -> None:
    a, b = make_node("a"), make_node("b")
    # Overlapping filters on one node (two NATS subscriptions see each message) and a
    # subscriber on the publisher's own node (NATS must not echo it back).
    on_b = PahoClient(b.port, "on-b", MQTT_3_1_1)
    on_b.subscribe("feed/#", 1)
    on_b.subscribe("feed/+", 1)
    other_b = PahoClient(b.port, "other-b", MQTT_5)
    other_b.subscribe("feed/+", 1)
    on_a = PahoClient(a.port, "on-a", MQTT_5)
    on_a.subscribe("feed/#", 1)
    publisher = PahoClient(a.port, "pub", MQTT_5)
    linked(publisher, on_b, "feed/probe")
    linked(publisher, other_b, "feed/probe")

    payloads = [str(i).encode() for i in range(200)]
    publisher.publish_all("feed/x", payloads, 1)
    publisher.publish("feed/end", b"end", 1)

    for client in (on_b, other_b, on_a):
        got = [m.payload for m in real(client, len(payloads) + 1)]
        assert got == [*payloads, b"end"]
        assert leftovers(client) == []


def test_messages_published_on_both_nodes_reach_both(make_node: NodeFactory) -> None:
    a, b = make_node("a"), make_node("b")
    on_a = PahoClient(a.port, "on-a")
    on_a.subscribe("chat", 1)
    on_b = PahoClient(b.port, "on-b")
    on_b.subscribe("chat", 1)
    linked(on_a, on_b, "chat")
    linked(on_b, on_a, "chat")
    leftovers(on_a)
    leftovers(on_b)

    on_a.publish("chat", b"from a", 1)
    on_b.publish("chat", b"from b", 1)

    for client in (on_a, on_b):
        assert sorted(m.payload for m in real(client, 2)) == [b"from a", b"from b"]


def test_unsubscribe_stops_delivery_from_other_nodes(make_node: NodeFactory) -> None:
    a, b = make_node("a"), make_node("b")
    subscriber = PahoClient(b.port, "sub")
    subscriber.subscribe("news/#", 1)
    publisher = PahoClient(a.port, "pub")
    linked(publisher, subscriber, "news/probe")

    subscriber.client.unsubscribe("news/#")
    # A later subscription's SUB reaches NATS after the UNSUB (one connection, in order):
    # once it carries messages, the unsubscription is in place too.
    subscriber.subscribe("marker", 1)
    linked(publisher, subscriber, "marker")
    publisher.publish("news/today", b"should not arrive", 1)
    publisher.publish("marker", b"after", 1)

    assert [(m.topic, m.payload) for m in real(subscriber, 1)] == [("marker", b"after")]


def test_a_wildcard_does_not_reach_dollar_topics_from_other_nodes(
    make_node: NodeFactory,
) -> None:
    a, b = make_node("a"), make_node("b")
    everything = PahoClient(b.port, "all")
    everything.subscribe("#", 0)
    publisher = PahoClient(a.port, "pub")
    linked(publisher, everything, "probe")

    # Node a's $SYS is its own: none of it may reach node b's '#' subscriber.
    publisher.publish("last", b"marker", 1)
    received = [m.topic for m in real(everything, 1)]
    assert received == ["last"]
    assert all(not m.topic.startswith("$") for m in leftovers(everything))


def test_messages_nobody_elsewhere_wants_stay_on_their_node(make_node: NodeFactory) -> None:
    a, b = make_node("a"), make_node("b")
    local = PahoClient(a.port, "local", MQTT_5)
    local.subscribe("local/#", 1)
    publisher = PahoClient(a.port, "pub", MQTT_5)
    unwanted = 300
    publisher.publish_all("local/x", [b"%d" % i for i in range(unwanted)], 1)
    assert len(real(local, unwanted)) == unwanted

    remote = PahoClient(b.port, "remote", MQTT_5)
    remote.subscribe("remote/#", 1)
    linked(publisher, remote, "remote/probe")
    # Node a's count of messages sent to NATS, as published after this point (no
    # retained, possibly older, value): it counts the probes, not the local messages.
    status = PahoClient(a.port, "status", MQTT_5)
    status.subscribe("$SYS/broker/cluster/messages/forwarded", 0, retainHandling=2)
    publisher.publish("remote/now", b"counted", 1)
    (message,) = real(status, 1, timeout=15)
    assert 1 <= int(message.payload) < unwanted
