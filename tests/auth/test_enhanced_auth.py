"""MQTT 5 enhanced authentication (AUTH packets) with SCRAM, over real sockets.

The client side is ``roost.protocol.scram.ScramClient`` driven by hand with raw
packets, so every AUTH, CONNACK and DISCONNECT on the wire is checked exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from roost.broker.auth.scram_file import ScramFile
from roost.codec import (
    MQTT_3_1_1,
    MQTT_5,
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
    Puback,
    Publish,
    Suback,
    Subscribe,
    Subscription,
)
from roost.protocol.scram import ScramClient
from tests.support.broker_thread import BrokerThread
from tests.support.raw import RawClient, open_client, sync

MakeBroker = Callable[..., BrokerThread]
MECHANISMS = ["SCRAM-SHA-256", "SCRAM-SHA-512"]
CONTINUE = 0x18
REAUTHENTICATE = 0x19


@pytest.fixture
def scram_broker(make_broker: MakeBroker, tmp_path: Path) -> BrokerThread:
    credentials = ScramFile()
    credentials.set("alice", "wonderland", iterations=4096)
    credentials.set("bob", "builder", ("SCRAM-SHA-256",), iterations=4096)
    path = tmp_path / "scram"
    credentials.save(path)
    acl = tmp_path / "acl"
    acl.write_text("user alice\ntopic readwrite alice/#\n")
    # No anonymous clients: a SCRAM client sends no User Name and must still get in.
    return make_broker(scram_file=str(path), acl_file=str(acl), allow_anonymous=False)


def scram_connect(
    port: int,
    mechanism: str,
    scram_user: str,
    password: str,
    client_id: str = "c1",
    **fields: object,
) -> tuple[RawClient, ScramClient, Connack]:
    """CONNECT with SCRAM through to the CONNACK (which is returned, success or not)."""
    client = open_client(port, MQTT_5)
    scram = ScramClient(mechanism, scram_user, password)
    client.send(
        Connect(
            client_id,
            MQTT_5,
            authentication_method=mechanism,
            authentication_data=scram.first(),
            **fields,  # type: ignore[arg-type]
        )
    )
    challenge = client.recv()
    assert isinstance(challenge, Auth), challenge
    # [MQTT-4.12.0-2]: the server's AUTH asking for more carries 0x18.
    assert (challenge.reason_code, challenge.authentication_method) == (CONTINUE, mechanism)
    client.send(Auth(CONTINUE, mechanism, scram.final(challenge.authentication_data)))
    connack = client.recv()
    assert isinstance(connack, Connack), connack
    return client, scram, connack


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_scram_success_and_the_server_proves_itself(
    scram_broker: BrokerThread, mechanism: str
) -> None:
    client, scram, connack = scram_connect(scram_broker.port, mechanism, "alice", "wonderland")
    assert connack.reason_code == 0
    # [MQTT-4.12.0-5]: a successful CONNACK repeats the method; its data is server-final.
    assert connack.authentication_method == mechanism
    scram.verify(connack.authentication_data)
    # The identity is the SCRAM username: the ACL's "user alice" lines apply.
    client.send(Publish("alice/x", b"ok", 1, packet_id=1))
    client.send(Publish("bob/x", b"no", 1, packet_id=2))
    assert [client.recv(), client.recv()] == [Puback(1, 0x10), Puback(2, 0x87)]


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_scram_wrong_password_is_not_authorized(scram_broker: BrokerThread, mechanism: str) -> None:
    client, _scram, connack = scram_connect(scram_broker.port, mechanism, "alice", "looking-glass")
    # [MQTT-4.12.0-4]: rejected with a CONNACK of 0x80 or more, then closed.
    assert connack.reason_code == 0x87
    assert client.expect_closed() == []


def test_scram_unknown_user_looks_like_a_wrong_password(scram_broker: BrokerThread) -> None:
    # A challenge (with a salt) comes back as for a real user; only the proof fails.
    _c, _s, connack = scram_connect(scram_broker.port, "SCRAM-SHA-256", "mallory", "x")
    assert connack.reason_code == 0x87
    _c, _s, known = scram_connect(scram_broker.port, "SCRAM-SHA-256", "alice", "x", client_id="c2")
    assert connack.reason_string == known.reason_string
    # A user without a SCRAM-SHA-512 entry gets the same treatment.
    _c, _s, missing = scram_connect(
        scram_broker.port, "SCRAM-SHA-512", "bob", "builder", client_id="c3"
    )
    assert missing.reason_code == 0x87


def test_an_unknown_method_is_a_bad_authentication_method(scram_broker: BrokerThread) -> None:
    client = open_client(scram_broker.port, MQTT_5)
    client.send(
        Connect(
            "c1", MQTT_5, authentication_method="SCRAM-SHA-1", authentication_data=b"n,,n=a,r=b"
        )
    )
    connack = client.recv()
    assert isinstance(connack, Connack)
    assert connack.reason_code == 0x8C  # [MQTT-4.12.0-1]
    assert client.expect_closed() == []


def test_without_a_scram_file_every_method_is_unknown(make_broker: MakeBroker) -> None:
    broker = make_broker()
    client = open_client(broker.port, MQTT_5)
    connack = client.connect("c1", authentication_method="SCRAM-SHA-256", authentication_data=b"x")
    assert isinstance(connack, Connack)
    assert connack.reason_code == 0x8C


def test_a_username_in_connect_must_match_the_scram_identity(scram_broker: BrokerThread) -> None:
    _c, _s, connack = scram_connect(
        scram_broker.port, "SCRAM-SHA-256", "alice", "wonderland", username="bob"
    )
    assert connack.reason_code == 0x87
    _c, _s, connack = scram_connect(
        scram_broker.port, "SCRAM-SHA-256", "alice", "wonderland", "c2", username="alice"
    )
    assert connack.reason_code == 0


def test_only_auth_or_disconnect_before_the_connack(scram_broker: BrokerThread) -> None:
    # [MQTT-3.1.2-30]: a PUBLISH in the middle of the exchange is a protocol error.
    client = open_client(scram_broker.port, MQTT_5)
    scram = ScramClient("SCRAM-SHA-256", "alice", "wonderland")
    client.send(
        Connect(
            "c1", MQTT_5, authentication_method="SCRAM-SHA-256", authentication_data=scram.first()
        )
    )
    assert isinstance(client.recv(), Auth)
    client.send(Publish("alice/x", b"early", 0))
    assert client.expect_closed() == []
    assert scram_broker.call(lambda: "c1" not in scram_broker.broker.sessions)


def test_a_client_may_give_up_with_disconnect_during_the_exchange(
    scram_broker: BrokerThread,
) -> None:
    client = open_client(scram_broker.port, MQTT_5)
    scram = ScramClient("SCRAM-SHA-256", "alice", "wonderland")
    client.send(
        Connect(
            "c1", MQTT_5, authentication_method="SCRAM-SHA-256", authentication_data=scram.first()
        )
    )
    assert isinstance(client.recv(), Auth)
    client.send(Disconnect())
    assert client.expect_closed() == []


@pytest.mark.parametrize(
    ("auth", "why"),
    [
        (Auth(CONTINUE, "SCRAM-SHA-512", b"x"), "another method"),  # [MQTT-4.12.0-5]
        (Auth(REAUTHENTICATE, "SCRAM-SHA-256", b"x"), "0x19 in an exchange"),
    ],
)
def test_a_wrong_auth_packet_in_the_exchange_is_a_protocol_error(
    scram_broker: BrokerThread, auth: Auth, why: str
) -> None:
    client = open_client(scram_broker.port, MQTT_5)
    scram = ScramClient("SCRAM-SHA-256", "alice", "wonderland")
    client.send(
        Connect(
            "c1", MQTT_5, authentication_method="SCRAM-SHA-256", authentication_data=scram.first()
        )
    )
    assert isinstance(client.recv(), Auth)
    client.send(auth)
    assert client.expect_closed() == [], why


# -- re-authentication (MQTT 5.0 section 4.12.1) -----------------------------------------


def reauthenticate(
    client: RawClient, mechanism: str, username: str, password: str
) -> tuple[ScramClient, Packet]:
    """Client-initiated AUTH 0x19, through to the broker's last answer."""
    scram = ScramClient(mechanism, username, password)
    client.send(Auth(REAUTHENTICATE, mechanism, scram.first()))
    challenge = client.recv()
    assert isinstance(challenge, Auth), challenge
    assert (challenge.reason_code, challenge.authentication_method) == (CONTINUE, mechanism)
    client.send(Auth(CONTINUE, mechanism, scram.final(challenge.authentication_data)))
    return scram, client.recv()


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_reauthentication_success_keeps_the_connection(
    scram_broker: BrokerThread, mechanism: str
) -> None:
    client, _scram, connack = scram_connect(scram_broker.port, mechanism, "alice", "wonderland")
    assert connack.reason_code == 0
    client.send(Subscribe(1, (Subscription("alice/#", 0),)))
    assert client.recv() == Suback(1, (0,))
    scram, answer = reauthenticate(client, mechanism, "alice", "wonderland")
    assert isinstance(answer, Auth)
    assert (answer.reason_code, answer.authentication_method) == (0x00, mechanism)
    scram.verify(answer.authentication_data)
    # Still connected, with its subscription.
    client.send(Publish("alice/x", b"still here", 0))
    [message] = sync(client)
    assert isinstance(message, Publish)
    assert message.payload == b"still here"


def test_reauthentication_with_a_wrong_password_disconnects_with_0x87(
    scram_broker: BrokerThread,
) -> None:
    client, _scram, connack = scram_connect(
        scram_broker.port, "SCRAM-SHA-256", "alice", "wonderland"
    )
    assert connack.reason_code == 0
    scram = ScramClient("SCRAM-SHA-256", "alice", "wrong")
    client.send(Auth(REAUTHENTICATE, "SCRAM-SHA-256", scram.first()))
    challenge = client.recv()
    assert isinstance(challenge, Auth)
    client.send(Auth(CONTINUE, "SCRAM-SHA-256", scram.final(challenge.authentication_data)))
    # [MQTT-4.12.1-2]: DISCONNECT with a reason code, then the connection is closed.
    [disconnect] = client.expect_closed()
    assert isinstance(disconnect, Disconnect)
    assert disconnect.reason_code == 0x87


def test_reauthentication_may_not_change_the_identity(scram_broker: BrokerThread) -> None:
    client, _scram, connack = scram_connect(
        scram_broker.port, "SCRAM-SHA-256", "alice", "wonderland"
    )
    assert connack.reason_code == 0
    scram = ScramClient("SCRAM-SHA-256", "bob", "builder")  # right password, other user
    client.send(Auth(REAUTHENTICATE, "SCRAM-SHA-256", scram.first()))
    challenge = client.recv()
    assert isinstance(challenge, Auth)
    client.send(Auth(CONTINUE, "SCRAM-SHA-256", scram.final(challenge.authentication_data)))
    [disconnect] = client.expect_closed()
    assert isinstance(disconnect, Disconnect)
    assert disconnect.reason_code == 0x87


@pytest.mark.parametrize(
    "auth",
    [
        Auth(REAUTHENTICATE, "SCRAM-SHA-512", b"n,,n=alice,r=abc"),  # another method
        Auth(CONTINUE, "SCRAM-SHA-256", b"x"),  # no exchange to continue
        Auth(0x00, "SCRAM-SHA-256", b"x"),  # only the server says success
    ],
)
def test_wrong_auth_packets_after_connack_are_protocol_errors(
    scram_broker: BrokerThread, auth: Auth
) -> None:
    client, _scram, connack = scram_connect(
        scram_broker.port, "SCRAM-SHA-256", "alice", "wonderland"
    )
    assert connack.reason_code == 0
    client.send(auth)
    [disconnect] = client.expect_closed()
    assert isinstance(disconnect, Disconnect)
    assert disconnect.reason_code == 0x82


def test_auth_from_a_client_that_named_no_method_is_a_protocol_error(
    make_broker: MakeBroker,
) -> None:
    broker = make_broker()
    client = open_client(broker.port, MQTT_5)
    connack = client.connect("c1")
    assert isinstance(connack, Connack)
    # [MQTT-4.12.0-6]: no method from the client, none from the server (and no AUTH).
    assert connack.authentication_method is None
    client.send(Auth(REAUTHENTICATE, "SCRAM-SHA-256", b"n,,n=a,r=b"))
    [disconnect] = client.expect_closed()
    assert isinstance(disconnect, Disconnect)
    assert disconnect.reason_code == 0x82


def test_an_mqtt_311_client_cannot_use_enhanced_authentication(scram_broker: BrokerThread) -> None:
    client = open_client(scram_broker.port, MQTT_3_1_1)
    connack = client.connect("c1")  # no username: anonymous, refused here
    assert isinstance(connack, Connack)
    assert connack.reason_code == 0x05


# -- a plugin's own method ----------------------------------------------------------------


def test_a_plugin_offers_its_own_method(make_broker: MakeBroker) -> None:
    broker = make_broker(auth_plugin="tests.auth.plugins:Knock", allow_anonymous=False)
    client = open_client(broker.port, MQTT_5)
    client.send(Connect("c1", MQTT_5, authentication_method="KNOCK"))
    assert client.recv() == Auth(CONTINUE, "KNOCK", b"who?")
    client.send(Auth(CONTINUE, "KNOCK", b"friend"))
    connack = client.recv()
    assert isinstance(connack, Connack)
    assert (connack.reason_code, connack.authentication_method, connack.authentication_data) == (
        0,
        "KNOCK",
        b"welcome",
    )
    assert broker.call(lambda: broker.broker.sessions["c1"].connection.username) == "friend"  # type: ignore[union-attr]

    other = open_client(broker.port, MQTT_5)
    other.send(Connect("c2", MQTT_5, authentication_method="KNOCK"))
    assert isinstance(other.recv(), Auth)
    other.send(Auth(CONTINUE, "KNOCK", b"foe"))
    connack = other.recv()
    assert isinstance(connack, Connack)
    assert (connack.reason_code, connack.reason_string) == (0x87, "wrong answer")
