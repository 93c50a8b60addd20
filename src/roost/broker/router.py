"""The publish path: match a message's topic, merge per client, deliver.

Overlapping subscriptions of one client are merged into one delivery at the highest
granted QoS with every matching subscription identifier (MQTT 5.0 section 4.8.1 and
[MQTT-3.3.4-3]); each shared group delivers to one member.

With an ACL file or an authorizing plugin, ``readers`` maps client ids to what they may
do, and each delivery first checks read access to the topic (a cached answer, one dict
lookup); a session without an entry there gets nothing (fail closed). With neither,
``readers`` is None and nothing is checked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from roost.broker.message import Message
from roost.broker.retained import RetainedStore
from roost.broker.sessions import Outgoing, Session, SubscriptionRecord
from roost.broker.subscriptions import SharedGroup, SubscriptionTree

if TYPE_CHECKING:
    from collections.abc import Callable

    from roost.broker.auth.access import ClientAccess
    from roost.broker.persistence.store import Store


def _has_room(client_id: str, record: SubscriptionRecord, sessions: dict[str, Session]) -> bool:
    session = sessions.get(client_id)
    if session is None or session.connection is None:
        return False
    conn = session.connection
    return conn.writable and len(session.inflight) < conn.send_quota


class _Delivery:
    """One client's merged view of its overlapping subscriptions to a topic."""

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


def _may_read(readers: dict[str, ClientAccess], client_id: str, topic: str) -> bool:
    access = readers.get(client_id)
    return access is not None and access.may_read(topic) is True


def deliver_later(
    session: Session, message: Message, qos: int, retain: bool, ids: tuple[int, ...]
) -> Callable[[float], None]:
    """A delivery to make once read access is known (``ClientAccess.defer_delivery``)."""

    def deliver(now: float) -> None:
        session.deliver(message, qos, retain, ids, now)

    return deliver


class Router:
    __slots__ = ("readers", "retained", "sessions", "store", "tree")

    def __init__(self, sessions: dict[str, Session], max_retained_messages: int) -> None:
        self.sessions = sessions
        self.tree: SubscriptionTree[SubscriptionRecord] = SubscriptionTree()
        self.retained: RetainedStore[Message] = RetainedStore(max_retained_messages)
        self.store: Store | None = None  # where retained messages are kept, if durable
        self.readers: dict[str, ClientAccess] | None = None  # set when access is restricted

    def publish(self, message: Message, now: float) -> int:
        """Deliver ``message`` to every matching subscriber; returns how many got it."""
        matches, groups = self.tree.match(message.topic)
        sessions = self.sessions
        sender = message.sender
        delivered = 0
        if matches:
            merged: dict[str, _Delivery] = {}
            for client_id, record in matches:
                if record.no_local and client_id == sender:
                    continue
                retain = message.retain and record.retain_as_published
                delivery = merged.get(client_id)
                if delivery is None:
                    merged[client_id] = _Delivery(record.qos, retain, record.identifier)
                else:
                    delivery.merge(record.qos, retain, record.identifier)
            qos = message.qos
            readers = self.readers
            for client_id, delivery in merged.items():
                session = sessions.get(client_id)
                if session is not None:
                    granted = delivery.qos
                    if readers is not None:
                        access = readers.get(client_id)
                        readable = False if access is None else access.may_read(message.topic)
                        if readable is not True:
                            if readable is None and access is not None:
                                # A plugin is deciding: delivered (in order) if it says yes.
                                access.defer_delivery(
                                    message.topic,
                                    deliver_later(
                                        session,
                                        message,
                                        min(qos, granted),
                                        delivery.retain,
                                        delivery.ids,
                                    ),
                                )
                                delivered += 1
                            continue
                    session.deliver(
                        message,
                        qos if qos < granted else granted,
                        delivery.retain,
                        delivery.ids,
                        now,
                    )
                    delivered += 1
        for group in groups:
            picked = self._pick_member(group, message.topic)
            if picked is None:
                continue
            client_id, record = picked
            session = sessions.get(client_id)
            if session is None:
                continue
            ids = () if record.identifier is None else (record.identifier,)
            retain = message.retain and record.retain_as_published
            session.deliver(
                message, min(message.qos, record.qos), retain, ids, now, record.topic_filter
            )
            delivered += 1
        return delivered

    def store_retained(self, message: Message) -> bool:
        """Keep (or, for an empty payload, delete) the retained message of its topic."""
        topic = message.topic
        if not message.payload:
            self.delete_retained(topic)
            return True
        if not self.retained.set(topic, message):
            return False
        # $-topics are the broker's own ($SYS), rebuilt after a restart.
        if self.store is not None and not topic.startswith("$"):
            self.store.retained_set(topic, message)
        return True

    def delete_retained(self, topic: str) -> None:
        self.retained.delete(topic)
        if self.store is not None:
            self.store.retained_deleted(topic)

    def _pick_member(
        self, group: SharedGroup[SubscriptionRecord], topic: str
    ) -> tuple[str, SubscriptionRecord] | None:
        """The member of a shared group to get ``topic``: one with room in its window if
        any, else any member (its session queues it)."""
        sessions = self.sessions
        readers = self.readers
        if readers is None:
            return group.pick(lambda cid, rec: _has_room(cid, rec, sessions)) or group.pick()
        # Only members known to be allowed to read it (a member whose plugin answer is
        # still coming is passed over this time).
        return group.pick(
            lambda cid, rec: _may_read(readers, cid, topic) and _has_room(cid, rec, sessions)
        ) or group.pick(lambda cid, rec: _may_read(readers, cid, topic))

    def publish_to_share(self, item: Outgoing, now: float) -> None:
        """Hand a shared-subscription message its old member did not finish to another."""
        topic = item.message.topic
        _matches, groups = self.tree.match(topic)
        for group in groups:
            if f"$share/{group.name}/{group.topic_filter}" != item.share_group:
                continue
            picked = self._pick_member(group, topic)
            if picked is None:
                return
            client_id, record = picked
            session = self.sessions.get(client_id)
            if session is not None:
                qos = min(item.message.qos, record.qos)
                session.deliver(
                    item.message, qos, item.retain, item.subscription_ids, now, item.share_group
                )
            return
