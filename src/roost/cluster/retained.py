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

A change is published with JetStream's acknowledgement and kept (``unconfirmed``) until
the stream has stored it: a change made while NATS is lost, or while a NATS cluster
elects the stream's leader, is sent again when JetStream answers, and the replay after
a reconnection does not put the older value back in its place.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from roost.cluster import envelope
from roost.cluster.streams import StreamFollower
from roost.cluster.subjects import RETAINED

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient
    from nats.aio.msg import Msg

    from roost.broker.router import Router

log = logging.getLogger("roost.cluster")

CONFIRM_BATCH = 256  # changes awaiting JetStream's acknowledgement at once
CONFIRM_TIMEOUT = 2.0  # seconds for each acknowledgement
CONFIRM_RETRY = 1.0  # seconds before unacknowledged changes are sent again, doubling
CONFIRM_RETRY_MAX = 10.0


class RetainedSync(StreamFollower):
    """Keeps the router's retained messages in step with the cluster's stream."""

    stream = "ROOST_RETAINED"
    subjects = f"{RETAINED}.>"

    def __init__(self, router: Router, origin: bytes) -> None:
        super().__init__()
        self._router = router
        self._origin = origin
        self.pending: dict[str, int] = {}  # topic -> sequence number of our newest change
        # topic -> (sequence number, subject, envelope) of our newest change not yet
        # acknowledged by JetStream
        self.unconfirmed: dict[str, tuple[int, str, bytes]] = {}
        self._wake = asyncio.Event()

    def published(self, topic: str, seq: int, subject: str, data: bytes) -> None:
        """This node set (or deleted) ``topic``'s retained message as its change ``seq``
        (``data`` on ``subject``): to be stored in the stream."""
        self.pending[topic] = seq
        self.unconfirmed[topic] = (seq, subject, data)
        self._wake.set()

    def restart(self) -> None:
        # A change the stream has stored comes back with the replay; one it has not
        # stays ahead of the stream's older value, and is sent again.
        self.pending = {topic: change[0] for topic, change in self.unconfirmed.items()}

    def _arrived(self) -> None:
        super()._arrived()
        self._wake.set()  # JetStream answers again: send what it has not stored

    async def confirm(self, connection: Callable[[], NatsClient | None]) -> None:
        """Send unconfirmed changes to the stream, with JetStream's acknowledgement, for
        as long as the node runs; ``connection`` is the NATS connection when there is
        one. A failed batch is sent again after a pause (the stream de-duplicates)."""
        pause = CONFIRM_RETRY
        while True:
            await self._wake.wait()
            self._wake.clear()
            nc = connection()
            if nc is None or not self.unconfirmed:
                continue  # the next connection's replay wakes this again
            js = nc.jetstream(timeout=CONFIRM_TIMEOUT)
            batch = list(self.unconfirmed.items())[:CONFIRM_BATCH]
            results = await asyncio.gather(
                *(
                    js.publish(
                        subject, data, headers={"Nats-Msg-Id": f"{self._origin.decode()}/{seq}"}
                    )
                    for _topic, (seq, subject, data) in batch
                ),
                return_exceptions=True,
            )
            failed = None
            for (topic, change), result in zip(batch, results, strict=True):
                if isinstance(result, BaseException):
                    failed = result
                elif self.unconfirmed.get(topic, (0,))[0] == change[0]:
                    del self.unconfirmed[topic]  # not changed again meanwhile
            if failed is None:
                pause = CONFIRM_RETRY
            else:
                log.debug("Cluster: retained changes not stored yet (%r); again soon.", failed)
                await asyncio.sleep(pause)
                pause = min(pause * 2, CONFIRM_RETRY_MAX)
            if self.unconfirmed:
                self._wake.set()

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
