"""SUBSCRIBE and UNSUBSCRIBE, as the broker handles them from a client.

Each filter is checked against the topic limits, the client's access and its
subscription quota; granted ones go to the router (through the host), then the SUBACK
is sent, then the retained catch-ups of the new subscriptions start (their messages go
out after the SUBACK, as the client has room: catchup.py).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from roost.broker.records import SubscriptionRecord
from roost.codec import MQTT_5, SubackReasonCode, UnsubackReasonCode
from roost.protocol.topics import parse_shared

if TYPE_CHECKING:
    from roost.broker.ports import ClientSide
    from roost.codec import Subscribe, Unsubscribe

log = logging.getLogger("roost.broker")


def on_subscribe(conn: ClientSide, packet: Subscribe, now: float) -> None:
    session = conn.session
    assert session is not None  # noqa: S101
    access = conn.access
    host = conn.host
    limits = host.topic_limits
    if access is not None:
        decisions = [
            access.may_subscribe(_inner(sub.topic_filter))
            for sub in packet.subscriptions
            if limits.filter_refusal(sub.topic_filter) is None  # not worth asking
        ]
        undecided = [decision for decision in decisions if not isinstance(decision, bool)]
        if undecided:
            # A plugin is deciding: handle this SUBSCRIBE again once it has (cached).
            answers = asyncio.gather(*undecided)
            conn.wait_for(answers, lambda _: on_subscribe(conn, packet, conn.host.now()))
            return
    maximum_qos = host.config.maximum_qos
    max_subscriptions = host.config.max_subscriptions_per_client
    v5 = conn.version == MQTT_5
    codes: list[int] = []
    retained_to_send: list[SubscriptionRecord] = []
    for sub in packet.subscriptions:
        why = limits.filter_refusal(sub.topic_filter)
        if why is not None:
            log.warning("Client %s SUBSCRIBE refused: %s.", conn.client_id, why)
            codes.append(SubackReasonCode.TOPIC_FILTER_INVALID if v5 else 0x80)
            continue
        group, inner = parse_shared(sub.topic_filter)
        if access is not None and access.may_subscribe(inner) is not True:
            # Refused in the SUBACK, not silently accepted as Mosquitto does.
            log.warning("Client %s denied SUBSCRIBE to %r.", conn.client_id, sub.topic_filter)
            codes.append(SubackReasonCode.NOT_AUTHORIZED if v5 else 0x80)
            continue
        if (
            max_subscriptions
            and len(session.subscriptions) >= max_subscriptions
            and sub.topic_filter not in session.subscriptions
        ):
            log.warning(
                "Client %s SUBSCRIBE refused: over max_subscriptions_per_client (%d).",
                conn.client_id,
                max_subscriptions,
            )
            codes.append(SubackReasonCode.QUOTA_EXCEEDED if v5 else 0x80)
            continue
        granted = min(sub.qos, maximum_qos)
        # A bridge that said so in its CONNECT (try_private) gets, as from Mosquitto,
        # none of its own messages back (or two bridged brokers would loop them) and
        # the retain flag as published (the far broker keeps retained messages too).
        record = SubscriptionRecord(
            conn.client_id,
            sub.topic_filter,
            granted,
            sub.no_local or conn.bridge,
            sub.retain_as_published or conn.bridge,
            sub.retain_handling,
            packet.subscription_identifier,
            group,
        )
        is_new = host.subscribe(session, record)
        codes.append(granted)
        if group is None and (sub.retain_handling == 0 or (sub.retain_handling == 1 and is_new)):
            retained_to_send.append(record)
    if session.store is not None:
        host.hold(conn)
    host.hold_subscribed(conn)
    conn.send(conn.protocol.suback(packet.packet_id, codes))
    for record in retained_to_send:
        host.send_retained(session, record, now)
    conn.flush_burst()


def on_unsubscribe(conn: ClientSide, packet: Unsubscribe, now: float) -> None:
    session = conn.session
    assert session is not None  # noqa: S101
    host = conn.host
    codes = [
        UnsubackReasonCode.SUCCESS
        if host.unsubscribe(session, topic_filter)
        else UnsubackReasonCode.NO_SUBSCRIPTION_EXISTED
        for topic_filter in packet.topic_filters
    ]
    # A retained catch-up of a filter just unsubscribed is dropped: what queued
    # behind it may go now.
    session.pump(now)
    if session.store is not None:
        host.hold(conn)
    conn.send(conn.protocol.unsuback(packet.packet_id, codes))


def _inner(topic_filter: str) -> str:
    """What a subscription filter reaches: of a shared one, the filter after the group."""
    return parse_shared(topic_filter)[1]
