"""MQTT 5 properties (MQTT 5.0 section 2.2.2): the table, decoding and encoding.

Packets keep properties as flat attributes; this module maps property identifiers to
those attribute names, per packet kind, and checks what may appear where and how often.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import IntEnum
from typing import Any

from roost.codec.errors import MalformedPacket, ProtocolError, TopicAliasInvalid
from roost.codec.primitives import (
    Buffer,
    encode_binary,
    encode_u16,
    encode_u32,
    encode_utf8,
    encode_varint,
    read_binary,
    read_byte,
    read_u16,
    read_u32,
    read_utf8,
    read_varint,
)


class PropertyId(IntEnum):
    """The identifier byte of each MQTT 5 property, as it appears on the wire."""

    PAYLOAD_FORMAT_INDICATOR = 0x01
    MESSAGE_EXPIRY_INTERVAL = 0x02
    CONTENT_TYPE = 0x03
    RESPONSE_TOPIC = 0x08
    CORRELATION_DATA = 0x09
    SUBSCRIPTION_IDENTIFIER = 0x0B
    SESSION_EXPIRY_INTERVAL = 0x11
    ASSIGNED_CLIENT_IDENTIFIER = 0x12
    SERVER_KEEP_ALIVE = 0x13
    AUTHENTICATION_METHOD = 0x15
    AUTHENTICATION_DATA = 0x16
    REQUEST_PROBLEM_INFORMATION = 0x17
    WILL_DELAY_INTERVAL = 0x18
    REQUEST_RESPONSE_INFORMATION = 0x19
    RESPONSE_INFORMATION = 0x1A
    SERVER_REFERENCE = 0x1C
    REASON_STRING = 0x1F
    RECEIVE_MAXIMUM = 0x21
    TOPIC_ALIAS_MAXIMUM = 0x22
    TOPIC_ALIAS = 0x23
    MAXIMUM_QOS = 0x24
    RETAIN_AVAILABLE = 0x25
    USER_PROPERTY = 0x26
    MAXIMUM_PACKET_SIZE = 0x27
    WILDCARD_SUBSCRIPTION_AVAILABLE = 0x28
    SUBSCRIPTION_IDENTIFIER_AVAILABLE = 0x29
    SHARED_SUBSCRIPTION_AVAILABLE = 0x2A


P = PropertyId

# Data types of section 2.2.2.2.
BYTE, U16, U32, VARINT, UTF8, BINARY, PAIR = range(7)

KIND: dict[int, int] = {
    P.PAYLOAD_FORMAT_INDICATOR: BYTE,
    P.MESSAGE_EXPIRY_INTERVAL: U32,
    P.CONTENT_TYPE: UTF8,
    P.RESPONSE_TOPIC: UTF8,
    P.CORRELATION_DATA: BINARY,
    P.SUBSCRIPTION_IDENTIFIER: VARINT,
    P.SESSION_EXPIRY_INTERVAL: U32,
    P.ASSIGNED_CLIENT_IDENTIFIER: UTF8,
    P.SERVER_KEEP_ALIVE: U16,
    P.AUTHENTICATION_METHOD: UTF8,
    P.AUTHENTICATION_DATA: BINARY,
    P.REQUEST_PROBLEM_INFORMATION: BYTE,
    P.WILL_DELAY_INTERVAL: U32,
    P.REQUEST_RESPONSE_INFORMATION: BYTE,
    P.RESPONSE_INFORMATION: UTF8,
    P.SERVER_REFERENCE: UTF8,
    P.REASON_STRING: UTF8,
    P.RECEIVE_MAXIMUM: U16,
    P.TOPIC_ALIAS_MAXIMUM: U16,
    P.TOPIC_ALIAS: U16,
    P.MAXIMUM_QOS: BYTE,
    P.RETAIN_AVAILABLE: BYTE,
    P.USER_PROPERTY: PAIR,
    P.MAXIMUM_PACKET_SIZE: U32,
    P.WILDCARD_SUBSCRIPTION_AVAILABLE: BYTE,
    P.SUBSCRIPTION_IDENTIFIER_AVAILABLE: BYTE,
    P.SHARED_SUBSCRIPTION_AVAILABLE: BYTE,
}

# Properties whose value must be 0 or 1, and those for which 0 is a protocol error.
_BOOLEAN = frozenset(
    (
        P.PAYLOAD_FORMAT_INDICATOR,
        P.REQUEST_PROBLEM_INFORMATION,
        P.REQUEST_RESPONSE_INFORMATION,
        P.MAXIMUM_QOS,
        P.RETAIN_AVAILABLE,
        P.WILDCARD_SUBSCRIPTION_AVAILABLE,
        P.SUBSCRIPTION_IDENTIFIER_AVAILABLE,
        P.SHARED_SUBSCRIPTION_AVAILABLE,
    )
)
_NON_ZERO = frozenset(
    (P.RECEIVE_MAXIMUM, P.MAXIMUM_PACKET_SIZE, P.TOPIC_ALIAS, P.SUBSCRIPTION_IDENTIFIER)
)

# Attributes that collect every occurrence, in order, as a tuple.
REPEATABLE = frozenset(("user_properties", "subscription_identifiers"))

_USER = (P.USER_PROPERTY, "user_properties")
_REASON = (P.REASON_STRING, "reason_string")


def _allowed(*pairs: tuple[int, str]) -> dict[int, str]:
    return dict(pairs)


PUBLISH = _allowed(
    (P.PAYLOAD_FORMAT_INDICATOR, "payload_format_indicator"),
    (P.MESSAGE_EXPIRY_INTERVAL, "message_expiry_interval"),
    (P.CONTENT_TYPE, "content_type"),
    (P.RESPONSE_TOPIC, "response_topic"),
    (P.CORRELATION_DATA, "correlation_data"),
    (P.SUBSCRIPTION_IDENTIFIER, "subscription_identifiers"),
    (P.TOPIC_ALIAS, "topic_alias"),
    _USER,
)
WILL = _allowed(
    (P.PAYLOAD_FORMAT_INDICATOR, "payload_format_indicator"),
    (P.MESSAGE_EXPIRY_INTERVAL, "message_expiry_interval"),
    (P.CONTENT_TYPE, "content_type"),
    (P.RESPONSE_TOPIC, "response_topic"),
    (P.CORRELATION_DATA, "correlation_data"),
    (P.WILL_DELAY_INTERVAL, "will_delay_interval"),
    _USER,
)
CONNECT = _allowed(
    (P.SESSION_EXPIRY_INTERVAL, "session_expiry_interval"),
    (P.AUTHENTICATION_METHOD, "authentication_method"),
    (P.AUTHENTICATION_DATA, "authentication_data"),
    (P.REQUEST_PROBLEM_INFORMATION, "request_problem_information"),
    (P.REQUEST_RESPONSE_INFORMATION, "request_response_information"),
    (P.RECEIVE_MAXIMUM, "receive_maximum"),
    (P.TOPIC_ALIAS_MAXIMUM, "topic_alias_maximum"),
    (P.MAXIMUM_PACKET_SIZE, "maximum_packet_size"),
    _USER,
)
CONNACK = _allowed(
    (P.SESSION_EXPIRY_INTERVAL, "session_expiry_interval"),
    (P.ASSIGNED_CLIENT_IDENTIFIER, "assigned_client_identifier"),
    (P.SERVER_KEEP_ALIVE, "server_keep_alive"),
    (P.AUTHENTICATION_METHOD, "authentication_method"),
    (P.AUTHENTICATION_DATA, "authentication_data"),
    (P.RESPONSE_INFORMATION, "response_information"),
    (P.SERVER_REFERENCE, "server_reference"),
    _REASON,
    (P.RECEIVE_MAXIMUM, "receive_maximum"),
    (P.TOPIC_ALIAS_MAXIMUM, "topic_alias_maximum"),
    (P.MAXIMUM_QOS, "maximum_qos"),
    (P.RETAIN_AVAILABLE, "retain_available"),
    (P.MAXIMUM_PACKET_SIZE, "maximum_packet_size"),
    (P.WILDCARD_SUBSCRIPTION_AVAILABLE, "wildcard_subscription_available"),
    (P.SUBSCRIPTION_IDENTIFIER_AVAILABLE, "subscription_identifier_available"),
    (P.SHARED_SUBSCRIPTION_AVAILABLE, "shared_subscription_available"),
    _USER,
)
ACK = _allowed(_REASON, _USER)  # PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK
SUBSCRIBE = _allowed((P.SUBSCRIPTION_IDENTIFIER, "subscription_identifier"), _USER)
UNSUBSCRIBE = _allowed(_USER)
DISCONNECT = _allowed(
    (P.SESSION_EXPIRY_INTERVAL, "session_expiry_interval"),
    (P.SERVER_REFERENCE, "server_reference"),
    _REASON,
    _USER,
)
AUTH = _allowed(
    (P.AUTHENTICATION_METHOD, "authentication_method"),
    (P.AUTHENTICATION_DATA, "authentication_data"),
    _REASON,
    _USER,
)


def _read_pair(buf: Buffer, pos: int, end: int) -> tuple[tuple[str, str], int]:
    name, pos = read_utf8(buf, pos, end)
    value, pos = read_utf8(buf, pos, end)
    return (name, value), pos


_READERS: dict[int, Callable[[Buffer, int, int], tuple[Any, int]]] = {
    BYTE: read_byte,
    U16: read_u16,
    U32: read_u32,
    VARINT: read_varint,
    UTF8: read_utf8,
    BINARY: read_binary,
    PAIR: _read_pair,
}


def decode_properties(
    buf: Buffer, pos: int, end: int, allowed: Mapping[int, str]
) -> tuple[dict[str, Any], int]:
    """Read a property block; return ``{attribute: value}`` and the position after it."""
    length, pos = read_varint(buf, pos, end)
    if not length:
        return {}, pos
    stop = pos + length
    if stop > end:
        raise MalformedPacket("property length overruns the packet")
    props: dict[str, Any] = {}
    repeated: dict[str, list[Any]] = {}
    while pos < stop:
        prop_id, pos = read_varint(buf, pos, stop)
        kind = KIND.get(prop_id)
        if kind is None:
            raise MalformedPacket(f"unknown property identifier 0x{prop_id:02X}")
        attr = allowed.get(prop_id)
        if attr is None:
            # "A Control Packet which contains an Identifier which is not valid for its
            # packet type ... is a Malformed Packet" (MQTT 5.0 section 2.2.2.2).
            raise MalformedPacket(f"property {PropertyId(prop_id).name} not allowed here")
        value, pos = _READERS[kind](buf, pos, stop)
        if prop_id in _BOOLEAN and value > 1:
            raise ProtocolError(f"{PropertyId(prop_id).name} must be 0 or 1, not {value}")
        if prop_id in _NON_ZERO and value == 0:
            if prop_id == P.TOPIC_ALIAS:
                raise TopicAliasInvalid("topic alias 0")  # [MQTT-3.3.2-8], section 3.3.4
            raise ProtocolError(f"{PropertyId(prop_id).name} must not be 0")
        if attr in REPEATABLE:
            repeated.setdefault(attr, []).append(value)
        elif attr in props:
            raise ProtocolError(f"property {PropertyId(prop_id).name} appears twice")
        else:
            props[attr] = value
    for attr, values in repeated.items():
        props[attr] = tuple(values)
    return props, pos


def _encode_value(kind: int, value: Any) -> bytes:
    if kind == BYTE:
        return bytes((value,))
    if kind == U16:
        return encode_u16(value)
    if kind == U32:
        return encode_u32(value)
    if kind == VARINT:
        return encode_varint(value)
    if kind == UTF8:
        return encode_utf8(value)
    if kind == BINARY:
        return encode_binary(value)
    name, text = value
    return encode_utf8(name) + encode_utf8(text)


def encode_properties(source: object, allowed: Mapping[int, str]) -> bytes:
    """The property block (length included) for the attributes of ``source`` that are set."""
    parts: list[bytes] = []
    for prop_id, attr in allowed.items():
        value = getattr(source, attr)
        if value is None or value == ():
            continue
        kind = KIND[prop_id]
        head = bytes((prop_id,))
        if attr in REPEATABLE:
            parts.extend(head + _encode_value(kind, item) for item in value)
        else:
            parts.append(head + _encode_value(kind, value))
    body = b"".join(parts)
    return encode_varint(len(body)) + body


EMPTY_PROPERTIES = b"\x00"
