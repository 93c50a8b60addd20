"""Roost nodes on a three-server NATS JetStream cluster: each node may use a different
NATS server, the streams Roost creates keep three replicas, and a NATS server killed
(kill -9) loses nothing retained while its nodes fail over to the others."""

from __future__ import annotations

from roost.codec import MQTT_3_1_1, MQTT_5
from tests.cluster.conftest import NodeFactory
from tests.cluster.nodes import NatsCluster, greeted, leftovers, linked, real
from tests.support.paho import PahoClient
from tests.support.waiting import wait_until

REPLICAS = "replicas = 3"


def test_nodes_on_three_nats_servers_share_messages_and_retained(
    make_node: NodeFactory, nats_cluster: NatsCluster
) -> None:
    a, b, c = (
        make_node(name, url, cluster_extra=REPLICAS)
        for name, url in zip("abc", nats_cluster.urls, strict=True)
    )
    on_b = PahoClient(b.port, "on-b", MQTT_3_1_1)
    on_b.subscribe("farm/#", 1)
    on_c = PahoClient(c.port, "on-c", MQTT_5)
    on_c.subscribe("farm/+/temp", 2)
    publisher = PahoClient(a.port, "publisher", MQTT_5)
    linked(publisher, on_b, "farm/probe/temp")
    linked(publisher, on_c, "farm/probe/temp")

    publisher.publish("farm/barn/temp", b"21", qos=1, retain=True)

    for client in (on_b, on_c):
        (message,) = real(client, 1)
        assert (message.topic, message.payload) == ("farm/barn/temp", b"21")
    assert nats_cluster.stream_replicas("ROOST_RETAINED") == 3
    # A subscriber that comes later, on a third server's node, is greeted with it.
    late = PahoClient(c.port, "late", MQTT_5)
    late.subscribe("farm/barn/temp", 1)
    (greeting,) = real(late, 1)
    assert (greeting.payload, greeting.retain) == (b"21", True)
    assert leftovers(on_b) == leftovers(on_c) == []


def test_a_nats_server_killed_its_nodes_fail_over_and_keep_the_retained_set(
    make_node: NodeFactory, nats_cluster: NatsCluster
) -> None:
    urls = nats_cluster.urls
    a = make_node("a", urls, cluster_extra=REPLICAS)
    b = make_node("b", urls, cluster_extra=REPLICAS)
    publisher = PahoClient(a.port, "publisher", MQTT_5)
    on_b = PahoClient(b.port, "on-b", MQTT_5)
    on_b.subscribe("farm/#", 1)
    linked(publisher, on_b, "farm/probe")
    publisher.publish("farm/silo/level", b"full", qos=1, retain=True)
    assert [m.payload for m in real(on_b, 1)] == [b"full"]

    # kill -9 the server node a uses (node b may be on it too).
    killed = nats_cluster.serving("roost a")
    nats_cluster.servers[killed].kill()

    # Node a reconnects to another server by itself; messages cross again. QoS 1 goes
    # through a stream whose leader may have died with the server: JetStream elects
    # another (a PUBACK waits up to 6 s for it, then node a keeps the message).
    nats_cluster.wait_for_leader()
    nats_cluster.wait_for_streams()
    linked(publisher, on_b, "farm/probe")
    publisher.publish("farm/silo/level", b"half", qos=1, retain=True)
    assert [m.payload for m in real(on_b, 1, timeout=60)] == [b"half"]

    # The retained stream lost one of its three copies, not its content: a node that
    # starts now, on the servers left, replays the latest value.
    alive = [url for index, url in enumerate(urls) if index != killed]
    c = make_node("c", alive, cluster_extra=REPLICAS)
    fresh = PahoClient(c.port, "fresh", MQTT_3_1_1)

    # Node a resends the change, and node c replays, as soon as JetStream answers them.
    wait_until(lambda: greeted(fresh, "farm/silo/level", b"half"), timeout=60)


def test_a_node_started_while_jetstream_has_no_quorum_catches_up_when_it_returns(
    make_node: NodeFactory, nats_cluster: NatsCluster
) -> None:
    a = make_node("a", nats_cluster.urls[0], cluster_extra=REPLICAS)
    PahoClient(a.port, "publisher", MQTT_5).publish("farm/gate", b"open", qos=1, retain=True)
    nats_cluster.wait_for_streams()
    # Two of three servers gone: the one left serves clients but JetStream, which needs
    # a majority, cannot answer. A node starting on it must not give up on the replay.
    nats_cluster.servers[1].kill()
    nats_cluster.servers[2].kill()
    b = make_node("b", nats_cluster.urls[0], cluster_extra=REPLICAS)
    assert "JetStream unavailable" in b.log
    nats_cluster.servers[1].start()
    nats_cluster.wait_for_leader()
    nats_cluster.wait_for_streams()
    fresh = PahoClient(b.port, "fresh", MQTT_3_1_1)
    # Node b's next attempt comes within its longest pause (10 s) plus one attempt.
    wait_until(lambda: greeted(fresh, "farm/gate", b"open"), timeout=60)
