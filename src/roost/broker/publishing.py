"""PUBLISH and its acknowledgements, as the broker handles them from a client.

Each handler takes the connection the packet came on (a ``ports.ClientSide``), the
packet and the loop time; ``connection.py`` dispatches to them by packet type. QoS 1
and 2 acknowledgements wait for the store's commit when the packet changed durable
state ("acknowledged means durable").

A PUBLISH that passes every check goes through the ``on_publish`` hooks (if any; see
docs/hooks.md), which may rewrite or drop it; an async one pauses this connection
until it answers, as an authorization plugin does, so its packets stay in order.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from roost.broker.hooks import Drop
from roost.broker.message import Message
from roost.codec import MQTT_5, DisconnectReasonCode, PubackReasonCode

if TYPE_CHECKING:
    from roost.broker.ports import ClientSide
    from roost.codec import Puback, Pubcomp, Publish, Pubrec, Pubrel

log = logging.getLogger("roost.broker")

# A PUBLISH the ACL, a plugin or the $-topic rule refused (MQTT 3.1.1 cannot say no:
# acknowledged, not delivered).
_DENIED = Drop("not authorized", PubackReasonCode.NOT_AUTHORIZED)


def on_publish(conn: ClientSide, packet: Publish, now: float) -> None:
    host = conn.host
    config = host.config
    session = conn.session
    assert session is not None  # noqa: S101  (the state machine only passes PUBLISH after CONNECT)
    limits = host.topic_limits
    if len(packet.topic) > limits.gate:
        why = limits.topic_refusal(packet.topic)
        if why is not None:
            _publish_refused(conn, packet, why)
            return
    access = conn.access
    if access is None:
        # Nothing restricts this client but the $-topic rule.
        allowed = packet.topic[:1] != "$" or host.auth.sys_publish_allowed(packet.topic)
    else:
        decision = access.may_write(packet.topic)
        if not isinstance(decision, bool):
            # A plugin is deciding: handle this PUBLISH again once it has (cached).
            conn.wait_for(decision, lambda _: on_publish(conn, packet, conn.host.now()))
            return
        allowed = decision
    # Here, not first: a PUBLISH handled again after a plugin's answer counts once.
    rate = conn.publish_rate
    if rate is not None and not rate.take(now):
        conn.disconnect(DisconnectReasonCode.MESSAGE_RATE_TOO_HIGH, "message rate too high")
        return
    qos = packet.qos
    stats = host.stats
    stats.received_by_qos[qos] += 1  # the codec refused QoS 3
    stats.received_bytes_by_qos[qos] += len(packet.payload)
    if qos > config.maximum_qos:
        conn.disconnect(DisconnectReasonCode.QOS_NOT_SUPPORTED, "QoS not supported")
        return
    if packet.retain and not config.retain_available:
        conn.disconnect(DisconnectReasonCode.RETAIN_NOT_SUPPORTED, "retain not supported")
        return
    packet_id = packet.packet_id
    # What the store had recorded before this PUBLISH; only an acknowledgement can wait
    # for a commit, so QoS 0 skips the question.
    changes = host.changes() if qos else 0
    if qos:
        awaiting = session.awaiting_release
        if qos == 2 and packet_id in awaiting:
            # A resend of a message already accepted: acknowledge, do not deliver again.
            # Not before the first PUBREC, which may still wait for its commit.
            if session.store is not None:
                host.hold(conn)
            conn.send(conn.protocol.publish_ack(2, packet_id))
            return
        # MQTT 5 clients were told the Receive Maximum in CONNACK; a QoS 1 PUBLISH is
        # unacknowledged until our PUBACK, so it counts as well. MQTT 3.1.x has no such
        # limit and a correct client may have any number of ids unreleased: the set is
        # bounded by the id space (65535; a PUBLISH reusing one is the duplicate above).
        # Pausing reading instead would deadlock, since the PUBRELs that release ids
        # come behind the PUBLISHes left unread; what 3.1.x clients make us owe is
        # bounded by not reading once held_limit acknowledgements wait for the store.
        if conn.version == MQTT_5 and len(awaiting) >= config.receive_maximum:
            conn.disconnect(
                DisconnectReasonCode.RECEIVE_MAXIMUM_EXCEEDED, "receive maximum exceeded"
            )
            return
    if not allowed:
        # By the ACL or plugin, or a $-topic (the broker's own, e.g. $SYS) not allowed
        # by allow_sys_publish.
        log.warning("Client %s denied PUBLISH to %r.", conn.client_id, packet.topic)
        _route(conn, packet, _DENIED, changes, now)
        return
    message = Message.from_publish(packet, conn.client_id, now)
    hook = host.hooks.publish
    if hook is None:
        _route(conn, packet, message, changes, now)
        return
    identity = session.identity
    assert identity is not None  # noqa: S101  (set when the session was attached)
    verdict = hook(identity.client, message)
    if isinstance(verdict, Message | Drop):
        _route(conn, packet, verdict, changes, now)
        return
    # An async hook is deciding: nothing is recorded yet, so if the connection is lost
    # meanwhile the client's resend starts over. Its later packets wait behind this one.
    conn.wait_for(verdict, lambda answer: _route(conn, packet, answer, changes, conn.host.now()))


def _route(conn: ClientSide, packet: Publish, verdict: object, changes: int, now: float) -> None:
    """Route the message (or not, for a Drop) and acknowledge the PUBLISH."""
    host = conn.host
    session = conn.session
    assert session is not None  # noqa: S101
    qos = packet.qos
    packet_id = packet.packet_id
    if isinstance(verdict, Drop):
        if qos == 2 and (verdict.reason_code < 0x80 or conn.version != MQTT_5):
            # Acknowledged as received: the exchange goes on to PUBREL as usual (an MQTT
            # 5 PUBREC >= 0x80 ends it there, the id free again [MQTT-4.3.3-9]).
            session.qos2_received(packet_id)
        if qos and host.changes() != changes:
            host.hold(conn)
        _acknowledge(conn, qos, packet_id, verdict.reason_code)
        return
    assert isinstance(verdict, Message)  # noqa: S101  (Hooks.publish answers nothing else)
    if qos == 2:
        session.qos2_received(packet_id)
    delivered = host.publish(verdict, now)
    if qos:
        if host.changes() != changes:
            # Acknowledged means durable: the PUBACK/PUBREC waits for the commit.
            host.hold(conn)
        _acknowledge(
            conn,
            qos,
            packet_id,
            PubackReasonCode.SUCCESS if delivered else PubackReasonCode.NO_MATCHING_SUBSCRIBERS,
        )


def _publish_refused(conn: ClientSide, packet: Publish, why: str) -> None:
    """A PUBLISH over max_topic_length or max_topic_levels: never delivered."""
    log.warning("Client %s PUBLISH refused: %s.", conn.client_id, why)
    if packet.qos and conn.version == MQTT_5:
        # 0x90: the topic is well formed but this server does not accept it. The
        # exchange ends there (a PUBREC >= 0x80 frees the id [MQTT-4.3.3-9]).
        _acknowledge(conn, packet.qos, packet.packet_id, PubackReasonCode.TOPIC_NAME_INVALID)
        return
    # QoS 0 has no acknowledgement to refuse with, and 3.1.x no reason codes: an
    # acknowledged and dropped message would be lost without a word.
    conn.disconnect(DisconnectReasonCode.TOPIC_NAME_INVALID, why)


def _acknowledge(conn: ClientSide, qos: int, packet_id: int, reason: int) -> None:
    if qos:
        conn.send(conn.protocol.publish_ack(qos, packet_id, reason))


def on_pubrel(conn: ClientSide, packet: Pubrel, now: float) -> None:
    session = conn.session
    assert session is not None  # noqa: S101
    if session.qos2_released(packet.packet_id):
        if session.store is not None:
            # Until the id's removal is durable, PUBCOMP must wait: after a crash
            # the restored id would make us drop the client's next message with it.
            conn.host.hold(conn)
        conn.send(conn.protocol.pubcomp(packet.packet_id))
    else:
        conn.send(conn.protocol.pubcomp(packet.packet_id, found=False))


def on_puback(conn: ClientSide, packet: Puback, now: float) -> None:
    assert conn.session is not None  # noqa: S101
    conn.session.puback(packet.packet_id, now)


def on_pubrec(conn: ClientSide, packet: Pubrec, now: float) -> None:
    assert conn.session is not None  # noqa: S101
    session = conn.session
    if session.pubrec(packet.packet_id, packet.reason_code >= 0x80, now):
        conn.send(conn.protocol.pubrel(packet.packet_id))
    elif packet.reason_code < 0x80:
        conn.send(conn.protocol.pubrel(packet.packet_id, found=False))


def on_pubcomp(conn: ClientSide, packet: Pubcomp, now: float) -> None:
    assert conn.session is not None  # noqa: S101
    conn.session.pubcomp(packet.packet_id, now)
