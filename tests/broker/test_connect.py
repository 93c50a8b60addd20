"""CONNECT and CONNACK over real sockets: protocol levels, refusals, client identifiers,
authentication and the connect timeout.

Expected packets come from the OASIS texts: MQTT 3.1.1 (section 3.1, 3.2) and MQTT 5.0
(section 3.1, 3.2, 4.13); MQTT 3.1 (IBM/Eurotech, 2010) for the "MQIsdp" level.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest

from roost.broker.auth.base import AuthRequest, AuthResult
from roost.codec import (
    MQTT_3_1,
    MQTT_3_1_1,
    MQTT_5,
    Connack,
    Connect,
    Disconnect,
    Pingreq,
    Pingresp,
    Publish,
    Subscribe,
    Subscription,
    Will,
)
from tests.support.broker_thread import BrokerThread
from tests.support.mosquitto_tools import (
    MOSQUITTO_VERSIONS,
    mosquitto_pub,
    start_mosquitto_sub,
)
from tests.support.paho import PahoClient
from tests.support.raw import RawClient, open_client, subscribe, without_reason_string
from tests.support.waiting import has_session, wait_subscribed
from tests.support.wire import raw_connect

# CONNACK as 3.1 and 3.1.1 put it on the wire: type 2, length 2, flags, return code.
CONNACK_ACCEPTED = b"\x20\x02\x00\x00"
CONNACK_UNACCEPTABLE_PROTOCOL = b"\x20\x02\x00\x01"
CONNACK_IDENTIFIER_REJECTED = b"\x20\x02\x00\x02"
CONNACK_NOT_AUTHORIZED = b"\x20\x02\x00\x05"

ALL_LEVELS = [MQTT_3_1, MQTT_3_1_1, MQTT_5]
LEVELS = [MQTT_3_1_1, MQTT_5]


def assert_alive(client: RawClient) -> None:
    """The connection is open and served: a PINGREQ is answered [MQTT-3.12.4-1]."""
    client.send(Pingreq())
    assert client.recv() == Pingresp()


def assert_accepted(client: RawClient, version: int) -> None:
    """The next packet is a CONNACK accepting a new session."""
    if version == MQTT_3_1:
        assert client.recv_bytes(4) == CONNACK_ACCEPTED
        return
    connack = client.recv()
    assert isinstance(connack, Connack)
    assert (connack.session_present, connack.reason_code) == (False, 0)


# Accepted connections at every level.


@pytest.mark.parametrize("version", ALL_LEVELS)
def test_raw_connect_is_accepted_at_each_level(broker: BrokerThread, version: int) -> None:
    """A valid CONNECT is answered with a success CONNACK, the first packet the server
    sends ([MQTT-3.2.0-1]; 3.1.1 [MQTT-3.1.4-4], 5.0 [MQTT-3.1.4-5])."""
    client = open_client(broker.port, version)
    client.send(Connect(f"level-{version}", version))
    if version == MQTT_5:
        connack = client.recv()
        assert isinstance(connack, Connack)
        assert (connack.session_present, connack.reason_code) == (False, 0)
        assert connack.assigned_client_identifier is None
    else:
        # 3.1 reserves the whole flags byte; 3.1.1 has Session Present 0 for a clean session.
        assert client.recv_bytes(4) == CONNACK_ACCEPTED
    assert_alive(client)


@pytest.mark.parametrize("version", ALL_LEVELS)
def test_mosquitto_clients_connect_at_each_level(broker: BrokerThread, version: int) -> None:
    """mosquitto_sub and mosquitto_pub speak -V mqttv31, mqttv311 and mqttv5 to the broker."""
    option = MOSQUITTO_VERSIONS[version]
    topic = f"levels/{option}"
    sub_id = f"msub-{option}"
    receiver = start_mosquitto_sub(
        broker.port, "-V", option, "-i", sub_id, "-t", topic, "-C", "1", "-v"
    )
    wait_subscribed(broker, sub_id, topic)
    mosquitto_pub(broker.port, "-V", option, "-t", topic, "-m", "hi")
    out, err = receiver.communicate(timeout=10)
    assert receiver.returncode == 0, err
    assert out == f"{topic} hi\n"


@pytest.mark.parametrize("version", ALL_LEVELS)
def test_paho_connects_at_each_level(broker: BrokerThread, version: int) -> None:
    """A client we did not write connects, subscribes and publishes at each level using
    only what the specification defines: Roost needs no extension to interoperate
    (3.1.1) [MQTT-7.0.0-2]."""
    client = PahoClient(broker.port, f"paho-{version}", version)
    try:
        assert client.connect_reason == 0
        assert client.session_present is False
        client.subscribe("paho/levels", qos=1)
        client.client.publish("paho/levels", b"round trip", qos=1)
        message = client.next_message()
        assert (message.topic, message.payload, message.qos) == ("paho/levels", b"round trip", 1)
    finally:
        client.disconnect()


# Refused and malformed CONNECTs.


@pytest.mark.parametrize("level", [0, 1, 2, 6, 255])
def test_unsupported_protocol_level_gets_0x01_then_close(broker: BrokerThread, level: int) -> None:
    """3.1.1 [MQTT-3.1.2-2]: CONNACK 0x01 (unacceptable protocol level), then disconnect.
    5.0 [MQTT-3.1.2-2] allows that answer too (a level-6 client cannot be assumed to read
    5.0's CONNACK), and [MQTT-3.2.2-4] (3.1.1) sets Session Present 0 on a refusal."""
    client = open_client(broker.port)
    client.send(raw_connect(b"lvl", level=level))
    assert client.recv_bytes(4) == CONNACK_UNACCEPTABLE_PROTOCOL
    assert client.expect_closed() == []


@pytest.mark.parametrize("name", [b"MQTX", b"mqtt", b"MQIsdq", b""])
def test_unknown_protocol_name_is_closed_without_connack(broker: BrokerThread, name: bytes) -> None:
    """[MQTT-3.1.2-1]: with a wrong protocol name the server MAY disconnect, and MUST NOT go on
    processing the CONNECT under MQTT: no CONNACK 0x00, no session."""
    client = open_client(broker.port)
    client.send(raw_connect(b"badname", name=name, level=MQTT_3_1_1))
    assert client.expect_closed() == []
    assert not has_session(broker, "badname")


@pytest.mark.parametrize(
    "first",
    [
        Pingreq().encode(),
        Publish("a/b", b"x").encode(MQTT_3_1_1),
        Subscribe(1, (Subscription("a/#", 0),)).encode(MQTT_3_1_1),
        Disconnect().encode(MQTT_3_1_1),
        Connack(False, 0).encode(MQTT_3_1_1),
    ],
    ids=["pingreq", "publish", "subscribe", "disconnect", "connack"],
)
def test_first_packet_not_connect_is_closed(broker: BrokerThread, first: bytes) -> None:
    """[MQTT-3.1.0-1]: the first packet MUST be CONNECT. Nothing is answered: in 5.0 the
    server MUST NOT send DISCONNECT before a successful CONNACK [MQTT-3.14.0-1]."""
    client = open_client(broker.port)
    client.send(first)
    assert client.expect_closed() == []


@pytest.mark.parametrize("version", LEVELS)
def test_second_connect_is_a_protocol_error(broker: BrokerThread, version: int) -> None:
    """[MQTT-3.1.0-2]: a second CONNECT is a protocol violation and the client is
    disconnected; 5.0 says so first with DISCONNECT 0x82 (section 4.13), never with a
    second CONNACK [MQTT-3.2.0-2] (5.0). The connection did not end with DISCONNECT, so
    the will is published ([MQTT-3.1.2-8])."""
    watcher = open_client(broker.port)
    assert watcher.connect("watcher") == Connack(False, 0)
    subscribe(watcher, Subscription("second/will", 0))
    client = open_client(broker.port, version)
    connack = client.connect("twice", will=Will("second/will", b"bye"))
    assert isinstance(connack, Connack)
    assert connack.reason_code == 0
    client.send(Connect("twice", version))
    packets = client.expect_closed()
    if version == MQTT_5:
        assert [without_reason_string(p) for p in packets] == [Disconnect(0x82)]
    else:
        assert packets == []
    assert watcher.recv() == Publish("second/will", b"bye")


@pytest.mark.parametrize("version", LEVELS)
@pytest.mark.parametrize(
    "flags",
    [
        pytest.param(0x03, id="reserved-bit"),  # [MQTT-3.1.2-3]
        pytest.param(0x0A, id="will-qos-without-will"),  # 3.1.1 [MQTT-3.1.2-13], 5.0 -11
        pytest.param(0x22, id="will-retain-without-will"),  # 3.1.1 [MQTT-3.1.2-15], 5.0 -13
    ],
)
def test_malformed_connect_flags_close_the_connection(
    broker: BrokerThread, version: int, flags: int
) -> None:
    """A CONNECT that does not conform is closed: 3.1.1 [MQTT-3.1.4-1] without a CONNACK;
    5.0 [MQTT-3.1.4-1] MAY first send a CONNACK with a code of 0x80 or more (4.13)."""
    client = open_client(broker.port, version)
    client.send(raw_connect(b"flags", level=version, flags=flags))
    packets = client.expect_closed()
    if version == MQTT_5:
        assert [without_reason_string(p) for p in packets] in ([], [Connack(False, 0x81)])
    else:
        assert packets == []
    assert not has_session(broker, "flags")


def test_connack_acknowledge_flags_carry_only_session_present(broker: BrokerThread) -> None:
    """[MQTT-3.2.2-1] (5.0): in the Connect Acknowledge Flags only bit 0, Session Present,
    may be set; bits 7-1 are 0, with a session present and without."""
    for clean_start, flags in ((False, 0x00), (False, 0x01), (True, 0x00)):
        client = open_client(broker.port, MQTT_5)
        client.send(Connect("flags", MQTT_5, clean_start=clean_start, session_expiry_interval=60))
        first, length = client.recv_bytes(2)
        assert first == 0x20
        body = client.recv_bytes(length)
        assert body[:2] == bytes((flags, 0x00))
        client.send(Disconnect())
        assert client.expect_closed() == []


def test_password_without_user_name_is_malformed_in_3_1_1(broker: BrokerThread) -> None:
    """3.1.1 [MQTT-3.1.2-22]: the Password Flag needs the User Name Flag; close, no CONNACK.
    (5.0 allows a password alone, so this is 3.1.1 only.)"""
    client = open_client(broker.port)
    body = raw_connect(b"pw", flags=0x42)[2:] + b"\x00\x02pw"
    client.send(bytes((0x10, len(body))) + body)
    assert client.expect_closed() == []


# Client identifiers.


def test_empty_client_id_with_clean_session_gets_a_unique_id_3_1_1(broker: BrokerThread) -> None:
    """3.1.1 [MQTT-3.1.3-6]: a zero-length ClientId is given a unique id, and the CONNECT is
    processed as if the client had sent it: two such clients live side by side."""
    first = open_client(broker.port)
    first.send(Connect("", MQTT_3_1_1, clean_start=True))
    assert first.recv_bytes(4) == CONNACK_ACCEPTED
    second = open_client(broker.port)
    second.send(Connect("", MQTT_3_1_1, clean_start=True))
    assert second.recv_bytes(4) == CONNACK_ACCEPTED
    subscribe(first, Subscription("anon/one", 0))
    subscribe(second, Subscription("anon/two", 0))
    second.send(Publish("anon/one", b"to first"))
    assert first.recv() == Publish("anon/one", b"to first")
    first.send(Publish("anon/two", b"to second"))
    assert second.recv() == Publish("anon/two", b"to second")
    ids = broker.call(lambda: sorted(broker.broker.sessions))
    assert len(ids) == 2
    assert "" not in ids


def test_empty_client_id_without_clean_session_is_rejected_3_1_1(broker: BrokerThread) -> None:
    """3.1.1 [MQTT-3.1.3-8]: CONNACK 0x02 (identifier rejected), then close; a refusal
    has Session Present 0 [MQTT-3.2.2-4] and closes the connection [MQTT-3.2.2-5]."""
    client = open_client(broker.port)
    client.send(Connect("", MQTT_3_1_1, clean_start=False))
    assert client.recv_bytes(4) == CONNACK_IDENTIFIER_REJECTED
    assert client.expect_closed() == []
    assert broker.call(lambda: dict(broker.broker.sessions)) == {}


@pytest.mark.parametrize("version", LEVELS)
def test_data_after_a_refused_connect_is_not_processed(broker: BrokerThread, version: int) -> None:
    """3.1.1 [MQTT-3.1.4-5], 5.0 [MQTT-3.1.4-6]: once the server rejects the CONNECT it MUST
    NOT process what the client sent after it. The PUBLISH here travels in the same
    segment as the CONNECT, before any answer. The refusals: 3.1.1 an empty ClientId with
    Clean Session 0 (0x02); 5.0 an Authentication Method the server does not support,
    answered 0x8C or 0x87 before the close [MQTT-4.12.0-1]."""
    watcher = open_client(broker.port)
    assert watcher.connect("watcher") == Connack(False, 0)
    subscribe(watcher, Subscription("refused/#", 0))
    if version == MQTT_5:
        refused = Connect("refused", MQTT_5, authentication_method="x-no-such-method")
    else:
        refused = Connect("", MQTT_3_1_1, clean_start=False)
    client = open_client(broker.port, version)
    client.send(refused.encode() + Publish("refused/leak", b"must not pass").encode(version))
    packets = client.expect_closed()
    if version == MQTT_5:
        assert len(packets) == 1
        assert isinstance(packets[0], Connack)
        assert packets[0].reason_code in (0x8C, 0x87)
        assert packets[0].session_present is False
    else:
        assert packets == [Connack(False, 0x02)]
    watcher.expect_silence(0.3)
    assert broker.call(lambda: sorted(broker.broker.sessions)) == ["watcher"]


@pytest.mark.parametrize("version", LEVELS)
def test_client_id_length_limit(make_broker: Callable[..., BrokerThread], version: int) -> None:
    """The server MUST allow ClientIds of 1 to 23 bytes of [0-9a-zA-Z] ([MQTT-3.1.3-5]) and
    MAY refuse longer ones: then CONNACK 0x02 and close (3.1.1 [MQTT-3.1.3-9]) or 0x85
    Client Identifier not valid and close (5.0 [MQTT-3.1.3-8])."""
    broker = make_broker(max_client_id_length=23)
    longest = "0123456789abcdefghijXYZ"
    client = open_client(broker.port, version)
    connack = client.connect(longest)
    assert isinstance(connack, Connack)
    assert connack.reason_code == 0
    assert has_session(broker, longest)
    client = open_client(broker.port, version)
    client.send(Connect(longest + "0", version))
    if version == MQTT_5:
        assert without_reason_string(client.recv()) == Connack(False, 0x85)
    else:
        assert client.recv_bytes(4) == CONNACK_IDENTIFIER_REJECTED
    assert client.expect_closed() == []


@pytest.mark.parametrize("clean", [True, False])
def test_empty_client_id_is_rejected_in_3_1(broker: BrokerThread, clean: bool) -> None:
    """MQTT 3.1 section 3.1: the Client Identifier is 1 to 23 characters; anything else is
    answered with return code 2 (identifier rejected)."""
    client = open_client(broker.port, MQTT_3_1)
    client.send(Connect("", MQTT_3_1, clean_start=clean))
    assert client.recv_bytes(4) == CONNACK_IDENTIFIER_REJECTED
    assert client.expect_closed() == []


@pytest.mark.parametrize("clean", [True, False])
def test_empty_client_id_gets_an_assigned_client_identifier_5(
    broker: BrokerThread, clean: bool
) -> None:
    """5.0 [MQTT-3.1.3-6], [MQTT-3.1.3-7], [MQTT-3.2.2-16]: the server assigns a ClientID,
    processes the CONNECT as if the client had sent it, and returns it in the CONNACK as
    Assigned Client Identifier, new and not used by any other session. A new id has no
    session, so Session Present is 0 even with Clean Start 0 [MQTT-3.2.2-3]."""
    assigned = []
    clients = []
    for _ in range(2):
        client = open_client(broker.port, MQTT_5)
        connack = client.connect("", clean_start=clean, session_expiry_interval=60)
        assert isinstance(connack, Connack)
        assert (connack.session_present, connack.reason_code) == (False, 0)
        assert connack.assigned_client_identifier
        assigned.append(connack.assigned_client_identifier)
        clients.append(client)
    assert assigned[0] != assigned[1]
    for client_id in assigned:
        assert has_session(broker, client_id)
    for client in clients:
        assert_alive(client)


def test_paho_receives_the_assigned_client_identifier(broker: BrokerThread) -> None:
    client = PahoClient(broker.port, "", MQTT_5)
    try:
        assert client.connect_reason == 0
        assigned = client.connack_properties.AssignedClientIdentifier
        assert assigned
        assert has_session(broker, assigned)
    finally:
        client.disconnect()


# A will the broker could not publish as asked.


@pytest.mark.parametrize("version", ALL_LEVELS)
@pytest.mark.parametrize(("maximum_qos", "will_qos"), [(0, 1), (0, 2), (1, 2)])
def test_will_qos_above_the_maximum_qos_is_refused(
    make_broker: Callable[..., BrokerThread], version: int, maximum_qos: int, will_qos: int
) -> None:
    """5.0 [MQTT-3.2.2-12]: a Will QoS above what the server supports is refused with
    CONNACK 0x9B (QoS not supported), Session Present 0 [MQTT-3.2.2-6], then the
    connection closes [MQTT-3.2.2-7]. No 3.1.1 return code says so: the connection
    closes without a CONNACK (3.1.1 [MQTT-3.2.2-6]). Nothing of the refused client stays,
    its will included; a will at the maximum QoS is accepted."""
    broker = make_broker(maximum_qos=maximum_qos)
    watcher = open_client(broker.port)
    assert watcher.connect("watcher") == Connack(False, 0)
    subscribe(watcher, Subscription("willq/#", 0))
    client = open_client(broker.port, version)
    client.send(Connect("willq", version, will=Will("willq/t", b"w", qos=will_qos)))
    packets = client.expect_closed()
    if version == MQTT_5:
        assert [without_reason_string(p) for p in packets] == [Connack(False, 0x9B)]
    else:
        assert packets == []
    assert not has_session(broker, "willq")
    accepted = open_client(broker.port, version)
    accepted.send(Connect("willq", version, will=Will("willq/t", b"ok", qos=maximum_qos)))
    assert_accepted(accepted, version)
    accepted.close()
    assert watcher.recv() == Publish("willq/t", b"ok")  # the only will published


@pytest.mark.parametrize("version", ALL_LEVELS)
def test_will_retain_without_retain_support_is_refused(
    make_broker: Callable[..., BrokerThread], version: int
) -> None:
    """5.0 [MQTT-3.2.2-13]: with retained messages unsupported, a will with Will Retain 1
    is refused with CONNACK 0x9A (Retain not supported) and the connection closes. No
    3.1.1 return code says so: closed without a CONNACK (3.1.1 [MQTT-3.2.2-6]). A will
    without Will Retain is accepted."""
    broker = make_broker(retain_available=False)
    client = open_client(broker.port, version)
    client.send(Connect("willr", version, will=Will("willr/t", b"w", retain=True)))
    packets = client.expect_closed()
    if version == MQTT_5:
        assert [without_reason_string(p) for p in packets] == [Connack(False, 0x9A)]
    else:
        assert packets == []
    assert not has_session(broker, "willr")
    accepted = open_client(broker.port, version)
    accepted.send(Connect("willr", version, will=Will("willr/t", b"w")))
    assert_accepted(accepted, version)
    assert has_session(broker, "willr")


def test_a_refusal_reason_string_fits_the_client_maximum_packet_size(
    make_broker: Callable[..., BrokerThread],
) -> None:
    """5.0 [MQTT-3.2.2-19]: a refusing CONNACK leaves its Reason String out when it would
    exceed the Maximum Packet Size in the CONNECT; it never carries a User Property
    [MQTT-3.2.2-20]. Here the refusal is 0x85 for a client id over the broker's limit."""
    broker = make_broker(max_client_id_length=23)
    too_long = "x" * 24
    roomy = open_client(broker.port, MQTT_5)
    roomy.send(Connect(too_long, MQTT_5))
    (connack,) = roomy.expect_closed()
    assert isinstance(connack, Connack)
    assert connack.reason_code == 0x85
    assert connack.reason_string  # room for it: the broker does say why
    assert connack.user_properties == ()
    tight = open_client(broker.port, MQTT_5)
    tight.send(Connect(too_long, MQTT_5, maximum_packet_size=5))
    # Type 2, remaining length 3, flags 0, reason 0x85, property length 0.
    assert tight.recv_bytes(5) == b"\x20\x03\x00\x85\x00"
    assert tight.expect_closed() == []


class RefuseWith:
    """An auth plugin (loaded by dotted path) that refuses every client with the
    reason code in its options, whatever it is."""

    def __init__(self, options: Mapping[str, object]) -> None:
        code = options["code"]
        assert isinstance(code, int)
        self.code = code

    async def authenticate(self, request: AuthRequest) -> AuthResult:
        return AuthResult.refuse(self.code, "refused")


@pytest.mark.parametrize(
    ("code", "sent"),
    [
        (0x00, 0x87),  # not a refusal at all
        (0x10, 0x87),  # a PUBACK code
        (0x8E, 0x87),  # Session taken over: a DISCONNECT code
        (0x92, 0x87),  # Packet Identifier not found: a PUBREL/PUBCOMP code
        (0x8A, 0x8A),  # Banned: a Connect Reason Code, kept
        (0x9F, 0x9F),  # Connection rate exceeded, kept
    ],
)
def test_a_refusal_uses_a_connect_reason_code(
    make_broker: Callable[..., BrokerThread], code: int, sent: int
) -> None:
    """5.0 [MQTT-3.2.2-8]: whatever code an authentication backend refuses with, the
    CONNACK carries one of the Connect Reason Codes (0x87 Not authorized in place of any
    other)."""
    broker = make_broker(
        auth_plugin="tests.broker.test_connect:RefuseWith", auth_plugin_options={"code": code}
    )
    client = open_client(broker.port, MQTT_5)
    client.send(Connect("refused", MQTT_5, username="u", password=b"p"))
    packets = client.expect_closed()
    assert [without_reason_string(p) for p in packets] == [Connack(False, sent)]


# Authentication.


@pytest.mark.parametrize("version", [MQTT_3_1, MQTT_3_1_1, MQTT_5])
def test_anonymous_client_refused_when_not_allowed(
    make_broker: Callable[..., BrokerThread], version: int
) -> None:
    """With anonymous access off, a CONNECT without a user name fails the server's
    authentication check: 3.1.1 section 3.1.4 (CONNACK 0x05 not authorized), 5.0
    [MQTT-3.1.4-2] (CONNACK 0x87); Session Present 0 (3.1.1 [MQTT-3.2.2-4], 5.0 -6) and the
    connection closes (3.1.1 [MQTT-3.2.2-5], 5.0 [MQTT-3.2.2-7])."""
    broker = make_broker(allow_anonymous=False)
    client = open_client(broker.port, version)
    client.send(Connect("anon", version))
    if version == MQTT_5:
        assert without_reason_string(client.recv()) == Connack(False, 0x87)
    else:
        assert client.recv_bytes(4) == CONNACK_NOT_AUTHORIZED
    assert client.expect_closed() == []
    assert not has_session(broker, "anon")


class FailingBackend:
    """An auth plugin whose user database is down: authenticating a user name raises."""

    def __init__(self, options: Mapping[str, object]) -> None:
        pass

    async def authenticate(self, request: AuthRequest) -> AuthResult | None:
        if request.username is None:
            return None  # anonymous: not this backend's to decide
        raise ConnectionError("the user database is down")


@pytest.mark.parametrize("version", [MQTT_3_1, MQTT_3_1_1, MQTT_5])
def test_a_transient_error_closes_only_its_own_connection(
    make_broker: Callable[..., BrokerThread], version: int
) -> None:
    """(3.1.1) [MQTT-4.8.0-2]: a Transient Error while handling an inbound packet (here the
    authentication backend failing on a CONNECT) closes the connection that packet came
    on: CONNACK 3 (5.0: 0x88), Server unavailable, then the close. Other clients are not
    affected (3.1.1 section 4.8: the server "SHOULD NOT disconnect or have any other
    effect on its interactions with any other Client")."""
    broker = make_broker(auth_plugin="tests.broker.test_connect:FailingBackend")
    bystander = open_client(broker.port)
    assert bystander.connect("bystander") == Connack(False, 0)
    client = open_client(broker.port, version)
    client.send(Connect("unlucky", version, username="u", password=b"p"))
    if version == MQTT_5:
        assert [without_reason_string(p) for p in client.expect_closed()] == [Connack(False, 0x88)]
    else:
        assert client.recv_bytes(4) == b"\x20\x02\x00\x03"
        assert client.expect_closed() == []
    assert_alive(bystander)


@pytest.mark.parametrize("version", [MQTT_3_1_1, MQTT_5])
def test_mosquitto_pub_is_told_it_is_not_authorised(
    make_broker: Callable[..., BrokerThread], version: int
) -> None:
    broker = make_broker(allow_anonymous=False)
    result = mosquitto_pub(
        broker.port, "-V", MOSQUITTO_VERSIONS[version], "-t", "a", "-m", "x", check=False
    )
    assert result.returncode != 0
    assert "not authori" in result.stderr.lower()


# The connect timeout.


def test_connection_without_connect_is_closed_after_connect_timeout(
    make_broker: Callable[..., BrokerThread],
) -> None:
    """3.1.1 section 3.1.4 and 5.0 section 3.1.4: a server SHOULD close a connection that
    sends no CONNECT in reasonable time. Half a CONNECT does not count as one; a client
    that did connect is not affected by the connect timeout."""
    broker = make_broker(connect_timeout=1)
    connected = open_client(broker.port)
    assert connected.connect("in-time", keep_alive=0) == Connack(False, 0)
    silent = open_client(broker.port)
    partial = open_client(broker.port)
    partial.send(raw_connect(b"partial")[:7])
    # Generous bound: timeout 1 s plus the 0.5 s sweep, with room for a slow machine.
    assert silent.expect_closed(timeout=6) == []
    assert partial.expect_closed(timeout=6) == []
    assert_alive(connected)


def test_successful_connack_fits_a_tiny_client_maximum_packet_size(broker: BrokerThread) -> None:
    """[MQTT-3.1.2-24] (5.0): the CONNACK too stays within the client's Maximum Packet Size.

    The full CONNACK is 24 bytes; properties that restate their defaults are left out.
    """
    client = open_client(broker.port, MQTT_5)
    connack = client.connect("tiny", maximum_packet_size=20)
    assert isinstance(connack, Connack)
    assert connack.reason_code == 0
    assert len(connack.encode(MQTT_5)) <= 20
    assert connack.wildcard_subscription_available is None
    assert connack.receive_maximum == 100
