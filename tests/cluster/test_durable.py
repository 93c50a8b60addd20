"""QoS 1 and 2 between nodes through JetStream (docs/clustering.md, "QoS 1 and 2 across
nodes"): each message once per subscriber, acknowledged to its publisher only once it
is stored, and still delivered when either node dies (kill -9) around it."""

from __future__ import annotations

from pathlib import Path

import pytest

from roost.codec import MQTT_3_1_1, MQTT_5
from tests.cluster.conftest import NodeFactory
from tests.cluster.nodes import NatsServer, leftovers, linked, real
from tests.persistence.process import BrokerProcess
from tests.support.paho import PahoClient
from tests.support.waiting import wait_until

COUNT = 30


def sys_value(client: PahoClient, topic: str, wanted: bytes, timeout: float = 20.0) -> None:
    """Wait until the retained ``$SYS`` value on ``topic`` is ``wanted``."""
    while True:
        message = client.next_message(timeout)
        if message.topic == topic and message.payload == wanted:
            return


def persistent(port: int, client_id: str, version: int) -> PahoClient:
    if version == MQTT_5:
        return PahoClient(port, client_id, version, clean=False, session_expiry=3600)
    return PahoClient(port, client_id, version, clean=False)


def drained(publisher: PahoClient, subscriber: PahoClient, topic: str) -> None:
    """Make sure nothing more is on its way to ``subscriber``: the stream keeps order, so
    the marker comes after any copy through it, and the probes (core NATS) after any
    copy on core NATS."""
    publisher.publish(topic, b"marker", 1)
    assert [m.payload for m in real(subscriber, 1)] == [b"marker"]
    linked(publisher, subscriber, topic)


@pytest.mark.parametrize("version", [MQTT_3_1_1, MQTT_5])
@pytest.mark.parametrize("qos", [1, 2])
def test_qos_messages_cross_through_the_stream_once_per_subscriber(
    make_node: NodeFactory, version: int, qos: int
) -> None:
    a, b = make_node("a"), make_node("b")
    status = PahoClient(b.port, "status", MQTT_5)
    status.subscribe("$SYS/broker/cluster/qos/applied", 0)
    # Overlapping filters on b and a subscriber on each node: one copy each.
    remote = PahoClient(b.port, "remote", version)
    remote.subscribe("q/#", qos)
    remote.subscribe("q/+", qos)
    local = PahoClient(a.port, "local", version)
    local.subscribe("q/#", qos)
    publisher = PahoClient(a.port, "pub", version)
    linked(publisher, remote, "q/probe")

    payloads = [b"m-%d" % i for i in range(COUNT)]
    publisher.publish_all("q/x", payloads, qos)

    got = real(remote, COUNT)
    assert [m.payload for m in got] == payloads
    assert {m.qos for m in got} == {qos}
    assert [m.payload for m in real(local, COUNT)] == payloads
    drained(publisher, remote, "q/x")
    assert leftovers(remote) == []
    # They came through the stream (the marker too), not core NATS.
    sys_value(status, "$SYS/broker/cluster/qos/applied", str(COUNT + 1).encode())


def restart(make_node: NodeFactory, name: str) -> BrokerProcess:
    """Start node ``name`` again on its data directory (a new port)."""
    return make_node(name)


@pytest.mark.parametrize("version", [MQTT_3_1_1, MQTT_5])
@pytest.mark.parametrize("qos", [1, 2])
def test_acknowledged_messages_wait_for_a_node_killed_while_its_subscriber_was_away(
    make_node: NodeFactory, version: int, qos: int
) -> None:
    a, b = make_node("a"), make_node("b")
    keeper = persistent(b.port, "keeper", version)
    keeper.subscribe("keep/#", qos)
    publisher = PahoClient(a.port, "pub", version)
    linked(publisher, keeper, "keep/probe")
    keeper.disconnect()
    b.kill()

    payloads = [b"k-%d" % i for i in range(COUNT)]
    publisher.publish_all("keep/x", payloads, qos)  # every one acknowledged

    b = restart(make_node, "b")
    keeper = persistent(b.port, "keeper", version)
    assert keeper.session_present
    assert [m.payload for m in real(keeper, COUNT)] == payloads
    drained(publisher, keeper, "keep/x")
    assert leftovers(keeper) == []


@pytest.mark.parametrize("qos", [1, 2])
def test_acknowledged_messages_arrive_when_the_publishing_node_dies_at_once(
    make_node: NodeFactory, qos: int
) -> None:
    a, b = make_node("a"), make_node("b")
    subscriber = PahoClient(b.port, "sub", MQTT_5)
    subscriber.subscribe("gone/#", qos)
    publisher = PahoClient(a.port, "pub", MQTT_5)
    linked(publisher, subscriber, "gone/probe")

    payloads = [b"g-%d" % i for i in range(COUNT)]
    publisher.publish_all("gone/x", payloads, qos)
    a.kill()  # right after the last PUBACK/PUBREC

    assert [m.payload for m in real(subscriber, COUNT)] == payloads


def test_qos2_is_not_delivered_twice_after_a_crash_between_storing_and_acknowledging(
    make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = make_node("a")
    # Node b never acknowledges what it takes from the stream: every message it applied
    # is redelivered after the crash, as if it had died just before each ack.
    monkeypatch.setenv("ROOST_TEST_QOS_NO_ACK", "1")
    b = make_node("b")
    monkeypatch.delenv("ROOST_TEST_QOS_NO_ACK")
    status = PahoClient(b.port, "status", MQTT_5)
    status.subscribe("$SYS/broker/cluster/qos/applied", 0)
    keeper = persistent(b.port, "keeper", MQTT_5)
    keeper.subscribe("once/#", 2)
    publisher = PahoClient(a.port, "pub", MQTT_5)
    linked(publisher, keeper, "once/probe")
    keeper.disconnect()

    payloads = [b"o-%d" % i for i in range(COUNT)]
    publisher.publish_all("once/x", payloads, 2)
    # Queued for the session and committed (the counter follows the commit).
    sys_value(status, "$SYS/broker/cluster/qos/applied", str(COUNT).encode())
    b.kill()

    b = restart(make_node, "b")
    # JetStream redelivers them (after the consumer's ack_wait), and b skips them all.
    status = PahoClient(b.port, "status", MQTT_5)
    status.subscribe("$SYS/broker/cluster/qos/skipped", 0)
    sys_value(status, "$SYS/broker/cluster/qos/skipped", str(COUNT).encode())
    keeper = persistent(b.port, "keeper", MQTT_5)
    assert keeper.session_present
    assert [m.payload for m in real(keeper, COUNT)] == payloads
    drained(publisher, keeper, "once/x")
    assert leftovers(keeper) == []


def test_qos_crosses_again_after_nats_lost_its_store(
    make_node: NodeFactory, nats_server: NatsServer, tmp_path: Path
) -> None:
    a, b = make_node("a"), make_node("b")
    status = PahoClient(b.port, "status", MQTT_5)
    status.subscribe("$SYS/broker/cluster/qos/applied", 0)
    subscriber = PahoClient(b.port, "sub", MQTT_5)
    subscriber.subscribe("s/#", 1)
    publisher = PahoClient(a.port, "pub", MQTT_5)
    linked(publisher, subscriber, "s/probe")
    first = [b"f-%d" % i for i in range(COUNT)]
    publisher.publish_all("s/x", first, 1)
    assert [m.payload for m in real(subscriber, COUNT)] == first
    sys_value(status, "$SYS/broker/cluster/qos/applied", str(COUNT).encode())

    # A new, empty store: the stream comes back with its sequences starting at 1,
    # below the position node b recorded, and b's consumer is gone.
    nats_server.kill()
    a.wait_for(r"WARNING Cluster node a: lost NATS")
    nats_server.store = tmp_path / "jetstream-new"
    nats_server.start()
    stream = "QoS 1 and 2 cross to other nodes through ROOST_QOS"
    wait_until(lambda: a.log.count(stream) == 2, timeout=30)
    linked(publisher, subscriber, "s/probe")

    second = [b"s-%d" % i for i in range(5)]
    publisher.publish_all("s/x", second, 1)
    assert [m.payload for m in real(subscriber, len(second), timeout=30)] == second
    sys_value(status, "$SYS/broker/cluster/qos/applied", str(COUNT + len(second)).encode())


@pytest.mark.parametrize("qos", [1, 2])
def test_acknowledged_messages_outlive_the_nats_server_killed_and_restarted(
    make_node: NodeFactory, nats_server: NatsServer, qos: int
) -> None:
    """kill -9 of nats-server (the process, not its host: JetStream has written the
    messages to the operating system before acknowledging them) loses nothing stored,
    and what is published while it is away waits on its node and follows."""
    a, b = make_node("a"), make_node("b")
    keeper = persistent(b.port, "keeper", MQTT_5)
    keeper.subscribe("keep/#", qos)
    publisher = PahoClient(a.port, "pub", MQTT_5)
    linked(publisher, keeper, "keep/probe")
    keeper.disconnect()
    b.kill()  # the messages stay in the stream, not taken by b's consumer

    payloads = [b"n-%d" % i for i in range(COUNT)]
    publisher.publish_all("keep/x", payloads, qos)  # every one acknowledged
    nats_server.kill()
    a.wait_for(r"WARNING Cluster node a: lost NATS")
    during = [b"d-%d" % i for i in range(5)]
    publisher.publish_all("keep/x", during, qos)  # acknowledged while NATS is away
    nats_server.start()  # same port, same store

    b = restart(make_node, "b")
    keeper = persistent(b.port, "keeper", MQTT_5)
    assert keeper.session_present
    assert [m.payload for m in real(keeper, COUNT + 5, timeout=30)] == payloads + during
    drained(publisher, keeper, "keep/x")
    assert leftovers(keeper) == []
