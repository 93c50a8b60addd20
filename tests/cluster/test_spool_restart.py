"""QoS 1/2 messages acknowledged while NATS is away are in the publishing node's store
(docs/clustering.md, "The spool"): they reach the other nodes' subscribers even when
that node is killed (kill -9) or stopped before NATS returns, once it starts again."""

from __future__ import annotations

import signal

import pytest

from roost.codec import MQTT_3_1_1, MQTT_5
from tests.cluster.conftest import NodeFactory
from tests.cluster.nodes import NatsServer, leftovers, linked, real
from tests.cluster.test_durable import drained, persistent
from tests.persistence.process import BrokerProcess
from tests.support.paho import PahoClient

COUNT = 30


def spooled_then_gone(
    make_node: NodeFactory, nats_server: NatsServer, version: int, qos: int, kill: bool
) -> None:
    a, b = make_node("a"), make_node("b")
    keeper = persistent(b.port, "keeper", version)
    keeper.subscribe("spool/#", qos)
    publisher = PahoClient(a.port, "pub", version)
    linked(publisher, keeper, "spool/probe")

    nats_server.kill()
    a.wait_for(r"WARNING Cluster node a: lost NATS")
    payloads = [b"s-%d" % i for i in range(COUNT)]
    # Every PUBACK/PUBREC received: each message is committed to a's spool by then.
    publisher.publish_all("spool/x", payloads, qos)
    publisher.stop()
    if kill:
        a.kill()
    else:
        assert a.stop() == 0, a.log
        a.wait_for(
            rf"Cluster: {COUNT} QoS 1/2 message\(s\) for ROOST_QOS stay in this node's store"
        )

    nats_server.start()  # same port, same store
    a = make_node("a")  # on its data directory again
    a.wait_for(rf"Cluster: {COUNT} QoS 1/2 message\(s\) kept in the store for ROOST_QOS")
    assert [m.payload for m in real(keeper, COUNT, timeout=30)] == payloads
    publisher = PahoClient(a.port, "pub2", version)
    linked(publisher, keeper, "spool/probe")
    drained(publisher, keeper, "spool/x")
    assert leftovers(keeper) == []  # each once
    assert_sent_once(a)


def assert_sent_once(node: BrokerProcess) -> None:
    """The restarted node sent its spool and kept nothing for a later start."""
    node.wait_for(rf"Cluster: sending {COUNT} QoS 1/2 message\(s\) kept while ROOST_QOS")


@pytest.mark.parametrize("version", [MQTT_3_1_1, MQTT_5])
@pytest.mark.parametrize("qos", [1, 2])
def test_messages_acknowledged_while_nats_is_away_outlive_their_node_killed(
    make_node: NodeFactory, nats_server: NatsServer, version: int, qos: int
) -> None:
    spooled_then_gone(make_node, nats_server, version, qos, kill=True)


@pytest.mark.parametrize(("version", "qos"), [(MQTT_3_1_1, 1), (MQTT_5, 2)])
def test_messages_acknowledged_while_nats_is_away_outlive_their_node_stopped(
    make_node: NodeFactory, nats_server: NatsServer, version: int, qos: int
) -> None:
    spooled_then_gone(make_node, nats_server, version, qos, kill=False)


@pytest.mark.parametrize(("version", "qos"), [(MQTT_5, 1), (MQTT_3_1_1, 2)])
def test_messages_jetstream_did_not_answer_are_spooled_before_their_acknowledgements(
    make_node: NodeFactory, nats_server: NatsServer, version: int, qos: int
) -> None:
    """nats-server frozen (SIGSTOP): the messages wait for JetStream, their PUBACKs or
    PUBRECs held, until the tries run out or the connection is declared lost; then they
    are put back into the spool and acknowledged once it is committed, so the node
    killed right after still has them."""
    a, b = make_node("a"), make_node("b")
    keeper = persistent(b.port, "keeper", version)
    keeper.subscribe("frozen/#", qos)
    publisher = PahoClient(a.port, "pub", version)
    linked(publisher, keeper, "frozen/probe")

    assert nats_server.proc is not None
    nats_server.proc.send_signal(signal.SIGSTOP)
    payloads = [b"f-%d" % i for i in range(COUNT)]
    sent = [publisher.client.publish("frozen/x", payload, qos) for payload in payloads]
    for info in sent:
        info.wait_for_publish(60)  # about 6 s: three tries of 2 s
        assert info.is_published()
    a.wait_for(r"QoS 1/2 message\(s\) not stored by ROOST_QOS")
    publisher.stop()
    a.kill()
    nats_server.kill()  # SIGKILL ends a stopped process too
    nats_server.start()

    a = make_node("a")
    assert [m.payload for m in real(keeper, COUNT, timeout=30)] == payloads
    publisher = PahoClient(a.port, "pub2", version)
    linked(publisher, keeper, "frozen/probe")
    drained(publisher, keeper, "frozen/x")
    assert leftovers(keeper) == []
