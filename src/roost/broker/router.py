"""The publish path: match a message's topic, merge per client, deliver.

Overlapping subscriptions of one client are merged into one delivery at the highest
granted QoS with every matching subscription identifier (MQTT 5.0 section 4.8.1 and
[MQTT-3.3.4-3]); each shared group delivers to one member.
"""

from __future__ import annotations

from roost.broker.message import Message
from roost.broker.retained import RetainedStore
from roost.broker.sessions import Outgoing, Session, SubscriptionRecord
from roost.broker.subscriptions import SubscriptionTree


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


class Router:
    __slots__ = ("retained", "sessions", "tree")

    def __init__(self, sessions: dict[str, Session], max_retained_messages: int) -> None:
        self.sessions = sessions
        self.tree: SubscriptionTree[SubscriptionRecord] = SubscriptionTree()
        self.retained: RetainedStore[Message] = RetainedStore(max_retained_messages)

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
            for client_id, delivery in merged.items():
                session = sessions.get(client_id)
                if session is not None:
                    granted = delivery.qos
                    session.deliver(
                        message,
                        qos if qos < granted else granted,
                        delivery.retain,
                        delivery.ids,
                        now,
                    )
                    delivered += 1
        for group in groups:
            picked = group.pick(lambda cid, rec: _has_room(cid, rec, sessions)) or group.pick()
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
        if not message.payload:
            self.retained.delete(message.topic)
            return True
        return self.retained.set(message.topic, message)

    def publish_to_share(self, item: Outgoing, now: float) -> None:
        """Hand a shared-subscription message its old member did not finish to another."""
        _matches, groups = self.tree.match(item.message.topic)
        for group in groups:
            if f"$share/{group.name}/{group.topic_filter}" != item.share_group:
                continue
            picked = group.pick(lambda cid, rec: _has_room(cid, rec, self.sessions))
            picked = picked or group.pick()
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
