"""The router: who is subscribed to what, and where each published message goes.

The router alone owns the subscription index (``SubscriptionTree``), the retained
messages (``RetainedStore``) and the choice of member in shared groups. Its surface is
``subscribe``, ``unsubscribe``, ``drop_client`` and ``publish``, with ``retain`` and
``send_retained`` for retained messages (a lazy catch-up the subscriber's session pulls
from as it has room: ``catchup.py``).

**The routing seam.** A message enters through ``publish`` (from a connection, a will,
``$SYS``) and leaves through ``Destination.deliver``. Destinations are looked up by the
subscriber key the subscription was made under (a client id, for local sessions) in
``destinations``, a mapping the router reads and never changes. Local sessions are one
kind of destination; another broker process, a cluster node or a bridge is added by
registering its own key and ``Destination`` there and subscribing for it, with no
change to connection code.

Overlapping subscriptions of one subscriber are merged into one delivery at the
highest granted QoS with every matching subscription identifier (MQTT 5.0 section
4.8.1 and [MQTT-3.3.4-3]); each shared group delivers to one member.

With an ACL file or an authorizing plugin, ``readers`` maps subscriber keys to what they
may do, and each delivery first checks read access to the topic (a cached answer, one
dict lookup); a key without an entry there gets nothing (fail closed). With neither,
``readers`` is None and nothing is checked.
"""

from __future__ import annotations

from itertools import chain
from typing import TYPE_CHECKING, Protocol

from roost.broker.catchup import CatchUp
from roost.broker.retained import RetainedStore
from roost.broker.stats import DropReason
from roost.broker.subscriptions import SharedGroup, SubscriptionTree

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from roost.broker.auth.access import ClientAccess
    from roost.broker.message import Message
    from roost.broker.records import Outgoing, SubscriptionRecord
    from roost.broker.stats import Stats


class Destination(Protocol):
    """Where the router hands a message: a local session, or (next) another node."""

    def deliver(
        self,
        message: Message,
        qos: int,
        retain: bool,
        subscription_ids: tuple[int, ...] = (),
        now: float = 0.0,
        share_group: str | None = None,
    ) -> None:
        """Take ``message`` at ``qos`` (already min(published, granted))."""

    def has_room(self) -> bool:
        """Whether a message now would go out at once; shared groups prefer such members."""


class CatchUpTarget(Destination, Protocol):
    """A destination that takes a new subscription's retained messages as it has room."""

    def catch_up(self, catch_up: CatchUp, now: float) -> None:
        """Pull deliveries from ``catch_up`` whenever there is room, until it ends."""


class Peers(Protocol):
    """The other nodes of a cluster (docs/clustering.md): they hear of every message
    published here and of every filter local subscribers start or stop using. While
    ``balances_shares``, shared groups get messages only through ``publish_to_group``
    (the cluster picks the node, this router the member)."""

    @property
    def balances_shares(self) -> bool: ...

    def forward(self, message: Message, now: float) -> None: ...
    def filter_added(self, topic_filter: str) -> None: ...
    def filter_removed(self, topic_filter: str) -> None: ...
    def share_handback(self, message: Message, share_filter: str, now: float) -> None: ...


class RetainedLog(Protocol):
    """Where retained messages are kept durable (the broker's store, when it is)."""

    def retained_set(self, topic: str, message: Message) -> None: ...
    def retained_deleted(self, topic: str) -> None: ...


class _Delivery:
    """One subscriber's merged view of its overlapping subscriptions to a topic."""

    __slots__ = ("ids", "qos", "retain")

    def __init__(self, qos: int, retain: bool, identifier: int | None) -> None:
        self.qos = qos
        self.retain = retain
        self.ids: tuple[int, ...] = () if identifier is None else (identifier,)

    def merge(self, qos: int, retain: bool, identifier: int | None) -> None:
        self.qos = max(self.qos, qos)
        if retain:
            self.retain = True
        if identifier is not None:
            self.ids = (*self.ids, identifier)


def _may_read(readers: dict[str, ClientAccess], key: str, topic: str) -> bool:
    access = readers.get(key)
    return access is not None and access.may_read(topic) is True


def _deliver_later(
    destination: Destination, message: Message, qos: int, retain: bool, ids: tuple[int, ...]
) -> Callable[[float], None]:
    """A delivery to make once read access is known (``ClientAccess.defer_delivery``)."""

    def deliver(now: float) -> None:
        destination.deliver(message, qos, retain, ids, now)

    return deliver


class Router:
    """Subscriptions, retained messages and shared-group choice; publish delivers."""

    __slots__ = (
        "_retained",
        "_sent",
        "_sent_bytes",
        "_tree",
        "deliver_hook",
        "destinations",
        "log",
        "observer",
        "peers",
        "readers",
        "stats",
    )

    def __init__(
        self,
        destinations: Mapping[str, Destination],
        max_retained_messages: int,
        stats: Stats | None = None,
    ) -> None:
        self.destinations = destinations
        self.stats = stats  # where deliveries denied by read access are counted
        self._tree: SubscriptionTree[SubscriptionRecord] = SubscriptionTree()
        self._retained: RetainedStore[Message] = RetainedStore(max_retained_messages)
        self.log: RetainedLog | None = None  # where retained messages are kept, if durable
        self.readers: dict[str, ClientAccess] | None = None  # set when access is restricted
        # Sees every message routed (the HTTP API's "watch a topic"); None: nobody does.
        self.observer: Callable[[Message], None] | None = None
        # Deliveries and their payload bytes by QoS sent at (the counters' own lists).
        self._sent = [0, 0, 0] if stats is None else stats.sent_by_qos
        self._sent_bytes = [0, 0, 0] if stats is None else stats.sent_bytes_by_qos
        # The on_deliver hooks (hook_dispatch.Hooks.deliver): False drops the delivery to
        # that key (counted there). None, the usual case, costs one test per message.
        self.deliver_hook: Callable[[str, Message, int], bool] | None = None
        self.peers: Peers | None = None  # set when this broker is a cluster node

    # What others may read.

    @property
    def subscription_count(self) -> int:
        return len(self._tree)

    @property
    def retained_count(self) -> int:
        return len(self._retained)

    def subscribers(self, topic: str) -> list[tuple[str, SubscriptionRecord]]:
        """The (key, record) pairs of the non-shared subscriptions matching ``topic``."""
        return self._tree.match(topic)[0]

    def shared_groups(self, topic: str) -> list[SharedGroup[SubscriptionRecord]]:
        """The shared groups matching ``topic`` (to read; the router changes them)."""
        return self._tree.match(topic)[1]

    def retained_topics(self, topic_filter: str) -> list[str]:
        """The topics of the retained messages matching ``topic_filter``."""
        return [topic for topic, _message in self._retained.match(topic_filter)]

    def retained_messages(self, topic_filter: str) -> list[tuple[str, Message]]:
        """The (topic, message) pairs of the retained messages matching ``topic_filter``."""
        return self._retained.match(topic_filter)

    def retained_message(self, topic: str) -> Message | None:
        """The retained message of ``topic``, if there is one."""
        return self._retained.get(topic)

    # Subscriptions.

    def subscribe(self, key: str, record: SubscriptionRecord) -> bool:
        """Add or replace ``key``'s subscription; True if it did not exist before."""
        is_new = self._tree.add(key, record.topic_filter, record)
        if is_new and self.peers is not None:
            self.peers.filter_added(record.topic_filter)
        return is_new

    def unsubscribe(self, key: str, topic_filter: str) -> None:
        if self._tree.remove(key, topic_filter) and self.peers is not None:
            self.peers.filter_removed(topic_filter)

    def drop_client(
        self, key: str, topic_filters: Iterable[str], unfinished: list[Outgoing], now: float
    ) -> None:
        """``key`` is gone: remove its subscriptions, and hand the shared-subscription
        messages it did not finish to other members (MQTT 5.0 section 4.8.2)."""
        tree = self._tree
        peers = self.peers
        for topic_filter in topic_filters:
            if tree.remove(key, topic_filter) and peers is not None:
                peers.filter_removed(topic_filter)
        for item in unfinished:
            self._publish_to_share(item, now)

    # Publishing.

    def publish(self, message: Message, now: float, forward: bool = True) -> int:
        """Deliver ``message`` to every matching local subscriber; returns how many got
        it. ``forward``: also hand it to the other cluster nodes, if there are any (not
        for one that came from them, nor for ``$SYS``)."""
        if forward and self.peers is not None:
            self.peers.forward(message, now)
        if self.observer is not None:
            self.observer(message)
        matches, groups = self._tree.match(message.topic)
        destinations = self.destinations
        sender = message.sender
        delivered = 0
        qos = message.qos
        # Deliveries by the QoS sent at: a QoS 0 message is sent at QoS 0 to everyone,
        # so it is counted once below, not per delivery (the fan-out hot path).
        sent = self._sent
        sent_bytes = self._sent_bytes
        size = len(message.payload)
        if matches:
            merged: dict[str, _Delivery] = {}
            for key, record in matches:
                if record.no_local and key == sender:
                    continue
                retain = message.retain and record.retain_as_published
                delivery = merged.get(key)
                if delivery is None:
                    merged[key] = _Delivery(record.qos, retain, record.identifier)
                else:
                    delivery.merge(record.qos, retain, record.identifier)
            readers = self.readers
            hook = self.deliver_hook
            for key, delivery in merged.items():
                destination = destinations.get(key)
                if destination is not None:
                    granted = delivery.qos
                    if hook is not None and not hook(
                        key, message, qos if qos < granted else granted
                    ):
                        continue
                    if readers is not None:
                        access = readers.get(key)
                        readable = False if access is None else access.may_read(message.topic)
                        if readable is not True:
                            if readable is None and access is not None:
                                # A plugin is deciding: delivered (in order) if it says yes.
                                access.defer_delivery(
                                    message.topic,
                                    _deliver_later(
                                        destination,
                                        message,
                                        min(qos, granted),
                                        delivery.retain,
                                        delivery.ids,
                                    ),
                                )
                                delivered += 1
                                if qos:
                                    sent_qos = min(qos, granted)
                                    sent[sent_qos] += 1
                                    sent_bytes[sent_qos] += size
                            elif self.stats is not None:
                                self.stats.message_dropped(
                                    DropReason.ACL_DENIED, key, message.topic
                                )
                            continue
                    sent_qos = qos if qos < granted else granted
                    destination.deliver(message, sent_qos, delivery.retain, delivery.ids, now)
                    delivered += 1
                    if qos:
                        sent[sent_qos] += 1
                        sent_bytes[sent_qos] += size
        if groups and self.peers is not None and self.peers.balances_shares:
            groups = []  # the cluster balances them: publish_to_group
        for group in groups:
            picked = self._pick_member(group, message.topic)
            if picked is None:
                continue
            key, record = picked
            destination = destinations.get(key)
            if destination is None:
                continue
            ids = () if record.identifier is None else (record.identifier,)
            retain = message.retain and record.retain_as_published
            sent_qos = min(message.qos, record.qos)
            if self.deliver_hook is not None and not self.deliver_hook(key, message, sent_qos):
                continue
            destination.deliver(message, sent_qos, retain, ids, now, record.topic_filter)
            delivered += 1
            if qos:
                sent[sent_qos] += 1
                sent_bytes[sent_qos] += size
        if not qos:
            sent[0] += delivered
            sent_bytes[0] += delivered * size
        return delivered

    def publish_to_group(self, message: Message, share_filter: str, now: float) -> int:
        """Deliver ``message`` to one member of the shared group ``share_filter``
        (``$share/{group}/{filter}``) here: the cluster chose this node for it. 0 if the
        group has no member here (any more) that may take it."""
        topic = message.topic
        for group in self._tree.match(topic)[1]:
            if f"$share/{group.name}/{group.topic_filter}" != share_filter:
                continue
            picked = self._pick_member(group, topic)
            if picked is None:
                return 0
            key, record = picked
            destination = self.destinations.get(key)
            if destination is None:
                return 0
            ids = () if record.identifier is None else (record.identifier,)
            retain = message.retain and record.retain_as_published
            qos = min(message.qos, record.qos)
            if self.deliver_hook is not None and not self.deliver_hook(key, message, qos):
                return 1  # taken here, and dropped for this member by the hook
            destination.deliver(message, qos, retain, ids, now, share_filter)
            self._sent[qos] += 1
            self._sent_bytes[qos] += len(message.payload)
            return 1
        return 0

    def _pick_member(
        self, group: SharedGroup[SubscriptionRecord], topic: str
    ) -> tuple[str, SubscriptionRecord] | None:
        """The member of a shared group to get ``topic``: one with room in its window if
        any, else any member (its session queues it)."""
        destinations = self.destinations

        def has_room(key: str, _record: SubscriptionRecord) -> bool:
            destination = destinations.get(key)
            return destination is not None and destination.has_room()

        readers = self.readers
        if readers is None:
            return group.pick(has_room) or group.pick()
        # Only members known to be allowed to read it (a member whose plugin answer is
        # still coming is passed over this time).
        return group.pick(
            lambda key, rec: _may_read(readers, key, topic) and has_room(key, rec)
        ) or group.pick(lambda key, _rec: _may_read(readers, key, topic))

    def _publish_to_share(self, item: Outgoing, now: float) -> None:
        """Hand a shared-subscription message its old member did not finish to another."""
        topic = item.message.topic
        _matches, groups = self._tree.match(topic)
        for group in groups:
            if f"$share/{group.name}/{group.topic_filter}" != item.share_group:
                continue
            picked = self._pick_member(group, topic)
            if picked is None:
                break
            key, record = picked
            destination = self.destinations.get(key)
            if destination is not None:
                qos = min(item.message.qos, record.qos)
                destination.deliver(
                    item.message, qos, item.retain, item.subscription_ids, now, item.share_group
                )
            return
        if self.peers is not None and item.share_group is not None:
            # No member here: the group may have members on other nodes.
            self.peers.share_handback(item.message, item.share_group, now)

    # Retained messages.

    def retain(self, message: Message) -> bool:
        """Keep (or, for an empty payload, delete) the retained message of its topic;
        False if it could not be kept (``max_retained_messages``)."""
        topic = message.topic
        if not message.payload:
            self.delete_retained(topic)
            return True
        if not self._retained.set(topic, message):
            return False
        # $-topics are the broker's own ($SYS), rebuilt after a restart.
        if self.log is not None and not topic.startswith("$"):
            self.log.retained_set(topic, message)
        return True

    def restore_retained(self, topic: str, message: Message) -> bool:
        """Put back a retained message a store kept, without recording it again."""
        return self._retained.set(topic, message)

    def delete_retained(self, topic: str) -> None:
        self._retained.delete(topic)
        if self.log is not None:
            self.log.retained_deleted(topic)

    def send_retained(
        self, key: str, destination: CatchUpTarget, record: SubscriptionRecord, now: float
    ) -> None:
        """Start the retained catch-up of a new subscription: ``destination`` pulls the
        matching retained messages (retain flag set) as it has room (catchup.py)."""
        topic_filter = record.topic_filter
        # No wildcard: only the topic of that very name can match (one lookup).
        wildcard = "+" in topic_filter or "#" in topic_filter
        if not wildcard and self._retained.get(topic_filter) is None:
            return
        walk = self._retained.walk(topic_filter)
        first = next(walk, None)
        if first is None:
            return  # nothing retained to catch up on
        ids = () if record.identifier is None else (record.identifier,)

        def deferred(access: ClientAccess, topic: str, message: Message, qos: int) -> None:
            access.defer_delivery(topic, _deliver_later(destination, message, qos, True, ids))

        catch_up = CatchUp(
            chain((first,), walk),
            key,
            topic_filter,
            record.qos,
            ids,
            self.readers,
            self.delete_retained,
            deferred,
            self.deliver_hook,
        )
        destination.catch_up(catch_up, now)
