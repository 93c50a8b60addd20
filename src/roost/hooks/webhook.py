"""A broker hook that forwards messages matching topic filters to an HTTP endpoint.

Config (docs/hooks.md)::

    [[hooks]]
    path = "webhook"               # or "roost.hooks.webhook:WebhookForwarder"
    [hooks.options]
    url = "https://example.com/mqtt"
    topics = ["sensors/#", "alerts/+"]   # default: every topic ("#"; not $-topics)
    queue_size = 1000      # messages waiting to be sent, at most
    retries = 3            # further attempts after a failed one
    backoff = 0.5          # seconds before the first retry; doubled each time, to 30
    timeout = 5.0          # seconds per request
    workers = 1            # requests in flight at once (1 keeps the messages in order)
    headers = { Authorization = "Bearer ..." }

Each message a client publishes on a matching topic (after earlier hooks' rewrites) is
POSTed as one JSON object: ``topic``, ``payload`` (text if the payload is UTF-8, else
base64 with ``"payload_encoding": "base64"``), ``qos``, ``retain``, ``client_id``,
``username``, ``content_type`` and ``user_properties``.

**It never slows the broker.** ``on_publish`` only puts the message in a bounded queue
and returns; workers send from it. When the queue is full the new message is dropped
(and counted: ``dropped``) rather than an older one, so what the endpoint receives is
in order with gaps, not reshuffled, and a dead endpoint costs the broker
``queue_size`` messages of memory at most. A request that fails (connection error,
timeout, HTTP 5xx or 429) is retried ``retries`` times with exponential backoff, then
given up on (``failed``); other 4xx answers are not retried. Counters (attributes):
``queued``, ``sent``, ``retried``, ``failed``, ``dropped``. At broker stop, what is
queued gets ``drain_timeout`` seconds (default 5) to go out.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import aiohttp

from roost.broker import Hook, MessageView
from roost.broker.auth.base import ClientInfo
from roost.hooks.filters import TopicFilters

log = logging.getLogger("roost.hooks.webhook")

__all__ = ["WebhookForwarder"]

MAX_BACKOFF = 30.0
_OPTIONS = frozenset(
    {"url", "topics", "queue_size", "retries", "backoff", "timeout", "workers", "headers",
     "drain_timeout"}
)  # fmt: skip


class WebhookForwarder(Hook):
    """``on_publish``: queue matching messages; workers POST them (see module docstring)."""

    def __init__(self, options: Mapping[str, object] | None = None) -> None:
        super().__init__(options)
        opts = self.options
        unknown = set(opts) - _OPTIONS
        if unknown:
            raise ValueError(f"unknown options: {', '.join(sorted(unknown))}")
        url = opts.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"options.url must be an http(s) URL, got {url!r}")
        self.url = url
        topics = opts.get("topics", ["#"])
        if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
            raise ValueError("options.topics must be a list of topic filters")
        self._filters: TopicFilters[bool] = TopicFilters((str(t), True) for t in topics)
        self.queue_size = _number(opts, "queue_size", 1000, int, low=1)
        self.retries = _number(opts, "retries", 3, int, low=0)
        self.backoff = _number(opts, "backoff", 0.5, float, low=0)
        self.timeout = _number(opts, "timeout", 5.0, float, low=0.001)
        self.workers = _number(opts, "workers", 1, int, low=1)
        self.drain_timeout = _number(opts, "drain_timeout", 5.0, float, low=0)
        headers = opts.get("headers", {})
        if not isinstance(headers, Mapping):
            raise TypeError("options.headers must be a table of name = value")
        self.headers = {str(name): str(value) for name, value in headers.items()}
        self.queued = 0
        self.sent = 0
        self.retried = 0
        self.failed = 0
        self.dropped = 0
        self._queue: asyncio.Queue[dict[str, Any]] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._queue = asyncio.Queue(self.queue_size)
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout), headers=self.headers
        )
        self._tasks = [
            asyncio.create_task(self._work(), name=f"webhook-{n}") for n in range(self.workers)
        ]

    async def stop(self) -> None:
        queue = self._queue
        if queue is not None and self.drain_timeout:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(queue.join(), self.drain_timeout)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._session is not None:
            await self._session.close()
            self._session = None

    def on_publish(self, client: ClientInfo, message: MessageView) -> None:
        if not self._filters.match(message.topic):
            return
        queue = self._queue
        if queue is None:
            return  # not started (a broker stopping or never started)
        try:
            queue.put_nowait(_body(client, message))
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning(
                    "Webhook %s: queue full (%d); %d messages dropped so far.",
                    self.url,
                    self.queue_size,
                    self.dropped,
                )
            return
        self.queued += 1

    async def _work(self) -> None:
        queue = self._queue
        assert queue is not None  # noqa: S101  (set by start, before the workers)
        while True:
            body = await queue.get()
            try:
                await self._send(body)
            finally:
                queue.task_done()

    async def _send(self, body: dict[str, Any]) -> None:
        session = self._session
        assert session is not None  # noqa: S101
        delay = self.backoff
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self.retried += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF)
            try:
                async with session.post(self.url, json=body) as response:
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if status < 300:
                    self.sent += 1
                    return
                problem = f"HTTP {status}"
                if status < 500 and status != 429:
                    break  # the endpoint refuses this message: asking again will not help
            log.debug("Webhook %s attempt %d failed: %s.", self.url, attempt + 1, problem)
        self.failed += 1
        log.warning(
            "Webhook %s: gave up on a message on %r: %s (%d failed so far).",
            self.url,
            body["topic"],
            problem,
            self.failed,
        )


def _body(client: ClientInfo, message: MessageView) -> dict[str, Any]:
    payload = message.payload
    body: dict[str, Any] = {
        "topic": message.topic,
        "qos": message.qos,
        "retain": message.retain,
        "client_id": client.client_id,
        "username": client.username,
        "content_type": message.content_type,
        "user_properties": [list(pair) for pair in message.user_properties],
    }
    try:
        body["payload"] = payload.decode()
    except UnicodeDecodeError:
        body["payload"] = base64.b64encode(payload).decode()
        body["payload_encoding"] = "base64"
    return body


def _number(
    options: Mapping[str, object], name: str, default: float, kind: type, *, low: float
) -> Any:  # int or float, as kind says
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
        raise ValueError(f"options.{name} must be a number >= {low:g}, got {value!r}")
    if kind is int and not isinstance(value, int):
        raise ValueError(f"options.{name} must be a whole number, got {value!r}")
    return kind(value)
