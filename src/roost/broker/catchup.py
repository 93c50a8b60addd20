"""Retained catch-up: the retained messages of a new subscription, taken as the
subscriber has room for them.

A SUBSCRIBE to ``sensors/#`` may match a hundred thousand retained messages. Rather
than collecting them all and queueing one ``Outgoing`` per message before the first
byte goes out, the router hands the session a ``CatchUp``: a lazy walk of the retained
store (``RetainedStore.walk``) that yields deliveries one at a time. The session pulls
from it whenever it has room (``Session.pump``: a free slot in the client's window and
a writable transport), so the client's PUBACKs and the transport's flow control pace
the catch-up, the session queue holds none of it, and other clients are served
between slices (``SLICE_MESSAGES`` / ``SLICE_BYTES`` per event-loop turn, then
``again``).

Each message is judged when it is pulled, not when the SUBSCRIBE came: a retained
message that has expired by then is deleted from the store, read access
(``Router.readers``) is asked as for any delivery, and a topic set or cleared after the
SUBSCRIBE is seen as it is now if the walk has not passed it yet. What the session does
with a catch-up on UNSUBSCRIBE, on a second SUBSCRIBE and when its client goes is
``sessions.Session``'s business (docs/architecture.md, "Retained catch-up").
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from roost.broker.records import Outgoing

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from roost.broker.auth.access import ClientAccess
    from roost.broker.message import Message

__all__ = ["SLICE_BYTES", "SLICE_MESSAGES", "CatchUp"]

# At most this many messages, or about this many bytes, of one session's catch-ups
# per event-loop turn; then the rest waits for the next turn (again), so that a large
# catch-up at QoS 0 (paced only by the transport) does not hold the loop.
SLICE_MESSAGES = 1000
SLICE_BYTES = 64 * 1024


class CatchUp:
    """The retained messages one subscription still has to get, one ``pull`` at a time."""

    __slots__ = (
        "_deferred",
        "_expired",
        "_hook",
        "_key",
        "_readers",
        "_scheduled",
        "_walk",
        "ids",
        "qos",
        "topic_filter",
    )

    def __init__(
        self,
        walk: Iterator[tuple[str, Message]],
        key: str,
        topic_filter: str,
        qos: int,
        ids: tuple[int, ...],
        readers: dict[str, ClientAccess] | None,
        expired: Callable[[str], None],
        deferred: Callable[[ClientAccess, str, Message, int], None],
        hook: Callable[[str, Message, int], bool] | None = None,
    ) -> None:
        self._walk = walk
        self._key = key
        self.topic_filter = topic_filter
        self.qos = qos  # granted
        self.ids = ids  # the subscription identifier, if any
        self._readers = readers  # None: nothing to check
        self._expired = expired  # deletes an expired retained message from the store
        # A plugin is still deciding read access to a topic: deliver this if it says yes.
        self._deferred = deferred
        # The on_deliver hooks (Router.deliver_hook): False drops this delivery.
        self._hook = hook
        self._scheduled = False

    def pull(self, now: float) -> Outgoing | None:
        """The next delivery, or None when the walk is over."""
        readers = self._readers
        for topic, message in self._walk:
            expires_at = message.expires_at
            if expires_at is not None and now >= expires_at:
                self._expired(topic)
                continue
            qos = message.qos if message.qos < self.qos else self.qos
            if self._hook is not None and not self._hook(self._key, message, qos):
                continue
            if readers is not None:
                # Asked per message, not once: a reconnect or SIGHUP may change it.
                access = readers.get(self._key)
                readable = False if access is None else access.may_read(topic)
                if readable is not True:
                    if readable is None and access is not None:
                        self._deferred(access, topic, message, qos)
                    continue
            return Outgoing(message, qos, True, self.ids)
        return None

    def again(self, pump: Callable[[float], None]) -> None:
        """Call ``pump`` with the time on the next event-loop turn (once, however often
        asked before then): the slice of this turn is used up."""
        if self._scheduled:
            return
        self._scheduled = True
        loop = asyncio.get_running_loop()

        def resume() -> None:
            self._scheduled = False
            pump(loop.time())

        loop.call_soon(resume)
