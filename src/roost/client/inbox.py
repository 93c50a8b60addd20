"""Where received messages wait for the application: the client's message streams.

Every ``client.messages(*filters)`` call opens a ``MessageStream``. A received message
goes to every open stream that wants it (a stream without filters wants all of them);
a message no open stream wants waits in the backlog, and the next stream opened that
wants it takes it from there. So "subscribe, then start iterating" loses nothing, even
retained messages that arrive together with the SUBACK.

Nothing here blocks the connection: queues are unbounded unless ``max_queued`` is set,
in which case the oldest message is dropped (and logged) to make room.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from types import TracebackType

from roost.client.message import Message
from roost.protocol.topics import topic_matches, validate_topic_filter

log = logging.getLogger("roost.client")


class _Queue:
    __slots__ = ("_items", "_waiter", "dropped", "max_queued")

    def __init__(self, max_queued: int) -> None:
        self._items: deque[Message] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.max_queued = max_queued
        self.dropped = 0

    def put(self, message: Message) -> None:
        items = self._items
        if self.max_queued and len(items) >= self.max_queued:
            items.popleft()
            self.dropped += 1
            log.warning("Message queue full (%d); dropped the oldest message.", self.max_queued)
        items.append(message)
        self.wake()

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class MessageStream:
    """An async iterator of received messages, optionally only those matching filters.

    Use it in ``async for``; ``close()`` (or ``async with``) stops it taking messages.
    Iteration ends when the client is closed, after the messages already received; if
    the connection was lost for good, that error is raised instead. A stream belongs to
    one connect ... close of its client: after a new ``connect()``, open a new one.
    """

    __slots__ = ("_closed", "_ended", "_error", "_inbox", "_queue", "filters")

    def __init__(self, inbox: Inbox, filters: tuple[str, ...]) -> None:
        for topic_filter in filters:
            validate_topic_filter(topic_filter)
        self._inbox = inbox
        self.filters = filters
        self._queue = _Queue(inbox.max_queued)
        self._closed = False
        self._ended = False
        self._error: BaseException | None = None

    def wants(self, message: Message) -> bool:
        if not self.filters:
            return True
        return any(topic_matches(f, message.topic) for f in self.filters)

    @property
    def dropped(self) -> int:
        """Messages dropped because this stream's queue was full."""
        return self._queue.dropped

    def __aiter__(self) -> MessageStream:
        return self

    async def __anext__(self) -> Message:
        queue = self._queue
        while True:
            if queue._items:
                return queue._items.popleft()
            if self._closed or self._ended:
                if self._error is not None and not self._closed:
                    raise self._error
                raise StopAsyncIteration
            queue._waiter = asyncio.get_running_loop().create_future()
            try:
                await queue._waiter
            finally:
                queue._waiter = None

    def put(self, message: Message) -> None:
        self._queue.put(message)

    def close(self) -> None:
        """Stop receiving; messages still queued here are dropped."""
        if not self._closed:
            self._closed = True
            self._inbox.remove(self)
            self._queue.wake()

    async def __aenter__(self) -> MessageStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def end(self, error: BaseException | None) -> None:
        self._ended = True
        self._error = error
        self._queue.wake()


class Inbox:
    """A client's received messages on their way to its open streams, with the backlog
    of those no stream wanted yet."""

    __slots__ = ("_backlog", "_streams", "ended", "error", "max_queued")

    def __init__(self, max_queued: int = 0) -> None:
        self.max_queued = max_queued
        self._backlog = _Queue(max_queued)
        self._streams: list[MessageStream] = []
        self.ended = False
        self.error: BaseException | None = None

    def open(self, filters: tuple[str, ...]) -> MessageStream:
        """A new stream; it takes what it wants from the backlog first."""
        stream = MessageStream(self, filters)
        backlog = self._backlog._items
        if backlog:
            kept: deque[Message] = deque()
            for message in backlog:
                if stream.wants(message):
                    stream.put(message)
                else:
                    kept.append(message)
            self._backlog._items = kept
        if self.ended:
            stream.end(self.error)
        else:
            self._streams.append(stream)
        return stream

    def remove(self, stream: MessageStream) -> None:
        """A closed stream takes no more messages."""
        if stream in self._streams:
            self._streams.remove(stream)

    def deliver(self, message: Message) -> None:
        """Hand ``message`` to every stream that wants it, or to the backlog if none does."""
        delivered = False
        for stream in self._streams:
            if stream.wants(message):
                stream.put(message)
                delivered = True
        if not delivered:
            self._backlog.put(message)

    def end(self, error: BaseException | None = None) -> None:
        """No more messages will come; streams finish what they hold, then stop or raise."""
        if self.ended:
            return
        self.ended = True
        self.error = error
        for stream in self._streams:
            stream.end(error)
        # Ended streams take no more messages, even if the client connects again.
        self._streams.clear()

    def reopen(self) -> None:
        """The client connects again after a close: streams opened from now on work."""
        self.ended = False
        self.error = None
