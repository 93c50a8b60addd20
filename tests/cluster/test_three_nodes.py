"""Three nodes, with Mosquitto's own command-line clients at the edges."""

from __future__ import annotations

from roost.codec import MQTT_5
from tests.cluster.conftest import NodeFactory
from tests.cluster.nodes import leftovers, linked, real
from tests.support.mosquitto_tools import mosquitto_pub, mosquitto_sub
from tests.support.paho import PahoClient, user_properties
from tests.support.waiting import wait_until


def test_mosquitto_pub_on_one_node_reaches_subscribers_on_two_others(
    make_node: NodeFactory,
) -> None:
    a, b, c = make_node("a"), make_node("b"), make_node("c")
    on_b = PahoClient(b.port, "on-b", MQTT_5)
    on_b.subscribe("plant/+/level", 1)
    on_c = PahoClient(c.port, "on-c", MQTT_5)
    on_c.subscribe("plant/#", 2)
    probe = PahoClient(a.port, "probe", MQTT_5)
    linked(probe, on_b, "plant/probe/level")
    linked(probe, on_c, "plant/probe/level")

    mosquitto_pub(
        a.port,
        "-V", "mqttv5", "-q", "1", "-t", "plant/tank 1/level", "-m", "73%",
        "-D", "publish", "user-property", "unit", "percent",
    )  # fmt: skip

    for client in (on_b, on_c):
        (message,) = real(client, 1)
        assert (message.topic, message.payload, message.qos) == ("plant/tank 1/level", b"73%", 1)
        assert ("unit", "percent") in user_properties(message)
    probe.publish("plant/end/level", b"end", 1)
    for client in (on_b, on_c):
        assert [m.payload for m in real(client, 1)] == [b"end"]
        assert leftovers(client) == []


def test_mosquitto_sub_on_a_third_node_reads_a_retained_message(make_node: NodeFactory) -> None:
    a, _b, c = make_node("a"), make_node("b"), make_node("c")
    mosquitto_pub(a.port, "-q", "1", "-r", "-t", "plant/valve", "-m", "closed")

    def seen_on_c() -> bool:
        done = mosquitto_sub(c.port, "-t", "plant/valve", "-C", "1", "-W", "1", check=False)
        return done.stdout.strip() == "closed"

    wait_until(seen_on_c, timeout=10)
