"""Malformed and protocol-violating input, over real sockets, after a good CONNECT.

Every case of ``CASES`` is sent by a client that connected properly (with a will) while
a well-behaved paho-mqtt client stays connected to the same broker. The expectations
come from the specifications:

* MQTT 5.0 [MQTT-4.13.1-1]: a Server that detects a Malformed Packet or a Protocol Error
  closes the connection, and SHOULD send DISCONNECT with the reason code first: 0x81 or
  0x82 "unless a more specific Reason Code has been defined" (0x8F Topic Filter invalid,
  0x90 Topic Name invalid, 0x95 Packet too large, ...). [MQTT-4.13.2-1]: once a reason
  code of 0x80 or more is sent, the connection is closed.
* MQTT 3.1.1 [MQTT-4.8.0-1] (and [MQTT-2.2.2-2], [MQTT-1.5.3-1/2], [MQTT-3.3.1-4], ...):
  a protocol violation closes the connection; 3.1.1 has no way to say why.
* Either way the close is abnormal, so the client's will is published (MQTT 5.0
  [MQTT-3.1.2-8] and section 3.1.2.5; 3.1.1 section 3.1.2.5: "The Server closes the
  Network Connection because of a protocol error"), and nothing happens to other
  sessions ("There are no consequences for other Sessions", 5.0 section 4.13.1).

The bytes are written out by hand: the codec's encoders refuse to build these packets.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roost.broker.connection import BrokerConnection
from roost.codec import (
    MQTT_3_1,
    MQTT_3_1_1,
    MQTT_5,
    Connack,
    Connect,
    Disconnect,
    Packet,
    Pingresp,
    Puback,
    Pubcomp,
    Pubrec,
    Suback,
    Unsuback,
    Will,
)
from roost.codec.primitives import encode_varint
from tests.support.broker_thread import BrokerThread
from tests.support.paho import Bystander
from tests.support.raw import RawClient, connect, expect_disconnect, open_client
from tests.support.waiting import wait_for_broker
from tests.support.wire import frame, props, string, u16, u32

# Reason codes (MQTT 5.0 section 2.4) the broker is expected to name.
MALFORMED = 0x81
PROTOCOL_ERROR = 0x82
TOPIC_FILTER_INVALID = 0x8F
TOPIC_NAME_INVALID = 0x90
PACKET_TOO_LARGE = 0x95

WILL_PAYLOAD = b"abnormal"


@dataclass(frozen=True)
class Case:
    """One bad packet: its bytes per protocol level and the MQTT 5 reason code expected.

    ``v5 is None``: the case exists only before MQTT 5. ``v3`` is False where 3.1.x reads
    the bytes differently (e.g. MQTT 5 properties), so only MQTT 5 runs it.
    """

    name: str
    build: Callable[[int], bytes]
    v5: int | None
    v3: bool = True


def _same(data: bytes) -> Callable[[int], bytes]:
    return lambda version: data


def _per_version(v3: bytes, v5: bytes) -> Callable[[int], bytes]:
    return lambda version: v5 if version == MQTT_5 else v3


def _subscribe(*pairs: bytes, packet_id: int = 1, first: int = 0x82) -> Callable[[int], bytes]:
    return lambda version: frame(first, u16(packet_id), props(version), *pairs)


def _unsubscribe(*filters: bytes, packet_id: int = 1, first: int = 0xA2) -> Callable[[int], bytes]:
    return lambda version: frame(first, u16(packet_id), props(version), *filters)


def _publish(first: int, topic: bytes, packet_id: int | None = None) -> Callable[[int], bytes]:
    pid = b"" if packet_id is None else u16(packet_id)
    return lambda version: frame(first, string(topic), pid, props(version), b"payload")


def _v5_publish(*properties: bytes, topic: bytes = b"a/b") -> Callable[[int], bytes]:
    return lambda version: frame(0x30, string(topic), props(version, *properties), b"x")


def _v5_subscribe(*properties: bytes, options: int = 0x00) -> Callable[[int], bytes]:
    return lambda version: frame(
        0x82, u16(1), props(version, *properties), string(b"a/b"), bytes((options,))
    )


_USER_PROPERTY = b"\x26" + string(b"k") + string(b"v")

CASES: tuple[Case, ...] = (
    # Reserved fixed-header flags: 5.0 [MQTT-2.1.3-1] "If invalid flags are received it is a
    # Malformed Packet"; 3.1.1 [MQTT-2.2.2-1/2].
    Case("pingreq-flags-0001", _same(b"\xc1\x00"), MALFORMED),
    Case("puback-flags-0010", _same(b"\x42\x02\x00\x01"), MALFORMED),
    Case("pubrel-flags-0000", _same(b"\x60\x02\x00\x01"), MALFORMED),  # [MQTT-3.6.1-1]
    Case("subscribe-flags-0000", _subscribe(string(b"a"), b"\x00", first=0x80), MALFORMED),
    Case("subscribe-flags-0011", _subscribe(string(b"a"), b"\x00", first=0x83), MALFORMED),
    Case("unsubscribe-flags-0000", _unsubscribe(string(b"a"), first=0xA0), MALFORMED),
    Case("disconnect-flags-0001", _same(b"\xe1\x00"), MALFORMED),  # [MQTT-3.14.1-1]
    Case("auth-flags-0001", _same(b"\xf1\x00"), MALFORMED, v3=False),  # [MQTT-3.15.1-1]
    # PUBLISH fixed header.
    Case("publish-qos-3", _publish(0x36, b"a/b", 1), MALFORMED),  # [MQTT-3.3.1-4]
    Case("publish-qos-3-retain", _publish(0x37, b"a/b", 1), MALFORMED),
    Case("publish-qos-0-dup", _publish(0x38, b"a/b"), MALFORMED),  # [MQTT-3.3.1-2]
    # Packet identifier 0 [MQTT-2.2.1-3] (3.1.1 [MQTT-2.3.1-1]): the packet parses but
    # carries a value the protocol forbids, the definition of a Protocol Error (1.2).
    Case("publish-qos-1-packet-id-0", _publish(0x32, b"a/b", 0), PROTOCOL_ERROR),
    Case("publish-qos-2-packet-id-0", _publish(0x34, b"a/b", 0), PROTOCOL_ERROR),
    Case("subscribe-packet-id-0", _subscribe(string(b"a"), b"\x00", packet_id=0), PROTOCOL_ERROR),
    Case("unsubscribe-packet-id-0", _unsubscribe(string(b"a"), packet_id=0), PROTOCOL_ERROR),
    Case("publish-qos-1-no-packet-id", lambda v: frame(0x32, string(b"a")), MALFORMED),
    # Topic Names: no wildcards [MQTT-3.3.2-2] [MQTT-4.7.0-1] (3.1.1 [MQTT-4.7.1-1]), at
    # least one character [MQTT-4.7.3-1], well-formed UTF-8 [MQTT-1.5.4-1/2]
    # (3.1.1 [MQTT-1.5.3-1/2]) without U+0000 [MQTT-4.7.3-2] (3.1.1 too).
    Case("publish-topic-plus", _publish(0x30, b"a/+"), TOPIC_NAME_INVALID),
    Case("publish-topic-hash", _publish(0x30, b"#"), TOPIC_NAME_INVALID),
    Case("publish-topic-plus-qos-1", _publish(0x32, b"+/b", 7), TOPIC_NAME_INVALID),
    # 5.0 section 3.3.2.1: "It is a Protocol Error if the Topic Name is zero length and
    # there is no Topic Alias."
    Case("publish-topic-empty", _publish(0x30, b""), PROTOCOL_ERROR),
    Case("publish-topic-invalid-byte", _publish(0x30, b"a/\xff"), MALFORMED),
    Case("publish-topic-surrogate", _publish(0x30, b"a/\xed\xa0\x80"), MALFORMED),
    Case("publish-topic-overlong", _publish(0x30, b"a/\xc0\xaf"), MALFORMED),
    Case("publish-topic-nul", _publish(0x30, b"a\x00b"), MALFORMED),
    Case("publish-topic-overruns", lambda v: frame(0x30, u16(40), b"a/b"), MALFORMED),
    # Topic Filters: '#' last and alone [MQTT-4.7.1-1] (3.1.1 [MQTT-4.7.1-2]),
    # '+' a whole level [MQTT-4.7.1-2] (3.1.1 [MQTT-4.7.1-3]),
    # non-empty [MQTT-4.7.3-1], UTF-8 without U+0000 [MQTT-3.8.3-1] [MQTT-3.10.3-1]. The
    # specification names no reason code for a wildcard misplaced; 0x8F (Topic Filter
    # invalid) is the more specific one section 4.13.1 asks for.
    Case(
        "subscribe-filter-hash-inside", _subscribe(string(b"a/#/b"), b"\x00"), TOPIC_FILTER_INVALID
    ),
    Case("subscribe-filter-hash-glued", _subscribe(string(b"a/b#"), b"\x00"), TOPIC_FILTER_INVALID),
    Case("subscribe-filter-plus-glued", _subscribe(string(b"a+/b"), b"\x00"), TOPIC_FILTER_INVALID),
    Case(
        "subscribe-second-filter-bad",
        _subscribe(string(b"ok/#"), b"\x01", string(b"+x"), b"\x00"),
        TOPIC_FILTER_INVALID,
    ),
    Case("subscribe-filter-empty", _subscribe(string(b""), b"\x00"), TOPIC_FILTER_INVALID),
    Case("subscribe-filter-invalid-utf8", _subscribe(string(b"a/\xfe"), b"\x00"), MALFORMED),
    Case("subscribe-filter-nul", _subscribe(string(b"a/\x00"), b"\x00"), MALFORMED),
    Case("unsubscribe-filter-hash-glued", _unsubscribe(string(b"a#")), TOPIC_FILTER_INVALID),
    Case("unsubscribe-filter-plus-glued", _unsubscribe(string(b"+a")), TOPIC_FILTER_INVALID),
    Case("unsubscribe-filter-empty", _unsubscribe(string(b"")), TOPIC_FILTER_INVALID),
    Case("unsubscribe-filter-surrogate", _unsubscribe(string(b"\xed\xbf\xbf")), MALFORMED),
    Case("unsubscribe-filter-nul", _unsubscribe(string(b"\x00")), MALFORMED),
    # Shared subscriptions are MQTT 5: [MQTT-4.8.2-1] a ShareName of at least one
    # character; [MQTT-4.8.2-2] no '/', '+' or '#' in it, then '/' and a Topic Filter.
    Case(
        "subscribe-share-no-filter",
        _subscribe(string(b"$share/g"), b"\x00"),
        TOPIC_FILTER_INVALID,
        v3=False,
    ),
    Case(
        "subscribe-share-empty-filter",
        _subscribe(string(b"$share/g/"), b"\x00"),
        TOPIC_FILTER_INVALID,
        v3=False,
    ),
    Case(
        "subscribe-share-empty-name",
        _subscribe(string(b"$share//a"), b"\x00"),
        TOPIC_FILTER_INVALID,
        v3=False,
    ),
    Case(
        "subscribe-share-name-plus",
        _subscribe(string(b"$share/g+/a"), b"\x00"),
        TOPIC_FILTER_INVALID,
        v3=False,
    ),
    # [MQTT-3.8.3-4] No Local on a shared subscription is a Protocol Error.
    Case(
        "subscribe-share-no-local",
        _subscribe(string(b"$share/g/a"), b"\x04"),
        PROTOCOL_ERROR,
        v3=False,
    ),
    # At least one filter: 5.0 [MQTT-3.8.3-2] / [MQTT-3.10.3-2], "a Protocol Error";
    # 3.1.1 [MQTT-3.8.3-3] / [MQTT-3.10.3-2], "a protocol violation".
    Case("subscribe-no-filter", _subscribe(), PROTOCOL_ERROR),
    Case("unsubscribe-no-filter", _unsubscribe(), PROTOCOL_ERROR),
    # Subscription options: 5.0 [MQTT-3.8.3-5] reserved bits 6-7 are malformed; maximum QoS
    # 3 and Retain Handling 3 are Protocol Errors (section 3.8.3.1). 3.1.1 [MQTT-3-8.3-4]:
    # reserved bits 2-7 or QoS 3 are malformed.
    Case("subscribe-options-qos-3", _subscribe(string(b"a"), b"\x03"), PROTOCOL_ERROR),
    Case(
        "subscribe-options-reserved-bits",
        lambda v: _subscribe(string(b"a"), b"\x40" if v == MQTT_5 else b"\x04")(v),
        MALFORMED,
    ),
    Case("subscribe-options-reserved-bit-7", _subscribe(string(b"a"), b"\x80"), MALFORMED),
    Case(
        "subscribe-retain-handling-3", _subscribe(string(b"a"), b"\x30"), PROTOCOL_ERROR, v3=False
    ),
    Case("subscribe-filter-without-options", _subscribe(string(b"a")), MALFORMED),
    # Bytes left over after a complete packet body (trailing garbage).
    Case("pingreq-with-body", _same(b"\xc0\x01\x00"), MALFORMED),
    Case("subscribe-trailing-byte", _subscribe(string(b"a"), b"\x00", b"\x00"), MALFORMED),
    Case("unsubscribe-trailing-byte", _unsubscribe(string(b"a"), b"\x00"), MALFORMED),
    Case(
        "puback-trailing-bytes",
        _per_version(b"\x40\x03\x00\x01\x00", b"\x40\x05\x00\x01\x00\x00\xff"),
        MALFORMED,
    ),
    Case(
        "pubrel-trailing-bytes",
        _per_version(b"\x62\x03\x00\x01\x00", b"\x62\x05\x00\x01\x00\x00\xff"),
        MALFORMED,
    ),
    Case(
        "disconnect-trailing-bytes",
        _per_version(b"\xe0\x01\x00", b"\xe0\x03\x00\x00\xff"),
        MALFORMED,
    ),
    # MQTT 5 properties (section 2.2.2.2): an identifier not valid for the packet type is
    # Malformed; a property that may appear once appearing twice is a Protocol Error.
    Case("publish-property-not-allowed", _v5_publish(b"\x11" + u32(10)), MALFORMED, v3=False),
    Case("subscribe-property-not-allowed", _v5_subscribe(b"\x23" + u16(1)), MALFORMED, v3=False),
    Case("unknown-property-identifier", _v5_publish(b"\x7f\x00"), MALFORMED, v3=False),
    Case(
        "publish-property-twice",
        _v5_publish(b"\x02" + u32(10), b"\x02" + u32(20)),
        PROTOCOL_ERROR,
        v3=False,
    ),
    Case(
        "subscribe-identifier-twice",
        _v5_subscribe(b"\x0b\x01", b"\x0b\x02"),
        PROTOCOL_ERROR,
        v3=False,
    ),
    # [MQTT-3.3.4-6] a PUBLISH from a Client carries no Subscription Identifier.
    Case("publish-subscription-identifier", _v5_publish(b"\x0b\x05"), PROTOCOL_ERROR, v3=False),
    # [MQTT-3.3.2-14] no wildcards in the Response Topic.
    Case(
        "publish-response-topic-wildcard",
        _v5_publish(b"\x08" + string(b"r/#")),
        PROTOCOL_ERROR,
        v3=False,
    ),
    # The Response Topic [MQTT-3.3.2-13] and the Content Type [MQTT-3.3.2-19] are UTF-8
    # Encoded Strings: ill-formed UTF-8 in them is a Malformed Packet [MQTT-1.5.4-1].
    Case(
        "publish-response-topic-invalid-utf8",
        _v5_publish(b"\x08" + string(b"r/\xff")),
        MALFORMED,
        v3=False,
    ),
    Case(
        "publish-content-type-invalid-utf8",
        _v5_publish(b"\x03" + string(b"text/\xc0\xaf")),
        MALFORMED,
        v3=False,
    ),
    # [MQTT-1.5.7-1] both strings of a pair are UTF-8 Encoded Strings.
    Case(
        "user-property-invalid-utf8",
        _v5_publish(b"\x26" + string(b"k") + string(b"\xc3")),
        MALFORMED,
        v3=False,
    ),
    Case(
        "property-length-overruns-packet",
        lambda v: frame(0x30, string(b"a"), encode_varint(30), _USER_PROPERTY),
        MALFORMED,
        v3=False,
    ),
    Case(
        "property-overruns-property-length",
        lambda v: frame(0x30, string(b"a"), b"\x03", _USER_PROPERTY, b"payload"),
        MALFORMED,
        v3=False,
    ),
    Case(
        "subscribe-property-length-overruns",
        lambda v: frame(0x82, u16(1), encode_varint(9), b"\x0b\x01"),
        MALFORMED,
        v3=False,
    ),
    # [MQTT-1.5.5-1] a Variable Byte Integer in its shortest form (here: property length).
    Case(
        "property-length-not-shortest",
        lambda v: frame(0x30, string(b"a"), b"\x80\x00", b"x"),
        MALFORMED,
        v3=False,
    ),
    # Reason codes outside the packet's table: [MQTT-3.4.2-1] [MQTT-3.14.2-1].
    Case("puback-invalid-reason-code", _same(b"\x40\x03\x00\x01\x05"), MALFORMED, v3=False),
    Case("disconnect-invalid-reason-code", _same(b"\xe0\x01\x03"), MALFORMED, v3=False),
    # Section 3.14.2.2.2: a Session Expiry Interval on DISCONNECT after 0 at CONNECT.
    Case(
        "disconnect-sets-session-expiry",
        _same(frame(0xE0, b"\x00", b"\x05\x11" + u32(30))),
        PROTOCOL_ERROR,
        v3=False,
    ),
    # The Remaining Length: at most four bytes (section 1.5.5 / 3.1.1 2.2.3), shortest form
    # [MQTT-1.5.5-1] (3.1.1 states no such rule, so only MQTT 5 runs it).
    Case("remaining-length-5-bytes", _same(b"\x30\xff\xff\xff\xff\x01"), MALFORMED),
    Case("remaining-length-not-shortest", _same(b"\xc0\x80\x00"), MALFORMED, v3=False),
    # Reserved packet types: 0 always; 15 before MQTT 5 (where it became AUTH).
    Case("packet-type-0", _same(b"\x00\x00"), MALFORMED),
    Case("packet-type-0-with-body", _same(b"\x00\x02\x00\x01"), MALFORMED),
    Case("packet-type-15-before-v5", _same(b"\xf0\x00"), None),
    # Packets only a Server sends (section 2.1.2, "Direction of flow"): a Protocol Error.
    Case(
        "connack-from-client",
        _per_version(b"\x20\x02\x00\x00", b"\x20\x03\x00\x00\x00"),
        PROTOCOL_ERROR,
    ),
    Case(
        "suback-from-client",
        _per_version(b"\x90\x03\x00\x01\x00", b"\x90\x04\x00\x01\x00\x00"),
        PROTOCOL_ERROR,
    ),
    Case(
        "unsuback-from-client",
        _per_version(b"\xb0\x02\x00\x01", b"\xb0\x04\x00\x01\x00\x00"),
        PROTOCOL_ERROR,
    ),
    Case("pingresp-from-client", _same(b"\xd0\x00"), PROTOCOL_ERROR),
    # [MQTT-3.1.0-2] a second CONNECT is a Protocol Error.
    Case("second-connect", lambda v: Connect("again", v).encode(), PROTOCOL_ERROR),
    # [MQTT-4.12.0-7] no AUTH from a Client that gave no Authentication Method; section
    # 3.15: "It is a Protocol Error for the Client or Server to send an AUTH packet if the
    # CONNECT packet did not contain the same Authentication Method".
    Case("auth-without-method", _same(b"\xf0\x00"), PROTOCOL_ERROR, v3=False),
    Case(
        "auth-reauthenticate-without-method",
        lambda v: frame(0xF0, b"\x19", props(v, b"\x15" + string(b"SCRAM-SHA-1"))),
        PROTOCOL_ERROR,
        v3=False,
    ),
)


def _params() -> Iterator[object]:
    for case in CASES:
        versions = [MQTT_5] if case.v5 is not None else []
        if case.v3:
            versions = [MQTT_3_1, MQTT_3_1_1, *versions]
        for version in versions:
            yield pytest.param(case, version, id=f"{case.name}-v{version}")


# Fixtures and shared steps -----------------------------------------------------------------


@pytest.fixture
def bystander(broker: BrokerThread) -> Bystander:
    return Bystander(broker.port)


def connect_with_will(port: int, version: int, client_id: str) -> RawClient:
    return connect(port, version, client_id, will=Will(f"will/{client_id}", WILL_PAYLOAD))


def send_bytewise(client: RawClient, data: bytes, broker: BrokerThread) -> None:
    """Send ``data`` one byte per ``data_received`` call, stopping if the broker closes.

    After each byte we wait until the broker has counted it, so no two bytes can share
    a read; the broker may refuse a packet from its first bytes and close, after which
    the remaining bytes are not sent.
    """
    stats = broker.broker.stats
    peer = "{}:{}".format(*client.sock.getsockname()[:2])

    def connected() -> bool:
        return any(
            isinstance(conn, BrokerConnection) and conn.peer == peer
            for conn in broker.broker.connections
        )

    # The kernel completes the handshake before the broker accepts: wait for the latter.
    wait_for_broker(broker, connected)
    for index in range(len(data)):
        before = broker.call(lambda: stats.bytes_received)
        try:
            client.sock.sendall(data[index : index + 1])
        except OSError:  # the broker closed already (reset, broken pipe)
            return

        def progressed(before: int = before) -> bool:
            return stats.bytes_received > before or not connected()

        wait_for_broker(broker, progressed)
        if not broker.call(connected):
            return  # refused early: the rest is never read


def assert_refused(client: RawClient, version: int, reason: int | None) -> None:
    """MQTT 5: exactly one DISCONNECT with ``reason``, then the close; before: just the close."""
    disconnect = expect_disconnect(client, reason, version)
    if disconnect is not None:
        # [MQTT-3.14.2-2]: a Server never sends a Session Expiry Interval on DISCONNECT.
        assert disconnect.session_expiry_interval is None


# The table --------------------------------------------------------------------------------


@pytest.mark.parametrize("delivery", ["whole", "bytewise"])
@pytest.mark.parametrize(("case", "version"), list(_params()))
def test_bad_packet_after_connect(
    broker: BrokerThread,
    bystander: Bystander,
    caplog: pytest.LogCaptureFixture,
    case: Case,
    version: int,
    delivery: str,
) -> None:
    """Refused with the right reason code, the will published, the broker unharmed.

    [MQTT-4.13.1-1] [MQTT-4.13.2-1] [MQTT-3.14.4-1] [MQTT-3.14.4-2] [MQTT-3.1.2-8];
    the case's own statement is named next to it in ``CASES``.
    """
    client_id = f"bad-{case.name}"
    bad = connect_with_will(broker.port, version, client_id)
    bystander.round_trip()
    data = case.build(version)
    if delivery == "whole":
        bad.send(data)
    else:
        send_bytewise(bad, data, broker)
    bystander.round_trip()  # the broker serves others while it deals with the bad client
    assert_refused(bad, version, case.v5)
    bad.close()
    # An abnormal close: the will goes out, and the session (expiry 0) ends.
    bystander.expect(f"will/{client_id}", WILL_PAYLOAD)
    assert broker.call(lambda: client_id not in broker.broker.sessions)
    bystander.round_trip()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# Packet too large, refused from the fixed header alone -----------------------------------------


@pytest.mark.parametrize("version", [MQTT_3_1_1, MQTT_5])
@pytest.mark.parametrize(
    "header",
    [
        pytest.param(b"\x30\xff\xff\xff\x7f", id="publish-256MB"),
        pytest.param(b"\x82\xff\xff\xff\x7f", id="subscribe-256MB"),
        pytest.param(b"\x30" + encode_varint(998), id="publish-one-byte-over"),
    ],
)
def test_oversized_packet_refused_from_its_header(
    make_broker: Callable[..., BrokerThread], version: int, header: bytes
) -> None:
    """Only the fixed header is sent: the broker must close without waiting for the body.

    5.0 section 3.2.2.3.6: "If a Server receives a packet whose size exceeds this limit,
    this is a Protocol Error, the Server uses DISCONNECT with Reason Code 0x95 (Packet too
    large)"; the size counts the whole packet, fixed header included. The client never
    sends the body, so a broker that buffered before checking would wait forever.
    """
    broker = make_broker(max_packet_size=1000)
    bystander = Bystander(broker.port)
    bad = connect_with_will(broker.port, version, "huge")
    bad.send(header)
    assert_refused(bad, version, PACKET_TOO_LARGE)
    bad.close()
    bystander.expect("will/huge", WILL_PAYLOAD)
    bystander.round_trip()


@pytest.mark.parametrize("version", [MQTT_3_1_1, MQTT_5])
def test_packet_of_exactly_the_maximum_size_is_accepted(
    make_broker: Callable[..., BrokerThread], version: int
) -> None:
    """The limit is inclusive: a packet of exactly Maximum Packet Size bytes is fine.

    5.0 section 3.2.2.3.6: the Server is "willing to accept" packets up to the size.
    A 1000-byte PUBLISH: 1 type byte + 2 length bytes + 997 (2 + 3 topic, 992 payload).
    """
    broker = make_broker(max_packet_size=1000)
    client = open_client(broker.port, version)
    connack = client.connect("exact")
    assert isinstance(connack, Connack)
    assert connack.reason_code == 0
    body_size = 997 - 2 - 3 - (1 if version == MQTT_5 else 0)
    data = frame(0x30, string(b"a/b"), props(version), b"x" * body_size)
    assert len(data) == 1000
    client.send(data)
    client.send(b"\xc0\x00")
    assert client.recv() == Pingresp()
    client.send(Disconnect())
    assert client.expect_closed() == []
    client.close()


# A valid stream, one byte at a time ----------------------------------------------------------


def _valid_stream(version: int) -> tuple[bytes, list[Packet]]:
    """A conversation covering most client packets, and the exact replies expected."""
    five = version == MQTT_5
    stream = b"".join(
        (
            Connect("split", version, keep_alive=30).encode(),
            frame(0x32, string(b"split/one"), u16(1), props(version), b"qos 1"),
            frame(0x34, string(b"split/two"), u16(2), props(version, _USER_PROPERTY), b"qos 2"),
            frame(0x62, u16(2)),
            b"\xc0\x00",
            frame(0x82, u16(3), props(version, b"\x0b\x07"), string(b"split/+"), b"\x01"),
            frame(0xA2, u16(4), props(version), string(b"split/+")),
            frame(0x30, string(b"split/\xe2\x82\xac"), props(version), b""),  # U+20AC, no payload
            b"\xe0\x00",
        )
    )
    replies: list[Packet] = [
        Puback(1),
        Pubrec(2),
        Pubcomp(2),
        Pingresp(),
        Suback(3, (1,)),
        Unsuback(4, (0,) if five else ()),
    ]
    return stream, replies


@pytest.mark.parametrize("version", [MQTT_3_1, MQTT_3_1_1, MQTT_5])
def test_valid_stream_split_at_every_byte(broker: BrokerThread, version: int) -> None:
    """Every packet boundary and every position inside a packet can be a read boundary.

    [MQTT-4.2.0-1] (3.1.1: [MQTT-7.1.1-1]): the transport is an ordered, lossless stream
    of bytes; nothing may depend on how it is cut into reads.
    """
    stream, replies = _valid_stream(version)
    watcher = Bystander(broker.port, topics=("split/#",), client_id="watcher")
    client = open_client(broker.port, version)
    send_bytewise(client, stream, broker)
    packets = client.expect_closed()
    client.close()
    connack = packets.pop(0)
    assert isinstance(connack, Connack)
    assert connack.reason_code == 0
    assert packets == replies
    watcher.expect("split/one", b"qos 1")
    watcher.expect("split/two", b"qos 2")
    watcher.expect("split/\u20ac", b"")
    watcher.round_trip()
    watcher.close()
    assert broker.call(lambda: "split" not in broker.broker.sessions)


# Before CONNECT ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\x00\x00", id="type-0"),
        pytest.param(b"\xc0\x00", id="pingreq"),
        pytest.param(b"\x30\x05\x00\x01a\x00\x00", id="publish"),
        pytest.param(b"\x10\xff\xff\xff\xff\x01", id="connect-5-byte-length"),
        pytest.param(b"GET / HTTP/1.1\r\n\r\n", id="http"),
    ],
)
def test_garbage_instead_of_connect_is_closed_without_a_reply(
    broker: BrokerThread, bystander: Bystander, data: bytes
) -> None:
    """[MQTT-3.1.0-1] the first packet must be CONNECT; [MQTT-3.14.0-1] no DISCONNECT
    before a successful CONNACK, so the broker just closes [MQTT-4.13.1-1].
    """
    client = open_client(broker.port, MQTT_5)
    client.send(data)
    assert client.expect_closed() == []
    client.close()
    bystander.round_trip()


# Random bytes ------------------------------------------------------------------------------

_SEEDS = (
    b"\x30\x07\x00\x03a/b\x00x",
    b"\x32\x08\x00\x03a/b\x00\x01x",
    b"\x82\x06\x00\x01\x00\x01#\x00",
    b"\xa2\x05\x00\x01\x00\x01#",
    b"\x62\x02\x00\x01",
    b"\xc0\x00",
    b"\xe0\x00",
)


@st.composite
def _hostile_bytes(draw: st.DrawFn) -> bytes:
    """Random bytes, or a valid packet with a few bytes changed, cut or inserted."""
    if draw(st.booleans()):
        return draw(st.binary(min_size=1, max_size=48))
    data = bytearray(draw(st.sampled_from(_SEEDS)))
    for _ in range(draw(st.integers(1, 3))):
        index = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(("flip", "insert", "delete")))
        if action == "flip":
            data[index] = draw(st.integers(0, 255))
        elif action == "insert":
            data.insert(index, draw(st.integers(0, 255)))
        elif len(data) > 1:
            del data[index]
    return bytes(data)


def test_random_bytes_never_harm_the_broker(
    broker: BrokerThread, caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever a connected client sends, other clients keep being served.

    What the broker sends back must itself be well-formed (RawClient decodes it with
    the codec), and a DISCONNECT, if any, is the last thing it sends [MQTT-3.14.4-1],
    carries an error reason code and is followed by the close [MQTT-4.13.2-1].
    """
    bystander = Bystander(broker.port)
    counter = iter(range(1_000_000))

    @settings(
        max_examples=100,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(version=st.sampled_from((MQTT_3_1_1, MQTT_5)), data=_hostile_bytes())
    def check(version: int, data: bytes) -> None:
        client = connect_with_will(broker.port, version, f"fuzz-{next(counter)}")
        try:
            client.send(data)
            # Half-close: the broker sees the end of the stream and closes its side too.
            client.sock.shutdown(socket.SHUT_WR)
            packets = client.expect_closed()
        finally:
            client.close()
        for index, packet in enumerate(packets):
            if isinstance(packet, Disconnect):
                assert version == MQTT_5
                assert index == len(packets) - 1, packets
                assert packet.reason_code >= 0x80
        bystander.round_trip()

    check()
    # The broker's loop still runs, and the fuzz did reach its checks.
    assert broker.call(lambda: broker.broker.stats.protocol_violations) > 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
