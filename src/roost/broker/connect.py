"""CONNECT: what the broker accepts, on what terms, and the CONNACK that says so.

Pure functions over a decoded ``Connect`` and the configuration: no I/O, no sessions,
no authentication (that is asked afterwards, by the connection). ``connect_terms``
returns either the terms of the connection or a ``Refusal``; ``connack_for`` and
``refusal_connack`` build the bytes to answer with, at the client's protocol level.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from roost.codec import (
    MQTT_3_1,
    MQTT_5,
    Connack,
    ConnackReturnCode,
    Connect,
    ConnectReasonCode,
)

if TYPE_CHECKING:
    from roost.broker.config import BrokerConfig
    from roost.broker.limits import TopicLimits

NO_LIMIT = 1 << 30  # a client that states no Maximum Packet Size
# Session keys of the broker's own bridges ("$bridge/<name>"): no client may take one.
BRIDGE_KEY_PREFIX = "$bridge/"


@dataclass(slots=True, frozen=True)
class Refusal:
    """A CONNECT the broker refuses: the reason code, and why (for the log and MQTT 5)."""

    reason: ConnectReasonCode
    why: str


@dataclass(slots=True)
class ConnectTerms:
    """What an acceptable CONNECT gets, before its credentials are checked."""

    client_id: str
    assigned: bool  # the broker chose the client id (MQTT 5: Assigned Client Identifier)
    keep_alive: int
    server_keep_alive: int | None  # MQTT 5: the keep-alive the server imposes instead
    expiry_interval: int
    requested_expiry: int
    send_quota: int  # the most QoS 1/2 PUBLISHes in flight to the client
    maximum_packet_size: int  # the largest packet the client takes
    # Topic aliases the broker sends: min(the client's maximum, topic_alias_send_maximum).
    topic_aliases_sent: int = 0


def connect_terms(
    packet: Connect,
    config: BrokerConfig,
    limits: TopicLimits,
    *,
    allow_anonymous: bool,
    identity_source: str | None,
    identity: str | None,
    earlier_id: str,
) -> ConnectTerms | Refusal:
    """Check a CONNECT against the configuration, in the order clients expect the
    refusals. ``identity`` is the client certificate's (with ``identity_source`` set it
    replaces the CONNECT's username); ``earlier_id`` is the id assigned on an earlier
    pass over the same CONNECT (one that waited for authentication), or ''."""
    version = packet.protocol_level
    v5 = version == MQTT_5
    client_id = packet.client_id
    assigned = False
    if not client_id:
        if version == MQTT_3_1 or (not v5 and not packet.clean_start):
            return Refusal(ConnectReasonCode.CLIENT_IDENTIFIER_NOT_VALID, "empty client id")
        client_id = earlier_id or f"auto-{uuid.uuid4()}"
        assigned = True
    if client_id.startswith(BRIDGE_KEY_PREFIX):
        # The broker's own bridges keep their sessions under these ids (docs/bridges.md).
        return Refusal(ConnectReasonCode.CLIENT_IDENTIFIER_NOT_VALID, "client id is reserved")
    if len(client_id.encode()) > config.max_client_id_length:  # bytes, as documented
        return Refusal(ConnectReasonCode.CLIENT_IDENTIFIER_NOT_VALID, "client id too long")
    if identity_source:
        # The certificate names the client; a username in CONNECT does not count.
        packet.username = identity
        if identity is None:
            return Refusal(ConnectReasonCode.NOT_AUTHORIZED, "no client certificate identity")
    if packet.username is None and packet.authentication_method is None and not allow_anonymous:
        return Refusal(ConnectReasonCode.NOT_AUTHORIZED, "anonymous access not allowed")
    keep_alive = packet.keep_alive
    server_keep_alive = None
    if keep_alive > config.max_keep_alive or (keep_alive == 0 and config.max_keep_alive < 65535):
        if not v5:
            # 3.1.x cannot be told another keep-alive; refuse as Mosquitto does.
            return Refusal(ConnectReasonCode.CLIENT_IDENTIFIER_NOT_VALID, "keep alive too long")
        keep_alive = server_keep_alive = config.max_keep_alive
    will = packet.will
    if will is not None:
        if will.qos > config.maximum_qos:
            # [MQTT-3.2.2-12]; 3.1.x has no return code for it (see _V3_UNANSWERED).
            return Refusal(ConnectReasonCode.QOS_NOT_SUPPORTED, "will QoS not supported")
        if will.retain and not config.retain_available:
            # [MQTT-3.2.2-13]; likewise closed without a CONNACK at 3.1.x.
            return Refusal(ConnectReasonCode.RETAIN_NOT_SUPPORTED, "will retain not supported")
        if len(will.topic) > limits.gate:
            why = limits.topic_refusal(will.topic)
            if why is not None:
                # A will is published like any PUBLISH, so its topic meets the same limits.
                return Refusal(ConnectReasonCode.TOPIC_NAME_INVALID, f"will {why}")
    send_quota = config.max_inflight_messages
    maximum_packet_size = NO_LIMIT
    topic_aliases_sent = 0
    if v5:
        # 0 or absent: the client takes no aliases [MQTT-3.1.2-27]; never above [MQTT-3.3.2-11].
        topic_aliases_sent = min(packet.topic_alias_maximum or 0, config.topic_alias_send_maximum)
        if packet.receive_maximum is not None:
            send_quota = min(packet.receive_maximum, config.max_inflight_messages)
        if packet.maximum_packet_size is not None:
            maximum_packet_size = packet.maximum_packet_size
        requested = packet.session_expiry_interval or 0
        expiry = min(requested, config.max_session_expiry_interval)
    else:
        requested = expiry = 0 if packet.clean_start else config.persistent_session_expiry
    return ConnectTerms(
        client_id,
        assigned,
        keep_alive,
        server_keep_alive,
        expiry,
        requested,
        send_quota,
        maximum_packet_size,
        topic_aliases_sent,
    )


def connack_for(
    version: int,
    present: bool,
    terms: ConnectTerms,
    config: BrokerConfig,
    authentication_method: str | None,
    authentication_data: bytes | None,
) -> bytes:
    """The CONNACK that accepts a connection, fitted to the client's packet size limit."""
    if version != MQTT_5:
        return Connack(present, ConnackReturnCode.ACCEPTED).encode(version)
    expiry = terms.expiry_interval
    connack = Connack(
        present,
        ConnectReasonCode.SUCCESS,
        session_expiry_interval=expiry if expiry != terms.requested_expiry else None,
        receive_maximum=config.receive_maximum,
        maximum_qos=config.maximum_qos if config.maximum_qos < 2 else None,
        retain_available=int(config.retain_available),
        maximum_packet_size=config.max_packet_size,
        assigned_client_identifier=terms.client_id if terms.assigned else None,
        topic_alias_maximum=config.topic_alias_maximum,
        wildcard_subscription_available=1,
        subscription_identifier_available=1,
        shared_subscription_available=1,
        server_keep_alive=terms.server_keep_alive,
        authentication_method=authentication_method,
        authentication_data=authentication_data,
    )
    data = connack.encode(MQTT_5)
    if len(data) > terms.maximum_packet_size:
        # [MQTT-3.1.2-24]: a client with a tiny Maximum Packet Size still gets its
        # CONNACK; the properties that only restate their defaults go first.
        connack.retain_available = None if config.retain_available else 0
        connack.wildcard_subscription_available = None
        connack.subscription_identifier_available = None
        connack.shared_subscription_available = None
        data = connack.encode(MQTT_5)
    return data


def refusal_connack(packet: Connect, refusal: Refusal) -> bytes | None:
    """The CONNACK that refuses ``packet``, or None where 3.1.x has no code for it (the
    connection is then closed without one)."""
    reason = refusal.reason
    if packet.protocol_level == MQTT_5:
        data = Connack(False, reason, reason_string=refusal.why).encode(MQTT_5)
        limit = packet.maximum_packet_size
        if limit is not None and len(data) > limit:
            # The reason string goes first if the client could not take it [MQTT-3.2.2-19].
            data = Connack(False, reason).encode(MQTT_5)
        return data
    if reason in _V3_UNANSWERED:
        return None
    code = _V3_CODES.get(reason, ConnackReturnCode.NOT_AUTHORIZED)
    return Connack(False, code).encode(packet.protocol_level)


def backend_refusal(code: int, why: str) -> Refusal:
    """An authentication backend's refusal; anything not a failure code is 0x87."""
    try:
        reason = ConnectReasonCode(code)
    except ValueError:
        reason = ConnectReasonCode.NOT_AUTHORIZED
    if reason < 0x80:
        reason = ConnectReasonCode.NOT_AUTHORIZED
    return Refusal(reason, why)


_V3_CODES = {
    ConnectReasonCode.CLIENT_IDENTIFIER_NOT_VALID: ConnackReturnCode.IDENTIFIER_REJECTED,
    ConnectReasonCode.BAD_USERNAME_OR_PASSWORD: ConnackReturnCode.BAD_USERNAME_OR_PASSWORD,
    ConnectReasonCode.NOT_AUTHORIZED: ConnackReturnCode.NOT_AUTHORIZED,
    ConnectReasonCode.BAD_AUTHENTICATION_METHOD: ConnackReturnCode.NOT_AUTHORIZED,
    ConnectReasonCode.SERVER_UNAVAILABLE: ConnackReturnCode.SERVER_UNAVAILABLE,
    ConnectReasonCode.SERVER_BUSY: ConnackReturnCode.SERVER_UNAVAILABLE,
    # Over max_connections or max_connection_rate: 3.1.x's nearest, as Mosquitto answers.
    ConnectReasonCode.QUOTA_EXCEEDED: ConnackReturnCode.SERVER_UNAVAILABLE,
    ConnectReasonCode.CONNECTION_RATE_EXCEEDED: ConnackReturnCode.SERVER_UNAVAILABLE,
}

# Refusals that no 3.1.x return code describes: the connection is closed without a
# CONNACK (3.1.1 [MQTT-3.2.2-6]), as 3.1.x closes a PUBLISH above these limits.
_V3_UNANSWERED = frozenset(
    (
        ConnectReasonCode.QOS_NOT_SUPPORTED,
        ConnectReasonCode.RETAIN_NOT_SUPPORTED,
        ConnectReasonCode.TOPIC_NAME_INVALID,
    )
)
