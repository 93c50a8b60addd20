"""NATS lost and back: nodes serve their own clients meanwhile, say so, and rejoin."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from pathlib import Path

from roost.codec import MQTT_5
from tests.cluster.conftest import NodeFactory
from tests.cluster.nodes import NatsServer, greeted, linked, real
from tests.support.paho import PahoClient
from tests.support.raw import TIMEOUT
from tests.support.waiting import wait_until


def next_value(client: PahoClient, topic: str, timeout: float = 15.0) -> bytes:
    """The payload of the next message on ``topic`` (others are skipped)."""
    while True:
        message = client.next_message(timeout)
        if message.topic == topic:
            return bytes(message.payload)


def test_nats_killed_and_restarted(make_node: NodeFactory, nats_server: NatsServer) -> None:
    a, b = make_node("a"), make_node("b")
    status = PahoClient(a.port, "status", MQTT_5)
    status.subscribe("$SYS/broker/cluster/connected", 0)
    assert next_value(status, "$SYS/broker/cluster/connected") == b"1"
    local = PahoClient(a.port, "local", MQTT_5)
    local.subscribe("work/#", 1)
    member = PahoClient(a.port, "member", MQTT_5)
    member.subscribe("$share/g/work/#", 1)
    remote = PahoClient(b.port, "remote", MQTT_5)
    remote.subscribe("work/#", 1)
    publisher = PahoClient(a.port, "pub", MQTT_5)
    linked(publisher, remote, "work/probe")

    nats_server.kill()
    a.wait_for(r"WARNING Cluster node a: lost NATS")
    b.wait_for(r"WARNING Cluster node b: lost NATS")
    assert next_value(status, "$SYS/broker/cluster/connected") == b"0"

    # Local delivery goes on during the gap, to shared groups too.
    publisher.publish("work/during0", b"local only", 0)
    publisher.publish("work/during", b"kept", 1)  # acknowledged during the gap
    during = [("work/during0", b"local only"), ("work/during", b"kept")]
    assert [(m.topic, m.payload) for m in real(local, 2)] == during
    assert [(m.topic, m.payload) for m in real(member, 2)] == during

    nats_server.start()
    a.wait_for(r"WARNING Cluster node a: connected to NATS", timeout=TIMEOUT * 3)
    b.wait_for(r"WARNING Cluster node b: connected to NATS", timeout=TIMEOUT * 3)
    assert next_value(status, "$SYS/broker/cluster/connected") == b"1"
    # Cross-node delivery resumes: b subscribed again, without its client doing anything.
    linked(publisher, remote, "work/probe")
    publisher.publish("work/after", b"crossed", 1)
    # The QoS 1 message acknowledged during the gap waited on a and crosses now, before
    # what came after; the QoS 0 one is lost between nodes (docs/clustering.md).
    assert [(m.topic, m.payload) for m in real(remote, 2)] == [
        ("work/during", b"kept"),
        ("work/after", b"crossed"),
    ]
    assert [(m.topic, m.payload) for m in real(member, 1)] == [("work/after", b"crossed")]


def test_a_retained_message_set_while_nats_is_lost_joins_the_cluster_set_when_it_is_back(
    make_node: NodeFactory, nats_server: NatsServer
) -> None:
    a, b = make_node("a"), make_node("b")
    publisher = PahoClient(a.port, "pub", MQTT_5)
    publisher.publish("valve/3", b"closed", 1, retain=True)
    on_b = PahoClient(b.port, "on-b", MQTT_5)
    wait_until(lambda: greeted(on_b, "valve/3", b"closed"), timeout=15)

    nats_server.kill()
    a.wait_for(r"WARNING Cluster node a: lost NATS")
    publisher.publish("valve/3", b"open", 1, retain=True)  # acknowledged during the gap
    nats_server.start()  # same store: the stream still holds "closed"
    a.wait_for(r"WARNING Cluster node a: connected to NATS", timeout=TIMEOUT * 3)
    b.wait_for(r"WARNING Cluster node b: connected to NATS", timeout=TIMEOUT * 3)

    # The replay of the stream's older value does not undo a's change, and a sends the
    # change on: both nodes end with "open".
    wait_until(lambda: greeted(on_b, "valve/3", b"open"), timeout=15)
    on_a = PahoClient(a.port, "on-a", MQTT_5)
    assert greeted(on_a, "valve/3", b"open")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_node_starts_without_nats_and_joins_when_it_comes(
    make_node: NodeFactory, tmp_path: Path
) -> None:
    port = free_port()
    url = f"nats://127.0.0.1:{port}"
    a = make_node("a", url)
    a.wait_for(r"WARNING Cluster node a: NATS at .* is unreachable; serving local clients only")
    local = PahoClient(a.port, "local", MQTT_5)
    local.subscribe("t", 1)
    local.publish("t", b"served", 1)
    assert [m.payload for m in real(local, 1)] == [b"served"]

    late_nats = NatsServer(tmp_path / "late-jetstream", port)
    try:
        a.wait_for(r"WARNING Cluster node a: connected to NATS", timeout=TIMEOUT * 3)
        b = make_node("b", url)
        remote = PahoClient(b.port, "remote", MQTT_5)
        remote.subscribe("t", 1)
        linked(local, remote, "t")
    finally:
        late_nats.kill()


def test_readyz_says_when_a_node_cannot_reach_nats(make_node: NodeFactory, tmp_path: Path) -> None:
    port, http = free_port(), free_port()
    url = f"nats://127.0.0.1:{port}"
    a = make_node("a", url, extra=f"[http]\nport = {http}")
    a.wait_for(r"WARNING Cluster node a: NATS at .* is unreachable; serving local clients only")

    def readyz() -> tuple[int, dict[str, object]]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http}/readyz", timeout=5) as answer:
                return answer.status, json.load(answer)
        except urllib.error.HTTPError as refused:
            return refused.code, json.load(refused)

    def answers() -> bool:
        # The warning comes while the node starts; the HTTP server opens after it.
        try:
            readyz()
        except urllib.error.URLError:
            return False
        return True

    wait_until(answers)
    status, body = readyz()
    assert status == 503
    assert body["problems"] == ["the cluster's NATS is unreachable"]
    late_nats = NatsServer(tmp_path / "late-jetstream", port)
    try:
        a.wait_for(r"WARNING Cluster node a: connected to NATS", timeout=TIMEOUT * 3)
        wait_until(lambda: readyz()[0] == 200)
        assert readyz()[1] == {"status": "ready"}
    finally:
        late_nats.kill()
