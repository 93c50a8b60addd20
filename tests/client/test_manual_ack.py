"""Client(manual_ack=True) and fallback_addresses, against Roost and Mosquitto."""

from __future__ import annotations

import asyncio

import pytest

from roost.client import Client, ReconnectPolicy
from tests.client.servers import Server
from tests.support.mosquitto import free_port

TIMEOUT = 5.0
FAST = ReconnectPolicy(initial_delay=0.01, max_delay=0.05)


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("qos", [1, 2])
async def test_an_unacknowledged_message_comes_again_after_a_reconnect(
    server: Server, version: int, qos: int
) -> None:
    session: dict[str, object] = (
        {"session_expiry_interval": 300} if version == 5 else {"clean_start": False}
    )
    receiver = Client(
        "127.0.0.1",
        server.port,
        version=version,
        client_id=f"manual-{version}-{qos}",
        manual_ack=True,
        reconnect=FAST,
        **session,  # type: ignore[arg-type]
    )
    async with receiver, Client("127.0.0.1", server.port, version=version) as sender:
        await receiver.subscribe("manual/#", qos=2)
        stream = receiver.messages()
        await sender.publish("manual/x", "first", qos=qos)
        async with asyncio.timeout(TIMEOUT):
            first = await anext(stream)
        assert first.payload == b"first"
        # Not acknowledged when the connection breaks: the server sends it again.
        assert receiver._link is not None
        receiver._link.abort()
        if qos == 1:
            async with asyncio.timeout(TIMEOUT):
                again = await anext(stream)
            assert (again.topic, again.payload) == ("manual/x", b"first")
            receiver.ack(again)
        else:
            # QoS 2: the resend is not delivered twice; the first delivery's
            # acknowledgement (PUBREC) goes out on the new connection.
            async with asyncio.timeout(TIMEOUT):
                while not receiver.connected:
                    await asyncio.sleep(0.01)
            receiver.ack(first)
        await sender.publish("manual/y", "second", qos=qos)
        async with asyncio.timeout(TIMEOUT):
            following = await anext(stream)
        # Acknowledged: what follows is the next message, not the first again.
        assert following.payload == b"second"
        receiver.ack(following)
        # Both exchanges end: nothing stays owed (QoS 2: PUBREC, PUBREL and PUBCOMP went).
        async with asyncio.timeout(TIMEOUT):
            while receiver._conn.has_session_state():
                await asyncio.sleep(0.01)


async def test_fallback_addresses_are_tried_in_order(server: Server) -> None:
    dead = free_port()
    client = Client("127.0.0.1", dead, fallback_addresses=[("127.0.0.1", server.port)])
    async with client:
        assert client.port == server.port
        await client.publish("fallback/x", "here", qos=1)
