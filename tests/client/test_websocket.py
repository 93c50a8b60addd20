"""The client over WebSocket (ws and wss) against Roost and Mosquitto, and against a
scripted server for the framing cases real brokers do not produce on demand."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from roost.broker.config import ListenerConfig
from roost.client import (
    Client,
    ConnectError,
    ConnectionLost,
    TLSError,
    WebSocketError,
    tls_context,
)
from roost.codec import Connack, Connect, Disconnect, Publish, Suback, Subscribe, Subscription
from tests.client.fake_ws_server import FakeWsConnection, FakeWsServer
from tests.client.servers import (
    Server,
    WsServer,
    listener_port,
    server_certificate,
    start_roost,
)

TIMEOUT = 5.0
CONNECT_TIMEOUT = 10.0


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
async def test_round_trip_over_websocket(ws_server: WsServer, secure: bool) -> None:
    """Messages both ways between a WebSocket client and a TCP client, every QoS, and a
    payload far larger than one TCP read (it crosses many frames and reads)."""
    port = ws_server.wss_port if secure else ws_server.ws_port
    tls = tls_context(ws_server.cafile) if secure else None
    # Mosquitto 2.0.11 sends a WebSocket client about 4 KiB per 100 ms (its libwebsockets
    # service cadence; paho sees the same), so a large message takes seconds there.
    big = os.urandom(300_000 if ws_server.kind == "roost" else 20_000)
    ws_client = Client("127.0.0.1", port, transport="websockets", tls=tls)
    async with ws_client, Client("127.0.0.1", ws_server.port) as tcp_client:
        assert ws_client.connected
        await ws_client.subscribe("to-ws/#", qos=2)
        await tcp_client.subscribe("to-tcp/#", qos=2)
        to_ws = ws_client.messages()
        to_tcp = tcp_client.messages()
        for qos in (0, 1, 2):
            await tcp_client.publish(f"to-ws/{qos}", f"q{qos}", qos=qos)
            await ws_client.publish(f"to-tcp/{qos}", f"q{qos}", qos=qos)
        await tcp_client.publish("to-ws/big", big, qos=1)
        await ws_client.publish("to-tcp/big", big, qos=1)
        async with asyncio.timeout(TIMEOUT):
            for stream in (to_ws, to_tcp):
                received = [await anext(stream) for _ in range(4)]
                assert [m.payload for m in received[:3]] == [b"q0", b"q1", b"q2"]
                assert received[3].payload == big
        # The closing handshake finishes promptly: no waiting out connect_timeout.
        async with asyncio.timeout(CONNECT_TIMEOUT / 2):
            await ws_client.disconnect()


async def test_the_path_must_match_the_listener(tmp_path: Path) -> None:
    roost = start_roost(ListenerConfig(port=0, type="ws", path="/mqtt/ws"), allow_anonymous=True)
    try:
        port = listener_port(roost, 0)
        async with Client(
            "127.0.0.1", port, transport="websockets", websocket_path="/mqtt/ws"
        ) as client:
            assert client.connected
        wrong = Client("127.0.0.1", port, transport="websockets")
        with pytest.raises(WebSocketError, match="HTTP 404 Not Found: path '/mqtt'") as caught:
            await wrong.connect()
        assert caught.value.status == 404
    finally:
        roost.stop()


async def test_a_plain_mqtt_port_is_not_a_websocket(roost: Server) -> None:
    # Roost reads "GET /mqtt ..." as a broken MQTT packet and closes the connection.
    client = Client("127.0.0.1", roost.port, transport="websockets")
    with pytest.raises(ConnectError, match="closed during the upgrade") as caught:
        await client.connect()
    assert not isinstance(caught.value, WebSocketError)


async def test_wss_with_an_untrusted_certificate(tmp_path: Path) -> None:
    _cafile, server_pem = server_certificate(tmp_path)
    roost = start_roost(ListenerConfig(port=0, type="wss", certfile=str(server_pem)))
    try:
        other = tmp_path / "other"
        other.mkdir()
        other_ca, _pem = server_certificate(other)
        client = Client(
            "127.0.0.1",
            listener_port(roost, 0),
            transport="websockets",
            tls=tls_context(other_ca),
        )
        with pytest.raises(TLSError, match="certificate verify failed"):
            await client.connect()
    finally:
        roost.stop()


def test_default_ports_and_argument_checks() -> None:
    assert Client(transport="websockets").port == 80
    assert Client(transport="websockets", tls=True).port == 443
    assert Client().port == 1883
    with pytest.raises(ValueError, match="transport must be"):
        Client(transport="ws")
    with pytest.raises(ValueError, match="WebSocket path"):
        Client(transport="websockets", websocket_path="mqtt")
    with pytest.raises(ValueError, match="sets Sec-WebSocket-Protocol itself"):
        Client(transport="websockets", websocket_headers={"Sec-WebSocket-Protocol": "x"})


# A scripted server: framing details.


async def connected(
    server: FakeWsServer, client: Client, *, split_connack: bool = False
) -> tuple[FakeWsConnection, asyncio.Task[Connack]]:
    task = asyncio.create_task(client.connect())
    conn = await server.accept()
    await conn.upgrade()
    assert isinstance(await conn.packet(), Connect)
    connack = Connack().encode(5)
    if split_connack:
        # One packet over two frames (a fragmented message) with a ping between them.
        conn.send(0x2, connack[:2], fin=False)
        conn.send(0x9, b"are you there")
        conn.send(0x0, connack[2:])
    else:
        conn.send(0x2, connack)
    return conn, task


async def test_request_frames_pings_and_the_closing_handshake() -> None:
    async with FakeWsServer() as server:
        client = Client(
            "127.0.0.1",
            server.port,
            transport="websockets",
            websocket_path="/ws/mqtt?tenant=7",
            websocket_headers={"Authorization": "Bearer t0ken", "Origin": "https://app"},
        )
        conn, task = await connected(server, client, split_connack=True)
        async with asyncio.timeout(TIMEOUT):
            await task
        assert conn.request_line == "GET /ws/mqtt?tenant=7 HTTP/1.1"
        assert conn.headers["host"] == f"127.0.0.1:{server.port}"
        assert conn.headers["sec-websocket-protocol"] == "mqtt"
        assert conn.headers["authorization"] == "Bearer t0ken"
        assert conn.headers["origin"] == "https://app"
        # The ping was answered with a pong carrying its payload (and a mask).
        assert await conn.frame() == (0x8A, b"are you there")

        subscribed = asyncio.create_task(client.subscribe("t/#", qos=0))
        subscribe = await conn.packet()
        assert isinstance(subscribe, Subscribe)
        assert subscribe.subscriptions == (Subscription("t/#", 0),)
        conn.send(0x2, Suback(subscribe.packet_id, (0,)).encode(5))
        async with asyncio.timeout(TIMEOUT):
            assert await subscribed == (0,)
        # A packet over three frames, then two packets in one frame.
        first = Publish("t/1", b"one").encode(5)
        conn.send(0x2, first[:1], fin=False)
        conn.send(0x0, first[1:4], fin=False)
        conn.send(0x0, first[4:])
        conn.send(0x2, Publish("t/2", b"two").encode(5) + Publish("t/3", b"three").encode(5))
        stream = client.messages()
        async with asyncio.timeout(TIMEOUT):
            assert [(await anext(stream)).payload for _ in range(3)] == [b"one", b"two", b"three"]

        closing = asyncio.create_task(client.disconnect())
        assert isinstance(await conn.packet(), Disconnect)
        assert await conn.frame() == (0x88, (1000).to_bytes(2, "big"))
        conn.send(0x8, (1000).to_bytes(2, "big"))
        async with asyncio.timeout(TIMEOUT):
            await closing  # done once the server answered, not after connect_timeout
            assert await conn.closed()


async def test_a_close_from_the_server_ends_the_connection() -> None:
    async with FakeWsServer() as server:
        client = Client("127.0.0.1", server.port, transport="websockets")
        conn, task = await connected(server, client)
        async with asyncio.timeout(TIMEOUT):
            await task
        stream = client.messages()
        conn.send(0x8, (1001).to_bytes(2, "big") + b"going away")
        assert await conn.frame() == (0x88, (1001).to_bytes(2, "big"))  # echoed
        with pytest.raises(ConnectionLost):
            async with asyncio.timeout(TIMEOUT):
                await anext(stream)
        assert await conn.closed()
        await client.disconnect()


async def test_a_text_frame_fails_the_connection() -> None:
    async with FakeWsServer() as server:
        client = Client("127.0.0.1", server.port, transport="websockets")
        conn, task = await connected(server, client)
        async with asyncio.timeout(TIMEOUT):
            await task
        stream = client.messages()
        conn.send(0x1, b'{"not": "mqtt"}')
        assert await conn.frame() == (0x88, (1003).to_bytes(2, "big"))
        with pytest.raises(ConnectionLost, match="text frame"):
            async with asyncio.timeout(TIMEOUT):
                await anext(stream)
        await client.disconnect()


async def test_a_wrong_accept_key_is_refused() -> None:
    async with FakeWsServer() as server:
        client = Client("127.0.0.1", server.port, transport="websockets")
        task = asyncio.create_task(client.connect())
        conn = await server.accept()
        await conn.read_request()
        conn.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: d3Jvbmc=\r\n\r\n"
        )
        with pytest.raises(WebSocketError, match="Sec-WebSocket-Accept") as caught:
            async with asyncio.timeout(TIMEOUT):
                await task
        assert caught.value.status == 101
        assert await conn.closed()


async def test_the_upgrade_counts_against_connect_timeout() -> None:
    async with FakeWsServer() as server:
        client = Client("127.0.0.1", server.port, transport="websockets", connect_timeout=0.2)
        task = asyncio.create_task(client.connect())
        conn = await server.accept()
        await conn.read_request()  # and never answer
        with pytest.raises(TimeoutError, match=r"within 0\.2 s"):
            await task
        assert await conn.closed()
