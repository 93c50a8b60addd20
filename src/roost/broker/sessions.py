"""Sessions: what the broker remembers about a client, connected or not.

A session owns its subscriptions (its own record of them; the router holds the
matching index), the QoS 1/2 messages in flight to the client, the queue of messages
waiting for a free slot (or for the client to come back), the QoS 2 packet identifiers
it has received but not yet seen released, and a pending will. The connection it is
attached to is a ``Sink``; with none, messages queue. A new subscription's retained
messages come from a ``catchup.CatchUp`` the session pulls from as the client has room
(``catch_up``); messages queued after it began wait for it, an UNSUBSCRIBE of its
filter drops it, and a client that goes leaves the rest queued (``park_catch_ups``) if
the session stays. Only the session changes these; the registry (``registry.py``)
creates, attaches, detaches and ends sessions.

Changes to a session that outlives its connection are recorded in a ``SessionStore``;
the full ``Store`` (``persistence/store.py``) is one, and it builds on this module
rather than the other way round.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from roost.broker.catchup import SLICE_BYTES, SLICE_MESSAGES
from roost.broker.records import Outgoing, SubscriptionRecord
from roost.broker.stats import DropReason
from roost.codec import Pubrel, Will

if TYPE_CHECKING:
    from collections.abc import Iterable

    from roost.broker.auth.base import ClientInfo
    from roost.broker.catchup import CatchUp
    from roost.broker.config import BrokerConfig
    from roost.broker.message import Message
    from roost.broker.stats import Stats
    from roost.broker.topic_aliases import OutgoingAliases
    from roost.broker.transport import Holder

log = logging.getLogger("roost.broker")


class Sink(Protocol):
    """The connection a session sends through."""

    version: int
    send_quota: int  # the most QoS 1/2 PUBLISHes it may have unacknowledged
    maximum_packet_size: int  # the client's limit on packets we send it
    writable: bool  # False while the transport's buffer is above its high-water mark
    topic_aliases: OutgoingAliases | None  # MQTT 5 aliases it sends; None: sends none

    def send(self, data: bytes) -> None: ...

    def take_over(self) -> None:
        """Another connection took the session: tell the client (MQTT 5: DISCONNECT
        0x8E), close, and let go of the session."""

    # Holding packets until a store commit (see roost.broker.transport.Holder).
    def hold(self, batch: int, gate: int = 0) -> None: ...
    def release(self, committed: int, gate: int = 0) -> bool: ...


class SessionStore(Protocol):
    """Where a durable session's changes are recorded (see ``persistence/store.py``)."""

    # ``session_saved`` records the session's own fields: expiry interval, expiry
    # deadline, will and will deadline (a will scheduled or cancelled), and identity.
    def session_saved(self, session: Session) -> None: ...
    def session_ended(self, session: Session) -> None: ...
    def subscription_added(self, session: Session, record: SubscriptionRecord) -> None: ...
    def subscription_removed(self, session: Session, topic_filter: str) -> None: ...
    def delivery_queued(self, session: Session, item: Outgoing) -> None: ...
    def delivery_sent(self, session: Session, item: Outgoing, packet_id: int) -> None: ...
    def delivery_released(self, session: Session, item: Outgoing, packet_id: int) -> None: ...
    def delivery_removed(self, session: Session, item: Outgoing) -> None: ...
    def receive_id_added(self, session: Session, packet_id: int) -> None: ...
    def receive_id_removed(self, session: Session, packet_id: int) -> None: ...

    def hold(self, conn: Holder) -> None:
        """Hold ``conn``'s packets sent from now on until the changes so far commit."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a session belongs to, as access decisions need it: kept with a durable
    session so that, after a restart, authorization judges it as before."""

    client: ClientInfo  # as authorization saw it at the session's last CONNECT
    # The password file vouched for ``client.username`` (so removing the user from the
    # file ends the session; see AuthManager.removed).
    password_file: bool = False


class Session:
    """One client's session: its subscriptions, messages in flight and queued, QoS 2
    ids awaiting release and will; attached to a connection (``Sink``) or not."""

    __slots__ = (
        "_ahead",
        "_catch_ups",
        "_next_packet_id",
        "_queue",
        "_unsent",
        "awaiting_release",
        "client_id",
        "config",
        "connection",
        "dropped",
        "expires_at",
        "expiry_interval",
        "identity",
        "inflight",
        "packet_id_limit",
        "queued_bytes",
        "stats",
        "store",
        "subscriptions",
        "will",
        "will_at",
    )

    def __init__(self, client_id: str, config: BrokerConfig, stats: Stats | None = None) -> None:
        self.client_id = client_id
        self.config = config
        self.stats = stats  # where drops are counted ($SYS)
        self.connection: Sink | None = None
        # Set at every CONNECT; None only for a session stored by a Roost that did not
        # keep it (schema version 1), until its client comes back.
        self.identity: Identity | None = None
        self.subscriptions: dict[str, SubscriptionRecord] = {}
        self.expiry_interval = 0
        self.expires_at: float | None = None  # set while disconnected
        self.inflight: dict[int, Outgoing] = {}
        # Created on first use: an empty deque costs ~760 bytes, and most sessions of
        # idle connections never queue anything.
        self._queue: deque[Outgoing] | None = None
        self.queued_bytes = 0
        self.awaiting_release: set[int] = set()
        self.will: Will | None = None
        self.will_at: float | None = None  # deadline of a delayed will
        self.dropped = 0  # messages meant for this session and not delivered, any reason
        # Where changes are recorded: set only while the session outlives its connection
        # (expiry interval > 0) and the broker's store is durable.
        self.store: SessionStore | None = None
        self._next_packet_id = 1
        # The highest packet id given out: a bridge keeps the ids above it for its
        # client's own requests (bridge/outbound.py).
        self.packet_id_limit = 0xFFFF
        # Ids in flight from an earlier connection, not yet resent on this one because
        # the client's Receive Maximum had no room (an ordered set).
        self._unsent: dict[int, None] = {}
        # Retained catch-ups under way (catchup.py), oldest first, and how many queued
        # messages are ahead of them; messages queued after a catch-up began wait for it.
        self._catch_ups: deque[CatchUp] | None = None
        self._ahead = 0

    @property
    def queue(self) -> deque[Outgoing]:
        """Messages waiting for room in the client's window, or for the client."""
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        return queue

    @queue.setter
    def queue(self, value: deque[Outgoing]) -> None:
        self._queue = value

    def has_room(self) -> bool:
        """Whether a QoS 1/2 message now would go out at once (shared groups prefer it)."""
        conn = self.connection
        return (
            conn is not None
            and conn.writable
            and len(self.inflight) < conn.send_quota
            and self._catch_ups is None
        )

    # Subscriptions and incoming QoS 2 ids: the session's own records, kept durable.

    def add_subscription(self, record: SubscriptionRecord) -> None:
        self.subscriptions[record.topic_filter] = record
        if self.store is not None:
            self.store.subscription_added(self, record)

    def remove_subscription(self, topic_filter: str) -> bool:
        """Forget a subscription; False if there was none with that filter."""
        if self.subscriptions.pop(topic_filter, None) is None:
            return False
        if self._catch_ups is not None:
            # No new messages for a filter once unsubscribed [MQTT-3.10.4-2]: the
            # retained ones not yet sent are not sent (the caller pumps what waited).
            self._cancel_catch_ups(topic_filter)
        if self.store is not None:
            self.store.subscription_removed(self, topic_filter)
        return True

    def qos2_received(self, packet_id: int) -> None:
        """A QoS 2 PUBLISH was accepted: its id waits for the client's PUBREL."""
        self.awaiting_release.add(packet_id)
        if self.store is not None:
            self.store.receive_id_added(self, packet_id)

    def qos2_released(self, packet_id: int) -> bool:
        """The exchange of ``packet_id`` ended; False if the id was not awaiting release."""
        if packet_id not in self.awaiting_release:
            return False
        self.awaiting_release.discard(packet_id)
        if self.store is not None:
            self.store.receive_id_removed(self, packet_id)
        return True

    # Outgoing messages.

    def deliver(
        self,
        message: Message,
        qos: int,
        retain: bool,
        subscription_ids: tuple[int, ...] = (),
        now: float = 0.0,
        share_group: str | None = None,
    ) -> None:
        conn = self.connection
        if not qos:
            if conn is not None:
                if conn.writable:
                    aliases = conn.topic_aliases
                    if aliases is None:
                        data = message.encode(
                            conn.version, 0, retain, 0, False, subscription_ids, now
                        )
                    else:
                        limit = conn.maximum_packet_size
                        data = aliases.encode(
                            message, 0, retain, 0, False, subscription_ids, now, limit
                        )
                    if len(data) <= conn.maximum_packet_size:
                        conn.send(data)
                    else:
                        self._drop(DropReason.TOO_LARGE, message)
                else:
                    self._drop(DropReason.SLOW_CLIENT, message)
                return
            if not self.config.queue_qos0_messages:
                return
        item = Outgoing(message, qos, retain, subscription_ids, share_group)
        if (
            conn is not None
            and qos
            and conn.writable
            and not self._queue
            and self._catch_ups is None
            and len(self.inflight) < conn.send_quota
        ):
            self._send_new(conn, item, now)
            return
        self._enqueue(item)

    def _enqueue(self, item: Outgoing) -> None:
        config = self.config
        size = item.message.size
        while len(self.queue) >= config.max_queued_messages or (
            config.max_queued_bytes and self.queued_bytes + size > config.max_queued_bytes
        ):
            if config.queue_full_policy == "drop_oldest" and self.queue:
                old = self.queue.popleft()
                self.queued_bytes -= old.message.size
                if self._ahead:
                    self._ahead -= 1
                self._drop(DropReason.QUEUE_FULL, old.message)
                if self.store is not None:
                    self.store.delivery_removed(self, old)
            else:
                self._drop(DropReason.QUEUE_FULL, item.message)
                return
        self.queue.append(item)
        self.queued_bytes += size
        if self.store is not None:
            self.store.delivery_queued(self, item)

    def _drop(self, reason: DropReason, message: Message) -> None:
        self.dropped += 1
        if self.stats is not None:
            self.stats.message_dropped(reason, self.client_id, message.topic)

    def _allocate_packet_id(self) -> int:
        limit = self.packet_id_limit
        packet_id = self._next_packet_id
        if packet_id > limit:
            packet_id = 1
        inflight = self.inflight
        while packet_id in inflight:
            packet_id = packet_id % limit + 1
        self._next_packet_id = packet_id % limit + 1
        return packet_id

    def _send_new(self, conn: Sink, item: Outgoing, now: float) -> None:
        message = item.message
        store = self.store
        if message.expires_at is not None and now >= message.expires_at:
            self._drop(DropReason.EXPIRED, message)
            if store is not None:
                store.delivery_removed(self, item)
            return
        if item.qos == 0:
            data = _encode(conn, message, 0, item.retain, 0, False, item.subscription_ids, now)
            if len(data) <= conn.maximum_packet_size:
                conn.send(data)
            else:
                self._drop(DropReason.TOO_LARGE, message)
            if store is not None:
                store.delivery_removed(self, item)
            return
        packet_id = self._allocate_packet_id()
        data = _encode(
            conn, message, item.qos, item.retain, packet_id, False, item.subscription_ids, now
        )
        if len(data) > conn.maximum_packet_size:
            # MQTT 5 [MQTT-3.1.2-25]: discard, as if delivery completed.
            self._drop(DropReason.TOO_LARGE, message)
            if store is not None:
                store.delivery_removed(self, item)
            return
        self.inflight[packet_id] = item
        if store is not None:
            store.delivery_sent(self, item, packet_id)
        conn.send(data)

    def pump(self, now: float) -> None:
        """Send queued messages while the client has room for them."""
        conn = self.connection
        if conn is None:
            return
        queue = self._queue
        inflight = self.inflight
        unsent = self._unsent
        while unsent and conn.writable and len(inflight) - len(unsent) < conn.send_quota:
            packet_id = next(iter(unsent))
            del unsent[packet_id]
            self._resend(conn, packet_id, inflight[packet_id], now)
        if self._catch_ups is not None:
            # What was queued before the catch-ups first; what came after them waits.
            while queue and self._ahead:
                if not (conn.writable and len(inflight) - len(unsent) < conn.send_quota):
                    return
                self._ahead -= 1
                item = queue.popleft()
                self.queued_bytes -= item.message.size
                self._send_new(conn, item, now)
            self._ahead = 0
            if not self._catch_up(conn, now):
                return
        while queue and conn.writable and len(inflight) - len(unsent) < conn.send_quota:
            item = queue.popleft()
            self.queued_bytes -= item.message.size
            self._send_new(conn, item, now)

    # Retained catch-ups.

    def catch_up(self, catch_up: CatchUp, now: float) -> None:
        """Deliver a new subscription's retained messages as the client has room: after
        what is queued now, before what is queued from now on (as if all had been queued
        at once, without the queue's limits). A catch-up of the same filter still under
        way is dropped: the new subscription's sends them all again (MQTT 5.0 3.8.4)."""
        if self._catch_ups is not None:
            self._cancel_catch_ups(catch_up.topic_filter)
        catch_ups = self._catch_ups
        if catch_ups is None:
            catch_ups = self._catch_ups = deque()
            self._ahead = len(self._queue) if self._queue else 0
        catch_ups.append(catch_up)
        self.pump(now)

    def _catch_up(self, conn: Sink, now: float) -> bool:
        """Send from the catch-ups while the client has room, a slice per loop turn;
        True once they are all done."""
        catch_ups = self._catch_ups
        assert catch_ups is not None  # noqa: S101
        inflight = self.inflight
        unsent = self._unsent
        messages = SLICE_MESSAGES
        size = SLICE_BYTES
        while catch_ups:
            catch_up = catch_ups[0]
            while conn.writable and len(inflight) - len(unsent) < conn.send_quota:
                if messages <= 0 or size <= 0:
                    catch_up.again(self.pump)
                    return False
                item = catch_up.pull(now)
                if item is None:
                    break
                messages -= 1
                size -= item.message.size
                self._send_new(conn, item, now)
            else:
                return False  # no room: a PUBACK or the transport draining pumps again
            catch_ups.popleft()
        self._catch_ups = None
        return True

    def _cancel_catch_ups(self, topic_filter: str) -> None:
        catch_ups = self._catch_ups
        if catch_ups is None:
            return
        kept = deque(c for c in catch_ups if c.topic_filter != topic_filter)
        if kept:
            self._catch_ups = kept
        else:
            self._catch_ups = None
            self._ahead = 0

    def park_catch_ups(self, now: float) -> None:
        """The client went and the session stays: what its catch-ups had still to send
        is queued now, behind what the queue holds, under the queue's limits (QoS 0
        only with queue_qos0_messages), as if it had been queued at the SUBSCRIBE."""
        catch_ups = self._catch_ups
        if catch_ups is None:
            return
        self._catch_ups = None
        self._ahead = 0
        queue_qos0 = self.config.queue_qos0_messages
        for catch_up in catch_ups:
            item = catch_up.pull(now)
            while item is not None:
                if item.qos or queue_qos0:
                    self._enqueue(item)
                item = catch_up.pull(now)

    def resume(self, now: float) -> None:
        """On reconnection: resend what is in flight (DUP set), then the queue."""
        conn = self.connection
        if conn is None:
            return
        inflight = self.inflight
        unsent = self._unsent
        if not inflight:
            self.pump(now)  # a new session (or one with nothing in flight): just the queue
            return
        unsent.clear()
        # The client's Receive Maximum is per connection [MQTT-3.3.4-9]: resend only what
        # fits; the rest goes out, with its original id, as acknowledgements free slots.
        # PUBRELs are never held back [MQTT-3.3.4-10], but each holds a slot until PUBCOMP.
        room = conn.send_quota - sum(1 for item in inflight.values() if item.released)
        for packet_id, item in list(inflight.items()):
            if item.released:
                conn.send(Pubrel(packet_id).encode(conn.version))
            elif room > 0:
                room -= self._resend(conn, packet_id, item, now)
            else:
                unsent[packet_id] = None
        self.pump(now)

    def _resend(self, conn: Sink, packet_id: int, item: Outgoing, now: float) -> bool:
        """Resend an unacknowledged PUBLISH with DUP set; False if it was discarded."""
        data = _encode(
            conn, item.message, item.qos, item.retain, packet_id, True, item.subscription_ids, now
        )
        if len(data) > conn.maximum_packet_size:
            # Too large for this connection's client: discard, as if delivered [MQTT-3.1.2-25].
            del self.inflight[packet_id]
            self._drop(DropReason.TOO_LARGE, item.message)
            if self.store is not None:
                self.store.delivery_removed(self, item)
            return False
        conn.send(data)
        return True

    def _complete(self, packet_id: int, now: float) -> None:
        """The delivery of ``packet_id`` is over: free its slot for what waits."""
        self._free(packet_id)
        self.pump(now)

    def _free(self, packet_id: int) -> None:
        item = self.inflight.pop(packet_id)
        if self._unsent:
            self._unsent.pop(packet_id, None)
        if self.store is not None:
            self.store.delivery_removed(self, item)

    def puback(self, packet_id: int, now: float) -> bool:
        item = self.inflight.get(packet_id)
        if item is None or item.qos != 1:
            return False
        self._complete(packet_id, now)
        return True

    def acknowledged(self, packet_id: int) -> bool:
        """A PUBACK, without sending what its slot frees: the caller pumps once for a
        whole read of them (``pump``). False if the id was not a QoS 1 in flight."""
        item = self.inflight.get(packet_id)
        if item is None or item.qos != 1:
            return False
        self._free(packet_id)
        return True

    def pubrec(self, packet_id: int, failed: bool, now: float) -> bool:
        """A PUBREC: True when a PUBREL should follow (known id, success code)."""
        item = self.inflight.get(packet_id)
        if item is None or item.qos != 2:
            return False
        if failed:
            # A PUBREC with a failure code ends the exchange: no PUBREL [MQTT-4.3.3-4], and
            # the message counts as acknowledged, never resent [MQTT-4.4.0-2].
            self._complete(packet_id, now)
            return False
        item.released = True
        if self.store is not None:
            self.store.delivery_released(self, item, packet_id)
        return True

    def pubcomp(self, packet_id: int, now: float) -> bool:
        item = self.inflight.get(packet_id)
        if item is None or not item.released:
            return False
        self._complete(packet_id, now)
        return True

    def restore(
        self,
        queued: Iterable[Outgoing],
        inflight: Iterable[tuple[int, Outgoing]],
        receive_ids: Iterable[int],
    ) -> None:
        """Put back what a store kept: queued and in-flight messages, QoS 2 ids received."""
        for item in queued:
            self.queue.append(item)
            self.queued_bytes += item.message.size
        for packet_id, item in inflight:
            self.inflight[packet_id] = item
            self._next_packet_id = packet_id % 0xFFFF + 1
        self.awaiting_release.update(receive_ids)

    def purge_expired(self, now: float) -> int:
        """Drop queued messages whose Message Expiry Interval has passed; how many."""
        queue = self._queue
        if not queue:
            return 0
        kept: deque[Outgoing] = deque()
        dropped = 0
        for item in queue:
            expires_at = item.message.expires_at
            if expires_at is None or now < expires_at:
                kept.append(item)
                continue
            dropped += 1
            self._drop(DropReason.EXPIRED, item.message)
            self.queued_bytes -= item.message.size
            if self.store is not None:
                self.store.delivery_removed(self, item)
        if dropped:
            self.queue = kept
            self._ahead = 0  # only offline sessions are purged: no catch-up under way
        return dropped

    def pending_messages(self) -> int:
        return len(self.inflight) + self.queued_count

    @property
    def queued_count(self) -> int:
        """Messages in the queue (without making one: most sessions have none)."""
        return len(self._queue) if self._queue else 0

    def take_shared_messages(self) -> list[Outgoing]:
        """Shared-subscription messages not yet acknowledged, for another member.

        In flight, only QoS 1 may move (MQTT 5.0 section 4.8.2 says it SHOULD): a QoS 2
        message already sent MUST NOT go to another member [MQTT-4.8.2-5]. Queued
        messages were never sent, so any QoS may.
        """
        taken = [item for item in self.inflight.values() if item.share_group and item.qos == 1]
        taken.extend(item for item in self._queue or () if item.share_group)
        return taken


def _encode(
    conn: Sink,
    message: Message,
    qos: int,
    retain: bool,
    packet_id: int,
    dup: bool,
    subscription_ids: tuple[int, ...],
    now: float,
) -> bytes:
    """The PUBLISH bytes for ``conn``, with a topic alias where it sends them (the
    connection's map moves only if the result fits its Maximum Packet Size)."""
    aliases = conn.topic_aliases
    if aliases is None:
        return message.encode(conn.version, qos, retain, packet_id, dup, subscription_ids, now)
    return aliases.encode(
        message, qos, retain, packet_id, dup, subscription_ids, now, conn.maximum_packet_size
    )
