"""What one client may do: its compiled ACL rules, the plugin, and the answers so far.

One ``ClientAccess`` per authenticated client, made at CONNECT. Every answer is cached
per client and per topic (a bounded LRU), so the publish path asks the ACL rules or the
plugin once per topic, then pays one dict lookup per message.

A plugin may answer asynchronously. ``may_write`` and ``may_subscribe`` then return a
future and the connection pauses its packets until it resolves (order kept). Read
access is asked while a message is being fanned out, where nothing can wait: on such a
miss ``may_read`` returns None and the router hands the delivery to
``defer_delivery``, which makes it when the answer comes, in order with the other
messages on that topic for this client, and drops it if the answer is no.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Protocol

from roost.broker.auth.acl import READ, WRITE, ClientRules
from roost.broker.auth.base import Access, ClientInfo
from roost.broker.stats import DropReason, Stats

__all__ = ["CACHE_SIZE", "Authorize", "ClientAccess"]

log = logging.getLogger("roost.broker")

# Answers kept per client and kind of access; a client that uses more topics than this
# asks again for the least recently used ones.
CACHE_SIZE = 1024


class Authorize(Protocol):
    """The signature of a plugin's ``authorize``: True allows, anything else denies;
    it may return an awaitable for a decision that takes time.
    """

    def __call__(
        self, client: ClientInfo, access: Access, topic: str, /
    ) -> bool | Awaitable[bool | None] | None: ...


class _Cache(OrderedDict[str, bool]):
    """A bounded LRU of topic -> decision. Readers inline the lookup (``get`` then
    ``move_to_end``, both in C): it runs once per delivered message."""

    __slots__ = ()

    def put(self, topic: str, value: bool) -> None:
        self[topic] = value
        if len(self) > CACHE_SIZE:
            self.popitem(last=False)


class ClientAccess:
    """Answers what one connected client may publish, subscribe to and receive,
    caching each answer per topic.
    """

    __slots__ = (
        "_authorize",
        "_deferred",
        "_read",
        "_rules",
        "_stats",
        "_subscribe",
        "_sys_allowed",
        "_write",
        "client",
    )

    def __init__(
        self,
        client: ClientInfo,
        rules: ClientRules | None,
        authorize: Authorize | None,
        sys_allowed: Callable[[str], bool],
        stats: Stats | None = None,
    ) -> None:
        self.client = client
        self._stats = stats  # where deferred deliveries a plugin denies are counted
        self._rules = rules
        self._authorize = authorize
        self._sys_allowed = sys_allowed
        self._read = _Cache()
        self._write = _Cache()
        self._subscribe = _Cache()
        # Deliveries waiting for a read decision, per topic, in arrival order.
        self._deferred: dict[str, list[Callable[[float], None]]] = {}

    def update(self, rules: ClientRules | None, authorize: Authorize | None) -> None:
        """New rules (a reload): forget every cached answer."""
        self._rules = rules
        self._authorize = authorize
        self._read.clear()
        self._write.clear()
        self._subscribe.clear()

    # The questions.

    def may_write(self, topic: str) -> bool | asyncio.Future[bool]:
        cache = self._write
        value = cache.get(topic)
        if value is not None:
            cache.move_to_end(topic)
            return value
        if topic.startswith("$") and not self._sys_allowed(topic):
            self._write.put(topic, False)
            return False
        return self._decide(Access.WRITE, topic, self._write)

    def may_subscribe(self, topic_filter: str) -> bool | asyncio.Future[bool]:
        cache = self._subscribe
        value = cache.get(topic_filter)
        if value is not None:
            cache.move_to_end(topic_filter)
            return value
        return self._decide(Access.SUBSCRIBE, topic_filter, self._subscribe)

    def may_read(self, topic: str) -> bool | None:
        """True or False; None while a plugin decides (then use ``defer_delivery``)."""
        cache = self._read
        value = cache.get(topic)
        if value is not None:
            cache.move_to_end(topic)
            return value
        if topic in self._deferred:
            return None
        decided = self._decide(Access.READ, topic, self._read)
        if isinstance(decided, bool):
            return decided
        self._deferred[topic] = []
        # Nobody awaits it: keep it alive until it is done.
        _reading.add(decided)
        decided.add_done_callback(_consume)
        return None

    def defer_delivery(self, topic: str, deliver: Callable[[float], None]) -> None:
        """Call ``deliver(now)`` once read access to ``topic`` is granted (never if refused)."""
        self._deferred.setdefault(topic, []).append(deliver)

    # Deciding.

    def _decide(self, access: Access, topic: str, cache: _Cache) -> bool | asyncio.Future[bool]:
        rules = self._rules
        if rules is not None:
            if access is Access.SUBSCRIBE:
                decided = rules.check_subscribe(topic)
            else:
                decided = rules.check(READ if access is Access.READ else WRITE, topic)
            if decided is not None:
                cache.put(topic, decided)
                return decided
        authorize = self._authorize
        answer: bool | Awaitable[bool | None] | None = None
        if authorize is not None:
            try:
                answer = authorize(self.client, access, topic)
            except Exception:
                log.exception(
                    "auth plugin failed to authorize %s; denied.", self._describe(access, topic)
                )
                answer = False
        if inspect.isawaitable(answer):
            return asyncio.ensure_future(self._settle(answer, access, topic, cache))
        # Nobody decided: no. (A ClientAccess exists only when something authorizes.)
        decided = answer is True
        cache.put(topic, decided)
        return decided

    async def _settle(
        self, answer: Awaitable[bool | None], access: Access, topic: str, cache: _Cache
    ) -> bool:
        try:
            decided = (await answer) is True
        except Exception:
            log.exception(
                "auth plugin failed to authorize %s; denied.", self._describe(access, topic)
            )
            decided = False
        cache.put(topic, decided)
        if access is Access.READ:
            # Deliver here, right after caching: a message routed later must not overtake.
            waiting = self._deferred.pop(topic, [])
            if decided and waiting:
                now = asyncio.get_running_loop().time()
                for deliver in waiting:
                    deliver(now)
            elif waiting and self._stats is not None:
                for _deliver in waiting:
                    self._stats.message_dropped(DropReason.ACL_DENIED, self.client.client_id, topic)
        return decided

    def _describe(self, access: Access, topic: str) -> str:
        return f"{access} {topic!r} for client {self.client.client_id}"

    def cached(self) -> int:
        """How many answers are cached (for tests and metrics)."""
        return len(self._read) + len(self._write) + len(self._subscribe)


_reading: set[asyncio.Future[bool]] = set()


def _consume(future: asyncio.Future[bool]) -> None:
    # Nobody awaits a read decision's future: fetch the result so an error is not
    # reported as "never retrieved" (_settle has logged it already).
    _reading.discard(future)
    if not future.cancelled():
        future.exception()
