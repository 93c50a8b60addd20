"""QoS 1 and 2 for shared subscriptions across nodes, through JetStream
(docs/clustering.md, "Shared subscriptions"): every message acknowledged to its
publisher reaches one member of the group, also when a member leaves or its node is
killed while messages flow, and once each while nothing fails."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from roost.codec import MQTT_3_1_1, MQTT_5, Disconnect, Subscription
from tests.cluster.conftest import NodeFactory
from tests.cluster.nodes import PROBE
from tests.persistence.process import BrokerProcess
from tests.support import raw
from tests.support.paho import PahoClient
from tests.support.waiting import wait_until

GROUP = "$share/workers/work/#"
STATUS = "$SYS/broker/cluster/"


def sys_value(client: PahoClient, name: str, wanted: bytes, timeout: float = 20.0) -> None:
    """Wait until this node's ``$SYS/broker/cluster/<name>`` says ``wanted``."""
    while True:
        message = client.next_message(timeout)
        if message.topic == STATUS + name and message.payload == wanted:
            return


def knows_groups(node: BrokerProcess, count: int) -> None:
    """Wait until ``node`` knows ``count`` other nodes' filters (the groups' records)."""
    status = PahoClient(node.port, "status-" + str(node.port), MQTT_5)
    status.subscribe(STATUS + "interest/remote_filters", 0)
    sys_value(status, "interest/remote_filters", str(count).encode())
    status.disconnect()


class Collector:
    """What the members of the group received, by payload."""

    def __init__(self, *members: PahoClient) -> None:
        self.members = list(members)
        self.got: list[bytes] = []
        self.by_member: Counter[int] = Counter()

    def take(self) -> bool:
        """Collect what arrived; False (so that ``wait_until`` goes on calling it)."""
        for index, member in enumerate(self.members):
            while not member.messages.empty():
                payload = bytes(member.messages.get_nowait().payload)
                if not payload.startswith(PROBE):
                    self.got.append(payload)
                    self.by_member[index] += 1
        return False

    def covers(self, payloads: list[bytes]) -> bool:
        self.take()
        return set(payloads) <= set(self.got)


def member(node: BrokerProcess, client_id: str, version: int, qos: int) -> PahoClient:
    client = PahoClient(node.port, client_id, version)
    client.subscribe(GROUP, qos)
    return client


@pytest.mark.parametrize("version", [MQTT_3_1_1, MQTT_5])
@pytest.mark.parametrize("qos", [1, 2])
def test_each_acknowledged_message_reaches_one_member_once(
    make_node: NodeFactory, version: int, qos: int
) -> None:
    a, b, c = make_node("a"), make_node("b"), make_node("c")
    members = Collector(member(a, "member-a", version, qos), member(b, "member-b", version, qos))
    knows_groups(c, 2)
    status = PahoClient(c.port, "watch-c", MQTT_5)
    status.subscribe(STATUS + "shares/qos_published", 0)
    publisher = PahoClient(c.port, "pub", version)

    payloads = [b"job-%d" % i for i in range(200)]
    publisher.publish_all("work/new", payloads, qos)  # every one acknowledged

    wait_until(lambda: members.covers(payloads), timeout=30)
    # Through the stream, one copy per message (the group is one, on two nodes).
    sys_value(status, "shares/qos_published", str(len(payloads)).encode())
    # A marker after them: any second copy of one would be on its way before it.
    publisher.publish("work/new", b"marker", qos)
    wait_until(lambda: members.covers([b"marker"]), timeout=30)
    duplicates = {p: n for p, n in Counter(members.got).items() if n > 1}
    assert duplicates == {}
    assert sorted(members.got) == sorted([*payloads, b"marker"])


@pytest.mark.parametrize("version", [MQTT_3_1_1, MQTT_5])
def test_what_a_leaving_member_did_not_finish_goes_to_a_member_on_another_node(
    make_node: NodeFactory, version: int
) -> None:
    a, b, c = make_node("a"), make_node("b"), make_node("c")
    staying = member(a, "staying", version, 1)
    # The only member on node b takes messages and acknowledges none, then leaves
    # (DISCONNECT, its session ends): what it held must go to the member on node a.
    leaving = raw.connect(b.port, version, "leaving")
    raw.subscribe(leaving, Subscription(GROUP, 1))
    members = Collector(staying)
    knows_groups(c, 2)
    publisher = PahoClient(c.port, "pub", version)

    payloads = [b"job-%d" % i for i in range(300)]
    sending = threading.Thread(target=publisher.publish_all, args=("work/x", payloads, 1))
    sending.start()
    held = [raw.recv_publish(leaving, timeout=30) for _ in range(5)]
    assert {message.qos for message in held} == {1}
    leaving.send(Disconnect())
    leaving.close()
    sending.join(60)
    assert not sending.is_alive()

    wait_until(lambda: members.covers(payloads), timeout=60)


def test_messages_reach_a_member_when_a_members_node_is_killed_while_they_flow(
    make_node: NodeFactory,
) -> None:
    a, b, c = make_node("a"), make_node("b"), make_node("c")
    staying = member(a, "staying", MQTT_5, 1)
    # Persistent: what node b took for it is in b's store when b is killed.
    doomed = PahoClient(b.port, "doomed", MQTT_5, clean=False, session_expiry=3600)
    doomed.subscribe(GROUP, 1)
    members = Collector(staying, doomed)
    knows_groups(c, 2)
    publisher = PahoClient(c.port, "pub", MQTT_5)

    payloads = [b"job-%d" % i for i in range(600)]
    sending = threading.Thread(target=publisher.publish_all, args=("work/x", payloads, 1))
    sending.start()
    wait_until(lambda: members.take() or members.by_member[1] >= 10, timeout=30)
    b.kill()
    members.take()
    doomed.stop()
    sending.join(60)
    assert not sending.is_alive()

    # What b had not acknowledged to JetStream goes to node a after the ack wait; what
    # it had committed for its member comes back with b and the member's session.
    b = make_node("b")
    back = PahoClient(b.port, "doomed", MQTT_5, clean=False, session_expiry=3600)
    assert back.session_present
    members.members.append(back)
    wait_until(lambda: members.covers(payloads), timeout=60)
