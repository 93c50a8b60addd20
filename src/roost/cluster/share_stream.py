"""QoS 1 and 2 for shared subscriptions across nodes: at least once, through JetStream
(docs/clustering.md, "Shared subscriptions").

A QoS 1 or 2 message matching ``$share/{group}/{filter}`` groups with members on any
node is published by its node once per such group, to that group's own subject in
stream ``ROOST_SHARES`` (``roost.s.<hash of the whole shared filter>``), through the
same ``QosStream`` as the plain QoS path: the publisher's PUBACK/PUBREC waits for
JetStream. The groups are known from the router (this node's members) and the
interest table (the other nodes' ``$share`` records). One subject per group, rather
than per topic, gives each group one consumer with one filter subject (nats-server 2.9
has no multi-filter consumers, and ``a/#`` would need two), and lets a node hand a
message back to its group alone.

Each group has one durable pull consumer, named after the group, shared by every node
with members: each such node pulls, and JetStream gives each message to one of them.
The node gives it to one local member (``Router.publish_to_group``), waits for the
store's commit of that delivery and then acknowledges it; a message no local member
can take is refused (``nak``), and another node gets it. What a node pulled and did
not acknowledge (it died) is delivered again after ``ACK_WAIT``. A node whose last
member leaves stops pulling but leaves the consumer: what waits in it goes to members
elsewhere, or to the next member of the group, for up to ``MAX_AGE`` (after which
JetStream drops the consumer, ``inactive_threshold``, and the stream its messages).

The stream uses interest retention: a message is removed once its consumer has it
acknowledged, and one published for a group whose consumer does not exist is not kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections import deque
from typing import TYPE_CHECKING, Protocol

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, RetentionPolicy

from roost.cluster import envelope
from roost.cluster.interest import SHARED
from roost.cluster.streams import API_TIMEOUT, ensure_stream

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient
    from nats.aio.msg import Msg
    from nats.js.client import JetStreamContext

    Pull = JetStreamContext.PullSubscription

    from roost.broker.core import BrokerCore
    from roost.broker.message import Message
    from roost.cluster.durable import QosStream
    from roost.cluster.interest import InterestTable
    from roost.cluster.shares import ShareBalancer

log = logging.getLogger("roost.cluster")

STREAM = "ROOST_SHARES"
SHARES = "roost.s"  # one subject per shared group: roost.s.<hash>
MAX_AGE = 24 * 3600.0  # seconds a message waits for a member; a consumer without pulls
DUPLICATE_WINDOW = 120.0
BATCH = 64  # messages per fetch (small: a node takes no more than it hands on soon)
FETCH_WAIT = 5.0  # seconds a pull waits for a first message (idle cost: a request per wait)
ACK_WAIT = 10.0  # seconds before a message a node did not acknowledge goes elsewhere
MAX_ACK_PENDING = 1024  # per group: messages pulled and not yet acknowledged, all nodes
RETRY_WAIT = 1.0
SEEN = 4096  # stream sequences per group remembered as applied here (redeliveries)


class Node(Protocol):
    """What this needs of the node (``ClusterNode``)."""

    origin: bytes

    @property
    def balances_shares(self) -> bool: ...


def group_subject(share_filter: str) -> str:
    """The subject of shared group ``share_filter`` (``$share/g/f``) in the stream."""
    return f"{SHARES}.{_digest(share_filter)}"


def consumer_name(share_filter: str) -> str:
    return "roost-share-" + _digest(share_filter)


def _digest(share_filter: str) -> str:
    return hashlib.blake2b(share_filter.encode(), digest_size=12).hexdigest()


class _Applied:
    """The stream sequences of one group this node delivered and acknowledged lately:
    one JetStream sends again (an acknowledgement lost, or later than ``ACK_WAIT``) is
    acknowledged without a second delivery."""

    __slots__ = ("order", "seqs")

    def __init__(self) -> None:
        self.seqs: set[int] = set()
        self.order: deque[int] = deque()

    def add(self, seq: int) -> None:
        self.seqs.add(seq)
        self.order.append(seq)
        if len(self.order) > SEEN:
            self.seqs.discard(self.order.popleft())


class SharedQos:
    """This node's side of ``ROOST_SHARES``: publishing per group, pulling its groups."""

    def __init__(
        self,
        core: BrokerCore,
        node: Node,
        stream: QosStream,
        shares: ShareBalancer,
        interest: InterestTable,
    ) -> None:
        self._core = core
        self._node = node  # for balances_shares and its origin
        self._interest = interest
        self._handed = 0  # hand-backs sent: their sequence numbers
        self._stream = stream  # QosStream: publishing and holding the acknowledgements
        self._shares = shares
        self._nc: NatsClient | None = None
        self.ready = False  # the stream exists (set by start, cleared when NATS is lost)
        self._pullers: dict[str, asyncio.Task[None]] = {}  # share filter -> its task
        self._applied: dict[str, _Applied] = {}
        self.counts = dict.fromkeys(
            (
                "shares/qos_published",  # messages sent to a group's consumer
                "shares/qos_delivered",  # taken from the stream for a member here
                "shares/qos_refused",  # given back: no member here could take it
                "shares/qos_redelivered",  # sent again, already delivered here: acked
                "shares/qos_handed_back",  # a leaving member's, for the group elsewhere
            ),
            0,
        )

    # The node's side (synchronous).

    @property
    def active(self) -> bool:
        """Whether QoS 1/2 shared messages go through the stream now; if not (NATS or
        JetStream away, the interest replay not caught up), they cross on the queue
        groups, at most once, or stay on their node."""
        return (
            self.ready
            and self._stream.ready
            and self._interest.caught_up
            and self._node.balances_shares
        )

    def groups(self, topic: str, wanted: int) -> list[str] | None:
        """The shared filters a QoS 1/2 message on ``topic`` goes to (the local groups
        it matches, and the other nodes' if ``wanted`` says there are some); None when
        not ``active``."""
        if not self.active:
            return None
        remote = self._interest.shared_filters(topic) if wanted & SHARED else []
        if not self._shares.members:
            return remote
        local = [
            f"$share/{group.name}/{group.topic_filter}"
            for group in self._core.router.shared_groups(topic)
        ]
        if not remote:
            return local
        return list(dict.fromkeys((*local, *remote)))

    def publish(self, share_filters: list[str], data: bytes, msg_id: str) -> None:
        """``data`` (an envelope) once to each group's consumer."""
        stream = self._stream
        for index, share_filter in enumerate(share_filters):
            stream.publish(group_subject(share_filter), data, f"{msg_id}/{index}")
        self.counts["shares/qos_published"] += len(share_filters)

    def hand_back(self, message: Message, share_filter: str, now: float) -> None:
        """A leaving member's unfinished message that no member here can take: to its
        group's consumer, for a member on another node (or the group's next one)."""
        if not message.qos or not self.active:
            return
        self._handed += 1
        origin = self._node.origin + b"/h"  # its own numbering: never a node's sequence
        data = envelope.encode(origin, self._handed, message, now)
        self.publish([share_filter], data, f"{origin.decode()}/{self._handed}")
        self.counts["shares/qos_handed_back"] += 1

    # Lifecycle.

    async def start(self, nc: NatsClient, replicas: int = 1) -> None:
        """After each (re)connection: the stream, then a puller per local group."""
        await ensure_stream(
            nc.jetstream(timeout=API_TIMEOUT),
            STREAM,
            subjects=[f"{SHARES}.>"],
            retention=RetentionPolicy.INTEREST,
            max_age=MAX_AGE,
            duplicate_window=DUPLICATE_WINDOW,
            num_replicas=replicas,
        )
        self._nc = nc
        self.ready = True
        for share_filter in list(self._shares.members):
            await self.sync(share_filter)

    def lost(self) -> None:
        self.ready = False

    async def sync(self, share_filter: str) -> None:
        """Pull for ``share_filter`` while it has members here: its consumer exists when
        this returns (so the record written next brings messages it can take)."""
        nc = self._nc
        if nc is None or not self.ready or share_filter not in self._shares.members:
            return
        task = self._pullers.get(share_filter)
        if task is not None and not task.done():
            return
        sub = None
        try:
            sub = await self._subscribe(nc, share_filter)
        except Exception as exc:  # noqa: BLE001  (JetStream not answering: the task retries)
            log.warning("Cluster: no consumer for %s yet (%r); retrying.", share_filter, exc)
        self._pullers[share_filter] = asyncio.get_running_loop().create_task(
            self._pull(nc, share_filter, sub), name="roost-cluster-share-pull"
        )

    async def stop(self) -> None:
        self.ready = False
        tasks = list(self._pullers.values())
        self._pullers.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2)

    # Pulling.

    async def _subscribe(self, nc: NatsClient, share_filter: str) -> Pull:
        js = nc.jetstream(timeout=API_TIMEOUT)
        return await js.pull_subscribe(
            group_subject(share_filter),
            durable=consumer_name(share_filter),
            stream=STREAM,
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=ACK_WAIT,
                max_ack_pending=MAX_ACK_PENDING,
                deliver_policy=DeliverPolicy.ALL,
                # A group nobody pulls for as long as messages are kept is gone.
                inactive_threshold=MAX_AGE,
            ),
        )

    async def _pull(self, nc: NatsClient, share_filter: str, sub: Pull | None) -> None:
        """Take ``share_filter``'s messages while it has members here."""
        members = self._shares.members
        while share_filter in members and self.ready:
            try:
                if sub is None:
                    sub = await self._subscribe(nc, share_filter)
                await self._take(share_filter, sub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001  (NATS away, consumer gone: again)
                if nc.is_connected:
                    log.warning("Cluster: pulling for %s failed (%r); retrying.", share_filter, exc)
                if sub is not None:
                    with contextlib.suppress(Exception):
                        await sub.unsubscribe()
                sub = None
                await asyncio.sleep(RETRY_WAIT)
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        if self._pullers.get(share_filter) is asyncio.current_task():
            del self._pullers[share_filter]
            self._applied.pop(share_filter, None)

    async def _take(self, share_filter: str, sub: Pull) -> None:
        try:
            msgs = await sub.fetch(BATCH, timeout=FETCH_WAIT)
        except (NatsTimeoutError, TimeoutError):
            return
        applied = self._applied.get(share_filter)
        if applied is None:
            applied = self._applied[share_filter] = _Applied()
        router = self._core.router
        counts = self.counts
        now = asyncio.get_running_loop().time()
        taken: list[Msg] = []
        refused: list[Msg] = []
        for msg in msgs:
            seq = msg.metadata.sequence.stream
            if seq in applied.seqs:
                counts["shares/qos_redelivered"] += 1
                taken.append(msg)
                continue
            data = msg.data
            try:
                _origin, _seq, offset = envelope.header(data)
                message = envelope.message(data, offset, now)
            except ValueError:
                taken.append(msg)  # never deliverable: not kept
                continue
            if router.publish_to_group(message, share_filter, now):
                applied.add(seq)
                taken.append(msg)
                counts["shares/qos_delivered"] += 1
            else:
                refused.append(msg)
        for msg in refused:
            # Another node's member may take it; a pause per try keeps two nodes that
            # cannot (no member may read it) from passing it back and forth.
            tries = msg.metadata.num_delivered or 1
            await msg.nak(delay=min(0.1 * tries, 5.0))
        counts["shares/qos_refused"] += len(refused)
        if not taken:
            return
        # Acknowledged means committed here: a persistent member's queue is in the store.
        await self._core.store.flush()
        for msg in taken:
            await msg.ack()
