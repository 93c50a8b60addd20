"""A node's one durable consumer of the ``ROOST_QOS`` stream (docs/clustering.md, "QoS 1
and 2 across nodes").

Each node has exactly one durable pull consumer on ``roost.q.>``, named after the node
(``consumer_name``), so a restarted node resumes where it stopped; never one per
session (nats-server 2.9 has no multi-filter consumers, and a consumer per session is
what hurt NATS's own MQTT support). It takes messages in stream order, in batches, and
routes each to this node's subscribers (``Router.publish(..., forward=False)``), then
records the last stream sequence it applied in the store (``Store.meta_set``, the same
transaction as the deliveries it queued for persistent sessions), waits for that commit
and only then acknowledges the batch (``AckAll`` on its last message). A message
redelivered after a crash (applied and committed, not yet acknowledged) is at or below
the recorded sequence and is skipped: with the publisher side's de-duplication
(``Nats-Msg-Id``), QoS 2 crosses nodes exactly once.

This node's own messages (any process of it: origin ``<node>/...``) are skipped: they
reached its subscribers when they were published.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
from typing import TYPE_CHECKING

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from roost.cluster import envelope, subjects
from roost.cluster.streams import API_TIMEOUT

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient
    from nats.aio.msg import Msg

    from roost.broker.core import BrokerCore

log = logging.getLogger("roost.cluster")

APPLIED_KEY = "cluster.qos_applied"  # the store's meta row: last stream sequence applied
BATCH = 256  # messages per fetch
FETCH_WAIT = 1.0  # seconds a fetch waits for the first message
# Seconds before JetStream redelivers what was not acknowledged: a redelivery of what
# was applied is skipped by its sequence, so this can be short.
ACK_WAIT = 5.0
RETRY_WAIT = 1.0  # seconds after a failure before the consumer is set up again
# Tests only: never acknowledge, as if the node always died just before (the crash
# between delivery and acknowledgement, made repeatable).
_NO_ACK = os.environ.get("ROOST_TEST_QOS_NO_ACK") == "1"


def consumer_name(node: str) -> str:
    """A durable consumer name for ``node``: JetStream names may not hold ``.``, ``*``,
    ``>``, whitespace or path separators, so others are replaced and a hash keeps
    names apart."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", node)
    if safe != node:
        safe += "-" + hashlib.blake2b(node.encode(), digest_size=4).hexdigest()
    return "roost-" + safe


class QosConsumer:
    """Reads ``ROOST_QOS`` in order into the local router; see the module doc."""

    def __init__(self, core: BrokerCore, node: str, stream: str) -> None:
        self._core = core
        self._node = node.encode()
        self._stream = stream
        self.name = consumer_name(node)
        self.applied: int | None = None  # last stream sequence applied; read at run
        self.applied_count = 0  # messages routed here, counted once committed
        self.skipped = 0  # redelivered ones at or below ``applied``
        self.invalid = 0
        self._stopping = False

    async def run(self, nc: NatsClient) -> None:
        """Set the consumer up, and read it for ever (again after any failure)."""
        if self.applied is None:
            self.applied = int(self._core.meta.get(APPLIED_KEY, "0"))
        while not self._stopping:
            try:
                await self._consume(nc)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001  (NATS away or JetStream reset: retry)
                if nc.is_connected:
                    log.warning("Cluster: reading %s failed (%r); retrying.", self._stream, exc)
                await asyncio.sleep(RETRY_WAIT)

    async def stop(self) -> None:
        self._stopping = True

    async def _consume(self, nc: NatsClient) -> None:
        js = nc.jetstream(timeout=API_TIMEOUT)
        sub = await js.pull_subscribe(
            f"{subjects.QOS}.>",
            durable=self.name,
            stream=self._stream,
            config=ConsumerConfig(
                ack_policy=AckPolicy.ALL,
                # A node's first consumer starts with what comes from now on.
                deliver_policy=DeliverPolicy.NEW,
                ack_wait=ACK_WAIT,
                max_ack_pending=BATCH * 16,
            ),
        )
        try:
            store = self._core.store
            while not self._stopping:
                try:
                    msgs = await sub.fetch(BATCH, timeout=FETCH_WAIT)
                except (NatsTimeoutError, TimeoutError):
                    continue
                if not msgs:
                    continue
                routed = self._apply(msgs)
                if routed is not None:
                    # Acknowledged means durable here too: the deliveries queued for
                    # persistent sessions and the sequence are committed first.
                    await store.flush()
                    self.applied_count += routed
                if not _NO_ACK:
                    await msgs[-1].ack()
        finally:
            try:
                await sub.unsubscribe()
            except Exception as exc:  # noqa: BLE001  (the connection may be gone)
                log.debug("Cluster: leaving the %s consumer: %r", self._stream, exc)

    def _apply(self, msgs: list[Msg]) -> int | None:
        """Route the new ones: how many were routed, None if none was new."""
        applied = self.applied or 0
        start = applied
        router = self._core.router
        own = self._node
        now = asyncio.get_running_loop().time()
        routed = 0
        for msg in msgs:
            seq = msg.metadata.sequence.stream
            if seq <= applied:
                self.skipped += 1
                continue
            applied = seq
            data = msg.data
            try:
                origin, _seq, offset = envelope.header(data)
                if origin.rpartition(b"/")[0] == own:
                    continue
                message = envelope.message(data, offset, now)
            except ValueError:
                self.invalid += 1
                continue
            routed += 1
            router.publish(message, now, forward=False)
        self.applied = applied
        if applied == start:
            return None
        self._core.store.meta_set(APPLIED_KEY, str(applied))
        return routed
