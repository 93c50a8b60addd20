"""Rebuild the broker's sessions, subscriptions and retained messages from a store.

Every restored session starts disconnected. One whose client was connected when the
broker stopped without a clean shutdown (a crash: its row has no expiry deadline) is
treated as if its connection closed now, without DISCONNECT: its expiry starts now and
its will, if it had one, is due after its delay [MQTT-3.1.2-8].
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from roost.broker.sessions import Outgoing, Session

if TYPE_CHECKING:
    from roost.broker.persistence.store import StoredState
    from roost.broker.server import Broker

log = logging.getLogger("roost.broker")


def restore(broker: Broker, state: StoredState, now: float) -> None:
    store = broker.store
    router = broker.router
    messages = 0
    for stored in state.sessions:
        session = Session(stored.client_id, broker.config)
        session.store = store
        session.expiry_interval = stored.expiry_interval
        session.expires_at = stored.expires_at
        session.will = stored.will
        session.will_at = stored.will_at
        was_connected = stored.expires_at is None
        if was_connected:
            session.expires_at = now + stored.expiry_interval
            if session.will is not None:
                session.will_at = now + (session.will.will_delay_interval or 0)
        for record in stored.subscriptions:
            router.tree.add(record.client_id, record.topic_filter, record)
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
        messages += len(stored.deliveries)
        session.restore(queued, inflight, stored.receive_ids)
        broker.sessions[session.client_id] = session
        broker.offline.add(session)
        if was_connected:
            store.session_saved(session)
    for topic, message in state.retained:
        if not router.retained.set(topic, message):
            # max_retained_messages was lowered since: the store must not keep it either.
            store.retained_deleted(topic)
    log.info(
        "Restored %d sessions, %d queued or in-flight messages and %d retained messages.",
        len(state.sessions),
        messages,
        len(router.retained),
    )
