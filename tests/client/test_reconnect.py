"""Reconnecting and resuming sessions, against Roost and Mosquitto.

A connection is broken from the test by aborting the client's socket (no restart of
the broker needed); the client's log says when it reconnected and what it resent.
"""

from __future__ import annotations

import asyncio

import pytest

from roost.client import (
    Client,
    ConnectError,
    ConnectionLost,
    Message,
    MessageStream,
    ReconnectPolicy,
    ServerDisconnected,
)
from roost.codec import Connack, Connect
from tests.client.fake_server import FakeServer
from tests.client.servers import LogWatcher, Server

TIMEOUT = 5.0
FAST = ReconnectPolicy(initial_delay=0.01, max_delay=0.05)


async def next_message(stream: MessageStream) -> Message:
    async with asyncio.timeout(TIMEOUT):
        return await anext(stream)


def drop(client: Client) -> None:
    """Break the network connection under the client, as a network failure would."""
    assert client._link is not None
    client._link.abort()


def persistent(server: Server, version: int, client_id: str, **options: object) -> Client:
    session: dict[str, object] = (
        {"session_expiry_interval": 300} if version == 5 else {"clean_start": False}
    )
    session.update(options)
    return Client(
        "127.0.0.1",
        server.port,
        version=version,
        client_id=client_id,
        **session,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("qos", [1, 2])
async def test_unacknowledged_messages_are_resent_with_dup(
    server: Server, client_log: LogWatcher, version: int, qos: int
) -> None:
    async with (
        Client("127.0.0.1", server.port, version=version) as sub,
        persistent(server, version, f"resend-{version}-{qos}", reconnect=FAST) as pub,
    ):
        await sub.subscribe("resume/#", qos=2)
        stream = sub.messages()
        task = asyncio.create_task(pub.publish("resume/x", "owed", qos=qos))
        # The PUBLISH is written, then the connection dies before any answer is read.
        asyncio.get_running_loop().call_soon(drop, pub)
        result = await asyncio.wait_for(task, TIMEOUT)
        assert result.packet_id
        assert client_log.count(f"sending PUBLISH (d1, q{qos}, r0, m{result.packet_id},") == 1
        assert pub.session_present
        message = await next_message(stream)
        assert (message.topic, message.payload) == ("resume/x", b"owed")
        await pub.publish("resume/marker", "after", qos=1)
        following = await next_message(stream)
        if qos == 2:  # exactly once: the resend was not delivered a second time
            assert following.topic == "resume/marker"


@pytest.mark.parametrize("version", [4, 5])
async def test_subscriptions_are_made_again_when_the_session_is_gone(
    server: Server, client_log: LogWatcher, version: int
) -> None:
    async with (
        Client("127.0.0.1", server.port, version=version, reconnect=FAST) as sub,
        Client("127.0.0.1", server.port, version=version) as pub,
    ):
        await sub.subscribe("again/#", qos=1)
        stream = sub.messages()
        drop(sub)
        await client_log.wait_for("Reconnected")
        assert not sub.session_present
        await client_log.wait_for("received SUBACK", count=2)
        await pub.publish("again/x", "still here", qos=1)
        assert (await next_message(stream)).payload == b"still here"


@pytest.mark.parametrize("version", [4, 5])
async def test_persistent_session_receives_what_was_sent_while_away(
    server: Server, version: int
) -> None:
    first = persistent(server, version, f"away-{version}")
    async with first:
        await first.subscribe("away/#", qos=1)
    async with Client("127.0.0.1", server.port, version=version) as pub:
        await pub.publish("away/news", "while you were out", qos=1)
    back = persistent(server, version, f"away-{version}", clean_start=False)
    async with back:
        assert back.session_present
        message = await next_message(back.messages())
        assert (message.topic, message.payload, message.qos) == (
            "away/news",
            b"while you were out",
            1,
        )


async def test_reconnect_across_a_mosquitto_restart(
    mosquitto: Server, client_log: LogWatcher
) -> None:
    assert mosquitto.mosquitto is not None
    async with Client("127.0.0.1", mosquitto.port, reconnect=FAST) as sub:
        await sub.subscribe("restart/#", qos=1)
        stream = sub.messages()
        await asyncio.to_thread(mosquitto.mosquitto.restart)
        await client_log.wait_for("Reconnected")
        await client_log.wait_for("received SUBACK", count=2)
        async with Client("127.0.0.1", mosquitto.port) as pub:
            await pub.publish("restart/x", "back", qos=1)
        assert (await next_message(stream)).payload == b"back"


async def test_session_taken_over_is_not_fought_over(roost: Server) -> None:
    # Roost says why (DISCONNECT 0x8E), so the reconnect policy stands down.
    first = Client("127.0.0.1", roost.port, client_id="twin", reconnect=FAST)
    await first.connect()
    stream = first.messages()
    async with Client("127.0.0.1", roost.port, client_id="twin") as second:
        with pytest.raises(ServerDisconnected) as lost:
            await next_message(stream)
        assert lost.value.reason_code == 0x8E
        assert second.connected
    await first.disconnect()


async def test_session_takeover_ends_the_old_connection(server: Server) -> None:
    # Mosquitto 2.0.11 closes the old connection without a DISCONNECT, so only a client
    # without a reconnect policy can be sure not to take the session back.
    first = Client("127.0.0.1", server.port, client_id="twin")
    await first.connect()
    stream = first.messages()
    async with Client("127.0.0.1", server.port, client_id="twin"):
        with pytest.raises(ConnectionLost):
            await next_message(stream)
    await first.disconnect()


async def test_reconnect_gives_up_after_max_attempts() -> None:
    async with FakeServer() as fake:
        client = Client(
            "127.0.0.1",
            fake.port,
            reconnect=ReconnectPolicy(initial_delay=0.01, max_delay=0.01, max_attempts=2),
        )
        connect = asyncio.create_task(client.connect())
        conn = await fake.accept()
        await conn.expect(Connect)
        conn.send(Connack())
        await connect
        stream = client.messages()
    # The fake server is gone: every attempt is refused.
    with pytest.raises(ConnectError):
        await next_message(stream)
    await client.disconnect()


async def test_roost_shutdown_is_reported_with_its_reason(roost: Server) -> None:
    assert roost.roost is not None
    client = Client("127.0.0.1", roost.port)
    await client.connect()
    stream = client.messages()
    await asyncio.to_thread(roost.roost.stop)
    with pytest.raises(ServerDisconnected) as lost:
        await next_message(stream)
    assert lost.value.reason_code == 0x8B
    await client.disconnect()
