"""Rebuild a session from what a store kept, and take a session's state the same way
(``snapshot``: what a cluster node hands over to the node that takes the session).

Every restored session starts disconnected. One whose client was connected when the
broker stopped without a clean shutdown (a crash: its row has no expiry deadline) is
treated as if its connection closed now, without DISCONNECT: its expiry starts now and
its will, if it had one, is due after its delay [MQTT-3.1.2-8].

The registry (``registry.py``) calls this and puts the session in its place; the
router indexes its subscriptions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from roost.broker.persistence.store import StoredDelivery, StoredSession
from roost.broker.records import Outgoing
from roost.broker.sessions import Session

if TYPE_CHECKING:
    from roost.broker.config import BrokerConfig
    from roost.broker.persistence.store import Store
    from roost.broker.stats import Stats


def restored_session(
    stored: StoredSession, config: BrokerConfig, store: Store, stats: Stats, now: float
) -> tuple[Session, bool]:
    """The session ``stored`` describes, and whether its client was connected when the
    broker stopped (then its expiry deadline, and its will's, start now)."""
    session = Session(stored.client_id, config, stats)
    session.store = store
    session.expiry_interval = stored.expiry_interval
    session.expires_at = stored.expires_at
    session.will = stored.will
    session.will_at = stored.will_at
    session.identity = stored.identity
    was_connected = stored.expires_at is None
    if was_connected:
        session.expires_at = now + stored.expiry_interval
        if session.will is not None:
            session.will_at = now + (session.will.will_delay_interval or 0)
    for record in stored.subscriptions:
        session.subscriptions[record.topic_filter] = record
    queued = []
    inflight = []
    for delivery in stored.deliveries:
        item = Outgoing(
            delivery.message,
            delivery.qos,
            delivery.retain,
            delivery.subscription_ids,
            delivery.share_group,
        )
        item.store_id = delivery.store_id
        if delivery.packet_id is None:
            queued.append(item)
        else:
            item.released = delivery.released
            inflight.append((delivery.packet_id, item))
    session.restore(queued, inflight, stored.receive_ids)
    return session, was_connected


def snapshot(session: Session) -> StoredSession:
    """``session``'s state as a store would hand it back: subscriptions, messages queued
    and in flight (with their packet ids and QoS 2 release state), QoS 2 ids received.
    Its will and identity are left out: the connection that resumes it brings its own."""
    deliveries = [
        StoredDelivery(
            0,
            item.message,
            item.qos,
            item.retain,
            item.subscription_ids,
            item.share_group,
            packet_id,
            item.released,
        )
        for packet_id, item in session.inflight.items()
    ]
    deliveries.extend(
        StoredDelivery(
            0,
            item.message,
            item.qos,
            item.retain,
            item.subscription_ids,
            item.share_group,
            None,
            False,
        )
        for item in session.queue
    )
    return StoredSession(
        session.client_id,
        session.expiry_interval,
        None,
        None,
        None,
        None,
        list(session.subscriptions.values()),
        deliveries,
        sorted(session.awaiting_release),
    )
