"""Shared subscriptions, $share/{ShareName}/{filter} (MQTT 5.0 section 4.8.2).

Each message matching a shared subscription goes to one session of the group; which
one is the server's choice, and Roost's is round-robin in the order members joined,
skipping members that cannot take a message now (offline, or at their Receive
Maximum). Roost accepts $share filters from 3.1.1 clients too, as Mosquitto does.
"""

from __future__ import annotations

import pytest

from roost.codec import MQTT_3_1_1, MQTT_5, Puback, Publish, Subscribe, Subscription
from tests.support.broker_thread import BrokerThread
from tests.support.mosquitto_tools import finish, start_mosquitto_sub
from tests.support.paho import PahoClient
from tests.support.raw import (
    RawClient,
    acknowledge,
    connect,
    drop,
    expect_disconnect,
    persistent,
    publish,
    recv_publish,
    settle,
    subscribe,
    subscribe_and_sync,
    sync,
)
from tests.support.waiting import wait_offline, wait_session_gone, wait_until

VERSIONS = [MQTT_3_1_1, MQTT_5]


def members(broker: BrokerThread, topic: str) -> dict[str, list[str]]:
    """The shared groups matching ``topic``: group name -> member client ids."""

    def read() -> dict[str, list[str]]:
        groups = broker.broker.router.shared_groups(topic)
        return {group.name: list(group.members) for group in groups}

    return broker.call(read)


def member(
    broker: BrokerThread, client_id: str, share: str, qos: int = 0, **fields: object
) -> RawClient:
    client = connect(broker.port, MQTT_5, client_id, **fields)
    subscribe_and_sync(client, Subscription(share, qos))
    return client


def payloads(client: RawClient, count: int) -> list[bytes]:
    return [recv_publish(client).payload for _ in range(count)]


@pytest.mark.parametrize("version", VERSIONS)
def test_each_message_goes_to_one_member_in_turn(broker: BrokerThread, version: int) -> None:
    """4.8.2: each message goes to only one of the group's sessions; Roost picks them
    round-robin."""
    a = connect(broker.port, version, "a")
    subscribe_and_sync(a, Subscription("$share/g/sh/t"))
    b = connect(broker.port, version, "b")
    subscribe_and_sync(b, Subscription("$share/g/sh/t"))
    pub = connect(broker.port, version, "pub")
    for n in range(6):
        publish(pub, Publish("sh/t", b"%d" % n))
    assert payloads(a, 3) == [b"0", b"2", b"4"]
    assert payloads(b, 3) == [b"1", b"3", b"5"]
    assert sync(a) == []
    assert sync(b) == []


def test_each_group_gets_a_copy(broker: BrokerThread) -> None:
    """4.8.2: shared subscriptions with different ShareNames are separate; each
    group gets every message once, and a wildcard inner filter matches as usual."""
    a = member(broker, "a", "$share/one/sh/+")
    b = member(broker, "b", "$share/one/sh/+")
    c = member(broker, "c", "$share/two/sh/#")
    pub = connect(broker.port, MQTT_5, "pub")
    for n in range(4):
        publish(pub, Publish("sh/t", b"%d" % n))
    assert payloads(a, 2) + payloads(b, 2) == [b"0", b"2", b"1", b"3"]
    assert payloads(c, 4) == [b"0", b"1", b"2", b"3"]
    for client in (a, b, c):
        assert sync(client) == []


def test_shared_and_non_shared_subscriptions_on_one_topic(broker: BrokerThread) -> None:
    """4.8.2 (non-normative example): a non-shared subscriber gets every message; a
    client with both a shared and a non-shared subscription gets a copy for each."""
    plain = connect(broker.port, MQTT_5, "plain")
    subscribe_and_sync(plain, Subscription("sh/t"))
    both = connect(broker.port, MQTT_5, "both")
    subscribe_and_sync(both, Subscription("sh/t"), Subscription("$share/g/sh/t"))
    pub = connect(broker.port, MQTT_5, "pub")
    publish(pub, Publish("sh/t", b"m"))
    assert recv_publish(plain) == Publish("sh/t", b"m")
    assert [recv_publish(both), recv_publish(both)] == [Publish("sh/t", b"m")] * 2
    assert sync(both) == []


def test_each_copy_carries_its_own_subscription_identifier(broker: BrokerThread) -> None:
    """[MQTT-3.3.4-5]: when a client gets several copies of one message (here for its
    non-shared subscription and for each of its two shared groups), each copy carries the
    Subscription Identifier of the subscription it is sent for, if that has one."""
    both = connect(broker.port, MQTT_5, "both")
    subscribe(both, Subscription("ids/t"), packet_id=1, identifier=1)
    subscribe(both, Subscription("$share/g/ids/#"), packet_id=2, identifier=2)
    subscribe(both, Subscription("$share/h/ids/t"), packet_id=3)  # no identifier
    pub = connect(broker.port, MQTT_5, "pub")
    publish(pub, Publish("ids/t", b"m"))
    (got,) = settle(pub, both)
    assert sorted(got, key=repr) == sorted(
        [
            Publish("ids/t", b"m", subscription_identifiers=(1,)),
            Publish("ids/t", b"m", subscription_identifiers=(2,)),
            Publish("ids/t", b"m"),
        ],
        key=repr,
    )


@pytest.mark.parametrize("version", VERSIONS)
def test_retained_messages_are_not_sent_to_a_shared_subscription(
    broker: BrokerThread, version: int
) -> None:
    """4.8.2 and 3.3.1.3: retained messages go to new Non-shared Subscriptions only."""
    pub = connect(broker.port, version, "pub")
    publish(pub, Publish("sh/r", b"retained", retain=True))
    a = connect(broker.port, version, "a")
    assert subscribe_and_sync(a, Subscription("$share/g/sh/r")) == []
    assert subscribe_and_sync(a, Subscription("$share/g/sh/#"), packet_id=2) == []
    assert subscribe_and_sync(a, Subscription("sh/#"), packet_id=3) == [
        Publish("sh/r", b"retained", retain=True)
    ]


def test_no_local_on_a_shared_subscription_is_a_protocol_error(broker: BrokerThread) -> None:
    """[MQTT-3.8.3-4]: No Local on a Shared Subscription is a Protocol Error:
    DISCONNECT 0x82 (4.13)."""
    client = connect(broker.port, MQTT_5, "a")
    client.send(Subscribe(1, (Subscription("$share/g/sh/t", no_local=True),)))
    expect_disconnect(client, 0x82)
    assert members(broker, "sh/t") == {}


def test_granted_qos_is_respected_per_member(broker: BrokerThread) -> None:
    """[MQTT-4.8.2-3]: each member gets the message at min(message QoS, its own
    granted QoS)."""
    low = member(broker, "low", "$share/g/sh/q", 0)
    high = member(broker, "high", "$share/g/sh/q", 2)
    pub = connect(broker.port, MQTT_5, "pub")
    publish(pub, Publish("sh/q", b"1", 2, packet_id=1))
    publish(pub, Publish("sh/q", b"2", 2, packet_id=2))
    assert recv_publish(low) == Publish("sh/q", b"1")
    got = recv_publish(high)
    assert got == Publish("sh/q", b"2", 2, packet_id=got.packet_id)
    acknowledge(high, got)


def test_unacknowledged_qos1_goes_to_another_member_when_the_session_ends(
    broker: BrokerThread,
) -> None:
    """4.8.2: a QoS 1 message whose member's session ends before it acknowledged it
    SHOULD go to another member of the group. The member's session ends with its
    connection (Session Expiry 0)."""
    a = member(broker, "a", "$share/g/sh/1", 1)
    b = member(broker, "b", "$share/g/sh/1", 1)
    pub = connect(broker.port, MQTT_5, "pub")
    publish(pub, Publish("sh/1", b"m", 1, packet_id=1))
    got = recv_publish(a)
    assert got.payload == b"m"  # a has it, and does not acknowledge it
    drop(a)
    again = recv_publish(b)
    # A first delivery to b: not a duplicate of one b has seen ([MQTT-3.3.1-3]).
    assert again == Publish("sh/1", b"m", 1, packet_id=again.packet_id)
    acknowledge(b, again)
    wait_session_gone(broker, "a")
    assert members(broker, "sh/1") == {"g": ["b"]}


def test_unfinished_qos2_is_not_sent_to_another_member(broker: BrokerThread) -> None:
    """[MQTT-4.8.2-5]: if the session of the member a QoS 2 message was being sent to
    ends before that member reconnects, the message MUST NOT go to any other member."""
    a = member(broker, "a", "$share/g/sh/2", 2)
    b = member(broker, "b", "$share/g/sh/2", 2)
    pub = connect(broker.port, MQTT_5, "pub")
    publish(pub, Publish("sh/2", b"first", 2, packet_id=1))
    assert recv_publish(a).payload == b"first"  # no PUBREC
    drop(a)
    wait_session_gone(broker, "a")
    publish(pub, Publish("sh/2", b"second", 2, packet_id=2))
    got = recv_publish(b)
    assert got.payload == b"second"  # the next packet b sees: "first" never came
    acknowledge(b, got)
    assert sync(b) == []


def test_unfinished_qos2_is_completed_when_the_member_reconnects(broker: BrokerThread) -> None:
    """[MQTT-4.8.2-4]: a QoS 2 message in flight to a member whose connection broke
    is delivered to that member when it reconnects (resent with DUP, [MQTT-4.4.0-1]),
    not to another member."""
    a = member(broker, "a", "$share/g/sh/r2", 2, session_expiry_interval=60)
    b = member(broker, "b", "$share/g/sh/r2", 2)
    pub = connect(broker.port, MQTT_5, "pub")
    publish(pub, Publish("sh/r2", b"first", 2, packet_id=1))
    first = recv_publish(a)
    drop(a)
    wait_offline(broker, "a")
    back = connect(broker.port, MQTT_5, "a", present=True, **persistent(MQTT_5))
    resent = recv_publish(back)
    assert resent == Publish("sh/r2", b"first", 2, dup=True, packet_id=first.packet_id)
    acknowledge(back, resent)
    publish(pub, Publish("sh/r2", b"second", 2, packet_id=2))
    got = recv_publish(b)
    assert got.payload == b"second"
    acknowledge(b, got)


def test_negative_puback_discards_the_message(broker: BrokerThread) -> None:
    """[MQTT-4.8.2-6]: a PUBACK with a Reason Code >= 0x80 discards the message; it
    is not sent to another member, not even when the member's session ends."""
    a = member(broker, "a", "$share/g/sh/n", 1)
    b = member(broker, "b", "$share/g/sh/n", 1)
    pub = connect(broker.port, MQTT_5, "pub")
    publish(pub, Publish("sh/n", b"refused", 1, packet_id=1))
    got = recv_publish(a)
    a.send(Puback(got.packet_id, 0x80))
    assert sync(a) == []
    drop(a)
    wait_session_gone(broker, "a")
    publish(pub, Publish("sh/n", b"next", 1, packet_id=2))
    assert recv_publish(b).payload == b"next"


def test_mosquitto_sub_shared_members(broker: BrokerThread) -> None:
    """Two mosquitto_sub -V mqttv5 on $share/g/x split the messages, each getting
    some and none getting one twice."""
    subs = [
        start_mosquitto_sub(broker.port, "-V", "mqttv5", "-t", "$share/g/mq/x", "-C", "3")
        for _ in range(2)
    ]
    wait_until(lambda: len(members(broker, "mq/x").get("g", [])) == 2)
    pub = connect(broker.port, MQTT_5, "pub")
    for n in range(6):
        publish(pub, Publish("mq/x", b"%d" % n, 1, packet_id=n + 1))
    outputs = [finish(sub) for sub in subs]
    assert [len(lines) for lines in outputs] == [3, 3]
    assert sorted(outputs[0] + outputs[1]) == [str(n) for n in range(6)]


@pytest.mark.parametrize("version", VERSIONS)
def test_paho_shared_members(broker: BrokerThread, version: int) -> None:
    """paho-mqtt clients as members of one group and as the publisher."""
    clients = [PahoClient(broker.port, f"paho-{n}", version) for n in range(2)]
    for client in clients:
        client.subscribe("$share/workers/paho/jobs", qos=1)
    publisher = PahoClient(broker.port, "paho-pub", version)
    for n in range(4):
        publisher.publish("paho/jobs", b"job %d" % n, qos=1)
    got = [[m.payload for m in client.take(2)] for client in clients]
    assert got == [[b"job 0", b"job 2"], [b"job 1", b"job 3"]]
