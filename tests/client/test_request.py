"""``Client.request()`` (MQTT 5 request/response) and the connection callbacks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from roost.client import (
    Client,
    ClientClosed,
    Connack,
    ConnectionLost,
    Message,
    ReconnectPolicy,
)
from tests.client.servers import LogWatcher, Server

TIMEOUT = 5.0
FAST = ReconnectPolicy(initial_delay=0.01, max_delay=0.05)


@contextlib.asynccontextmanager
async def responder(port: int) -> AsyncIterator[list[Message]]:
    """Answers each request on "service/#" on its Response Topic, echoing its
    Correlation Data, with "re: " and the payload. Yields the requests it saw."""
    seen: list[Message] = []
    async with Client("127.0.0.1", port, client_id="responder") as client:
        await client.subscribe("service/#", qos=1)

        async def serve() -> None:
            async for request in client.messages("service/#"):
                seen.append(request)
                assert request.response_topic is not None
                await client.publish(
                    request.response_topic,
                    b"re: " + request.payload,
                    qos=1,
                    correlation_data=request.correlation_data,
                )

        task = asyncio.create_task(serve())
        try:
            yield seen
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_request_returns_the_matching_response(
    server: Server, client_log: LogWatcher
) -> None:
    async with (
        responder(server.port) as seen,
        Client("127.0.0.1", server.port, client_id="asker") as client,
    ):
        everything = client.messages()
        answers = await asyncio.gather(
            *(client.request(f"service/{n}", f"q{n}", qos=1, timeout=TIMEOUT) for n in range(3))
        )
        assert [answer.payload for answer in answers] == [b"re: q0", b"re: q1", b"re: q2"]
        again = await client.request("service/x", None, timeout=TIMEOUT)
        assert again.payload == b"re: "
    topics = {request.response_topic for request in seen}
    assert len(topics) == 1  # one response topic per client
    (topic,) = topics
    assert topic is not None
    assert topic.startswith("roost/responses/")
    assert len({request.correlation_data for request in seen}) == 4
    # Subscribed once, for all four requests (plus nothing of the responder's).
    assert client_log.count("Client asker sending SUBSCRIBE") == 1
    # Responses went to request(), not to the client's message streams: the stream
    # opened before the requests ends empty now that the client is closed.
    with pytest.raises(StopAsyncIteration):
        await anext(everything)


async def test_request_prefix_is_the_callers_choice(roost: Server) -> None:
    async with (
        responder(roost.port) as seen,
        Client("127.0.0.1", roost.port, response_topic_prefix="app/replies/") as client,
    ):
        await client.request("service/p", "x", timeout=TIMEOUT)
    assert str(seen[0].response_topic).startswith("app/replies/")


async def test_request_times_out_with_a_timeout_error(server: Server) -> None:
    async with Client("127.0.0.1", server.port) as client:
        with pytest.raises(TimeoutError, match="no response to the request on 'nobody/home'"):
            await client.request("nobody/home", "anyone?", timeout=0.2)
        assert client.connected
        assert not client._responses  # forgotten, so a late answer is dropped


async def test_request_needs_mqtt_5(server: Server) -> None:
    async with Client("127.0.0.1", server.port, version=4) as client:
        with pytest.raises(ValueError, match="needs MQTT 5"):
            await client.request("service/x", "y")


async def test_connection_callbacks(server: Server, client_log: LogWatcher) -> None:
    events: list[tuple[str, object]] = []
    reconnected = asyncio.Event()

    def connected(connack: Connack, reconnect: bool) -> None:
        events.append(("connect", reconnect))
        if reconnect:
            reconnected.set()

    async def disconnected(error: BaseException | None) -> None:  # a coroutine is run too
        events.append(("disconnect", type(error).__name__ if error else None))

    client = Client(
        "127.0.0.1",
        server.port,
        reconnect=FAST,
        on_connect=connected,
        on_disconnect=disconnected,
    )
    async with client:
        assert events == [("connect", False)]
        assert client._link is not None
        client._link.abort()  # a network failure
        async with asyncio.timeout(TIMEOUT):
            await reconnected.wait()
    await asyncio.gather(*client._callback_tasks)
    assert events == [
        ("connect", False),
        ("disconnect", ConnectionLost.__name__),
        ("connect", True),
        ("disconnect", None),  # our own disconnect()
    ]


async def test_a_raising_callback_is_logged_and_harmless(
    server: Server, client_log: LogWatcher
) -> None:
    def broken(connack: Connack, reconnect: bool) -> None:
        raise RuntimeError("application bug")

    async def broken_too(error: BaseException | None) -> None:
        raise RuntimeError("application bug, asynchronous")

    client = Client("127.0.0.1", server.port, on_connect=broken, on_disconnect=broken_too)
    async with client:
        await client.publish("fine", "still works", qos=1)
    await asyncio.gather(*client._callback_tasks)
    assert client_log.count("The on_connect callback raised") == 1
    assert client_log.count("The on_disconnect callback raised") == 1
    with pytest.raises(ClientClosed):
        await client.publish("closed", "x", qos=1)
