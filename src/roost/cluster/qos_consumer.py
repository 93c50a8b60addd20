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

The recorded position names the stream it belongs to (its creation time): a NATS
server that lost its store makes a new ``ROOST_QOS`` whose sequences start again at 1,
and the node then reads that one from its start. A consumer that disappeared while
its stream stayed is made again from the recorded position on.

This node's own messages (any process of it: origin ``<node>/...``) are skipped: they
reached its subscribers when they were published.

A message can be in the stream twice: a node that did not get JetStream's answer keeps
the message in its spool and sends it again, with the same ``Nats-Msg-Id``, when the
stream answers; JetStream drops such a copy only within its duplicate window (2 min),
and NATS can be away longer. So the consumer also remembers the last ``WINDOW``
sequence numbers of each origin (``envelope.SeenWindow``; a resent copy comes before
anything newer from its origin, so it falls inside) and skips a copy it has seen
(``qos/duplicates``). An arrival older than the window is delivered: it cannot be told
apart, and a copy too many is better than a loss. The windows are memory: a node that
restarts between the two copies delivers both.
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
from roost.cluster.envelope import SeenWindow
from roost.cluster.streams import API_TIMEOUT

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient
    from nats.aio.msg import Msg

    from roost.broker.core import BrokerCore

log = logging.getLogger("roost.cluster")

APPLIED_KEY = "cluster.qos_applied"  # the store's meta row: last stream sequence applied
BATCH = 256  # messages per fetch
CATCH_UP_POLL = 0.005  # seconds between looks while a handover waits for the consumer
FETCH_WAIT = 1.0  # seconds a fetch waits for the first message
# Seconds before JetStream redelivers what was not acknowledged: a redelivery of what
# was applied is skipped by its sequence, so this can be short.
ACK_WAIT = 5.0
RETRY_WAIT = 1.0  # seconds after a failure before the consumer is set up again
# Idle fetches between checks that the consumer still exists (a NATS server that lost
# its store answers a pull for a missing consumer with nothing at all).
CHECK_EVERY = 10
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
        self.applied = 0  # last stream sequence applied
        self._epoch: str | None = None  # the creation time of the stream ``applied`` is in
        self.applied_count = 0  # messages routed here, counted once committed
        self.skipped = 0  # redelivered ones at or below ``applied``
        self.invalid = 0
        self.duplicates = 0  # copies of a message already applied (a resend past the window)
        self._seen: dict[bytes, SeenWindow] = {}  # origin -> its sequence numbers lately
        self._stopping = False

    async def run(self, nc: NatsClient) -> None:
        """Set the consumer up, and read it for ever (again after any failure)."""
        stored = self._core.meta.get(APPLIED_KEY)
        if stored:
            seq, _, epoch = stored.partition(" ")
            self.applied, self._epoch = int(seq), epoch
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

    async def caught_up(self, nc: NatsClient, timeout: float) -> bool:
        """Wait until everything in the stream now has been routed here (at most
        ``timeout`` seconds); False if it was not. A session handed to another node
        must first get what the stream holds for it (cluster/sessions.py)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            info = await nc.jetstream(timeout=timeout).stream_info(self._stream)
        except Exception as exc:  # noqa: BLE001  (JetStream slow or away: hand over as is)
            log.debug("Cluster: reading the end of %s failed: %r", self._stream, exc)
            return False
        last = info.state.last_seq
        while self.applied < last:
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(CATCH_UP_POLL)
        return True

    async def _consume(self, nc: NatsClient) -> None:
        js = nc.jetstream(timeout=API_TIMEOUT)
        info = await js.stream_info(self._stream)
        epoch = str(info.created)
        start: dict[str, object] = {"deliver_policy": DeliverPolicy.NEW}
        if epoch != self._epoch:
            if self._epoch is not None:
                # A new stream (NATS lost its store): all of it is new to this node.
                log.warning(
                    "Cluster: %s was made again (created %s); reading it from its start.",
                    self._stream,
                    epoch,
                )
                start = {"deliver_policy": DeliverPolicy.ALL}
            self._epoch = epoch
            self.applied = 0
        elif self.applied:
            start = {
                "deliver_policy": DeliverPolicy.BY_START_SEQUENCE,
                "opt_start_seq": self.applied + 1,
            }
        sub = await js.pull_subscribe(
            f"{subjects.QOS}.>",
            durable=self.name,
            stream=self._stream,
            config=ConsumerConfig(
                ack_policy=AckPolicy.ALL,
                ack_wait=ACK_WAIT,
                max_ack_pending=BATCH * 16,
                # Used only if the consumer does not exist: a node's first starts with
                # what comes from now on, a lost one from the recorded position.
                **start,  # type: ignore[arg-type]
            ),
        )
        try:
            store = self._core.store
            idle = 0
            while not self._stopping:
                try:
                    msgs = await sub.fetch(BATCH, timeout=FETCH_WAIT)
                except (NatsTimeoutError, TimeoutError):
                    idle += 1
                    if idle % CHECK_EVERY == 0:
                        # NotFoundError if it is gone: run() sets it up again.
                        await js.consumer_info(self._stream, self.name)
                    continue
                idle = 0
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
        applied = self.applied
        start = applied
        router = self._core.router
        own = self._node
        seen = self._seen
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
                origin, sent, offset = envelope.header(data)
                if origin.rpartition(b"/")[0] == own:
                    continue
                window = seen.get(origin)
                if window is None:
                    window = self._new_origin(origin)
                late = window.too_old
                if not window.first_time(sent) and window.too_old == late:
                    self.duplicates += 1
                    continue
                message = envelope.message(data, offset, now)
            except ValueError:
                self.invalid += 1
                continue
            message.cluster_id = (origin, sent)
            routed += 1
            router.publish(message, now, forward=False)
        self.applied = applied
        if applied == start:
            return None
        self._core.store.meta_set(APPLIED_KEY, f"{applied} {self._epoch}")
        return routed

    def _new_origin(self, origin: bytes) -> SeenWindow:
        """A node process read from for the first time: the windows of that node's
        earlier processes can go (a restarted node sends what its earlier process
        spooled before anything of its own)."""
        name = origin.rpartition(b"/")[0] + b"/"
        for old in [known for known in self._seen if known.startswith(name)]:
            del self._seen[old]
        window = self._seen[origin] = SeenWindow()
        return window
