"""Retained messages are one set across the cluster (a JetStream stream)."""

from __future__ import annotations

from roost.codec import MQTT_5
from tests.cluster.conftest import NodeFactory
from tests.support.paho import PahoClient
from tests.support.raw import TIMEOUT
from tests.support.waiting import wait_until


def retained_on(port: int, topic_filter: str, client_id: str) -> dict[str, bytes]:
    """What a new subscription on this node gets as retained messages, up to the first
    message published live after it (a marker that proves none is still coming)."""
    client = PahoClient(port, client_id, MQTT_5)
    client.subscribe(topic_filter, 1)
    client.subscribe(f"{client_id}/marker", 1)
    client.publish(f"{client_id}/marker", b"end", 1)
    found: dict[str, bytes] = {}
    while True:
        message = client.next_message(TIMEOUT)
        if message.topic == f"{client_id}/marker":
            break
        assert message.retain
        found[message.topic] = bytes(message.payload)
    client.disconnect()
    return found


def test_retained_set_on_one_node_is_seen_and_deleted_from_another(
    make_node: NodeFactory,
) -> None:
    a, b = make_node("a"), make_node("b")
    publisher = PahoClient(a.port, "pub", MQTT_5)
    publisher.publish("state/door", b"open", 1, retain=True)
    publisher.publish("state/light", b"on", 0, retain=True)

    counter = iter(range(1000))
    wait_until(
        lambda: (
            retained_on(b.port, "state/#", f"c{next(counter)}")
            == {"state/door": b"open", "state/light": b"on"}
        ),
        timeout=10,
    )

    # Deleted on b (an empty retained message): gone on a too.
    PahoClient(b.port, "deleter", MQTT_5).publish("state/door", b"", 1, retain=True)
    wait_until(
        lambda: retained_on(a.port, "state/#", f"c{next(counter)}") == {"state/light": b"on"},
        timeout=10,
    )


def test_a_node_started_later_has_the_retained_messages_at_once(
    make_node: NodeFactory,
) -> None:
    a = make_node("a")
    publisher = PahoClient(a.port, "pub", MQTT_5)
    publisher.publish("config/rate", b"5", 1, retain=True)
    publisher.publish("config/rate", b"10", 1, retain=True)  # the last one counts
    # Read back on a: the stream has it once a's own change came back from it.
    wait_until(lambda: retained_on(a.port, "config/#", "check") == {"config/rate": b"10"})

    # A node reads the stream before it listens: its first subscriber gets the set.
    late = make_node("late")
    assert retained_on(late.port, "config/#", "first") == {"config/rate": b"10"}


def test_the_last_change_wins_on_every_node(make_node: NodeFactory) -> None:
    a, b = make_node("a"), make_node("b")
    on_a = PahoClient(a.port, "on-a", MQTT_5)
    on_b = PahoClient(b.port, "on-b", MQTT_5)
    for i in range(20):
        on_a.publish("race/value", f"a{i}".encode(), 1, retain=True)
        on_b.publish("race/value", f"b{i}".encode(), 1, retain=True)

    # Both nodes end on the same value, whichever the stream took last.
    counter = iter(range(1000))

    def same() -> bool:
        seen_a = retained_on(a.port, "race/#", f"x{next(counter)}")
        seen_b = retained_on(b.port, "race/#", f"y{next(counter)}")
        return seen_a == seen_b and seen_a.get("race/value", b"")[1:] == b"19"

    wait_until(same, timeout=10)
