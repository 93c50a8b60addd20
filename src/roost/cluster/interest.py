"""Which filters the other nodes' clients use, so that a node sends to NATS only the
messages some other node wants (docs/clustering.md, "Remote interest").

Each node records every filter it subscribes to in NATS in the ``ROOST_INTEREST``
stream, one subject per node and filter (``roost.i.<node>.<hash>``, the filter as the
payload; an empty payload when it stops), and follows the stream into a subscription
tree of the other nodes' filters. ``wanted(topic)`` is then one trie match, and
usually one dict lookup: answers are cached per topic until the table changes. The
answer tells plain filters (``PLAIN``) from shared groups' (``SHARED``: recorded as the
whole ``$share/g/f``), since QoS 1 and 2 reach the first through the QoS stream and the
second through NATS queue groups. A node
(re)connecting purges its own old records and writes its current ones again.

Until the replay has caught up, or without JetStream, every topic counts as wanted:
the fallback is sending too much, never too little. Interest travels asynchronously,
like the NATS subscription itself; a record left by a node that died costs only
forwarding that nobody reads.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from nats.js.errors import NotFoundError

from roost.broker.subscriptions import SubscriptionTree
from roost.cluster.streams import API_TIMEOUT, StreamFollower
from roost.cluster.subscribe_gate import HEADER
from roost.protocol.topics import parse_shared

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient
    from nats.aio.msg import Msg

log = logging.getLogger("roost.cluster")

INTEREST = "roost.i"
PLAIN = 1  # wanted by a plain filter of another node
SHARED = 2  # wanted by a shared group with members on another node
CACHE_LIMIT = 65_536  # topics whose answer is kept; then the cache starts again


class InterestTable(StreamFollower):
    """The other nodes' filters, from the interest stream."""

    stream = "ROOST_INTEREST"
    subjects = f"{INTEREST}.>"

    def __init__(self, node: str) -> None:
        super().__init__()
        self._own = f"{INTEREST}.{node}."
        self._tree: SubscriptionTree[int] = SubscriptionTree()
        self._filters: dict[str, str] = {}  # record subject -> the filter it holds
        self._shares: dict[str, str] = {}  # record subject -> its whole $share/g/f
        # topic -> wanted, while the table stays as it is (read by ClusterNode.forward).
        self.cache: dict[str, int] = {}
        # Told of each other node's record applied, with its Roost-Gate header (if any):
        # the node answers so that the SUBACK waiting for it can go (subscribe_gate.py).
        self.on_applied: Callable[[str | None], None] | None = None

    def wanted(self, topic: str) -> int:
        """Whether another node has a subscription ``topic`` may match: 0, or ``PLAIN``
        and/or ``SHARED``."""
        if not self.caught_up:
            return PLAIN | SHARED
        cache = self.cache
        if len(cache) >= CACHE_LIMIT:
            cache.clear()
        matches, _groups = self._tree.match(topic)
        wanted = 0
        for _subject, kind in matches:
            wanted |= kind
        cache[topic] = wanted
        return wanted

    def shared_filters(self, topic: str) -> list[str]:
        """The other nodes' shared groups (``$share/g/f``) ``topic`` matches, each once."""
        shares = self._shares
        matches, _groups = self._tree.match(topic)
        return list(dict.fromkeys(shares[subject] for subject, kind in matches if kind == SHARED))

    def record_subject(self, topic_filter: str) -> str:
        """Where this node records that it uses ``topic_filter``."""
        digest = hashlib.blake2b(topic_filter.encode(), digest_size=12).hexdigest()
        return self._own + digest

    @property
    def remote_filters(self) -> int:
        return len(self._filters)

    def restart(self) -> None:
        self._tree = SubscriptionTree()
        self._filters.clear()
        self._shares.clear()
        self.cache.clear()

    async def forget_own(self, nc: NatsClient) -> None:
        """Purge what earlier connections or processes of this node recorded: it is
        written again from the filters as they are now."""
        js = nc.jetstream(timeout=API_TIMEOUT)
        with contextlib.suppress(NotFoundError):  # no stream yet: nothing recorded
            await js.purge_stream(self.stream, subject=self._own + ">")

    def apply(self, msg: Msg) -> None:
        subject = msg.subject
        if subject.startswith(self._own):
            return
        self.cache.clear()
        old = self._filters.pop(subject, None)
        if old is not None:
            self._tree.remove(subject, old)
            self._shares.pop(subject, None)
        if msg.data:
            try:
                topic_filter = msg.data.decode()
            except UnicodeDecodeError:
                log.warning("Cluster: ignoring a bad record %s in %s.", subject, self.stream)
                return
            group, inner = parse_shared(topic_filter)
            self._filters[subject] = inner
            self._tree.add(subject, inner, PLAIN if group is None else SHARED)
            if group is not None:
                self._shares[subject] = topic_filter
        self.applied += 1
        if self.on_applied is not None and msg.headers:
            self.on_applied(msg.headers.get(HEADER))
