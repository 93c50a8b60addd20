"""Flow control over real sockets: Receive Maximum in both directions and Maximum Packet
Size in both directions (MQTT 5.0 sections 3.1.2.11.3-4, 3.2.2.3.3, 3.2.2.3.6, 4.9).

After each misbehaving client is disconnected, the tests check that the others carry on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest

from roost.broker.auth.base import Access, AuthResult, Challenge, ClientInfo
from roost.codec import (
    MQTT_3_1_1,
    MQTT_5,
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
    Pingreq,
    Pingresp,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Subscription,
    Unsubscribe,
)
from roost.codec.primitives import encode_varint
from tests.support.broker_thread import BrokerThread
from tests.support.raw import (
    connect,
    open_client,
    persistent,
    publish,
    publishes,
    receive_all,
    recv_publish,
    settle,
    subscribe,
    sync,
)
from tests.support.waiting import wait_offline

VERSIONS = pytest.mark.parametrize("version", [MQTT_3_1_1, MQTT_5], ids=["v311", "v5"])


# The client's Receive Maximum: what the broker may have in flight towards it.


@pytest.mark.parametrize("qos", [1, 2])
def test_client_receive_maximum_limits_unacknowledged_publishes(
    broker: BrokerThread, qos: int
) -> None:
    """[MQTT-3.3.4-9], [MQTT-4.9.0-2]: never more than Receive Maximum (2) QoS > 0
    PUBLISHes without PUBACK / PUBCOMP, and the initial send quota is that, not 0
    [MQTT-4.9.0-1]; the rest follow, in order, as slots free up. A
    QoS 2 slot is freed by PUBCOMP, not by PUBREC. PINGRESP is never held back
    [MQTT-3.3.4-10], [MQTT-4.9.0-3]."""
    sub = connect(broker.port, MQTT_5, "sub", receive_maximum=2)
    subscribe(sub, Subscription("rm/t", 2))
    pub = connect(broker.port, MQTT_5, "pub")
    for i in range(6):
        publish(pub, Publish("rm/t", b"%d" % i, qos, packet_id=i + 1))
    (first,) = settle(pub, sub)  # sync's PINGRESP arrives although the window is full
    in_flight = publishes(first)
    assert [m.payload for m in in_flight] == [b"0", b"1"]
    received = list(in_flight)
    while in_flight:
        oldest = in_flight.pop(0)
        if qos == 1:
            sub.send(Puback(oldest.packet_id))
        else:
            sub.send(Pubrec(oldest.packet_id))
            assert sync(sub) == [Pubrel(oldest.packet_id)]  # the slot is still taken
            sub.send(Pubcomp(oldest.packet_id))
        new = publishes(sync(sub))
        assert len(new) == (1 if len(received) < 6 else 0)
        in_flight.extend(new)
        received.extend(new)
        assert len(in_flight) <= 2
    assert [m.payload for m in received] == [b"%d" % i for i in range(6)]
    assert {m.qos for m in received} == {qos}


def test_qos0_and_other_packets_are_not_held_back_by_a_full_window(
    broker: BrokerThread,
) -> None:
    """The send quota only limits QoS > 0 PUBLISHes [MQTT-4.9.0-2]; QoS 0 messages and
    the other packets (here SUBACK) still flow [MQTT-3.3.4-10], [MQTT-4.9.0-3]."""
    sub = connect(broker.port, MQTT_5, "sub", receive_maximum=1)
    subscribe(sub, Subscription("w/t", 1))
    pub = connect(broker.port, MQTT_5, "pub")
    publish(pub, Publish("w/t", b"held", 1, packet_id=1))
    publish(pub, Publish("w/t", b"queued", 1, packet_id=2))
    publish(pub, Publish("w/t", b"qos0"))
    (got,) = settle(pub, sub)
    held = publishes(got)[0]
    assert [(m.payload, m.qos) for m in publishes(got)] == [(b"held", 1), (b"qos0", 0)]
    sub.send(Subscribe(2, (Subscription("w/other", 0),)))
    assert sub.recv() == Suback(2, (0,))
    sub.send(Puback(held.packet_id))
    assert [m.payload for m in publishes(sync(sub))] == [b"queued"]


@VERSIONS
def test_in_flight_window_without_a_receive_maximum(
    make_broker: Callable[..., BrokerThread], version: int
) -> None:
    """With no Receive Maximum from the client (3.1.1 cannot send one), the broker's
    max_inflight_messages bounds what it has in flight (v5 default 65,535 is larger)."""
    broker = make_broker(max_inflight_messages=3)
    sub = connect(broker.port, version, "sub")
    subscribe(sub, Subscription("win/t", 1))
    pub = connect(broker.port, version, "pub")
    for i in range(5):
        publish(pub, Publish("win/t", b"%d" % i, 1, packet_id=1))
    (got,) = settle(pub, sub)
    assert [m.payload for m in publishes(got)] == [b"0", b"1", b"2"]
    sub.send(Puback(publishes(got)[0].packet_id))
    assert [m.payload for m in publishes(sync(sub))] == [b"3"]


@VERSIONS
def test_many_pubacks_in_one_read_each_free_a_slot(
    make_broker: Callable[..., BrokerThread], version: int
) -> None:
    """PUBACKs arriving together (one write, more than the broker sends on early) are
    taken from the stream without a packet object and free their slots at once: what
    waited goes out in order, each exactly once, with the ids now free; a PUBACK for an
    id not in flight among them changes nothing, and what they freed is sent before the
    answer to a packet that follows them."""
    broker = make_broker(max_inflight_messages=12)
    sub = connect(broker.port, version, "sub")
    subscribe(sub, Subscription("many/t", 1))
    pub = connect(broker.port, version, "pub")
    for i in range(40):
        publish(pub, Publish("many/t", b"%d" % i, 1, packet_id=1))
    (got,) = settle(pub, sub)
    first = publishes(got)
    assert [m.payload for m in first] == [b"%d" % i for i in range(12)]
    stray = max(m.packet_id for m in first) + 100  # never used: ids count up from 1
    sub.send(
        b"".join(Puback(m.packet_id).encode(version) for m in first) + Puback(stray).encode(version)
    )
    rest = publishes(sync(sub))
    assert [m.payload for m in rest] == [b"%d" % i for i in range(12, 24)]
    assert len({m.packet_id for m in rest}) == 12
    # With a PINGREQ in the same write: the PUBACKs' effect comes before its PINGRESP.
    sub.send(
        b"".join(Puback(m.packet_id).encode(version) for m in rest) + Pingreq().encode(version)
    )
    before_pong: list[Packet] = []
    while not isinstance(packet := sub.recv(), Pingresp):
        before_pong.append(packet)
    assert [m.payload for m in publishes(before_pong)] == [b"%d" % i for i in range(24, 36)]


def test_resumed_session_respects_the_new_receive_maximum(broker: BrokerThread) -> None:
    """The Receive Maximum is per Network Connection: a session resumed with a smaller one
    gets at most that many of its unacknowledged messages resent at once [MQTT-3.3.4-9],
    each with DUP=1 and its original id [MQTT-4.4.0-1]; the rest follow as acks arrive."""
    sub = connect(broker.port, MQTT_5, "sub", receive_maximum=4, **persistent(MQTT_5))
    subscribe(sub, Subscription("res/t", 1))
    pub = connect(broker.port, MQTT_5, "pub")
    for i in range(4):
        publish(pub, Publish("res/t", b"%d" % i, 1, packet_id=1))
    originals = [recv_publish(sub) for _ in range(4)]
    sub.close()
    wait_offline(broker, "sub")
    sub = connect(broker.port, MQTT_5, "sub", present=True, receive_maximum=2, **persistent(MQTT_5))
    resent = publishes(sync(sub))
    assert resent == [
        Publish("res/t", m.payload, 1, dup=True, packet_id=m.packet_id) for m in originals[:2]
    ]
    sub.send(Puback(resent[0].packet_id))
    assert publishes(sync(sub)) == [
        Publish("res/t", b"2", 1, dup=True, packet_id=originals[2].packet_id)
    ]


def test_resumed_qos2_pubrel_holds_a_slot_but_is_not_held_back(broker: BrokerThread) -> None:
    """A QoS 2 message whose PUBREC arrived before the reconnection is owed a PUBREL: it is
    resent at once (not a PUBLISH [MQTT-3.3.4-10]) but keeps its Receive Maximum slot
    until PUBCOMP [MQTT-3.3.4-9]."""
    sub = connect(broker.port, MQTT_5, "sub", receive_maximum=4, **persistent(MQTT_5))
    subscribe(sub, Subscription("res/t", 2))
    pub = connect(broker.port, MQTT_5, "pub")
    for i in range(3):
        publish(pub, Publish("res/t", b"%d" % i, 2, packet_id=1))
    m0, m1, m2 = (recv_publish(sub) for _ in range(3))
    sub.send(Pubrec(m0.packet_id))
    assert sub.recv() == Pubrel(m0.packet_id)
    sub.close()
    wait_offline(broker, "sub")
    sub = connect(broker.port, MQTT_5, "sub", present=True, receive_maximum=2, **persistent(MQTT_5))
    assert sync(sub) == [
        Pubrel(m0.packet_id),
        Publish("res/t", b"1", 2, dup=True, packet_id=m1.packet_id),
    ]
    sub.send(Pubcomp(m0.packet_id))
    assert sync(sub) == [Publish("res/t", b"2", 2, dup=True, packet_id=m2.packet_id)]


def test_resend_larger_than_the_new_maximum_packet_size_is_discarded(
    broker: BrokerThread,
) -> None:
    """[MQTT-3.1.2-24] (5.0) holds for resends too: a resumed client with a smaller Maximum Packet
    Size does not get an in-flight message that no longer fits; it is discarded as if
    delivered [MQTT-3.1.2-25] and not resent later either."""
    sub = connect(broker.port, MQTT_5, "sub", **persistent(MQTT_5))
    subscribe(sub, Subscription("mps/t", 1))
    pub = connect(broker.port, MQTT_5, "pub")
    publish(pub, Publish("mps/t", b"x" * 100, 1, packet_id=1))
    publish(pub, Publish("mps/t", b"small", 1, packet_id=2))
    big, small = recv_publish(sub), recv_publish(sub)
    sub.close()
    wait_offline(broker, "sub")
    sub = connect(
        broker.port, MQTT_5, "sub", present=True, maximum_packet_size=64, **persistent(MQTT_5)
    )
    assert sync(sub) == [Publish("mps/t", b"small", 1, dup=True, packet_id=small.packet_id)]
    sub.send(Puback(small.packet_id))
    sub.close()
    wait_offline(broker, "sub")
    sub = connect(broker.port, MQTT_5, "sub", present=True, **persistent(MQTT_5))
    assert sync(sub) == []
    assert big.payload == b"x" * 100


# The broker's Receive Maximum: what a client may have unacknowledged towards the broker.


@pytest.mark.parametrize("excess_qos", [1, 2])
def test_server_receive_maximum_is_advertised_and_enforced(
    make_broker: Callable[..., BrokerThread], excess_qos: int
) -> None:
    """CONNACK carries receive_maximum (3.2.2.3.3). A client may not exceed it with QoS 1/2
    PUBLISHes not yet PUBACKed/PUBCOMPed [MQTT-3.3.4-7]; the broker then sends DISCONNECT
    0x93 Receive Maximum exceeded and closes. Accepted messages were delivered, the
    excess one was not, and the other clients carry on."""
    broker = make_broker(receive_maximum=3)
    sub = connect(broker.port, MQTT_5, "sub")
    subscribe(sub, Subscription("srm/t", 0))
    bad = open_client(broker.port, MQTT_5)
    connack = bad.connect("bad")
    assert isinstance(connack, Connack)
    assert connack.receive_maximum == 3
    for packet_id in (1, 2, 3):
        bad.send(Publish("srm/t", b"%d" % packet_id, 2, packet_id=packet_id))
        assert bad.recv() == Pubrec(packet_id)
    bad.send(Pubrel(1))  # one finished: room for exactly one more
    assert bad.recv() == Pubcomp(1)
    bad.send(Publish("srm/t", b"4", 2, packet_id=4))
    assert bad.recv() == Pubrec(4)
    bad.send(Publish("srm/t", b"excess", excess_qos, packet_id=5))
    packets = bad.expect_closed_with_sizes()
    assert [(type(p), getattr(p, "reason_code", None)) for p, _size in packets] == [
        (Disconnect, 0x93)
    ]
    assert [m.payload for m in publishes(sync(sub))] == [b"1", b"2", b"3", b"4"]
    pub = connect(broker.port, MQTT_5, "pub")
    publish(pub, Publish("srm/t", b"after", 2, packet_id=1))
    assert [m.payload for m in receive_all(sub, 1)] == [b"after"]


def test_broker_disconnect_fits_the_client_maximum_packet_size(
    make_broker: Callable[..., BrokerThread],
) -> None:
    """[MQTT-3.1.2-24] (5.0): nothing the broker sends may exceed the client's Maximum Packet
    Size; a DISCONNECT's Reason String must be left out if it would not fit
    [MQTT-3.14.2-3]."""
    broker = make_broker(receive_maximum=1)
    bad = connect(broker.port, MQTT_5, "bad", maximum_packet_size=28)
    bad.send(Publish("t", b"", 2, packet_id=1))
    assert bad.recv() == Pubrec(1, 0x10)
    bad.send(Publish("t", b"", 2, packet_id=2))
    packets = bad.expect_closed_with_sizes()
    assert [(type(p), getattr(p, "reason_code", None)) for p, _size in packets] == [
        (Disconnect, 0x93)
    ]
    assert all(size <= 28 for _packet, size in packets)


# Maximum Packet Size.


def test_client_maximum_packet_size_drops_larger_publishes(broker: BrokerThread) -> None:
    """[MQTT-3.1.2-24] (5.0): no PUBLISH larger than the client's Maximum Packet Size (64 here,
    counted over the whole packet); [MQTT-3.1.2-25]: such a message is discarded for that
    client as if delivered, so a dropped QoS 1 message takes no Receive Maximum slot.
    A client with no limit gets everything."""
    small = connect(broker.port, MQTT_5, "small", maximum_packet_size=64, receive_maximum=1)
    subscribe(small, Subscription("m/t", 1))
    large = connect(broker.port, MQTT_5, "large")
    subscribe(large, Subscription("m/t", 1))
    pub = connect(broker.port, MQTT_5, "pub")
    # QoS 0 to "m/t": 1 + 1 + (2 + 3) + 1 (no properties) + payload = 8 + payload bytes.
    fits0, over0 = b"a" * 56, b"b" * 57
    # QoS 1 adds the 2-byte packet identifier.
    over1, fits1 = b"c" * 55, b"d" * 54
    assert len(Publish("m/t", fits0).encode(MQTT_5)) == 64
    assert len(Publish("m/t", fits1, 1, packet_id=1).encode(MQTT_5)) == 64
    for payload, qos in ((fits0, 0), (over0, 0), (over1, 1), (fits1, 1)):
        publish(pub, Publish("m/t", payload, qos, packet_id=1))
    got_small, got_large = settle(pub, small, large)
    assert [(m.payload, m.qos) for m in publishes(got_small)] == [(fits0, 0), (fits1, 1)]
    assert [m.payload for m in publishes(got_large)] == [fits0, over0, over1, fits1]


@VERSIONS
def test_broker_max_packet_size(make_broker: Callable[..., BrokerThread], version: int) -> None:
    """The broker's max_packet_size: v5 CONNACK states it (3.2.2.3.6); a packet of exactly
    that size is accepted; a larger one is a protocol error [MQTT-3.2.2-15]: v5 gets
    DISCONNECT 0x95 Packet too large, 3.1.1 a closed connection. Others carry on."""
    broker = make_broker(max_packet_size=128)
    sub = connect(broker.port, version, "sub")
    subscribe(sub, Subscription("big/t", 0))
    bad = open_client(broker.port, version)
    connack = bad.connect("bad")
    assert isinstance(connack, Connack)
    if version == MQTT_5:
        assert connack.maximum_packet_size == 128
    overhead = len(Publish("big/t", b"").encode(version))
    exact = Publish("big/t", b"x" * (128 - overhead))
    assert len(exact.encode(version)) == 128
    publish(bad, exact)
    bad.send(Publish("big/t", b"y" * (129 - overhead)))
    packets = bad.expect_closed_with_sizes()
    if version == MQTT_5:
        assert [(type(p), getattr(p, "reason_code", None)) for p, _ in packets] == [
            (Disconnect, 0x95)
        ]
    else:
        assert packets == []
    assert publishes(sync(sub)) == [exact]
    pub = connect(broker.port, version, "pub")
    pub.send(Publish("big/t", b"after"))
    assert settle(pub, sub) == [[Publish("big/t", b"after")]]


def test_oversized_packet_is_refused_from_its_fixed_header(
    make_broker: Callable[..., BrokerThread],
) -> None:
    """The size is judged from the fixed header: a PUBLISH announcing 10 MB against a
    1 KiB limit is refused (0x95) without the broker waiting for its body."""
    broker = make_broker(max_packet_size=1024)
    bad = connect(broker.port, MQTT_5, "bad")
    bad.send(b"\x30" + encode_varint(10_000_000) + b"\x00\x01t")
    packets = bad.expect_closed_with_sizes()
    assert [(type(p), getattr(p, "reason_code", None)) for p, _ in packets] == [(Disconnect, 0x95)]


# What the broker leaves out of its acknowledgements.


class Strict:
    """An auth plugin (loaded by dotted path): nothing under "denied/" is allowed, and the
    Authentication Method "ECHO" asks b"?" and takes b"!" for an answer."""

    def __init__(self, options: Mapping[str, object]) -> None:
        pass

    def authorize(self, client: ClientInfo, access: Access, topic: str) -> bool:
        return not topic.startswith("denied/")

    def start_auth(self, method: str, client: ClientInfo) -> Echo | None:
        return Echo() if method == "ECHO" else None


class Echo:
    def __init__(self) -> None:
        self.asked = False

    async def step(self, data: bytes | None) -> Challenge | AuthResult:
        if not self.asked:
            self.asked = True
            return Challenge(b"?")
        return AuthResult.accept() if data == b"!" else AuthResult.refuse(0x87)


STRICT = "tests.broker.test_flow_control:Strict"
# AUTH 0x18 (Continue authentication) and 0x00 (Success) with only the Authentication
# Method "ECHO" (property 0x15) and, for 0x18, the Authentication Data b"?" (0x16).
AUTH_CONTINUE = b"\xf0\x0d\x18\x0b\x15\x00\x04ECHO\x16\x00\x01?"
AUTH_SUCCESS = b"\xf0\x09\x00\x07\x15\x00\x04ECHO"


@pytest.mark.parametrize("problem_information", [0, 1])
def test_acknowledgements_carry_no_reason_string_or_user_property(
    make_broker: Callable[..., BrokerThread], problem_information: int
) -> None:
    """[MQTT-3.1.2-29] (5.0): with Request Problem Information 0 the broker sends no
    Reason String or User Property except on PUBLISH, CONNACK and DISCONNECT. It sends
    none with 1 either, so in 5.0 nothing it sends can outgrow the client's Maximum
    Packet Size (24 here, what its CONNACK takes) by them: PUBACK [MQTT-3.4.2-2]
    [MQTT-3.4.2-3], PUBREC [MQTT-3.5.2-2] [MQTT-3.5.2-3], PUBREL [MQTT-3.6.2-2]
    [MQTT-3.6.2-3], PUBCOMP [MQTT-3.7.2-2] [MQTT-3.7.2-3], SUBACK [MQTT-3.9.2-1]
    [MQTT-3.9.2-2], UNSUBACK [MQTT-3.11.2-1] [MQTT-3.11.2-2], DISCONNECT [MQTT-3.14.2-4],
    each with a failure or non-zero code where it has one. The bytes are exact."""
    broker = make_broker(auth_plugin=STRICT)
    client = connect(
        broker.port,
        MQTT_5,
        "terse",
        maximum_packet_size=24,
        request_problem_information=problem_information,
    )
    exchanges: list[tuple[Publish | Pubrel | Pubrec | Subscribe | Unsubscribe, bytes]] = [
        (Publish("nobody/t", b"", 1, packet_id=1), b"\x40\x03\x00\x01\x10"),
        (Publish("denied/t", b"", 1, packet_id=2), b"\x40\x03\x00\x02\x87"),
        (Publish("nobody/t", b"", 2, packet_id=3), b"\x50\x03\x00\x03\x10"),
        (Pubrel(3), b"\x70\x02\x00\x03"),
        (Publish("denied/t", b"", 2, packet_id=4), b"\x50\x03\x00\x04\x87"),
        (Pubrel(99), b"\x70\x03\x00\x63\x92"),
        (Pubrec(77), b"\x62\x03\x00\x4d\x92"),
        (
            Subscribe(5, (Subscription("denied/t", 1), Subscription("ok/t", 1))),
            b"\x90\x05\x00\x05\x00\x87\x01",
        ),
        (Unsubscribe(6, ("ok/t", "none/t")), b"\xb0\x05\x00\x06\x00\x00\x11"),
    ]
    for packet, answer in exchanges:
        client.send(packet)
        assert client.recv_bytes(len(answer)) == answer, packet
    assert sync(client) == []
    # A protocol error (QoS 1 with Packet Identifier 0): DISCONNECT 0x82, its Reason
    # String only if it fits [MQTT-3.14.2-3], never a User Property.
    client.send(b"\x32\x06\x00\x01t\x00\x00\x00")
    [(disconnect, size)] = client.expect_closed_with_sizes()
    assert isinstance(disconnect, Disconnect)
    assert (disconnect.reason_code, disconnect.user_properties) == (0x82, ())
    assert size <= 24


def test_auth_carries_no_reason_string_or_user_property(
    make_broker: Callable[..., BrokerThread],
) -> None:
    """The broker's AUTH packets use the Authenticate Reason Codes [MQTT-3.15.2-1]
    (0x18 Continue authentication, 0x00 Success) and carry no Reason String
    [MQTT-3.15.2-2] and no User Property [MQTT-3.15.2-3], so they never outgrow the
    client's Maximum Packet Size by them; the client asked for no problem information
    either [MQTT-3.1.2-29] (5.0). At CONNECT and at re-authentication."""
    broker = make_broker(auth_plugin=STRICT)
    client = open_client(broker.port, MQTT_5)
    client.send(
        Connect(
            "echo",
            MQTT_5,
            maximum_packet_size=64,
            request_problem_information=0,
            authentication_method="ECHO",
        )
    )
    assert client.recv_bytes(len(AUTH_CONTINUE)) == AUTH_CONTINUE
    client.send(Auth(0x18, "ECHO", b"!"))
    connack = client.recv()
    assert isinstance(connack, Connack)
    assert connack.reason_code == 0
    client.send(Auth(0x19, "ECHO"))
    assert client.recv_bytes(len(AUTH_CONTINUE)) == AUTH_CONTINUE
    client.send(Auth(0x18, "ECHO", b"!"))
    assert client.recv_bytes(len(AUTH_SUCCESS)) == AUTH_SUCCESS
    assert sync(client) == []
