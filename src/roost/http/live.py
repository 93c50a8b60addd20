"""Live updates for the dashboard as server-sent events (``text/event-stream``).

``/api/v1/events/stats`` sends the broker's counters once a second (the page turns
them into rates); ``/api/v1/events/watch?topic=FILTER`` sends every message routed to
a topic matching the filter, as it is routed. Why SSE: docs/operations.md.

Watching taps the router (``Router.observer``), set only while someone watches, so an
unwatched broker pays one attribute test per message. A watcher that reads too slowly
loses messages (bounded queue, counted in the next event), never the broker's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web

from roost.http.api_messages import encode_payload
from roost.http.responses import check_topic_filter
from roost.protocol.topics import topic_matches

if TYPE_CHECKING:
    from roost.broker.message import Message
    from roost.http.host import HttpHost

log = logging.getLogger("roost.http")

STATS_INTERVAL = 1.0  # seconds between stats events
KEEPALIVE_INTERVAL = 15.0  # seconds between comments that keep idle proxies open
WATCH_QUEUE = 1000  # messages a watcher may fall behind by before losing some
MAX_WATCHERS = 32
WATCH_PAYLOAD_LIMIT = 65_536  # bytes of each payload sent to a watcher


_CLOSED = object()  # what _wait returns when the server stops


class _Watcher:
    __slots__ = ("dropped", "queue", "topic_filter")

    def __init__(self, topic_filter: str) -> None:
        self.topic_filter = topic_filter
        self.queue: asyncio.Queue[Message] = asyncio.Queue(WATCH_QUEUE)
        self.dropped = 0


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class LiveEvents:
    """The event streams, and the watchers the router's observer feeds."""

    def __init__(self, host: HttpHost) -> None:
        self._host = host
        self._watchers: set[_Watcher] = set()
        self._closing = asyncio.Event()

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v1/events/stats", self.stats),
            web.get("/api/v1/events/watch", self.watch),
        ]

    def close(self) -> None:
        """End every stream (the server is stopping)."""
        self._closing.set()
        self._watchers.clear()
        self._host.core.router.observer = None

    def _observe(self, message: Message) -> None:
        topic = message.topic
        for watcher in self._watchers:
            if topic_matches(watcher.topic_filter, topic):
                try:
                    watcher.queue.put_nowait(message)
                except asyncio.QueueFull:
                    watcher.dropped += 1

    def snapshot(self) -> dict[str, Any]:
        host = self._host
        core = host.core
        stats = core.stats
        sessions = core.registry.sessions
        online = sum(1 for session in sessions.values() if session.connection is not None)
        return {
            "time": round(host.now() - host.started_at, 3),
            "messages_received": stats.messages_received,
            "messages_sent": sum(stats.sent_by_qos),
            "bytes_received": stats.bytes_received,
            "bytes_sent": host.bytes_sent,
            "connections": len(core.connections),
            "client_connects": stats.clients_total,
            "sessions_online": online,
            "sessions_offline": len(sessions) - online,
            "subscriptions": core.router.subscription_count,
            "retained": core.router.retained_count,
            "dropped": sum(stats.dropped.values()),
        }

    async def _open(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",  # a proxy in front must not hold events back
            }
        )
        await response.prepare(request)
        return response

    async def _wait(self, waiting: asyncio.Future[Any] | None, timeout: float) -> Any:
        """The result of ``waiting``: None on timeout, ``_CLOSED`` when the server stops."""
        closing = asyncio.ensure_future(self._closing.wait())
        tasks: set[asyncio.Future[Any]] = {closing}
        if waiting is not None:
            tasks.add(waiting)
        try:
            done, _pending = await asyncio.wait(
                tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            closing.cancel()
        if closing in done:
            return _CLOSED
        if waiting is not None and waiting in done:
            return waiting.result()
        return None

    async def stats(self, request: web.Request) -> web.StreamResponse:
        response = await self._open(request)
        # A client that goes away cancels this handler (handler_cancellation); one that
        # stops reading fails the write.
        with contextlib.suppress(ConnectionError):
            while True:
                await response.write(_event("stats", self.snapshot()))
                if await self._wait(None, STATS_INTERVAL) is _CLOSED:
                    break
        return response

    async def watch(self, request: web.Request) -> web.StreamResponse:
        topic_filter = check_topic_filter(request.query.get("topic", "#"))
        if len(self._watchers) >= MAX_WATCHERS:
            raise web.HTTPServiceUnavailable(text=f"at most {MAX_WATCHERS} watchers at once")
        watcher = _Watcher(topic_filter)
        response = await self._open(request)
        self._watchers.add(watcher)
        self._host.core.router.observer = self._observe
        try:
            await response.write(_event("watching", {"topic": topic_filter}))
            while True:
                getting = asyncio.ensure_future(watcher.queue.get())
                try:
                    message = await self._wait(getting, KEEPALIVE_INTERVAL)
                finally:
                    getting.cancel()
                if message is _CLOSED:
                    break
                if message is None:
                    await response.write(b": keep-alive\n\n")
                    continue
                await response.write(_event("message", self._message(watcher, message)))
        except ConnectionError:
            pass
        finally:
            self._watchers.discard(watcher)
            if not self._watchers:
                self._host.core.router.observer = None
        return response

    def _message(self, watcher: _Watcher, message: Message) -> dict[str, Any]:
        payload = message.payload
        text, encoding = encode_payload(payload[:WATCH_PAYLOAD_LIMIT], "plain")
        dropped, watcher.dropped = watcher.dropped, 0
        return {
            "topic": message.topic,
            "qos": message.qos,
            "retain": message.retain,
            "payload": text,
            "payload_encoding": encoding,
            "payload_size": len(payload),
            "truncated": len(payload) > WATCH_PAYLOAD_LIMIT,
            "from_clientid": message.sender,
            "dropped_before": dropped,
        }
