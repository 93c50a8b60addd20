"""Waiting for a message on a ``roost.client.Client``, with a deadline."""

from __future__ import annotations

import asyncio
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from roost.client import Client, Message, MessageStream

# One open stream per client and filter set, kept for the client's life: a stream
# closed after each wait would drop what it had already queued (MessageStream.close),
# so a message arriving between two waits would be lost.
_streams: weakref.WeakKeyDictionary[Client, dict[tuple[str, ...], MessageStream]] = (
    weakref.WeakKeyDictionary()
)


async def wait_for_message(client: Client, *topic_filters: str, timeout: float = 5.0) -> Message:
    """The next message ``client`` receives matching ``topic_filters`` (any, if none),
    in the order received; raises ``TimeoutError`` if none comes within ``timeout``
    seconds.

    The client must have subscribed already: this only waits. The first call for a
    filter set also takes what arrived before it and no message stream took; from
    then on each filter set gets every message it matches (two sets may both get one).
    """
    streams = _streams.setdefault(client, {})
    try:
        async with asyncio.timeout(timeout):
            for _attempt in range(2):
                stream = streams.get(topic_filters)
                if stream is None:
                    stream = streams[topic_filters] = client.messages(*topic_filters)
                try:
                    return await anext(stream)
                except StopAsyncIteration:
                    # Ended by a close: a stream serves one connect ... close of its client.
                    del streams[topic_filters]
                    if not client.connected:
                        break
    except TimeoutError:
        wanted = ", ".join(topic_filters) or "any topic"
        raise TimeoutError(f"no message on {wanted} within {timeout} s") from None
    raise RuntimeError("the client is closed: no message can come")
