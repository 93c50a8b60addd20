"""What ``publish()`` accepts as a payload, against a real broker."""

from __future__ import annotations

import asyncio

import pytest

from roost.client import Client
from tests.client.servers import Server

ACCEPTED: list[tuple[object, bytes]] = [
    ("21.5 °C", "21.5 °C".encode()),
    (b"\x00\xff", b"\x00\xff"),
    (bytearray(b"ba"), b"ba"),
    (memoryview(b"view"), b"view"),
    (42, b"42"),
    (-7, b"-7"),
    (21.5, b"21.5"),
    (None, b""),
]


async def test_accepted_payloads_arrive_as_documented(server: Server) -> None:
    async with Client("127.0.0.1", server.port) as client:
        await client.subscribe("payloads/#", qos=1)
        stream = client.messages()
        for index, (payload, _) in enumerate(ACCEPTED):
            await client.publish(f"payloads/{index}", payload, qos=1)  # type: ignore[arg-type]
        received: dict[int, bytes] = {}
        async with asyncio.timeout(5):
            while len(received) < len(ACCEPTED):
                message = await anext(stream)
                received[int(message.topic.split("/")[1])] = message.payload
    assert received == {index: expected for index, (_, expected) in enumerate(ACCEPTED)}


@pytest.mark.parametrize(
    "payload", [{"t": 21.5}, [1, 2, 3], (1, 2), True, object(), {1, 2}], ids=repr
)
async def test_other_payloads_are_refused_before_sending(server: Server, payload: object) -> None:
    async with Client("127.0.0.1", server.port) as client:
        await client.subscribe("refused", qos=1)
        stream = client.messages()
        with pytest.raises(TypeError) as caught:
            await client.publish("refused", payload, qos=1)  # type: ignore[arg-type]
        message = str(caught.value)
        assert "str, bytes, bytearray, memoryview, int, float or None" in message
        assert type(payload).__name__ in message
        # Nothing went out: the next message on the topic is the one published after.
        await client.publish("refused", "after", qos=1)
        async with asyncio.timeout(5):
            assert (await anext(stream)).payload == b"after"
