"""QoS 1 and 2 between nodes through JetStream: acknowledged means stored
(docs/clustering.md, "QoS 1 and 2 across nodes").

A QoS 1 or 2 message that another node's plain filters may match is published to the
``ROOST_QOS`` stream (``roost.q.<topic>``) with ``Nats-Msg-Id: <origin>/<seq>``, so a
resend after a lost acknowledgement is stored once. The publisher's PUBACK (QoS 1) or
PUBREC (QoS 2) waits for JetStream's acknowledgement: ``QosStream`` is the broker's
second ``AckGate`` (``BrokerCore.hold``), and holds a connection's packets on gate
``GATE`` of its transport, numbered by the messages it sent (``issued``), the way the
store holds them by commit number.

Publishing costs no task per message: each one is published with a reply subject
under one inbox (``<inbox>.<ticket>``), and one subscription takes the answers. A
message not acknowledged within ``ACK_TIMEOUT`` is sent again (same id), up to
``TRIES`` times.

When the tries run out, or NATS is lost, holding acknowledgements would stop every
publisher here, so they are released (WARNING, counted in ``qos/unconfirmed``), and
the messages for other nodes wait in this process's memory (``spool``, at most
``SPOOL_LIMIT`` messages or ``SPOOL_BYTES``; beyond, counted in ``qos/spool_dropped``):
they go to the stream, in order and before anything newer, when it answers again.
What the spool holds is lost if this process dies before that (docs/clustering.md
says so).

Receiving is ``qos_consumer.py``; ``DurablePath`` puts the two together for the node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from nats.js.api import RetentionPolicy, StorageType
from nats.js.errors import BadRequestError

from roost.cluster import subjects
from roost.cluster.qos_consumer import QosConsumer
from roost.cluster.streams import API_TIMEOUT

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription

    from roost.broker.core import BrokerCore
    from roost.broker.transport import Holder

log = logging.getLogger("roost.cluster")

STREAM = "ROOST_QOS"
MAX_AGE = 24 * 3600.0  # seconds a message stays for a node that is away
DUPLICATE_WINDOW = 120.0  # seconds JetStream remembers message ids
ACK_TIMEOUT = 2.0  # seconds to wait for JetStream's acknowledgement before resending
TRIES = 3  # sends of one message before its client's acknowledgement is let go
SWEEP = 0.5  # seconds between looks for messages waiting too long
WARN_EVERY = 10.0  # seconds between WARNINGs about unconfirmed messages
GATE = 1  # the transport's gate for JetStream (0 is the store's)
SPOOL_LIMIT = 100_000  # messages kept for the stream while it cannot be reached
SPOOL_BYTES = 64 * 1024 * 1024  # and their bytes at most


class _Pending:
    __slots__ = ("data", "msg_id", "sent_at", "subject", "tries")

    def __init__(self, subject: str, data: bytes, msg_id: str) -> None:
        self.subject = subject
        self.data = data
        self.msg_id = msg_id
        self.sent_at = 0.0  # 0: not sent yet
        self.tries = 0


class QosStream:
    """Publishing to ``ROOST_QOS`` and holding acknowledgements until it has stored."""

    def __init__(self) -> None:
        self.issued = 0  # messages given to publish (AckGate.issued)
        self.passed = 0  # every message up to this one is acknowledged or given up
        self.ready = False  # the stream exists and answers are being listened to
        self._pending: dict[int, _Pending] = {}  # ticket -> message, in ticket order
        self._queue: list[int] = []  # tickets to send
        self._holders: dict[Holder, None] = {}
        self._nc: NatsClient | None = None
        self._inbox = ""
        self._answers: Subscription | None = None
        self._wake = asyncio.Event()
        self._warned_at = -WARN_EVERY
        self.stored = 0  # acknowledged by JetStream
        self.unconfirmed = 0  # given up on: the client's acknowledgement went anyway
        self._spool: list[_Pending] = []  # for the stream once it answers, in order
        self._spool_bytes = 0
        self.spool_dropped = 0  # beyond the spool's limits: may not reach other nodes

    # The node's side (synchronous).

    def publish(self, topic_subject: str, data: bytes, msg_id: str) -> None:
        """Send ``data`` to the stream; acknowledgements held from now wait for it."""
        if self._spool or not self.ready:
            self.spool(topic_subject, data, msg_id)  # after what waits already
            return
        self.issued += 1
        self._pending[self.issued] = _Pending(topic_subject, data, msg_id)
        self._queue.append(self.issued)
        self._wake.set()

    def spool(self, topic_subject: str, data: bytes, msg_id: str) -> None:
        """Keep ``data`` for the stream until it answers; hold no acknowledgement."""
        self._keep(_Pending(topic_subject, data, msg_id))

    def _keep(self, entry: _Pending) -> None:
        if len(self._spool) >= SPOOL_LIMIT or self._spool_bytes >= SPOOL_BYTES:
            self.spool_dropped += 1
            now = asyncio.get_running_loop().time()
            if now - self._warned_at >= WARN_EVERY:
                self._warned_at = now
                log.warning(
                    "Cluster: the spool for %s is full (%d messages); QoS 1/2 messages"
                    " for other nodes are being dropped (%d so far).",
                    STREAM,
                    len(self._spool),
                    self.spool_dropped,
                )
            return
        entry.sent_at = 0.0
        entry.tries = 0
        self._spool.append(entry)
        self._spool_bytes += len(entry.data)

    @property
    def spooled(self) -> int:
        return len(self._spool)

    def _unspool(self) -> None:
        """Send what the spool kept, in order, before anything newer."""
        if not self._spool or self._pending:
            return
        log.warning(
            "Cluster: sending %d QoS 1/2 message(s) kept while %s did not answer.",
            len(self._spool),
            STREAM,
        )
        spool, self._spool, self._spool_bytes = self._spool, [], 0
        for entry in spool:
            self.issued += 1
            self._pending[self.issued] = entry
            self._queue.append(self.issued)

    def hold(self, conn: Holder) -> None:
        if self._pending:
            conn.hold(self.issued, GATE)
            self._holders[conn] = None

    def lost(self) -> None:
        """NATS is gone: let every waiting acknowledgement go, and keep what was not
        stored for later (see the module doc)."""
        self.ready = False
        self._put_back(list(self._pending), "NATS was lost")

    def _put_back(self, tickets: list[int], why: str) -> None:
        """Release the acknowledgements waiting for ``tickets``; spool their messages
        (with everything pending after them, to keep the order)."""
        pending = self._pending
        if not tickets or not pending:
            return
        first = min(tickets)
        moved = [ticket for ticket in pending if ticket >= first]
        for ticket in moved:
            self._keep(pending.pop(ticket))
        self._queue = [ticket for ticket in self._queue if ticket in pending]
        self.unconfirmed += len(moved)
        now = asyncio.get_running_loop().time()
        if now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            log.warning(
                "Cluster: %d QoS 1/2 message(s) acknowledged to their publishers before %s"
                " stored them (%s): kept in memory and sent when it answers (%d so far).",
                len(moved),
                STREAM,
                why,
                self.unconfirmed,
            )
        self._advance()

    # Lifecycle.

    async def start(self, nc: NatsClient, replicas: int = 1) -> None:
        """(Re)create the stream (``replicas`` copies) and listen for answers; raises if
        JetStream fails."""
        js = nc.jetstream(timeout=API_TIMEOUT)
        try:
            await js.add_stream(
                name=STREAM,
                subjects=[f"{subjects.QOS}.>"],
                storage=StorageType.FILE,
                retention=RetentionPolicy.LIMITS,
                max_age=MAX_AGE,
                duplicate_window=DUPLICATE_WINDOW,
                num_replicas=replicas,
            )
        except BadRequestError as exc:
            # It exists with other settings (an operator's replicas, say): use it as it is.
            log.info("Cluster: using the existing %s stream (%s).", STREAM, exc.description)
        if self._answers is None or self._nc is not nc:
            self._nc = nc
            self._inbox = nc.new_inbox()
            self._answers = await nc.subscribe(self._inbox + ".*", cb=self._answered)
        self.ready = True
        self._unspool()
        self._wake.set()
        log.info("Cluster: QoS 1 and 2 cross to other nodes through %s.", STREAM)

    async def send(self) -> None:
        """The task that publishes what ``publish`` queued, and resends what waits."""
        loop = asyncio.get_running_loop()
        wake = self._wake
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), SWEEP)
            wake.clear()
            now = loop.time()
            nc = self._nc
            if self.ready and self._spool and not self._pending:
                self._unspool()  # the last spooled batch was stored, or went back
            if nc is not None and self.ready and self._queue:
                queue, self._queue = self._queue, []
                for ticket in queue:
                    entry = self._pending.get(ticket)
                    if entry is None:
                        continue
                    entry.sent_at = now
                    entry.tries += 1
                    try:
                        await nc.publish(
                            entry.subject,
                            entry.data,
                            reply=f"{self._inbox}.{ticket}",
                            headers={"Nats-Msg-Id": entry.msg_id},
                        )
                    except Exception as exc:  # noqa: BLE001  (connection going: resent later)
                        log.debug("Cluster: publishing to %s failed: %r", STREAM, exc)
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        late = [
            ticket
            for ticket, entry in self._pending.items()
            if entry.sent_at and now - entry.sent_at > ACK_TIMEOUT
        ]
        if not late:
            return
        out = [ticket for ticket in late if self._pending[ticket].tries >= TRIES]
        if out:
            self._put_back(out, f"no answer from JetStream in {ACK_TIMEOUT * TRIES:.0f} s")
        for ticket in late:
            entry = self._pending.get(ticket)
            if entry is not None:
                entry.sent_at = 0.0
                self._queue.append(ticket)

    async def stop(self, wait: float) -> None:
        """Wait up to ``wait`` seconds for what is pending, then let it go."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while self._pending and self.ready and loop.time() < deadline:
            await asyncio.sleep(0.05)
        self.ready = False
        if self._pending:
            self._give_up(list(self._pending), "the node is stopping")
        if self._spool:
            self.unconfirmed += len(self._spool)
            log.warning(
                "Cluster: %d QoS 1/2 message(s) kept for %s are lost with this stop.",
                len(self._spool),
                STREAM,
            )
            self._spool, self._spool_bytes = [], 0

    # Answers.

    async def _answered(self, msg: Msg) -> None:
        ticket = int(msg.subject.rpartition(".")[2])
        # A PubAck is {"stream":...,"seq":...}; an error is {"error":...}, and an answer
        # without data is a status (503: no stream). Those wait for the resend.
        if not msg.data.startswith(b'{"stream"'):
            log.debug("Cluster: %s refused a message: %r", STREAM, msg.data[:200])
            return
        if self._pending.pop(ticket, None) is not None:
            self.stored += 1
            self._advance()

    def _give_up(self, tickets: list[int], why: str) -> None:
        pending = self._pending
        count = 0
        for ticket in tickets:
            if pending.pop(ticket, None) is not None:
                count += 1
        if not count:
            return
        self.unconfirmed += count
        now = asyncio.get_running_loop().time()
        if now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            log.warning(
                "Cluster: %d QoS 1/2 message(s) acknowledged to their publishers without"
                " being stored in %s (%s): they reached this node's subscribers and may not"
                " reach other nodes (%d so far).",
                count,
                STREAM,
                why,
                self.unconfirmed,
            )
        self._advance()

    def _advance(self) -> None:
        pending = self._pending
        passed = next(iter(pending)) - 1 if pending else self.issued
        if passed <= self.passed:
            return
        self.passed = passed
        if self._holders:
            self._holders = {conn: None for conn in self._holders if conn.release(passed, GATE)}


class DurablePath:
    """This node's side of ``ROOST_QOS``: what it sends, and its one consumer."""

    def __init__(self, core: BrokerCore, node: str) -> None:
        self.stream = QosStream()
        self.consumer = QosConsumer(core, node, STREAM)
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def ready(self) -> bool:
        return self.stream.ready

    def counts(self) -> dict[str, int]:
        consumer = self.consumer
        return {
            "qos/stored": self.stream.stored,
            "qos/unconfirmed": self.stream.unconfirmed,
            "qos/spooled": self.stream.spooled,
            "qos/spool_dropped": self.stream.spool_dropped,
            "qos/applied": consumer.applied_count,
            "qos/skipped": consumer.skipped,
            "qos/invalid": consumer.invalid,
        }

    async def start(self, nc: NatsClient, replicas: int = 1) -> None:
        """After each (re)connection: the stream, the answers, the consumer."""
        await self.stream.start(nc, replicas)
        if not self._tasks:
            loop = asyncio.get_running_loop()
            self._tasks = [
                loop.create_task(self.stream.send(), name="roost-cluster-qos-send"),
                loop.create_task(self.consumer.run(nc), name="roost-cluster-qos-consume"),
            ]

    async def stop(self, wait: float) -> None:
        await self.stream.stop(wait)
        await self.consumer.stop()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=wait)
        self._tasks = []
