"""Shared subscriptions across nodes: each message to one member of the group,
wherever the members are."""

from __future__ import annotations

from roost.codec import MQTT_5
from tests.cluster.conftest import NodeFactory
from tests.cluster.nodes import PROBE, linked, real
from tests.support.paho import PahoClient
from tests.support.waiting import wait_until


def test_a_group_with_members_on_two_nodes_gets_each_message_once(
    make_node: NodeFactory,
) -> None:
    a, b = make_node("a"), make_node("b")
    member_a = PahoClient(a.port, "member-a", MQTT_5)
    member_a.subscribe("$share/workers/jobs/#", 1)
    member_b = PahoClient(b.port, "member-b", MQTT_5)
    member_b.subscribe("$share/workers/jobs/#", 1)
    # Everything on jobs/#, unshared, on node b: proves the path and counts the total.
    watcher = PahoClient(b.port, "watcher", MQTT_5)
    watcher.subscribe("jobs/#", 1)
    publisher = PahoClient(a.port, "pub", MQTT_5)
    linked(publisher, watcher, "jobs/probe")

    jobs = [b"job-%d" % i for i in range(200)]
    publisher.publish_all("jobs/new", jobs, 1)
    publisher.publish("jobs/new", b"last", 1)
    assert [m.payload for m in real(watcher, len(jobs) + 1)] == [*jobs, b"last"]

    # Every job reached the group exactly once, some on each node. (Probes sent while
    # node b's queue subscription was being set up may have reached either member.)
    got: dict[str, list[bytes]] = {"a": [], "b": []}

    def collected() -> bool:
        for name, client in (("a", member_a), ("b", member_b)):
            while not client.messages.empty():
                payload = bytes(client.messages.get_nowait().payload)
                if not payload.startswith(PROBE):
                    got[name].append(payload)
        return len(got["a"]) + len(got["b"]) >= len(jobs) + 1

    wait_until(collected, timeout=15)
    assert sorted(got["a"] + got["b"]) == sorted([*jobs, b"last"])
    assert got["a"]
    assert got["b"]
