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

from nats.js.api import DeliverPolicy, StorageType
from nats.js.errors import BadRequestError

from roost.cluster import envelope
from roost.cluster.subjects import RETAINED

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription

    from roost.broker.router import Router

log = logging.getLogger("roost.cluster")

STREAM = "ROOST_RETAINED"
API_TIMEOUT = 5.0


class RetainedSync:
    """Keeps the router's retained messages in step with the cluster's stream."""

    __slots__ = ("_caught_up", "_origin", "_router", "_sub", "_target", "applied", "pending")

    def __init__(self, router: Router, origin: bytes) -> None:
        self._router = router
        self._origin = origin
        self._sub: Subscription | None = None
        self._target = 0  # the stream's last sequence number when the replay began
        self._caught_up = asyncio.Event()
        self.pending: dict[str, int] = {}  # topic -> sequence number of our newest change
        self.applied = 0

    def published(self, topic: str, seq: int) -> None:
        """This node set (or deleted) ``topic``'s retained message as its change ``seq``."""
        self.pending[topic] = seq

    async def start(self, nc: NatsClient, wait: float) -> None:
        """(Re)read the stream from the start and follow it; wait up to ``wait`` seconds
        for the replay to reach what the stream held when it began."""
        js = nc.jetstream(timeout=API_TIMEOUT)
        try:
            await js.add_stream(
                name=STREAM,
                subjects=[f"{RETAINED}.>"],
                max_msgs_per_subject=1,
                storage=StorageType.FILE,
            )
        except BadRequestError as exc:
            # It exists with other settings (an operator's replicas, say): use it as it is.
            log.info("Cluster: using the existing %s stream (%s).", STREAM, exc.description)
        info = await js.stream_info(STREAM)
        if self._sub is not None:
            old, self._sub = self._sub, None
            try:
                await old.unsubscribe()
            except Exception as exc:  # noqa: BLE001  (its consumer may be gone with the server)
                log.debug("Cluster: dropping the old retained consumer: %r", exc)
        # Our unconfirmed changes may have been lost with the connection: the replay
        # brings back whatever the stream has.
        self.pending.clear()
        self._target = info.state.last_seq
        self._caught_up.clear()
        if not info.state.messages:
            self._caught_up.set()
        self._sub = await js.subscribe(
            f"{RETAINED}.>",
            cb=self._received,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        )
        try:
            await asyncio.wait_for(self._caught_up.wait(), wait)
        except TimeoutError:
            log.warning(
                "Cluster: retained messages still arriving from NATS after %.0f s; serving"
                " meanwhile.",
                wait,
            )

    async def _received(self, msg: Msg) -> None:
        data = msg.data
        try:
            origin, seq, offset = envelope.header(data)
            message = envelope.message(data, offset, asyncio.get_running_loop().time())
        except ValueError as exc:
            log.warning("Cluster: ignoring a bad message in %s: %s", STREAM, exc)
            return
        metadata = msg.metadata
        if metadata.sequence.stream >= self._target:
            self._caught_up.set()
        topic = message.topic
        pending = self.pending.get(topic)
        if pending is not None:
            if origin == self._origin and seq >= pending:
                del self.pending[topic]  # ours, applied when it was published
            return
        if message.expires_at is not None and metadata.timestamp is not None:
            # The expiry counts from when it was published, not from now.
            message.expires_at -= max(0.0, time.time() - metadata.timestamp.timestamp())
        self.applied += 1
        self._router.retain(message)
