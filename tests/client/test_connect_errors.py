"""Connecting to the wrong place: each failure names what most likely happened.

Real sockets throughout: an unknown host under ``.invalid`` (which never resolves),
Roost listeners of each type (tcp, tls, ws) and Mosquitto's WebSocket listener.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from roost.broker.config import ListenerConfig
from roost.client import (
    Client,
    ConnectError,
    ConnectionLost,
    ConnectTimeout,
    TLSError,
    tls_context,
)
from tests.client.servers import (
    listener_port,
    mosquitto_with_websockets,
    server_certificate,
    start_roost,
)


@dataclass
class Ports:
    """A Roost broker with one listener of each type."""

    tcp: int
    tls: int
    ws: int
    cafile: Path


@pytest.fixture
def ports(tmp_path: Path) -> Iterator[Ports]:
    cafile, server_pem = server_certificate(tmp_path)
    thread = start_roost(
        ListenerConfig(port=0),
        ListenerConfig(port=0, type="tls", certfile=str(server_pem)),
        ListenerConfig(port=0, type="ws"),
        allow_anonymous=True,
    )
    try:
        tcp, tls, ws = (listener_port(thread, index) for index in range(3))
        yield Ports(tcp, tls, ws, cafile)
    finally:
        thread.stop()


async def test_an_unknown_host_gives_the_resolvers_words(ports: Ports) -> None:
    with pytest.raises(ConnectError) as caught:
        await Client("no-such-host.invalid", ports.tcp, connect_timeout=5).connect()
    cause = caught.value.__cause__
    assert isinstance(cause, socket.gaierror)
    message = str(caught.value)
    assert "unknown host" in message
    assert str(cause.strerror) in message  # e.g. "Name or service not known"
    assert "unknown error" not in message.lower()
    assert type(caught.value) is ConnectError


async def test_tls_to_a_plain_port_is_a_tls_error_with_a_reason(ports: Ports) -> None:
    client = Client("127.0.0.1", ports.tcp, tls=tls_context(str(ports.cafile)))
    with pytest.raises(TLSError) as caught:
        await client.connect()
    message = str(caught.value)
    assert "TLS handshake" in message
    assert "plain MQTT port" in message
    assert not message.rstrip().endswith(":")  # a reason follows the colon


async def test_plain_mqtt_to_a_tls_port_says_no_connack_came(ports: Ports) -> None:
    with pytest.raises(ConnectError) as caught:
        await Client("127.0.0.1", ports.tls).connect()
    assert not isinstance(caught.value, TLSError | ConnectionLost)
    message = str(caught.value)
    assert "no CONNACK" in message
    assert "TLS" in message


async def test_plain_mqtt_to_a_silent_port_names_a_websocket_port_in_the_timeout() -> None:
    # A server that accepts and never answers (as some WebSocket servers do with bytes
    # that are not HTTP): the client can only say so when its timeout ends.
    silent = socket.create_server(("127.0.0.1", 0))
    try:
        port = silent.getsockname()[1]
        with pytest.raises(ConnectTimeout, match="WebSocket port"):
            await Client("127.0.0.1", port, connect_timeout=0.5).connect()
    finally:
        silent.close()


async def test_plain_mqtt_to_roosts_websocket_port_fails_at_once(ports: Ports) -> None:
    # Roost's ws listener answers HTTP 400 as soon as the first bytes cannot start an
    # HTTP request, so the client fails long before its connect timeout.
    with pytest.raises(ConnectError) as caught:
        await Client("127.0.0.1", ports.ws, connect_timeout=60).connect()
    assert not isinstance(caught.value, ConnectTimeout)
    message = str(caught.value)
    assert "HTTP/1.1 400" in message
    assert "WebSocket" in message


async def test_plain_mqtt_to_an_answering_websocket_port_fails_at_once(
    tmp_path: Path,
) -> None:
    # Mosquitto's ws listener answers a CONNECT with an HTTP error: the client reads
    # it as HTTP and fails then, long before the (default, 10 s) connect timeout.
    _, server_pem = server_certificate(tmp_path)
    broker, ws_port, _ = mosquitto_with_websockets(tmp_path, server_pem)
    try:
        with pytest.raises(ConnectError) as caught:
            await Client("127.0.0.1", ws_port, connect_timeout=60).connect()
    finally:
        broker.stop()
    assert not isinstance(caught.value, ConnectTimeout)
    message = str(caught.value)
    assert "HTTP/1." in message
    assert "WebSocket" in message


async def test_a_tls_answer_to_plain_mqtt_is_named() -> None:
    # A server that answers with a TLS alert record (as some TLS stacks do to a
    # plaintext hello) is recognised as a TLS port from its first bytes.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        client = Client("127.0.0.1", port, connect_timeout=60)
        loop = asyncio.get_running_loop()
        listener.setblocking(False)
        connecting = asyncio.create_task(client.connect())
        peer, _ = await loop.sock_accept(listener)
        with peer:
            await loop.sock_recv(peer, 1024)  # the CONNECT
            await loop.sock_sendall(peer, bytes.fromhex("15030300020246"))  # alert 70
            with pytest.raises(ConnectError, match="answered with TLS"):
                await connecting


async def test_a_server_hanging_up_on_the_tls_hello_is_asked_about(ports: Ports) -> None:
    # Read the ClientHello, then close cleanly (FIN, not a reset): however the client's
    # TLS stack reports that (EOF or reset), the error asks about a plain port.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        client = Client("127.0.0.1", port, tls=tls_context(str(ports.cafile)))
        loop = asyncio.get_running_loop()
        connecting = asyncio.create_task(client.connect())
        peer, _ = await loop.sock_accept(listener)
        with peer:
            assert (await loop.sock_recv(peer, 4096))[:1] == b"\x16"  # a TLS handshake
        with pytest.raises(TLSError, match="plain MQTT port"):
            await connecting
