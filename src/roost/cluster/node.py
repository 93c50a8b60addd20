"""One Roost broker as a node of a cluster: its NATS connection, what it sends to the
other nodes and what it takes from them (docs/clustering.md).

The node is the router's ``Peers``. Every message published by this node's clients
(and their wills) is handed to ``forward``: if another node has a filter it may match
(``interest``), it is encoded once (``envelope``) and published on its topic's subject
(``subjects``); a retained message goes to the retained stream's subject too. The
router also tells it which filters local subscribers use; the node holds one NATS
subscription per distinct filter, reference-counted, so NATS sends it only what some
local client wants, and records the filter for the other nodes' ``interest``. What
arrives goes to the router's local subscribers only (``Router.publish(...,
forward=False)``), never back out: there are no loops to break, and NATS's no-echo
keeps a node from hearing itself.

NATS calls are coroutines, while the router's calls are synchronous and on the hot
path; so ``forward`` and the filter changes only queue work and wake ``_pump``, one
task that makes the NATS calls in order. Between nodes, QoS 0 travels at most once
(core NATS), and QoS 1 and 2 through a JetStream stream (``durable``): while NATS is
unreachable the node serves its own clients, drops what it
would forward (counted), says so in its log and in ``$SYS/broker/cluster/...``, and
nats-py reconnects, subscribing again to every filter.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import socket
from typing import TYPE_CHECKING

import nats
from nats.errors import MaxPayloadError, SlowConsumerError

from roost.broker.message import Message
from roost.cluster import envelope, subjects
from roost.cluster.cluster_sys import ClusterSys
from roost.cluster.durable import DurablePath
from roost.cluster.inbound import Inbound
from roost.cluster.interest import PLAIN, SHARED, InterestTable
from roost.cluster.resync import until_jetstream_answers
from roost.cluster.retained import RetainedSync
from roost.cluster.sessions import SessionDirectory
from roost.cluster.share_stream import SharedQos
from roost.cluster.shares import ShareBalancer
from roost.cluster.subscribe_gate import SubscribeGate, ack_for
from roost.cluster.wills import WillKeeper, end_without_will
from roost.protocol.topics import parse_shared

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient
    from nats.aio.subscription import Subscription

    from roost.broker.config import ClusterConfig
    from roost.broker.core import BrokerCore

log = logging.getLogger("roost.cluster")

CONNECT_TIMEOUT = 2.0  # seconds per attempt to reach a NATS server
RECONNECT_WAIT = 1.0  # seconds between attempts at one server
START_WAIT = 5.0  # seconds a starting broker waits for NATS and the retained replay
OUTBOX_LIMIT = 100_000  # messages waiting for the pump; more are dropped and counted
STOP_FLUSH_TIMEOUT = 2  # seconds (nats-py takes whole seconds)


class ClusterNode:
    """This broker's side of the cluster: wired to the router at construction, connected
    by ``start`` (``Broker.start``), disconnected by ``stop``."""

    def __init__(self, core: BrokerCore, config: ClusterConfig, sys_interval: float) -> None:
        self.name = config.node or socket.gethostname()
        # Unique per process: a restarted node's sequence numbers start again at 1.
        process = secrets.token_hex(4)
        self.origin = f"{self.name}/{process}".encode()
        self.urls = list(config.nats_url)
        self.replicas = config.replicas
        self._router = core.router
        self._sys_interval = sys_interval
        self._nc: NatsClient | None = None
        self.connected = False
        self._seq = 0
        self.filters: dict[str, int] = {}  # filter ($share/ removed) -> local subscriptions
        self._subs: dict[str, list[Subscription]] = {}
        self._dirty: set[str] = set()  # filters whose NATS subscriptions may need changing
        self._outbox: list[tuple[str, bytes]] = []
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._resync: asyncio.Task[None] | None = None  # the retained replay under way
        self._attempted = asyncio.Event()  # the first replay attempt has ended
        self._was_lost = False  # NATS was lost, or unreachable at start
        self._stopping = False
        self.retained = RetainedSync(core.router, self.origin)
        self.interest = InterestTable(self.name)
        self.shares = ShareBalancer(core.router)
        self.sessions = SessionDirectory(
            core.registry, self.name, self.origin, config.offline_session_grace
        )
        self.durable = DurablePath(core, self.name)
        core.ack_gate = self.durable.stream  # PUBACK/PUBREC wait for JetStream too
        self.shared_qos = SharedQos(core, self, self.durable.stream, self.shares, self.interest)
        self.counts = dict.fromkeys(
            (
                "messages/forwarded",
                "messages/received",
                "messages/duplicates",
                "messages/late",
                "messages/invalid",
                "dropped/disconnected",
                "dropped/too_large",
                "dropped/outbox_full",
                "dropped/slow_consumer",
            ),
            0,
        )
        self._sys_published: dict[str, str] = {}
        self.inbound = Inbound(core.router, self.origin, self.counts)
        core.router.peers = self
        # Heartbeats, and the wills of nodes that die (registry's WillLog seam).
        self.wills = core.registry.wills = WillKeeper(
            core.registry, self.name, process, config.node_timeout
        )
        self.wills.will_taken = functools.partial(end_without_will, core)
        self.sessions.gone_since = self.wills.liveness.died_at
        self.cluster_sys = ClusterSys(core, self.name, self.wills.liveness, sys_interval)
        # A SUBACK for a filter new here waits until the live nodes know it.
        self.gate = core.subscribe_gate = SubscribeGate(
            self.name, self.origin.decode(), self.wills.liveness.alive_nodes
        )
        self.sessions.settled = self.gate.settled  # a takeover receives here first
        self.sessions.drained = self._qos_caught_up  # a handover takes what the stream had
        self._tickets: dict[str, int] = {}  # filter -> its SUBACK ticket, until recorded
        self.interest.on_applied = self._ack_record

    # The router's side (synchronous, on the hot path).

    def forward(self, message: Message, now: float) -> None:
        counts = self.counts
        if not self.connected:
            # QoS 1/2 for other nodes and retained changes are kept until NATS is back
            # (acknowledged to their publishers meanwhile); QoS 0 is dropped.
            spool = message.qos and self.interest.wanted(message.topic) & PLAIN
            if not spool:
                counts["dropped/disconnected"] += 1
            if spool or message.retain:
                self._seq += 1
                message.cluster_id = (self.origin, self._seq)
                data = envelope.encode(self.origin, self._seq, message, now)
                if spool:
                    self._publish_durable(message.topic, data)
                if message.retain:
                    self._retain(message.topic, data)
            return
        topic = message.topic
        wanted = self.interest.cache.get(topic)
        if wanted is None:
            wanted = self.interest.wanted(topic)
        # QoS 1/2 for other nodes' plain filters: through the stream (durable.py).
        durable = message.qos and wanted & PLAIN and self.durable.stream.takes
        if durable:
            wanted &= ~PLAIN
        # QoS 1/2 for shared groups anywhere: through ROOST_SHARES (share_stream.py).
        shared = message.qos and (wanted & SHARED or self.shares.members)
        groups = self.shared_qos.groups(topic, wanted) if shared else None
        if groups is not None:
            wanted &= ~SHARED
        elif not wanted and self.shares.members and self.balances_shares:
            wanted = self.shares.has_local_group(topic)  # NATS picks the node, this one too
        if not wanted and not message.retain and not durable and not groups:
            return  # no other node has a subscription it could match
        subject = subjects.topic_subject(subjects.MESSAGES, topic)
        if subject is None:
            counts["dropped/too_large"] += 1
            return
        outbox = self._outbox
        if len(outbox) >= OUTBOX_LIMIT:
            counts["dropped/outbox_full"] += 1
            return
        self._seq += 1
        message.cluster_id = (self.origin, self._seq)
        data = envelope.encode(self.origin, self._seq, message, now)
        if durable:
            self._publish_durable(topic, data)
        if groups:
            self.shared_qos.publish(groups, data, f"{self.origin.decode()}/{self._seq}")
        if wanted:
            outbox.append((subject, envelope.shares_only(data) if durable else data))
        if message.retain:
            self._retain(topic, data)
        self._wake.set()

    def _retain(self, topic: str, data: bytes) -> None:
        """Record this node's retained change ``data`` (sequence number ``_seq``) for the
        cluster-wide set; ``RetainedSync.confirm`` stores it."""
        subject = subjects.topic_subject(subjects.RETAINED, topic)
        if subject is not None:
            self.retained.published(topic, self._seq, subject, data)

    def _publish_durable(self, topic: str, data: bytes) -> None:
        qos_subject = subjects.topic_subject(subjects.QOS, topic)
        if qos_subject is not None:  # the same length as the MESSAGES one, which fit
            msg_id = f"{self.origin.decode()}/{self._seq}"
            self.durable.stream.publish(qos_subject, data, msg_id)

    async def _qos_caught_up(self, timeout: float) -> bool:
        nc = self._nc
        return nc is not None and await self.durable.consumer.caught_up(nc, timeout)

    def share_handback(self, message: Message, share_filter: str, now: float) -> None:
        self.shared_qos.hand_back(message, share_filter, now)

    @property
    def balances_shares(self) -> bool:
        return self.connected and self.shares.connected

    def filter_added(self, topic_filter: str) -> None:
        group, inner = parse_shared(topic_filter)
        if group is not None:
            if self.shares.added(topic_filter):
                self._dirty.add(topic_filter)
                if self.connected and topic_filter not in self._tickets:
                    self._tickets[topic_filter] = self.gate.issue()
                self._wake.set()
            return
        count = self.filters.get(inner, 0)
        self.filters[inner] = count + 1
        if not count:
            self._dirty.add(inner)
            if self.connected and inner not in self._tickets:
                self._tickets[inner] = self.gate.issue()  # the SUBACK waits for it
            self._wake.set()

    def filter_removed(self, topic_filter: str) -> None:
        group, inner = parse_shared(topic_filter)
        if group is not None:
            if self.shares.removed(topic_filter):
                self._dirty.add(topic_filter)
                self._wake.set()
            return
        count = self.filters.get(inner, 0) - 1
        if count > 0:
            self.filters[inner] = count
            return
        self.filters.pop(inner, None)
        self._dirty.add(inner)
        self._wake.set()

    # Lifecycle.

    async def start(self) -> None:
        """Connect (waiting ``START_WAIT`` at most) and read the retained messages; if
        NATS cannot be reached, go on connecting in the background."""
        # Said once at start, where operators look (docs/clustering.md).
        log.warning(
            "Cluster node %s: QoS 1 and 2 cross to other nodes through JetStream (shared"
            " groups too), QoS 0 at most once (docs/clustering.md).",
            self.name,
        )
        self.durable.restore()  # QoS 1/2 spooled before a restart: sent first
        self._tasks.append(asyncio.create_task(self._pump(), name="roost-cluster-pump"))
        self._tasks.append(
            asyncio.create_task(
                self.retained.confirm(lambda: self._nc if self.connected else None),
                name="roost-cluster-retained",
            )
        )
        self.sessions.start()
        connecting = asyncio.create_task(self._connect(), name="roost-cluster-connect")
        self._tasks.append(connecting)
        done, _ = await asyncio.wait({connecting}, timeout=START_WAIT)
        if done and self._resync is not None:
            # The first replay attempt is bounded by RetainedSync.start's wait and the
            # JetStream API timeouts; later attempts go on in the background.
            await self._attempted.wait()
        if not done:
            self._was_lost = True
            log.warning(
                "Cluster node %s: NATS at %s is unreachable; serving local clients only"
                " (nothing crosses to other nodes) and retrying every %.0f s.",
                self.name,
                ", ".join(self.urls),
                RECONNECT_WAIT,
            )
            self._publish_sys()
        if self._sys_interval:
            self._tasks.append(asyncio.create_task(self._sys_loop(), name="roost-cluster-sys"))

    async def stop(self) -> None:
        """Send what waits to be sent, then close the NATS connection."""
        # Retained changes this node made last (its clients' final ones): stored before
        # the connection goes, if NATS answers in time.
        deadline = asyncio.get_running_loop().time() + STOP_FLUSH_TIMEOUT
        while self.retained.unconfirmed and self.connected:
            if asyncio.get_running_loop().time() > deadline:
                log.warning(
                    "Cluster: %d retained change(s) not stored in NATS at stop.",
                    len(self.retained.unconfirmed),
                )
                break
            await asyncio.sleep(0.05)
        tasks = [*self._tasks, *([self._resync] if self._resync is not None else [])]
        # nats-py swallows a CancelledError that lands in its flush (``_flush_pending``),
        # so the pump also stops on a flag, and the wait is bounded.
        self._stopping = True
        self._wake.set()
        for task in tasks:
            task.cancel()
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=STOP_FLUSH_TIMEOUT)
            if pending:
                log.warning("Cluster: %d task(s) did not stop in time; leaving them.", len(pending))
        self._tasks.clear()
        await self.sessions.stop()
        await self.shared_qos.stop()
        await self.durable.stop(STOP_FLUSH_TIMEOUT)
        nc = self._nc
        await self.wills.stop()  # before the connection closes: records, heartbeat
        await self.gate.stop()
        self._router.peers = None
        if nc is None:
            return
        if self.connected:
            await self._send_outbox(nc)
            try:
                await nc.flush(timeout=STOP_FLUSH_TIMEOUT)
            except Exception as exc:  # noqa: BLE001  (shutting down: log and go on)
                log.debug("Cluster: flush at stop failed: %r", exc)
        self.connected = False
        await self.shares.close()
        try:
            await asyncio.wait_for(nc.close(), STOP_FLUSH_TIMEOUT * 2)
        except TimeoutError:
            log.warning("Cluster: the NATS connection did not close in time; leaving it.")
        except Exception as exc:  # noqa: BLE001  (nats-py on a socket already gone, NATS away)
            log.debug("Cluster: closing the NATS connection failed: %r", exc)

    async def _connect(self) -> None:
        # max_reconnect_attempts=-1: nats-py tries until it connects, and after a loss
        # reconnects for ever, subscribing again to every subscription it had.
        options: dict[str, object] = {
            "servers": self.urls,
            "allow_reconnect": True,
            "max_reconnect_attempts": -1,
            "reconnect_time_wait": RECONNECT_WAIT,
            "connect_timeout": CONNECT_TIMEOUT,
            "ping_interval": 5,
            "max_outstanding_pings": 2,
            "error_cb": self._nats_error,
        }
        self._nc = await nats.connect(
            name=f"roost {self.name}",
            no_echo=True,
            # subjects.py makes only valid subjects: no regex per publish.
            skip_subject_validation=True,
            disconnected_cb=self._nats_disconnected,
            reconnected_cb=self._nats_reconnected,
            closed_cb=self._nats_disconnected,
            **options,  # type: ignore[arg-type]
        )
        await self.shares.connect(name=f"roost {self.name} shares", **options)
        self._set_connected(True)

    def _set_connected(self, connected: bool) -> None:
        if connected == self.connected:
            return
        self.connected = connected
        if connected:
            assert self._nc is not None  # noqa: S101  (connected means a connection)
            # A recovery is news for whoever saw the loss; the first connection is not.
            log.log(
                logging.WARNING if self._was_lost else logging.INFO,
                "Cluster node %s: connected to NATS at %s; messages cross to other nodes.",
                self.name,
                self._nc.connected_url.netloc if self._nc.connected_url else "?",
            )
            if self._resync is not None:
                self._resync.cancel()
            self._resync = asyncio.create_task(self._resync_state(self._nc))
        else:
            self._was_lost = True
            self.sessions.offline()
            self.gate.release_all()
            for ticket in self._tickets.values():
                self.gate.done(ticket)
            self._tickets.clear()
            self.durable.stream.lost()
            self.shared_qos.lost()
            self.wills.lost()
            log.warning(
                "Cluster node %s: lost NATS; serving local clients only: QoS 0 messages for"
                " other nodes are dropped, QoS 1/2 kept in the spool, until it is back.",
                self.name,
            )
        self._publish_sys()

    async def _resync_state(self, nc: NatsClient) -> None:
        """After (re)connecting: record this node's filters afresh, subscribe to those
        not subscribed yet, and replay the other nodes' filters and the retained set.

        JetStream may not answer at once: ``resync.until_jetstream_answers`` asks again
        while the connection lasts."""
        try:
            await self.cluster_sys.start(nc)  # core NATS: also without JetStream
            await self.gate.start(nc)
        except Exception as exc:  # noqa: BLE001  (the connection went: the next one retries)
            log.debug("Cluster: subscribing to the nodes' counts failed: %r", exc)
        await until_jetstream_answers(
            self.name, lambda: self._resync_once(nc), lambda: self.connected, self._attempted
        )

    async def _resync_once(self, nc: NatsClient) -> None:
        try:
            await self.interest.forget_own(nc)
        except Exception as exc:  # noqa: BLE001  (JetStream off: interest.start says so)
            log.debug("Cluster: purging old interest records failed: %r", exc)
        # After the purge: the pump records them again.
        self._dirty.update(self.filters)
        self._dirty.update(self.shares.members)
        self._wake.set()
        await self.interest.start(nc, START_WAIT, self.replicas)
        await self.retained.start(nc, START_WAIT, self.replicas)
        await self.sessions.online(nc, self.replicas)
        await self.shared_qos.start(nc, self.replicas)
        await self.durable.start(nc, self.replicas)
        await self.wills.start(nc, self.replicas)

    async def _nats_error(self, exc: Exception) -> None:
        if isinstance(exc, SlowConsumerError):
            # This node reads slower than the others send: nats-py's buffer is full.
            self.counts["dropped/slow_consumer"] += 1
            return
        log.debug("Cluster: NATS: %r", exc)

    async def _nats_disconnected(self) -> None:
        self._set_connected(False)

    async def _nats_reconnected(self) -> None:
        self._set_connected(True)

    # Sending (one task, so that NATS sees subscriptions and messages in order).

    async def _pump(self) -> None:
        wake = self._wake
        while not self._stopping:
            await wake.wait()
            wake.clear()
            if self._stopping:
                return
            nc = self._nc
            if nc is None or not self.connected:
                self.counts["dropped/disconnected"] += len(self._outbox)
                self._outbox = []
                continue
            try:
                if self._dirty:
                    await self._resubscribe(nc)
                await self._send_outbox(nc)
            except Exception as exc:  # noqa: BLE001  (the connection went: resync redoes it)
                log.warning("Cluster: talking to NATS failed (%r); retrying on reconnect.", exc)

    async def _send_outbox(self, nc: NatsClient) -> None:
        batch, self._outbox = self._outbox, []
        counts = self.counts
        for subject, data in batch:
            try:
                await nc.publish(subject, data)
            except MaxPayloadError:
                counts["dropped/too_large"] += 1
            except Exception as exc:  # noqa: BLE001  (lost connection, full buffer...)
                counts["dropped/disconnected"] += 1
                log.debug("Cluster: publish failed: %r", exc)
            else:
                counts["messages/forwarded"] += 1

    async def _resubscribe(self, nc: NatsClient) -> None:
        dirty = self._dirty
        while dirty:
            topic_filter = dirty.pop()
            try:
                await self._resubscribe_filter(nc, topic_filter)
            except BaseException:
                dirty.add(topic_filter)  # done again after the reconnect
                raise
        # The subscriptions are in place at the server once it answers a PING.
        await nc.flush()

    async def _resubscribe_filter(self, nc: NatsClient, topic_filter: str) -> None:
        group, _inner = parse_shared(topic_filter)
        if group is not None:
            await self.shares.sync(topic_filter)
            await self.shared_qos.sync(topic_filter)  # its consumer, before the record
            wanted = topic_filter in self.shares.members
            record = topic_filter.encode() if wanted else b""
            await self._record(nc, topic_filter, record, wanted)
            return
        wanted = topic_filter in self.filters
        held = self._subs.get(topic_filter)
        # The record other nodes forward by: written after the subscription exists.
        record = topic_filter.encode() if wanted else b""
        if wanted and held is None:
            names = subjects.filter_subjects(subjects.MESSAGES, topic_filter)
            if not names:
                log.warning(
                    "Cluster: filter %r is too long for a NATS subject; its subscribers"
                    " get messages from this node only.",
                    topic_filter,
                )
            self._subs[topic_filter] = [
                await nc.subscribe(name, cb=self.inbound.received) for name in names
            ]
        elif not wanted and held is not None:
            del self._subs[topic_filter]
            for sub in held:
                await sub.unsubscribe()
        # Other nodes cannot send to it without a NATS subject: nothing to confirm.
        await self._record(nc, topic_filter, record, wanted and bool(self._subs.get(topic_filter)))

    async def _record(self, nc: NatsClient, topic_filter: str, record: bytes, live: bool) -> None:
        """Write this node's interest record of ``topic_filter``; a SUBACK waiting for it
        (a ticket) is let go once the other nodes confirm that they applied a ``live``
        record, at once otherwise."""
        ticket = self._tickets.pop(topic_filter, None)
        confirm = ticket is not None and live
        headers = self.gate.header(ticket) if confirm and ticket is not None else None
        await nc.publish(self.interest.record_subject(topic_filter), record, headers=headers)
        if ticket is not None:
            if confirm:
                self.gate.recorded(ticket)
            else:
                self.gate.done(ticket)

    def _ack_record(self, header: str | None) -> None:
        answer = ack_for(self.name, header)
        if answer is not None and len(self._outbox) < OUTBOX_LIMIT:
            self._outbox.append(answer)
            self._wake.set()

    # Receiving.

    # $SYS/broker/cluster/...: this node's view of the cluster.

    async def _sys_loop(self) -> None:
        while True:
            await asyncio.sleep(self._sys_interval)
            self._publish_sys()
            self.cluster_sys.tick(self._nc, self.connected)

    def sys_values(self) -> dict[str, str]:
        values = {
            "$SYS/broker/cluster/node": self.name,
            "$SYS/broker/cluster/connected": "1" if self.connected else "0",
            "$SYS/broker/cluster/filters": str(len(self.filters)),
            "$SYS/broker/cluster/retained/applied": str(self.retained.applied),
            "$SYS/broker/cluster/retained/unconfirmed": str(len(self.retained.unconfirmed)),
            "$SYS/broker/cluster/interest/unconfirmed": str(self.gate.unconfirmed),
            "$SYS/broker/cluster/interest/remote_filters": str(self.interest.remote_filters),
            "$SYS/broker/cluster/shares/groups": str(len(self.shares.members)),
            "$SYS/broker/cluster/shares/delivered": str(self.shares.delivered),
            "$SYS/broker/cluster/shares/missed": str(self.shares.missed),
        }
        counts = (*self.counts.items(), *self.durable.counts().items(), *self.wills.counts.items())
        counts += tuple(self.shared_qos.counts.items())
        for name, count in counts:
            values[f"$SYS/broker/cluster/{name}"] = str(count)
        values.update(self.sessions.sys_values())
        return values

    def _publish_sys(self) -> None:
        if not self._sys_interval:
            return
        router = self._router
        now = asyncio.get_running_loop().time()
        published = self._sys_published
        for topic, value in self.sys_values().items():
            if published.get(topic) == value:
                continue
            published[topic] = value
            message = Message(topic, value.encode(), 0, True)
            router.retain(message)
            router.publish(message, now, forward=False)
