"""Failures surface as typed errors with the server's reason code and string."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from roost.client import (
    Client,
    ClientClosed,
    ConnectError,
    ConnectionLost,
    ConnectRefused,
    ConnectTimeout,
    PublishError,
    SubscribeError,
    UnsubscribeError,
)
from roost.codec import (
    Connack,
    Connect,
    Pingreq,
    Publish,
    Suback,
    Subscribe,
    Unsuback,
    Unsubscribe,
)
from tests.client.fake_server import FakeServer
from tests.client.servers import LogWatcher, Server
from tests.support.broker_thread import BrokerThread
from tests.support.mosquitto import Mosquitto, free_port, make_password_file

GOOD, BAD = "secret", "wrong"  # test credentials for a throwaway broker


async def test_nothing_listening_is_a_connect_error() -> None:
    port = free_port()
    with pytest.raises(ConnectError, match="refused"):
        await Client("127.0.0.1", port).connect()


async def test_no_connack_in_time_is_a_connect_timeout() -> None:
    with socket.socket() as listener:
        # The kernel completes the TCP handshake from the backlog; nobody ever answers.
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client = Client("127.0.0.1", listener.getsockname()[1], connect_timeout=0.2)
        with pytest.raises(ConnectTimeout):
            await client.connect()
        await client.disconnect()


@pytest.mark.parametrize(("version", "code"), [(4, 5), (5, 0x87)])
async def test_roost_refuses_anonymous_clients(
    make_broker: Callable[..., BrokerThread], version: int, code: int
) -> None:
    broker = make_broker(allow_anonymous=False)
    with pytest.raises(ConnectRefused) as refused:
        await Client("127.0.0.1", broker.port, version=version).connect()
    assert refused.value.reason_code == code
    assert refused.value.bad_credentials
    assert "not authorized" in str(refused.value)


@pytest.mark.parametrize(("version", "code"), [(4, 5), (5, 0x87)])
async def test_mosquitto_refuses_a_bad_password(tmp_path: Path, version: int, code: int) -> None:
    passwords = make_password_file(tmp_path, {"alice": GOOD})
    config = f"allow_anonymous false\npassword_file {passwords}\n"
    broker = Mosquitto(tmp_path, config).start()
    try:
        good = Client("127.0.0.1", broker.port, version=version, username="alice", password=GOOD)
        async with good:
            assert good.connected
        bad = Client("127.0.0.1", broker.port, version=version, username="alice", password=BAD)
        with pytest.raises(ConnectRefused) as refused:
            await bad.connect()
        # Mosquitto answers a wrong password with "not authorized" (5 / 0x87).
        assert refused.value.reason_code == code
        assert refused.value.bad_credentials
    finally:
        broker.stop()


async def test_publish_refused_with_a_reason_code(roost: Server) -> None:
    async with Client("127.0.0.1", roost.port) as client:
        with pytest.raises(PublishError) as refused:
            await client.publish("$SYS/mine", "no", qos=1)
        assert refused.value.reason_code == 0x87
        assert refused.value.reason_name == "not authorized"
        # The connection is still usable.
        assert (await client.publish("ok", "yes", qos=1)).reason_code == 0x10


async def test_maximum_qos_of_the_server_is_honoured(
    make_broker: Callable[..., BrokerThread],
) -> None:
    broker = make_broker(allow_anonymous=True, maximum_qos=1)
    async with Client("127.0.0.1", broker.port) as client:
        with pytest.raises(PublishError) as refused:
            await client.publish("t", "x", qos=2)
        assert refused.value.reason_code == 0x9B
        assert (await client.publish("t", "x", qos=1)).packet_id


async def test_suback_and_unsuback_failures() -> None:
    async with FakeServer() as fake:
        client = Client("127.0.0.1", fake.port)
        connecting = asyncio.create_task(client.connect())
        conn = await fake.accept()
        await conn.expect(Connect)
        conn.send(Connack())
        await connecting
        subscribing = asyncio.create_task(client.subscribe(["a", "b"], qos=1))
        subscribe = await conn.expect(Subscribe)
        conn.send(Suback(subscribe.packet_id, (1, 0x87), reason_string="b is private"))
        with pytest.raises(SubscribeError) as refused:
            await subscribing
        assert refused.value.reason_codes == (1, 0x87)
        assert refused.value.reason_string == "b is private"
        unsubscribing = asyncio.create_task(client.unsubscribe("a"))
        unsubscribe = await conn.expect(Unsubscribe)
        conn.send(Unsuback(unsubscribe.packet_id, (0x80,)))
        with pytest.raises(UnsubscribeError):
            await unsubscribing
        await client.disconnect()


async def test_keep_alive_timeout_when_the_server_goes_silent(client_log: LogWatcher) -> None:
    async with FakeServer() as fake:
        client = Client("127.0.0.1", fake.port, keep_alive=1, ping_timeout=0.2)
        connecting = asyncio.create_task(client.connect())
        conn = await fake.accept()
        await conn.expect(Connect)
        conn.send(Connack())
        await connecting
        stream = client.messages()
        await conn.expect(Pingreq)  # after one idle second; never answered
        with pytest.raises(ConnectionLost, match="keep-alive"):
            await anext(stream)
        await client.disconnect()


async def test_keep_alive_pings_keep_a_quiet_connection_up(
    server: Server, client_log: LogWatcher
) -> None:
    async with Client("127.0.0.1", server.port, keep_alive=1) as client:
        await client_log.wait_for("received PINGRESP", timeout=5)
        assert client.connected


async def test_garbage_from_the_server_ends_the_connection() -> None:
    async with FakeServer() as fake:
        client = Client("127.0.0.1", fake.port)
        connecting = asyncio.create_task(client.connect())
        conn = await fake.accept()
        await conn.expect(Connect)
        conn.send(Connack())
        await connecting
        stream = client.messages()
        conn.writer.write(b"\x00\x00")  # packet type 0 is reserved
        with pytest.raises(ConnectionLost, match="protocol error"):
            await anext(stream)
        await client.disconnect()


async def test_usage_errors() -> None:
    client = Client("127.0.0.1", 1, version=4)
    with pytest.raises(ValueError, match="wildcard"):
        await client.publish("a/#", "x")
    with pytest.raises(ValueError, match="MQTT 5"):
        await client.publish("a", "x", content_type="text/plain")
    with pytest.raises(ValueError, match="qos"):
        await client.publish("a", "x", qos=3)
    with pytest.raises(ValueError, match="'#'"):
        await client.subscribe("a/#/b")
    with pytest.raises(ClientClosed):
        await client.publish("a", "never connected", qos=1)
    with pytest.raises(ValueError, match="MQTT 5"):
        Client(version=4, session_expiry_interval=10)


async def test_incoming_publish_with_properties_from_a_scripted_server() -> None:
    async with FakeServer() as fake:
        client = Client("127.0.0.1", fake.port, topic_alias_maximum=4)
        connecting = asyncio.create_task(client.connect())
        conn = await fake.accept()
        await conn.expect(Connect)
        conn.send(Connack())
        await connecting
        stream = client.messages()
        conn.send(
            Publish("long/topic/name", b"1", topic_alias=3),
            Publish("", b"2", qos=1, packet_id=5, topic_alias=3),
        )
        assert (await anext(stream)).topic == "long/topic/name"
        assert (await anext(stream)).topic == "long/topic/name"
        await client.disconnect()


async def test_qos0_publish_waiting_for_a_failed_connect_gives_up() -> None:
    async with FakeServer() as fake:
        client = Client("127.0.0.1", fake.port)
        connecting = asyncio.create_task(client.connect())
        conn = await fake.accept()
        await conn.expect(Connect)
        waiting = asyncio.create_task(client.publish("t", "x"))  # waits for the CONNACK
        conn.send(Connack(reason_code=0x87))
        with pytest.raises(ConnectRefused):
            await connecting
        with pytest.raises(ClientClosed):
            await waiting
