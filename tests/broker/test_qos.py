"""QoS 1 and QoS 2 in both directions, redelivery on reconnection, packet identifiers,
and QoS end to end with clients we did not write (paho-mqtt, mosquitto_pub/sub).

Statement ids are MQTT 5.0's unless marked "3.1.1"; the QoS flows are the same in both.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from roost.codec import (
    MQTT_3_1,
    MQTT_3_1_1,
    MQTT_5,
    Disconnect,
    Packet,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Subscription,
)
from tests.support.broker_thread import BrokerThread
from tests.support.mosquitto_tools import (
    MOSQUITTO_VERSIONS,
    finish,
    mosquitto_pub,
    start_mosquitto_sub,
)
from tests.support.paho import PahoClient
from tests.support.raw import (
    connect,
    drain,
    persistent,
    publish,
    publishes,
    receive_all,
    recv_publish,
    settle,
    subscribe,
    sync,
)
from tests.support.waiting import (
    SWEEP_MARGIN,
    broker_now,
    wait_for_clock,
    wait_offline,
    wait_subscribed,
)
from tests.support.wire import frame, props, string

VERSIONS = pytest.mark.parametrize("version", [MQTT_3_1_1, MQTT_5], ids=["v311", "v5"])


# Client -> broker.


@VERSIONS
def test_each_publish_is_answered_as_its_qos_requires(broker: BrokerThread, version: int) -> None:
    """[MQTT-3.3.4-1]: the receiver of a PUBLISH answers as its QoS requires: nothing for
    QoS 0, PUBACK for QoS 1, PUBREC for QoS 2 (then PUBCOMP for the PUBREL).

    Each acknowledgement carries the Packet Identifier of the PUBLISH it answers, 5.0
    [MQTT-2.2.1-5], 3.1.1 [MQTT-2.3.1-6]; so does the PUBREL for the broker's own QoS 2
    delivery. The bytes are exact: a success acknowledgement is its identifier alone."""
    sub = connect(broker.port, version, "sub")
    subscribe(sub, Subscription("ans/t", 2))
    pub = connect(broker.port, version, "pub")
    pub.send(Publish("ans/t", b"0"))
    assert sync(pub) == []
    pub.send(Publish("ans/t", b"1", 1, packet_id=0x1234))
    assert pub.recv_bytes(4) == b"\x40\x02\x12\x34"
    pub.send(Publish("ans/t", b"2", 2, packet_id=0xABCD))
    assert pub.recv_bytes(4) == b"\x50\x02\xab\xcd"
    pub.send(Pubrel(0xABCD))
    assert pub.recv_bytes(4) == b"\x70\x02\xab\xcd"
    assert sync(pub) == []
    got = [recv_publish(sub) for _ in range(3)]
    assert [(m.payload, m.qos) for m in got] == [(b"0", 0), (b"1", 1), (b"2", 2)]
    sub.send(Puback(got[1].packet_id))
    sub.send(Pubrec(got[2].packet_id))
    assert sub.recv_bytes(4) == b"\x62\x02" + got[2].packet_id.to_bytes(2, "big")
    sub.send(Pubcomp(got[2].packet_id))
    assert sync(sub) == []


@VERSIONS
def test_pubrec_for_an_unknown_packet_id(broker: BrokerThread, version: int) -> None:
    """A PUBREC for an id the broker has no QoS 2 delivery under gets a PUBREL with that
    id; 5.0 says 0x92 Packet Identifier not found, one of the PUBREL Reason Codes
    [MQTT-3.6.2-1] (5.0)."""
    client = connect(broker.port, version, "client")
    client.send(Pubrec(42))
    expected = b"\x62\x03\x00\x2a\x92" if version == MQTT_5 else b"\x62\x02\x00\x2a"
    assert client.recv_bytes(len(expected)) == expected
    assert sync(client) == []


def test_qos2_exchange_with_a_publisher_goes_on_after_its_message_expires(
    broker: BrokerThread,
) -> None:
    """[MQTT-4.3.3-13] (5.0): the receiver of a QoS 2 PUBLISH continues the exchange even
    if the message has expired: its PUBREL, after the Message Expiry Interval, still gets
    a successful PUBCOMP."""
    sub = connect(broker.port, MQTT_5, "sub")
    subscribe(sub, Subscription("exp/in", 0))
    pub = connect(broker.port, MQTT_5, "pub")
    pub.send(Publish("exp/in", b"brief", 2, packet_id=5, message_expiry_interval=1))
    assert pub.recv() == Pubrec(5)
    wait_for_clock(broker, broker_now(broker) + 1 + SWEEP_MARGIN)
    pub.send(Pubrel(5))
    assert pub.recv_bytes(4) == b"\x70\x02\x00\x05"
    assert sync(pub) == []
    assert sync(sub) == [Publish("exp/in", b"brief", message_expiry_interval=1)]


@VERSIONS
def test_qos1_puback_and_reuse_of_a_packet_id(broker: BrokerThread, version: int) -> None:
    """[MQTT-4.3.2-4]: PUBACK with the PUBLISH's packet id; after it, the same id is a new
    message, whatever its DUP flag [MQTT-4.3.2-5] (3.1.1: [MQTT-4.3.2-2])."""
    sub = connect(broker.port, version, "sub")
    subscribe(sub, Subscription("q1/t", 1))
    pub = connect(broker.port, version, "pub")
    pub.send(Publish("q1/t", b"a", 1, packet_id=1))
    assert pub.recv() == Puback(1)
    pub.send(Publish("q1/t", b"b", 1, packet_id=1))
    assert pub.recv() == Puback(1)
    pub.send(Publish("q1/t", b"b", 1, dup=True, packet_id=1))
    assert pub.recv() == Puback(1)
    got = receive_all(sub, 3)
    assert [m.payload for m in got] == [b"a", b"b", b"b"]


@VERSIONS
def test_acknowledgement_when_nobody_subscribes(broker: BrokerThread, version: int) -> None:
    """v5: PUBACK / PUBREC with 0x10 No matching subscribers (a success code, so the QoS 2
    flow goes on to PUBREL/PUBCOMP); 3.1.1 has no reason codes."""
    pub = connect(broker.port, version, "pub")
    pub.send(Publish("nobody/here", b"x", 1, packet_id=3))
    assert pub.recv() == (Puback(3, 0x10) if version == MQTT_5 else Puback(3))
    pub.send(Publish("nobody/here", b"x", 2, packet_id=4))
    assert pub.recv() == (Pubrec(4, 0x10) if version == MQTT_5 else Pubrec(4))
    pub.send(Pubrel(4))
    assert pub.recv() == Pubcomp(4)
    # With a subscriber, plain success.
    sub = connect(broker.port, version, "sub")
    subscribe(sub, Subscription("nobody/#", 0))
    pub.send(Publish("nobody/here", b"x", 1, packet_id=5))
    assert pub.recv() == Puback(5)


@VERSIONS
def test_qos2_duplicate_publish_before_pubrel_is_delivered_once(
    broker: BrokerThread, version: int
) -> None:
    """[MQTT-4.3.3-8] PUBREC; until PUBREL, a PUBLISH with the same id is acknowledged with
    PUBREC again and not delivered again [MQTT-4.3.3-10] (3.1.1: [MQTT-4.3.3-2]); PUBREL
    gets PUBCOMP [MQTT-4.3.3-11]; after it the id is a new message [MQTT-4.3.3-12]."""
    sub = connect(broker.port, version, "sub")
    subscribe(sub, Subscription("q2/t", 0))
    pub = connect(broker.port, version, "pub")
    pub.send(Publish("q2/t", b"once", 2, packet_id=7))
    assert pub.recv() == Pubrec(7)
    pub.send(Publish("q2/t", b"once", 2, dup=True, packet_id=7))
    assert pub.recv() == Pubrec(7)
    pub.send(Publish("q2/t", b"once", 2, dup=False, packet_id=7))
    assert pub.recv() == Pubrec(7)
    assert settle(pub, sub) == [[Publish("q2/t", b"once")]]
    pub.send(Pubrel(7))
    assert pub.recv() == Pubcomp(7)
    pub.send(Publish("q2/t", b"new", 2, packet_id=7))
    assert pub.recv() == Pubrec(7)
    assert settle(pub, sub) == [[Publish("q2/t", b"new")]]


@VERSIONS
def test_qos2_publish_resent_after_reconnect_is_delivered_once(
    broker: BrokerThread, version: int
) -> None:
    """The received-but-unreleased QoS 2 id is session state: the publisher's resend after
    reconnecting (DUP=1, same id [MQTT-4.4.0-1]) is not delivered twice [MQTT-4.3.3-10]."""
    sub = connect(broker.port, version, "sub")
    subscribe(sub, Subscription("q2/t", 2))
    pub = connect(broker.port, version, "pub", **persistent(version))
    pub.send(Publish("q2/t", b"once", 2, packet_id=3))
    assert pub.recv() == Pubrec(3)
    pub.close()
    wait_offline(broker, "pub")
    pub = connect(broker.port, version, "pub", present=True, **persistent(version))
    pub.send(Publish("q2/t", b"once", 2, dup=True, packet_id=3))
    assert pub.recv() == Pubrec(3)
    pub.send(Pubrel(3))
    assert pub.recv() == Pubcomp(3)
    assert [m.payload for m in receive_all(sub, 1)] == [b"once"]
    assert drain(sub) == []


@VERSIONS
def test_pubrel_for_an_unknown_packet_id(broker: BrokerThread, version: int) -> None:
    """[MQTT-4.3.3-11]: a PUBREL is answered with PUBCOMP; v5 says 0x92 Packet Identifier
    not found when the id is unknown [MQTT-3.7.2-1]."""
    pub = connect(broker.port, version, "pub")
    pub.send(Pubrel(42))
    assert pub.recv() == (Pubcomp(42, 0x92) if version == MQTT_5 else Pubcomp(42))
    assert sync(pub) == []


def test_refused_qos2_publish_leaves_no_state(make_broker: Callable[..., BrokerThread]) -> None:
    """After a PUBREC with a failure code (here 0x87 for a $SYS topic) the id is free: a
    new PUBLISH with it is a new message [MQTT-4.3.3-9], a PUBREL for it is unknown
    (0x92), and refused messages do not use up the Receive Maximum [MQTT-3.3.4-7]."""
    broker = make_broker(receive_maximum=2, sys_interval=0)
    sub = connect(broker.port, MQTT_5, "sub")
    subscribe(sub, Subscription("ok/t", 0))
    pub = connect(broker.port, MQTT_5, "pub")
    for packet_id in range(1, 6):
        pub.send(Publish("$SYS/forged", b"x", 2, packet_id=packet_id))
        assert pub.recv() == Pubrec(packet_id, 0x87)
    pub.send(Pubrel(5))
    assert pub.recv() == Pubcomp(5, 0x92)
    pub.send(Publish("ok/t", b"real", 2, packet_id=1))
    assert pub.recv() == Pubrec(1)
    pub.send(Pubrel(1))
    assert pub.recv() == Pubcomp(1)
    assert settle(pub, sub) == [[Publish("ok/t", b"real")]]


def test_publish_above_maximum_qos_is_refused(make_broker: Callable[..., BrokerThread]) -> None:
    """3.2.2.3.4: a PUBLISH above the Maximum QoS in CONNACK gets DISCONNECT 0x9B (QoS not
    supported) [MQTT-3.2.2-11]; other clients carry on."""
    broker = make_broker(maximum_qos=1)
    sub = connect(broker.port, MQTT_5, "sub")
    subscribe(sub, Subscription("mq/t", 2), granted=(1,))
    bad = connect(broker.port, MQTT_5, "bad")
    bad.send(Publish("mq/t", b"x", 2, packet_id=1))
    packets = bad.expect_closed()
    assert [(type(p), getattr(p, "reason_code", None)) for p in packets] == [(Disconnect, 0x9B)]
    pub = connect(broker.port, MQTT_5, "pub")
    publish(pub, Publish("mq/t", b"fine", 1, packet_id=1))
    assert [(m.payload, m.qos) for m in receive_all(sub, 1)] == [(b"fine", 1)]


# Broker -> client.


@VERSIONS
def test_qos0_delivery_has_no_packet_identifier_and_dup_0(
    broker: BrokerThread, version: int
) -> None:
    """A QoS 0 PUBLISH carries no Packet Identifier, 5.0 [MQTT-2.2.1-2], 3.1.1
    [MQTT-2.3.1-5], also when it was published at QoS 1 or 2; its DUP flag is 0
    [MQTT-4.3.1-1] (3.1.1 too). The bytes are exact. With no properties to send, a 5.0
    PUBLISH still has a Property Length of zero [MQTT-2.2.2-1] (5.0)."""
    sub = connect(broker.port, version, "sub")
    subscribe(sub, Subscription("q0/t", 0))
    pub = connect(broker.port, version, "pub")
    for qos, payload in ((0, b"a"), (1, b"b"), (2, b"c")):
        publish(pub, Publish("q0/t", payload, qos, packet_id=qos))
    for payload in (b"a", b"b", b"c"):
        expected = frame(0x30, string(b"q0/t"), props(version), payload)
        assert sub.recv_bytes(len(expected)) == expected
    assert sync(sub) == []


@VERSIONS
def test_qos1_delivery_flow(broker: BrokerThread, version: int) -> None:
    """5.0 [MQTT-4.3.2-1], [MQTT-4.3.2-2]: each new QoS 1 message to a client gets an
    identifier not in use and goes out as PUBLISH QoS 1, DUP 0. It stays unacknowledged
    until its PUBACK [MQTT-4.3.2-3] (5.0): on resuming the session only the
    unacknowledged ones are sent again. (3.1.1 [MQTT-4.3.2-1] says all of it.)"""
    sub = connect(broker.port, version, "sub", **persistent(version))
    subscribe(sub, Subscription("q1/out", 1))
    pub = connect(broker.port, version, "pub")
    for n in (1, 2, 3):
        publish(pub, Publish("q1/out", b"m%d" % n, 1, packet_id=n))
    sent = [recv_publish(sub) for _ in range(3)]
    ids = [m.packet_id for m in sent]
    assert 0 not in ids
    assert len(set(ids)) == 3
    assert sent == [
        Publish("q1/out", b"m%d" % n, 1, packet_id=packet_id)
        for n, packet_id in zip((1, 2, 3), ids, strict=True)
    ]
    sub.send(Puback(ids[1]))
    assert sync(sub) == []
    sub.close()
    wait_offline(broker, "sub")
    sub = connect(broker.port, version, "sub", present=True, **persistent(version))
    assert sync(sub) == [
        Publish("q1/out", b"m1", 1, dup=True, packet_id=ids[0]),
        Publish("q1/out", b"m3", 1, dup=True, packet_id=ids[2]),
    ]
    sub.send(Puback(ids[0]))
    sub.send(Puback(ids[2]))
    assert sync(sub) == []


@pytest.mark.parametrize("qos", [1, 2])
def test_a_message_in_flight_is_not_expired(broker: BrokerThread, qos: int) -> None:
    """[MQTT-4.3.3-7] (5.0): once a QoS 2 PUBLISH has been sent, no message expiry applies
    to it: the resumed session gets it again [MQTT-4.4.0-1] after its Message Expiry
    Interval has passed (the interval then 0) and the exchange completes. QoS 1 the
    same: the server deletes an expired copy only when it "has not managed to start
    onward delivery" [MQTT-3.3.2-5], and every unacknowledged PUBLISH is sent again on
    resuming [MQTT-4.4.0-1]. A copy still queued when it expires is dropped."""
    sub = connect(broker.port, MQTT_5, "sub", **persistent(MQTT_5))
    subscribe(sub, Subscription("exp/out", 2))
    pub = connect(broker.port, MQTT_5, "pub")
    publish(pub, Publish("exp/out", b"sent", qos, packet_id=1, message_expiry_interval=1))
    sent = recv_publish(sub)
    assert sent == Publish(
        "exp/out", b"sent", qos, packet_id=sent.packet_id, message_expiry_interval=1
    )
    sub.close()
    wait_offline(broker, "sub")
    publish(pub, Publish("exp/out", b"queued", qos, packet_id=2, message_expiry_interval=1))
    wait_for_clock(broker, broker_now(broker) + 1 + SWEEP_MARGIN)
    sub = connect(broker.port, MQTT_5, "sub", present=True, **persistent(MQTT_5))
    assert sync(sub) == [
        Publish(
            "exp/out",
            b"sent",
            qos,
            dup=True,
            packet_id=sent.packet_id,
            message_expiry_interval=0,
        )
    ]
    if qos == 1:
        sub.send(Puback(sent.packet_id))
    else:
        sub.send(Pubrec(sent.packet_id))
        assert sub.recv() == Pubrel(sent.packet_id)
        sub.send(Pubcomp(sent.packet_id))
    assert sync(sub) == []


@VERSIONS
def test_qos2_delivery_flow(broker: BrokerThread, version: int) -> None:
    """[MQTT-4.3.3-1] (3.1.1 too) an unused non-zero id, PUBLISH QoS 2 and DUP 0
    [MQTT-4.3.3-2] (5.0); [MQTT-4.3.3-4] PUBREL with the same id after PUBREC; nothing
    after PUBCOMP."""
    sub = connect(broker.port, version, "sub")
    subscribe(sub, Subscription("out/t", 2))
    pub = connect(broker.port, version, "pub")
    publish(pub, Publish("out/t", b"x", 2, packet_id=1))
    message = recv_publish(sub)
    assert message.packet_id != 0
    assert message == Publish("out/t", b"x", 2, packet_id=message.packet_id)
    sub.send(Pubrec(message.packet_id))
    assert sub.recv() == Pubrel(message.packet_id)
    sub.send(Pubcomp(message.packet_id))
    assert sync(sub) == []


@VERSIONS
@pytest.mark.parametrize("qos", [1, 2])
def test_unacknowledged_messages_are_resent_after_reconnect(
    broker: BrokerThread, version: int, qos: int
) -> None:
    """[MQTT-4.4.0-1] (3.1.1 too): on resuming a session the broker resends unacknowledged
    PUBLISHes with DUP=1 [MQTT-3.3.1-1] and their original ids, and PUBRELs for QoS 2
    messages already PUBREC'd, not their PUBLISH [MQTT-4.3.3-6]; a message queued while
    offline then comes with DUP=0 and an id not in use [MQTT-2.2.1-4]. Once everything is
    acknowledged, nothing is resent on the next reconnection. A PUBLISH stays
    unacknowledged until its PUBACK [MQTT-4.3.2-3] (5.0) or PUBREC [MQTT-4.3.3-3] (5.0),
    and the resent PUBLISHes keep their original order (3.1.1 [MQTT-4.6.0-1])."""
    sub = connect(broker.port, version, "sub", **persistent(version))
    subscribe(sub, Subscription("re/t", 2))
    pub = connect(broker.port, version, "pub")
    for i in (1, 2, 3):
        publish(pub, Publish("re/t", b"m%d" % i, qos, packet_id=i))
    m1, m2, m3 = (recv_publish(sub) for _ in range(3))
    assert [m.payload for m in (m1, m2, m3)] == [b"m1", b"m2", b"m3"]
    assert len({m1.packet_id, m2.packet_id, m3.packet_id}) == 3
    if qos == 1:
        sub.send(Puback(m2.packet_id))
    else:
        sub.send(Pubrec(m2.packet_id))
        assert sub.recv() == Pubrel(m2.packet_id)  # no PUBCOMP: the PUBREL stays unfinished
    assert sync(sub) == []  # nothing is resent while connected [MQTT-4.4.0-1]
    sub.close()
    wait_offline(broker, "sub")
    publish(pub, Publish("re/t", b"m4", qos, packet_id=4))

    sub = connect(broker.port, version, "sub", present=True, **persistent(version))
    expected: list[Packet] = [Publish("re/t", b"m1", qos, dup=True, packet_id=m1.packet_id)]
    if qos == 2:
        expected.append(Pubrel(m2.packet_id))
    expected.append(Publish("re/t", b"m3", qos, dup=True, packet_id=m3.packet_id))
    resent = [sub.recv() for _ in expected]
    assert sorted(resent, key=repr) == sorted(expected, key=repr)
    # The resent PUBLISHes keep their original order.
    assert [p for p in resent if isinstance(p, Publish)] == [
        p for p in expected if isinstance(p, Publish)
    ]
    m4 = recv_publish(sub)
    in_flight = {m1.packet_id, m3.packet_id} | ({m2.packet_id} if qos == 2 else set())
    assert m4.packet_id not in in_flight
    assert m4 == Publish("re/t", b"m4", qos, packet_id=m4.packet_id)
    for message in (m1, m3, m4):
        if qos == 1:
            sub.send(Puback(message.packet_id))
        else:
            sub.send(Pubrec(message.packet_id))
            assert sub.recv() == Pubrel(message.packet_id)
            sub.send(Pubcomp(message.packet_id))
    if qos == 2:
        sub.send(Pubcomp(m2.packet_id))
    assert sync(sub) == []
    sub.close()
    wait_offline(broker, "sub")
    sub = connect(broker.port, version, "sub", present=True, **persistent(version))
    assert sync(sub) == []


def test_pubrec_with_a_failure_code_ends_the_flow(broker: BrokerThread) -> None:
    """[MQTT-4.3.3-4]: PUBREL only after a PUBREC below 0x80; a failure PUBREC counts as
    the acknowledgement (freeing the Receive Maximum slot [MQTT-3.3.4-9]) and the message
    is not retransmitted, not even on reconnection [MQTT-4.4.0-2]."""
    fields = {"receive_maximum": 1, **persistent(MQTT_5)}
    sub = connect(broker.port, MQTT_5, "sub", **fields)
    subscribe(sub, Subscription("fail/t", 2))
    pub = connect(broker.port, MQTT_5, "pub")
    publish(pub, Publish("fail/t", b"m1", 2, packet_id=1))
    publish(pub, Publish("fail/t", b"m2", 2, packet_id=2))
    m1 = recv_publish(sub)
    assert m1.payload == b"m1"
    assert sync(sub) == []  # m2 waits for the only slot
    sub.send(Pubrec(m1.packet_id, 0x80))
    (m2,) = publishes(sync(sub))  # no PUBREL for m1; m2 takes the slot
    assert m2.payload == b"m2"
    sub.send(Pubrec(m2.packet_id))
    assert sub.recv() == Pubrel(m2.packet_id)
    sub.send(Pubcomp(m2.packet_id))
    assert sync(sub) == []
    sub.close()
    wait_offline(broker, "sub")
    sub = connect(broker.port, MQTT_5, "sub", present=True, **fields)
    assert sync(sub) == []


@VERSIONS
def test_packet_ids_are_non_zero_and_unique_among_those_in_flight(
    broker: BrokerThread, version: int
) -> None:
    """[MQTT-2.2.1-4] (3.1.1: [MQTT-2.3.1-1], [MQTT-2.3.1-4]): each new QoS > 0 PUBLISH to
    a client gets a non-zero id not in use, also when the counter wraps past 65535."""
    fields: dict[str, object] = {"receive_maximum": 10} if version == MQTT_5 else {}
    sub = connect(broker.port, version, "sub", **fields)
    subscribe(sub, Subscription("id/t", 2))
    pub = connect(broker.port, version, "pub")

    def deliver(count: int, qos: int = 1) -> list[Publish]:
        for _ in range(count):
            publish(pub, Publish("id/t", b"x", qos, packet_id=1))
        return [recv_publish(sub) for _ in range(count)]

    first = deliver(10)
    ids = [m.packet_id for m in first]
    assert 0 not in ids
    assert len(set(ids)) == 10
    for message in first[1::2]:
        sub.send(Puback(message.packet_id))
    unacked = {m.packet_id for m in first[0::2]}
    second = deliver(5, qos=2)
    new_ids = [m.packet_id for m in second]
    assert 0 not in new_ids
    assert len(set(new_ids)) == 5
    assert not set(new_ids) & unacked
    for message in second:
        sub.send(Pubrec(message.packet_id))
        assert sub.recv() == Pubrel(message.packet_id)
        sub.send(Pubcomp(message.packet_id))
    # Move the allocator to the end of the id space: the next ids wrap, skipping 0 and
    # the ids still unacknowledged.
    sync(sub)

    def near_the_end() -> None:
        session = broker.broker.sessions["sub"]
        # White-box, to reach the wrap without 65,535 deliveries.
        session._next_packet_id = 0xFFFF

    broker.call(near_the_end)
    wrapped = [m.packet_id for m in deliver(4)]
    assert wrapped[0] == 0xFFFF
    assert 0 not in wrapped
    assert len(set(wrapped)) == 4
    assert not set(wrapped) & unacked


# End to end with paho-mqtt and the mosquitto clients.


@VERSIONS
@pytest.mark.parametrize("qos", [1, 2])
def test_paho_end_to_end(broker: BrokerThread, version: int, qos: int) -> None:
    """paho publisher and subscriber at QoS 1 and 2: every message once, in order, at
    the subscribed QoS; paho's own acknowledgement handling completes every flow."""
    sub = PahoClient(broker.port, "paho-sub", version)
    pub = PahoClient(broker.port, "paho-pub", version)
    sub.subscribe("e2e/paho", qos)
    payloads = [b"message %d" % i for i in range(20)]
    pub.publish_all("e2e/paho", payloads, qos)
    got = sub.take(20)
    assert [m.payload for m in got] == payloads
    assert {m.qos for m in got} == {qos}
    assert sub.messages.empty()


@pytest.mark.parametrize("version", [MQTT_3_1, MQTT_3_1_1, MQTT_5], ids=["v31", "v311", "v5"])
@pytest.mark.parametrize("qos", [1, 2])
def test_mosquitto_clients_end_to_end(broker: BrokerThread, version: int, qos: int) -> None:
    """mosquitto_pub -l and mosquitto_sub at every protocol level, QoS 1 and 2."""
    level = MOSQUITTO_VERSIONS[version]
    sub = start_mosquitto_sub(
        broker.port, "-V", level, "-i", "msub", "-t", "e2e/mosq", "-q", str(qos),
        "-C", "5", "-F", "%q %p",
    )  # fmt: skip
    wait_subscribed(broker, "msub", "e2e/mosq")
    lines = "".join(f"line {i}\n" for i in range(5))
    mosquitto_pub(
        broker.port, "-V", level, "-i", "mpub", "-t", "e2e/mosq", "-q", str(qos), "-l",
        input_text=lines,
    )  # fmt: skip
    assert finish(sub) == [f"{qos} line {i}" for i in range(5)]


def test_v31_publisher_to_v5_subscriber(broker: BrokerThread) -> None:
    """Across protocol levels: an MQTT 3.1 publisher's retained QoS 1 message reaches an
    MQTT 5 subscriber (paho) at min(1, 2) = 1 with RETAIN 0 on the live delivery
    [MQTT-3.3.1-12], and a v5 subscriber with mosquitto_sub."""
    paho_sub = PahoClient(broker.port, "paho-v5", MQTT_5)
    mosq_sub = start_mosquitto_sub(
        broker.port, "-V", "mqttv5", "-i", "msub5", "-t", "x/v", "-q", "2", "-C", "1",
        "-F", "%q %r %p",
    )  # fmt: skip
    paho_sub.subscribe("x/v", 2)
    wait_subscribed(broker, "msub5", "x/v")
    mosquitto_pub(
        broker.port, "-V", "mqttv31", "-i", "old", "-t", "x/v", "-q", "1", "-r", "-m", "hi"
    )
    (message,) = paho_sub.take(1)
    assert (message.topic, message.payload, message.qos, message.retain) == (
        "x/v",
        b"hi",
        1,
        False,
    )
    assert finish(mosq_sub) == ["1 0 hi"]


def test_v5_publisher_to_v31_subscriber(broker: BrokerThread) -> None:
    """And the other way: a paho v5 QoS 2 publish reaches an MQTT 3.1 mosquitto_sub at QoS 2."""
    sub = start_mosquitto_sub(
        broker.port, "-V", "mqttv31", "-i", "msub31", "-t", "x/#", "-q", "2", "-C", "2",
        "-F", "%q %t %p",
    )  # fmt: skip
    wait_subscribed(broker, "msub31", "x/#")
    pub = PahoClient(broker.port, "paho-v5-pub", MQTT_5)
    pub.publish_all("x/a", [b"one"], 2)
    pub.publish_all("x/b", [b"two"], 1)
    assert finish(sub) == ["2 x/a one", "1 x/b two"]
