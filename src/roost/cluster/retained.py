"""Retained messages as one cluster-wide set: a JetStream stream with one message per
topic, replayed into each node's router (docs/clustering.md).

Every node publishes its retained messages (an empty payload deletes) to the stream
subject of their topic; the stream keeps the last message per subject, so it holds the
current set, deletions as empty messages. Each node reads it with an ordered consumer
that starts at the last message of every subject and then follows new ones: the
start-up replay and the live updates are one stream of changes, applied in the
stream's order, so every node converges on the same set.

A node has already applied its own retained message when it publishes it. Until that
message comes back from the stream (``pending``), earlier messages of the same topic,
from this node or another, are older than what the node holds and are skipped; so a
node never flips back to an older value, and still ends where the stream ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from roost.cluster import envelope
from roost.cluster.streams import StreamFollower
from roost.cluster.subjects import RETAINED

if TYPE_CHECKING:
    from nats.aio.msg import Msg

    from roost.broker.router import Router

log = logging.getLogger("roost.cluster")


class RetainedSync(StreamFollower):
    """Keeps the router's retained messages in step with the cluster's stream."""

    stream = "ROOST_RETAINED"
    subjects = f"{RETAINED}.>"

    def __init__(self, router: Router, origin: bytes) -> None:
        super().__init__()
        self._router = router
        self._origin = origin
        self.pending: dict[str, int] = {}  # topic -> sequence number of our newest change

    def published(self, topic: str, seq: int) -> None:
        """This node set (or deleted) ``topic``'s retained message as its change ``seq``."""
        self.pending[topic] = seq

    def restart(self) -> None:
        # Our unconfirmed changes may have been lost with the connection: the replay
        # brings back whatever the stream has.
        self.pending.clear()

    def apply(self, msg: Msg) -> None:
        data = msg.data
        try:
            origin, seq, offset = envelope.header(data)
            message = envelope.message(data, offset, asyncio.get_running_loop().time())
        except ValueError as exc:
            log.warning("Cluster: ignoring a bad message in %s: %s", self.stream, exc)
            return
        topic = message.topic
        pending = self.pending.get(topic)
        if pending is not None:
            if origin == self._origin and seq >= pending:
                del self.pending[topic]  # ours, applied when it was published
            return
        timestamp = msg.metadata.timestamp
        if message.expires_at is not None and timestamp is not None:
            # The expiry counts from when it was published, not from now.
            message.expires_at -= max(0.0, time.time() - timestamp.timestamp())
        self.applied += 1
        self._router.retain(message)
