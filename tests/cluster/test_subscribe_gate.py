"""A SUBACK on one node means the subscription is in force on every node: a message
published on another node right after the SUBACK reaches the new subscriber, as on a
broker alone (docs/clustering.md, "Subscriptions take effect")."""

from __future__ import annotations

import pytest

from roost.codec import MQTT_3_1_1, MQTT_5
from tests.cluster.conftest import NodeFactory
from tests.cluster.nodes import linked
from tests.support.paho import PahoClient

ROUNDS = 20


@pytest.mark.parametrize("version", [MQTT_3_1_1, MQTT_5])
def test_a_message_published_elsewhere_right_after_the_suback_arrives(
    make_node: NodeFactory, version: int
) -> None:
    a, b = make_node("a"), make_node("b")
    publisher = PahoClient(a.port, "publisher", version)
    subscriber = PahoClient(b.port, "subscriber", version)
    # The nodes see each other (heartbeats) before the test proper starts.
    subscriber.subscribe("ready/#", 0)
    linked(publisher, subscriber, "ready/probe")
    for round_ in range(ROUNDS):
        topic = f"fresh/{round_}/x"  # a filter no node has used yet
        subscriber.subscribe(f"fresh/{round_}/+", 1)  # returns on the SUBACK
        publisher.publish(topic, b"right after", 1)
        message = subscriber.next_message()
        while message.topic.startswith("ready/"):  # a probe that came late
            message = subscriber.next_message()
        assert (message.topic, message.payload) == (topic, b"right after"), round_


@pytest.mark.parametrize("version", [MQTT_3_1_1, MQTT_5])
def test_a_shared_group_gets_a_message_published_elsewhere_right_after_the_suback(
    make_node: NodeFactory, version: int
) -> None:
    """The same for a group's first member on a node: its SUBACK waits until the other
    nodes know the group, so a QoS 1 message published there at once is the group's."""
    a, b = make_node("a"), make_node("b")
    publisher = PahoClient(a.port, "publisher", version)
    member = PahoClient(b.port, "member", version)
    member.subscribe("ready/#", 0)
    linked(publisher, member, "ready/probe")
    for round_ in range(ROUNDS):
        topic = f"fresh/{round_}/x"
        member.subscribe(f"$share/g{round_}/fresh/{round_}/+", 1)  # returns on the SUBACK
        publisher.publish(topic, b"right after", 1)
        message = member.next_message()
        while message.topic.startswith("ready/"):
            message = member.next_message()
        assert (message.topic, message.payload) == (topic, b"right after"), round_
