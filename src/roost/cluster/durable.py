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
publisher here, so the messages for other nodes go to the spool (``spool.py``): rows
in this node's store, committed before their publishers' acknowledgements are let go
(WARNING, counted in ``qos/unconfirmed``), and QoS 1/2 messages for other nodes
published while the stream is unready go there too, acknowledged after the commit like
any durable change. The spool is sent to the stream first, in order, when it answers
again, with the messages' own ids, so that JetStream drops a copy it already stored
(within its ``DUPLICATE_WINDOW``; past it the copy is stored twice and the receiving
consumers skip it, ``qos_consumer.py``); a row goes once JetStream has its message. A
node that starts with rows left (killed, or stopped, while NATS was away) sends them
first.

How the acknowledgements of put-back messages wait for the commit: they are already
queued on gate 1, and a transport releases held packets in order, so a new gate-0
hold could not keep them back. So gate 1 stays shut at the first put-back ticket
(``_unsettled``) until the store reports the commit of the batch holding the rows
(``spool.CommitWatch``, a ``Holder`` given to ``Store.hold``). Nothing changes while
JetStream answers: no store write per message, one attribute test per answer.

Receiving is ``qos_consumer.py``; ``DurablePath`` puts the two together for the node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from nats.js.api import RetentionPolicy

from roost.cluster import subjects
from roost.cluster.qos_consumer import QosConsumer
from roost.cluster.spool import Entry, Spool
from roost.cluster.streams import API_TIMEOUT, ensure_stream

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription

    from roost.broker.core import BrokerCore
    from roost.broker.persistence.store import Spooled, Store
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


class QosStream:
    """Publishing to ``ROOST_QOS`` and holding acknowledgements until it has stored."""

    def __init__(self, store: Store) -> None:
        self.issued = 0  # messages given to publish (AckGate.issued)
        self.passed = 0  # every message up to this one is acknowledged or given up
        self.ready = False  # the stream exists and answers are being listened to
        self._pending: dict[int, Entry] = {}  # ticket -> message, in ticket order
        self._queue: list[int] = []  # tickets to send
        self._holders: dict[Holder, None] = {}
        self._nc: NatsClient | None = None
        self._inbox = ""
        self._answers: Subscription | None = None
        self._wake = asyncio.Event()
        self._warned_at = -WARN_EVERY
        self.stored = 0  # acknowledged by JetStream
        self.unconfirmed = 0  # acknowledged to the client once spooled, not stored
        self._store = store
        # For the stream once it answers, in order. Whenever it has entries, nothing is
        # pending: a put-back takes every pending message, and ``_unspool`` waits for
        # an empty ``_pending``.
        self._spool = Spool(store, STREAM, self._settled)
        # The first ticket put back whose spool rows are not known committed: gate 1
        # stays shut before it (module doc). 0: none.
        self._unsettled = 0

    # The node's side (synchronous).

    def publish(self, topic_subject: str, data: bytes, msg_id: str) -> None:
        """Send ``data`` to the stream; acknowledgements held from now wait for it."""
        if self._spool.entries or not self.ready:
            # After what waits already; the row is a change of this PUBLISH, so its
            # acknowledgement waits for the store's commit (gate 0).
            self._spool.add(Entry(topic_subject, data, msg_id))
            return
        self.issued += 1
        self._pending[self.issued] = Entry(topic_subject, data, msg_id)
        self._queue.append(self.issued)
        self._wake.set()

    @property
    def takes(self) -> bool:
        """Whether QoS 1/2 for other nodes goes this way (to the stream, or to the spool
        while it has entries, so that nothing overtakes them)."""
        return self.ready or bool(self._spool.entries)

    @property
    def spooled(self) -> int:
        return len(self._spool)

    @property
    def spooled_bytes(self) -> int:
        return self._spool.bytes

    def restore(self, rows: list[Spooled]) -> None:
        """The spool's rows from before this process, to be sent first."""
        self._spool.restore(rows)

    def _unspool(self) -> None:
        """Send what the spool kept, in order, before anything newer."""
        if not self._spool.entries or self._pending:
            return
        log.warning(
            "Cluster: sending %d QoS 1/2 message(s) kept while %s did not answer.",
            len(self._spool),
            STREAM,
        )
        for entry in self._spool.take():
            self.issued += 1
            self._pending[self.issued] = entry
            self._queue.append(self.issued)

    def hold(self, conn: Holder) -> None:
        if self._pending:
            conn.hold(self.issued, GATE)
            self._holders[conn] = None

    def lost(self) -> None:
        """NATS is gone: spool what was not stored (see the module doc)."""
        self.ready = False
        self._put_back("NATS was lost")

    def _put_back(self, why: str) -> None:
        """Spool every pending message, in front; release the acknowledgements waiting
        for them once their rows are committed."""
        pending = self._pending
        if not pending:
            return
        first = next(iter(pending))
        moved = list(pending.values())
        pending.clear()
        self._queue = []
        if not self._unsettled:
            self._unsettled = first
        fresh = self._spool.put_back(moved)  # may call _settled at once
        self.unconfirmed += fresh
        now = asyncio.get_running_loop().time()
        if fresh and now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            log.warning(
                "Cluster: %d QoS 1/2 message(s) not stored by %s (%s): kept in this"
                " node's store and sent when it answers; their publishers are"
                " acknowledged once that is committed (%d so far).",
                fresh,
                STREAM,
                why,
                self.unconfirmed,
            )
        self._advance()

    def _settled(self) -> None:
        """The store committed the rows of every message put back so far."""
        self._unsettled = 0
        self._advance()

    # Lifecycle.

    async def start(self, nc: NatsClient, replicas: int = 1) -> None:
        """(Re)create the stream (``replicas`` copies) and listen for answers; raises if
        JetStream fails."""
        await ensure_stream(
            nc.jetstream(timeout=API_TIMEOUT),
            STREAM,
            subjects=[f"{subjects.QOS}.>"],
            retention=RetentionPolicy.LIMITS,
            max_age=MAX_AGE,
            duplicate_window=DUPLICATE_WINDOW,
            num_replicas=replicas,
        )
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
            if self.ready and self._spool.entries and not self._pending:
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
        if any(self._pending[ticket].tries >= TRIES for ticket in late):
            # Everything pending goes back (what follows was sent later and waits as
            # well): the spool keeps the order, and its rows whatever happens next.
            self._put_back(f"no answer from JetStream in {ACK_TIMEOUT * TRIES:.0f} s")
            return
        for ticket in late:
            self._pending[ticket].sent_at = 0.0
            self._queue.append(ticket)

    async def stop(self, wait: float) -> None:
        """Wait up to ``wait`` seconds for what is pending, then spool it: what the spool
        holds stays in the store for the next start."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while self._pending and self.ready and loop.time() < deadline:
            await asyncio.sleep(0.05)
        self.ready = False
        self._put_back("the node is stopping")
        if not self._spool.entries:
            return
        if self._store.durable:
            log.warning(
                "Cluster: %d QoS 1/2 message(s) for %s stay in this node's store; they are"
                " sent when it starts again and the stream answers.",
                len(self._spool),
                STREAM,
            )
        else:
            log.warning(
                "Cluster: %d QoS 1/2 message(s) kept for %s are lost with this stop"
                " (persistence is off).",
                len(self._spool),
                STREAM,
            )

    # Answers.

    async def _answered(self, msg: Msg) -> None:
        ticket = int(msg.subject.rpartition(".")[2])
        # A PubAck is {"stream":...,"seq":...}; an error is {"error":...}, and an answer
        # without data is a status (503: no stream). Those wait for the resend.
        if not msg.data.startswith(b'{"stream"'):
            log.debug("Cluster: %s refused a message: %r", STREAM, msg.data[:200])
            return
        entry = self._pending.pop(ticket, None)
        if entry is not None:
            if entry.row:
                self._spool.sent(entry)  # stored now: its spool row can go
            self.stored += 1
            self._advance()

    def _advance(self) -> None:
        pending = self._pending
        passed = next(iter(pending)) - 1 if pending else self.issued
        if self._unsettled and passed >= self._unsettled:
            passed = self._unsettled - 1  # their spool rows are not committed yet
        if passed <= self.passed:
            return
        self.passed = passed
        if self._holders:
            self._holders = {conn: None for conn in self._holders if conn.release(passed, GATE)}


class DurablePath:
    """This node's side of ``ROOST_QOS``: what it sends, and its one consumer."""

    def __init__(self, core: BrokerCore, node: str) -> None:
        self.stream = QosStream(core.store)
        self._core = core
        self.consumer = QosConsumer(core, node, STREAM)
        self._tasks: list[asyncio.Task[None]] = []

    def restore(self) -> None:
        """Take the store's spool rows (``BrokerCore.open_state`` read them)."""
        self.stream.restore(self._core.spooled)
        self._core.spooled = []

    def counts(self) -> dict[str, int]:
        consumer = self.consumer
        return {
            "qos/stored": self.stream.stored,
            "qos/unconfirmed": self.stream.unconfirmed,
            "qos/spooled": self.stream.spooled,
            "qos/spooled_bytes": self.stream.spooled_bytes,
            "qos/applied": consumer.applied_count,
            "qos/skipped": consumer.skipped,
            "qos/duplicates": consumer.duplicates,
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
