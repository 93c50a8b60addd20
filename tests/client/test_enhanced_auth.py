"""MQTT 5 enhanced authentication in the client: SCRAM against Roost (CONNECT, the AUTH
exchange, re-authentication, over TCP and WebSocket), Mosquitto's refusal of a method it
does not have, a scripted server for the server-side failures (a wrong or missing
proof, another method), a pluggable authenticator, and the state machine's AUTH rules.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from roost.broker.auth.scram_file import ScramFile
from roost.broker.config import ListenerConfig
from roost.client import (
    AuthenticationError,
    Client,
    ConnectionLost,
    ConnectRefused,
    PublishError,
    ReconnectPolicy,
    ScramAuth,
    ServerDisconnected,
)
from roost.codec import (
    MQTT_5,
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
    ProtocolError,
    Publish,
    read_packet,
)
from roost.protocol.client_conn import ClientConnection
from roost.protocol.client_events import (
    AuthReceived,
    Connected,
    MessageReceived,
    VerifyServer,
)
from roost.protocol.client_states import ClientState
from roost.protocol.scram import ScramServer, derive_credentials, parse_client_first
from tests.client.fake_server import FakeConnection, FakeServer
from tests.client.servers import LogWatcher, Server, listener_port, start_roost
from tests.support.broker_thread import BrokerThread

MECHANISMS = ["SCRAM-SHA-256", "SCRAM-SHA-512"]
ALICE_PASSWORD = "wonderland"  # noqa: S105  (a test credential)
TIMEOUT = 5.0


def scram_file(directory: Path) -> Path:
    credentials = ScramFile()
    credentials.set("alice", "wonderland", iterations=4096)
    credentials.set("bob", "builder", ("SCRAM-SHA-256",), iterations=4096)
    path = directory / "scram"
    credentials.save(path)
    return path


@pytest.fixture
def scram_roost(make_broker: Callable[..., BrokerThread], tmp_path: Path) -> BrokerThread:
    """Roost with SCRAM credentials (docs/auth.md), an ACL, and no anonymous clients."""
    acl = tmp_path / "acl"
    acl.write_text("user alice\ntopic readwrite alice/#\n")
    return make_broker(
        scram_file=str(scram_file(tmp_path)), acl_file=str(acl), allow_anonymous=False
    )


# Against Roost.


@pytest.mark.parametrize("mechanism", MECHANISMS)
async def test_scram_connects_and_the_identity_is_the_scram_user(
    scram_roost: BrokerThread, mechanism: str
) -> None:
    auth = ScramAuth("alice", "wonderland", mechanism)
    async with Client("127.0.0.1", scram_roost.port, auth=auth) as client:
        assert client.connack is not None
        assert client.connack.authentication_method == mechanism
        # The ACL's "user alice" applies: the broker knows who we are without a password.
        await client.subscribe("alice/#", qos=1)
        stream = client.messages()
        await client.publish("alice/x", "mine", qos=1)
        async with asyncio.timeout(TIMEOUT):
            assert (await anext(stream)).payload == b"mine"
        with pytest.raises(PublishError) as refused:
            await client.publish("bob/x", "not mine", qos=1)
        assert refused.value.reason_code == 0x87


@pytest.mark.parametrize(
    ("user", "password", "mechanism"),
    [
        ("alice", "looking-glass", "SCRAM-SHA-256"),
        ("mallory", "anything", "SCRAM-SHA-256"),  # unknown: refused the same way
        ("bob", "builder", "SCRAM-SHA-512"),  # no SCRAM-SHA-512 entry for bob
    ],
)
async def test_wrong_credentials_are_refused(
    scram_roost: BrokerThread, user: str, password: str, mechanism: str
) -> None:
    client = Client("127.0.0.1", scram_roost.port, auth=ScramAuth(user, password, mechanism))
    with pytest.raises(ConnectRefused) as refused:
        await client.connect()
    assert refused.value.reason_code == 0x87
    assert refused.value.bad_credentials


async def test_reauthentication_while_messages_flow(scram_roost: BrokerThread) -> None:
    auth = ScramAuth("alice", "wonderland")
    async with Client("127.0.0.1", scram_roost.port, auth=auth) as client:
        await client.subscribe("alice/#", qos=1)
        stream = client.messages()

        async def publish_many() -> None:
            for index in range(50):
                await client.publish("alice/n", str(index), qos=1)

        publishing = asyncio.create_task(publish_many())
        for _ in range(3):
            async with asyncio.timeout(TIMEOUT):
                await client.reauthenticate()
        await publishing
        async with asyncio.timeout(TIMEOUT):
            received = [(await anext(stream)).text for _ in range(50)]
        assert received == [str(index) for index in range(50)]
        assert client.connected


class Passwords:
    """A SCRAM authenticator whose password changes at every new exchange: the
    Authenticator contract implemented outside the library."""

    def __init__(self, *passwords: str) -> None:
        self.method = "SCRAM-SHA-256"
        self._passwords = list(passwords)
        self._current = ScramAuth("alice", passwords[0])

    async def start(self) -> bytes | None:
        self._current = ScramAuth("alice", self._passwords.pop(0))
        return await self._current.start()

    async def respond(self, data: bytes | None) -> bytes | None:
        return await self._current.respond(data)

    async def finish(self, data: bytes | None) -> None:
        await self._current.finish(data)


async def test_a_failed_reauthentication_ends_the_connection(scram_roost: BrokerThread) -> None:
    client = Client("127.0.0.1", scram_roost.port, auth=Passwords("wonderland", "wrong"))
    async with client:
        stream = client.messages()
        with pytest.raises(ServerDisconnected) as disconnected:
            async with asyncio.timeout(TIMEOUT):
                await client.reauthenticate()
        assert disconnected.value.reason_code == 0x87  # [MQTT-4.12.1-2]
        assert not client.connected
        with pytest.raises(ServerDisconnected):
            await anext(stream)


async def test_scram_over_websocket(tmp_path: Path) -> None:
    roost = start_roost(
        ListenerConfig(port=0, type="ws"),
        scram_file=str(scram_file(tmp_path)),
        allow_anonymous=False,
    )
    try:
        port = listener_port(roost, 0)
        auth = ScramAuth("bob", "builder", "SCRAM-SHA-256")
        async with Client("127.0.0.1", port, transport="websockets", auth=auth) as client:
            await client.reauthenticate()
            assert client.connected
    finally:
        roost.stop()


async def test_mosquitto_refuses_a_method_it_does_not_have(mosquitto: Server) -> None:
    client = Client("127.0.0.1", mosquitto.port, auth=ScramAuth("alice", "wonderland"))
    with pytest.raises(ConnectRefused) as refused:
        await client.connect()
    assert refused.value.reason_code == 0x8C  # bad authentication method


def test_arguments() -> None:
    with pytest.raises(ValueError, match="needs version=5"):
        Client(version=4, auth=ScramAuth("a", "b"))
    with pytest.raises(ValueError, match="unknown SCRAM mechanism"):
        ScramAuth("a", "b", "SCRAM-SHA-1")
    assert ScramAuth("a", "b", "scram-sha-512").method == "SCRAM-SHA-512"
    assert "secret" not in repr(ScramAuth("a", "secret"))


async def test_reauthenticate_needs_an_authenticator(roost: Server) -> None:
    async with Client("127.0.0.1", roost.port) as client:
        with pytest.raises(RuntimeError, match="auth="):
            await client.reauthenticate()


# Against a scripted server: what a real broker does not do on purpose.


class FakeScramServer:
    """The server side of SCRAM for alice over a FakeConnection; the test sends the
    CONNACK itself, with the server's proof or without it."""

    def __init__(self, conn: FakeConnection) -> None:
        self.conn = conn

    async def exchange(self, first: Connect | Auth) -> bytes:
        """Challenge, read the proof; the server-final message (proof checked)."""
        method = first.authentication_method
        assert method is not None
        client_first = parse_client_first(first.authentication_data)
        credentials = derive_credentials(method, ALICE_PASSWORD, iterations=4096)
        scram = ScramServer(client_first, credentials)
        self.conn.send(Auth(0x18, method, scram.server_first()))
        final = await self.conn.expect(Auth)
        assert final.reason_code == 0x18
        return scram.finish(final.authentication_data)


async def start(server: FakeServer, client: Client) -> tuple[FakeConnection, asyncio.Task[Connack]]:
    task = asyncio.create_task(client.connect())
    return await server.accept(), task


async def test_a_wrong_server_signature_is_refused() -> None:
    async with FakeServer() as server:
        client = Client("127.0.0.1", server.port, auth=ScramAuth("alice", "wonderland"))
        conn, task = await start(server, client)
        connect = await conn.expect(Connect)
        assert connect.authentication_method == "SCRAM-SHA-256"
        assert connect.username is None  # nor a password: the exchange carries them
        assert connect.password is None
        assert connect.authentication_data is not None
        assert connect.authentication_data.startswith(b"n,,n=alice,r=")
        # The server checks the proof but cannot prove itself (it does not have
        # alice's ServerKey): a signature made up.
        await FakeScramServer(conn).exchange(connect)
        conn.send(
            Connack(authentication_method="SCRAM-SHA-256", authentication_data=b"v=AAAA"),
            Publish("t", b"from an impostor"),
        )
        with pytest.raises(AuthenticationError, match="signature is wrong"):
            async with asyncio.timeout(TIMEOUT):
                await task
        disconnect = await conn.expect(Disconnect)
        assert disconnect.reason_code == 0x80
        await conn.closed()
        assert not client.connected


async def test_a_connack_without_the_servers_proof_is_refused() -> None:
    async with FakeServer() as server:
        client = Client("127.0.0.1", server.port, auth=ScramAuth("alice", "wonderland"))
        conn, task = await start(server, client)
        await FakeScramServer(conn).exchange(await conn.expect(Connect))
        conn.send(Connack(authentication_method="SCRAM-SHA-256"))
        with pytest.raises(AuthenticationError, match="server-final"):
            async with asyncio.timeout(TIMEOUT):
                await task
        assert (await conn.expect(Disconnect)).reason_code == 0x80


async def test_a_connack_naming_another_method_is_a_protocol_error() -> None:
    async with FakeServer() as server:
        client = Client("127.0.0.1", server.port, auth=ScramAuth("alice", "wonderland"))
        conn, task = await start(server, client)
        await FakeScramServer(conn).exchange(await conn.expect(Connect))
        conn.send(Connack(authentication_method="SCRAM-SHA-512", authentication_data=b"v=x"))
        with pytest.raises(ConnectionLost, match="authentication method"):
            async with asyncio.timeout(TIMEOUT):
                await task


async def test_a_server_skipping_the_challenge_cannot_prove_itself() -> None:
    async with FakeServer() as server:
        client = Client("127.0.0.1", server.port, auth=ScramAuth("alice", "wonderland"))
        conn, task = await start(server, client)
        await conn.expect(Connect)
        conn.send(Connack(authentication_method="SCRAM-SHA-256", authentication_data=b"v=AAAA"))
        with pytest.raises(AuthenticationError):
            async with asyncio.timeout(TIMEOUT):
                await task


async def test_reconnecting_runs_a_fresh_exchange(client_log: LogWatcher) -> None:
    async with FakeServer() as server:
        auth = ScramAuth("alice", "wonderland")
        policy = ReconnectPolicy(initial_delay=0.01, max_delay=0.01)
        client = Client("127.0.0.1", server.port, auth=auth, reconnect=policy)
        conn, task = await start(server, client)
        nonces = []
        for attempt in range(2):
            connect = await conn.expect(Connect)
            nonces.append(parse_client_first(connect.authentication_data).nonce)
            final = await FakeScramServer(conn).exchange(connect)
            conn.send(Connack(authentication_method=auth.method, authentication_data=final))
            if attempt == 0:
                async with asyncio.timeout(TIMEOUT):
                    await task
                conn.close()  # the connection drops; the client comes back on its own
                conn = await server.accept()
        await client_log.wait_for("Reconnected")
        assert client.connected
        assert nonces[0] != nonces[1]
        await client.disconnect()


class Token:
    """A made-up method: a token, a challenge answered reversed, a welcome to check."""

    method = "TOKEN"

    def __init__(self, fail_in: str = "") -> None:
        self.fail_in = fail_in
        self.seen: list[tuple[str, bytes | None]] = []

    async def start(self) -> bytes | None:
        self.seen.append(("start", None))
        return b"t0k3n"

    async def respond(self, data: bytes | None) -> bytes | None:
        self.seen.append(("respond", data))
        if self.fail_in == "respond":
            raise ValueError("cannot answer that")
        return (data or b"")[::-1]

    async def finish(self, data: bytes | None) -> None:
        self.seen.append(("finish", data))
        if data != b"welcome":
            raise ValueError(f"the server said {data!r}")


async def token_handshake(conn: FakeConnection) -> None:
    connect = await conn.expect(Connect)
    assert (connect.authentication_method, connect.authentication_data) == ("TOKEN", b"t0k3n")
    conn.send(Auth(0x18, "TOKEN", b"challenge"))
    answer = await conn.expect(Auth)
    assert (answer.reason_code, answer.authentication_data) == (0x18, b"egnellahc")
    conn.send(Connack(authentication_method="TOKEN", authentication_data=b"welcome"))


async def test_any_authenticator_plugs_in_including_reauthentication() -> None:
    async with FakeServer() as server:
        token = Token()
        client = Client("127.0.0.1", server.port, auth=token)
        conn, task = await start(server, client)
        await token_handshake(conn)
        async with asyncio.timeout(TIMEOUT):
            await task
        reauth = asyncio.create_task(client.reauthenticate())
        again = await conn.expect(Auth)
        assert (again.reason_code, again.authentication_method) == (0x19, "TOKEN")
        assert again.authentication_data == b"t0k3n"
        conn.send(Auth(0x18, "TOKEN", b"abc"))
        assert (await conn.expect(Auth)).authentication_data == b"cba"
        conn.send(Auth(0x00, "TOKEN", b"welcome"))
        async with asyncio.timeout(TIMEOUT):
            await reauth
        assert [step for step, _ in token.seen] == ["start", "respond", "finish"] * 2
        await client.disconnect()


async def test_a_reauthentication_the_server_cannot_prove_is_refused() -> None:
    async with FakeServer() as server:
        client = Client("127.0.0.1", server.port, auth=Token())
        conn, task = await start(server, client)
        await token_handshake(conn)
        async with asyncio.timeout(TIMEOUT):
            await task
        reauth = asyncio.create_task(client.reauthenticate())
        await conn.expect(Auth)
        conn.send(Auth(0x00, "TOKEN", b"hello stranger"))
        with pytest.raises(AuthenticationError, match="hello stranger"):
            async with asyncio.timeout(TIMEOUT):
                await reauth
        assert (await conn.expect(Disconnect)).reason_code == 0x80
        await conn.closed()
        with pytest.raises(AuthenticationError):
            await client.publish("t", "x", qos=1)


async def test_an_authenticator_that_fails_ends_the_connect() -> None:
    async with FakeServer() as server:
        client = Client("127.0.0.1", server.port, auth=Token(fail_in="respond"))
        conn, task = await start(server, client)
        await conn.expect(Connect)
        conn.send(Auth(0x18, "TOKEN", b"challenge"))
        with pytest.raises(AuthenticationError, match="cannot answer that"):
            async with asyncio.timeout(TIMEOUT):
                await task
        # DISCONNECT is the one other packet allowed before the CONNACK [MQTT-3.1.2-30].
        assert (await conn.expect(Disconnect)).reason_code == 0x80


# The state machine's rules for AUTH (sans-IO).


def sent(conn: ClientConnection) -> list[Packet]:
    data = conn.data_to_send(0.0)
    packets = []
    while data:
        result = read_packet(data, MQTT_5)
        assert result is not None
        packets.append(result[0])
        data = data[result[1] :]
    return packets


def feed(conn: ClientConnection, *packets: Packet) -> list[object]:
    return list(conn.receive_data(b"".join(p.encode(MQTT_5) for p in packets), 0.0))


def authenticating(method: str | None = "M") -> ClientConnection:
    conn = ClientConnection()
    conn.connect(Connect("c", MQTT_5, authentication_method=method), 0.0)
    assert isinstance(sent(conn)[0], Connect)
    return conn


def test_verifying_holds_the_session_until_the_server_is_verified() -> None:
    conn = authenticating()
    conn.publish(Publish("queued", b"owed", 1))  # session state waiting for a connection
    assert isinstance(feed(conn, Auth(0x18, "M", b"1"))[0], AuthReceived)
    conn.answer_auth(b"2")
    assert sent(conn) == [Auth(0x18, "M", b"2")]
    events = feed(conn, Connack(authentication_method="M", authentication_data=b"3"), Publish("t"))
    assert [type(e) for e in events] == [VerifyServer]
    assert conn.state is ClientState.VERIFYING
    assert sent(conn) == []  # nothing of the session goes to a server not yet verified
    assert conn.receive_data(b"", 0.0) == []  # and nothing after the CONNACK is read
    verified = conn.server_verified(0.0)
    assert [type(e) for e in verified] == [Connected, MessageReceived]
    assert [type(p) for p in sent(conn)] == [Publish]


def test_a_server_refused_at_verification_gets_a_disconnect() -> None:
    conn = authenticating()
    feed(conn, Connack(authentication_method="M"))
    conn.disconnect(Disconnect(0x80))
    assert sent(conn) == [Disconnect(0x80)]
    assert conn.state is ClientState.DISCONNECTED


def test_disconnect_before_connack_only_with_enhanced_authentication() -> None:
    conn = authenticating()
    conn.disconnect(Disconnect(0x80))
    assert sent(conn) == [Disconnect(0x80)]
    plain = authenticating(method=None)
    plain.disconnect()
    assert sent(plain) == []


@pytest.mark.parametrize(
    ("method", "packets", "problem"),
    [
        (None, [Auth(0x18, "M")], "named no authentication method"),
        ("M", [Auth(0x18, "N")], "another authentication method"),
        ("M", [Auth(0x19, "M")], "unexpected AUTH 0x19"),
        ("M", [Auth(0x00, "M")], "unexpected AUTH 0x00"),
        ("M", [Auth(0x18, "M"), Auth(0x18, "M")], "before our answer"),
        ("M", [Auth(0x18, "M"), Connack(authentication_method="M")], "before our answer"),
        ("M", [Connack()], "without the authentication method"),
    ],
)
def test_auth_out_of_order_is_a_protocol_error(
    method: str | None, packets: list[Packet], problem: str
) -> None:
    conn = authenticating(method)
    with pytest.raises(ProtocolError, match=problem):
        feed(conn, *packets)
    assert conn.state is ClientState.DISCONNECTED


def test_reauthentication_rules() -> None:
    conn = authenticating()
    feed(conn, Connack(authentication_method="M"))
    conn.server_verified(0.0)
    with pytest.raises(ProtocolError, match="outside a re-authentication"):
        feed(conn, Auth(0x18, "M"))
    conn = authenticating()
    feed(conn, Connack(authentication_method="M"))
    conn.server_verified(0.0)
    sent(conn)
    conn.reauthenticate(b"again")
    assert sent(conn) == [Auth(0x19, "M", b"again")]
    with pytest.raises(RuntimeError, match="already under way"):
        conn.reauthenticate(b"twice")
    with pytest.raises(RuntimeError, match="waiting for an answer"):
        conn.answer_auth(b"unasked")
    feed(conn, Auth(0x18, "M", b"challenge"))
    conn.answer_auth(b"answer")
    [event] = feed(conn, Auth(0x00, "M", b"done"))
    assert isinstance(event, AuthReceived)
    assert not conn.reauthenticating
    assert conn.state is ClientState.CONNECTED
    plain = authenticating(method=None)
    feed(plain, Connack())
    with pytest.raises(RuntimeError, match="authentication method"):
        plain.reauthenticate(b"x")
