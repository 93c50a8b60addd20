"""The client against Roost and against Mosquitto: publish, subscribe, properties, streams."""

from __future__ import annotations

import asyncio

import pytest

from roost.client import Client, Message, MessageStream, Subscription, Will
from tests.client.servers import Server

TIMEOUT = 5.0


async def next_message(stream: MessageStream) -> Message:
    async with asyncio.timeout(TIMEOUT):
        return await anext(stream)


def client(server: Server, version: int = 5, **options: object) -> Client:
    return Client("127.0.0.1", server.port, version=version, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("qos", [0, 1, 2])
async def test_publish_and_receive_at_each_qos(server: Server, version: int, qos: int) -> None:
    async with client(server, version) as sub, client(server, version) as pub:
        granted = await sub.subscribe("test/+/qos", qos=qos)
        assert granted == (qos,)
        stream = sub.messages()
        result = await pub.publish("test/a/qos", f"payload {qos}", qos=qos)
        assert result.reason_code in (0, 0x10)
        assert (result.packet_id != 0) == (qos > 0)
        message = await next_message(stream)
        assert (message.topic, message.text, message.qos) == ("test/a/qos", f"payload {qos}", qos)
        assert not message.retain
        assert pub.pending == 0


async def test_many_qos2_messages_in_order(server: Server) -> None:
    async with client(server) as sub, client(server) as pub:
        await sub.subscribe("bulk", qos=2)
        stream = sub.messages()
        results = await asyncio.gather(*(pub.publish("bulk", str(i), qos=2) for i in range(50)))
        assert len({r.packet_id for r in results}) == 50
        received = [int((await next_message(stream)).payload) for _ in range(50)]
        assert received == list(range(50))


async def test_retained_message_arriving_with_the_suback_is_not_lost(server: Server) -> None:
    async with client(server) as pub:
        await pub.publish("retained/one", "kept", qos=1, retain=True)
    async with client(server) as sub:
        # The stream is opened only after subscribe() returned: the backlog holds it.
        await sub.subscribe("retained/#")
        message = await next_message(sub.messages())
        assert (message.topic, message.payload, message.retain) == ("retained/one", b"kept", True)
        await sub.publish("retained/one", b"", qos=1, retain=True)  # clear it


async def test_filtered_streams(server: Server) -> None:
    async with client(server) as c:
        await c.subscribe(["a/#", "b/#"])
        a_stream = c.messages("a/#")
        everything = c.messages()
        await c.publish("b/1", "b")
        await c.publish("a/1", "a")
        assert (await next_message(a_stream)).topic == "a/1"
        assert [(await next_message(everything)).topic for _ in range(2)] == ["b/1", "a/1"]
        a_stream.close()
        assert [m async for m in a_stream] == []


async def test_unsubscribe(server: Server) -> None:
    async with client(server) as c:
        await c.subscribe("u/1")
        assert await c.unsubscribe("u/1") == (0,)
        await c.subscribe("u/2")
        stream = c.messages()
        await c.publish("u/1", "gone", qos=1)
        await c.publish("u/2", "here", qos=1)
        assert (await next_message(stream)).topic == "u/2"


async def test_unsubscribe_3_1_1_has_no_reason_codes(server: Server) -> None:
    async with client(server, 4) as c:
        await c.subscribe("u/1")
        assert await c.unsubscribe("u/1") == ()


async def test_v5_properties_round_trip(server: Server) -> None:
    async with client(server) as sub, client(server) as pub:
        await sub.subscribe(Subscription("props", 1), subscription_identifier=42)
        stream = sub.messages()
        await pub.publish(
            "props",
            b"\x00\xff",
            qos=1,
            payload_format_indicator=0,
            message_expiry_interval=3600,
            content_type="application/octet-stream",
            response_topic="replies/here",
            correlation_data=b"\x01\x02",
            user_properties={"key": "value", "unit": "C"},
        )
        message = await next_message(stream)
        assert message.payload == b"\x00\xff"
        assert message.payload_format_indicator == 0
        assert message.message_expiry_interval is not None
        assert 3590 <= message.message_expiry_interval <= 3600
        assert message.content_type == "application/octet-stream"
        assert message.response_topic == "replies/here"
        assert message.correlation_data == b"\x01\x02"
        assert message.user_properties == (("key", "value"), ("unit", "C"))
        assert message.subscription_identifiers == (42,)
        assert message.properties["correlation_data"] == "AQI="


async def test_no_local(server: Server) -> None:
    async with client(server) as c:
        await c.subscribe("echo", no_local=True)
        await c.subscribe("other")
        stream = c.messages()
        await c.publish("echo", "mine", qos=1)
        await c.publish("other", "seen", qos=1)
        assert (await next_message(stream)).topic == "other"


async def test_will_is_published_when_the_connection_drops(server: Server) -> None:
    async with client(server) as watcher:
        await watcher.subscribe("wills/#", qos=1)
        stream = watcher.messages()
        dying = client(server, will=Will("wills/dying", b"gone", qos=1))
        await dying.connect()
        assert dying._link is not None
        dying._link.abort()  # no DISCONNECT: the server publishes the will
        message = await next_message(stream)
        assert (message.topic, message.payload) == ("wills/dying", b"gone")
        await dying.disconnect()


async def test_clean_disconnect_discards_the_will(server: Server) -> None:
    async with client(server) as watcher:
        await watcher.subscribe("wills2/#", qos=1)
        stream = watcher.messages()
        async with client(server, will=Will("wills2/dying", b"gone")):
            pass
        await watcher.publish("wills2/marker", "after", qos=1)
        assert (await next_message(stream)).topic == "wills2/marker"


async def test_server_assigns_a_client_id(server: Server) -> None:
    async with client(server, client_id="") as c:
        assert c.client_id
        assert c.connack is not None


async def test_stream_ends_when_the_client_closes(server: Server) -> None:
    c = client(server)
    await c.connect()
    stream = c.messages()
    await c.disconnect()
    assert [m async for m in stream] == []
