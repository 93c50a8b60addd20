"""Calling the broker's hooks: only those that override a point, every failure contained.

``Hooks`` is built once from the loaded hooks (``hooks.load_hooks``). For each hook
point it keeps the bound methods of the hooks that override it, in configuration order,
so a point no hook has costs the broker one check of an empty tuple; ``publish`` and
``deliver``, the two on the hot path, are None then, and that None is all the router
and ``publishing.py`` test.

Whatever a hook does wrong (raises, times out, returns nonsense, rewrites a topic into
an invalid one) is logged (at most once a minute per hook and point), counted in
``Stats.hook_errors`` (``$SYS/broker/hooks/errors``) and otherwise ignored: the broker
goes on as if that method had not been there. For ``on_publish`` that means the message
goes through unchanged (fail open): a hook is code the operator added to enrich or
watch traffic, and a bug in it must not silently eat messages; what must be enforced
fails closed in authorization (ACL files, auth plugins), which is where policy belongs.
A rewritten topic that is not a valid topic name is the exception: there is no message
to let through unchanged any more once the hook has said where it goes, so it is
dropped and counted.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from typing import TYPE_CHECKING

from roost.broker.hooks import Drop
from roost.broker.message import Message
from roost.broker.stats import DropReason
from roost.codec import CodecError, PubackReasonCode
from roost.protocol.topics import validate_topic_name

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from roost.broker.auth.base import ClientInfo
    from roost.broker.hooks import LoadedHook
    from roost.broker.limits import TopicLimits
    from roost.broker.stats import Stats

log = logging.getLogger("roost.broker.hooks")

# Seconds between two log lines about the same hook failing at the same point.
LOG_INTERVAL = 60.0
# Seconds a stopping broker waits for async notifications still running.
STOP_GRACE = 5.0

Verdict = Message | Drop  # what routing gets from on_publish: this message, or nothing


class _Call:
    """One hook's method for one point."""

    __slots__ = ("loaded", "method")

    def __init__(self, loaded: LoadedHook, method: Callable[..., object]) -> None:
        self.loaded = loaded
        self.method = method


class Hooks:
    """The configured hooks, called point by point; see the module docstring."""

    __slots__ = (
        "_connect",
        "_deliverers",
        "_disconnect",
        "_dropped",
        "_expired",
        "_limits",
        "_publishers",
        "_stats",
        "_subscribe",
        "_tasks",
        "_unsubscribe",
        "deliver",
        "loaded",
        "publish",
    )

    def __init__(self, loaded: list[LoadedHook], stats: Stats, limits: TopicLimits) -> None:
        self.loaded = loaded
        self._stats = stats
        self._limits = limits
        self._connect = self._calls("on_connect")
        self._disconnect = self._calls("on_disconnect")
        self._subscribe = self._calls("on_subscribe")
        self._unsubscribe = self._calls("on_unsubscribe")
        self._expired = self._calls("on_session_expired")
        self._dropped = self._calls("on_message_dropped")
        self._publishers = self._calls("on_publish")
        self._deliverers = self._calls("on_deliver")
        self._tasks: set[asyncio.Future[object]] = set()  # async notifications running
        # The hot path's two questions: None when no hook has the point.
        self.publish: Callable[[ClientInfo, Message], Verdict | Awaitable[Verdict]] | None = (
            self._publish if self._publishers else None
        )
        self.deliver: Callable[[str, Message, int], bool] | None = None
        if len(self._deliverers) == 1:
            self.deliver = self._deliver_one(self._deliverers[0])
        elif self._deliverers:
            self.deliver = self._deliver
        if self._dropped:
            stats.on_dropped = self._message_dropped

    def _calls(self, point: str) -> tuple[_Call, ...]:
        calls = []
        for loaded in self.loaded:
            method = loaded.overrides(point)
            if method is not None:
                calls.append(_Call(loaded, method))
        return tuple(calls)

    # Life.

    async def start(self) -> None:
        """Start every hook, in order; one that fails stops the broker's start."""
        for loaded in self.loaded:
            start = getattr(loaded.hook, "start", None)
            if callable(start):
                result = start()
                if inspect.isawaitable(result):
                    await result

    async def stop(self) -> None:
        """Let async notifications finish (``STOP_GRACE`` at most), then stop every hook
        in reverse order; a hook that fails to stop is logged."""
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=STOP_GRACE)
            for task in pending:
                task.cancel()
        for loaded in reversed(self.loaded):
            stop = getattr(loaded.hook, "stop", None)
            if not callable(stop):
                continue
            try:
                result = stop()
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:  # noqa: BLE001  (one hook's failure must not stop the rest)
                self._failed(loaded, "stop", exc)

    # Notifications: nothing waits for them.

    def connected(self, client: ClientInfo, session_present: bool) -> None:
        if self._connect:
            self._notify(self._connect, "on_connect", client, session_present)

    def disconnected(self, client: ClientInfo, clean: bool) -> None:
        if self._disconnect:
            self._notify(self._disconnect, "on_disconnect", client, clean)

    def subscribed(self, client: ClientInfo, topic_filter: str, qos: int) -> None:
        if self._subscribe:
            self._notify(self._subscribe, "on_subscribe", client, topic_filter, qos)

    def unsubscribed(self, client: ClientInfo, topic_filter: str) -> None:
        if self._unsubscribe:
            self._notify(self._unsubscribe, "on_unsubscribe", client, topic_filter)

    def session_expired(self, client_id: str) -> None:
        if self._expired:
            self._notify(self._expired, "on_session_expired", client_id)

    def _message_dropped(self, reason: DropReason, client_id: str, topic: str) -> None:
        self._notify(self._dropped, "on_message_dropped", client_id, topic, reason)

    def _notify(self, calls: tuple[_Call, ...], point: str, *args: object) -> None:
        for call in calls:
            try:
                result = call.method(*args)
            except Exception as exc:  # noqa: BLE001  (contained: see the module docstring)
                self._failed(call.loaded, point, exc)
                continue
            if result is not None and inspect.isawaitable(result):
                task = asyncio.ensure_future(self._bounded(call, point, result))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _bounded(self, call: _Call, point: str, awaitable: Awaitable[object]) -> object:
        try:
            return await asyncio.wait_for(awaitable, call.loaded.timeout)
        except Exception as exc:  # noqa: BLE001  (TimeoutError included)
            self._failed(call.loaded, point, exc)
            return None

    # on_publish: a chain, each hook seeing the message as the previous one left it.

    def _publish(self, client: ClientInfo, message: Message) -> Verdict | Awaitable[Verdict]:
        return self._publish_from(0, client, message)

    def _publish_from(
        self, start: int, client: ClientInfo, message: Message
    ) -> Verdict | Awaitable[Verdict]:
        calls = self._publishers
        for index in range(start, len(calls)):
            call = calls[index]
            try:
                result = call.method(client, message)
            except Exception as exc:  # noqa: BLE001  (fail open: see the module docstring)
                self._failed(call.loaded, "on_publish", exc)
                continue
            if result is None:
                continue
            if inspect.isawaitable(result):
                return self._publish_later(index, client, message, result)
            verdict = self._verdict(call, client, message, result)
            if isinstance(verdict, Drop):
                return verdict
            message = verdict
        return message

    async def _publish_later(
        self, index: int, client: ClientInfo, message: Message, awaitable: Awaitable[object]
    ) -> Verdict:
        call = self._publishers[index]
        try:
            result = await asyncio.wait_for(awaitable, call.loaded.timeout)
        except Exception as exc:  # noqa: BLE001  (TimeoutError included; fail open)
            self._failed(call.loaded, "on_publish", exc)
            result = None
        verdict = self._verdict(call, client, message, result)
        if isinstance(verdict, Drop):
            return verdict
        rest = self._publish_from(index + 1, client, verdict)
        if isinstance(rest, Message | Drop):
            return rest
        return await rest

    def _verdict(
        self, call: _Call, client: ClientInfo, message: Message, result: object
    ) -> Verdict:
        if result is None or result is message:
            return message
        if isinstance(result, Drop):
            log.debug(
                "Hook %s dropped a message of client %s on %r: %s.",
                call.loaded.name,
                client.client_id,
                message.topic,
                result.reason,
            )
            self._stats.message_dropped(DropReason.HOOK, client.client_id, message.topic)
            return result
        if not isinstance(result, Message):
            self._failed(
                call.loaded,
                "on_publish",
                f"returned {type(result).__name__}, not None, message.replace(...) or a Drop",
            )
            return message
        if result.topic != message.topic:
            problem = self._topic_problem(result.topic)
            if problem is not None:
                self._failed(call.loaded, "on_publish", f"rewrote the topic: {problem}")
                self._stats.message_dropped(DropReason.HOOK, client.client_id, message.topic)
                return Drop(problem, PubackReasonCode.IMPLEMENTATION_SPECIFIC_ERROR)
        return result

    def _topic_problem(self, topic: object) -> str | None:
        if not isinstance(topic, str):
            return f"{topic!r} is not a string"
        try:
            validate_topic_name(topic)
            topic.encode()  # lone surrogates cannot be sent
        except (CodecError, UnicodeEncodeError) as exc:
            return f"{topic!r} is not a valid topic name: {exc}"
        if "\x00" in topic:
            return f"{topic!r} contains U+0000"
        return self._limits.topic_refusal(topic)

    # on_deliver: per subscriber, inline.

    def _deliver(self, client_id: str, message: Message, qos: int) -> bool:
        for call in self._deliverers:
            try:
                if call.method(client_id, message, qos) is False:
                    self._stats.message_dropped(DropReason.HOOK, client_id, message.topic)
                    return False
            except Exception as exc:  # noqa: BLE001  (fail open: deliver)
                self._failed(call.loaded, "on_deliver", exc)
        return True

    def _deliver_one(self, call: _Call) -> Callable[[str, Message, int], bool]:
        """``_deliver`` for the usual single hook: a closure, since it runs once per
        subscriber of every message and each attribute lookup shows in fan-out."""
        method = call.method
        loaded = call.loaded
        dropped = self._stats.message_dropped
        failed = self._failed

        def deliver(client_id: str, message: Message, qos: int) -> bool:
            try:
                if method(client_id, message, qos) is False:
                    dropped(DropReason.HOOK, client_id, message.topic)
                    return False
            except Exception as exc:  # noqa: BLE001  (fail open: deliver)
                failed(loaded, "on_deliver", exc)
            return True

        return deliver

    # Failures.

    def _failed(self, loaded: LoadedHook, point: str, problem: BaseException | str) -> None:
        self._stats.hook_errors += 1
        loaded.errors += 1
        now = time.monotonic()
        if loaded.logged.get(point, 0.0) > now:
            log.debug("Hook %s %s failed again: %s", loaded.name, point, problem)
            return
        loaded.logged[point] = now + LOG_INTERVAL
        log.error(
            "Hook %s %s failed (%d failures so far; logged at most once a minute): %s",
            loaded.name,
            point,
            loaded.errors,
            problem,
            exc_info=problem if isinstance(problem, BaseException) else None,
        )
