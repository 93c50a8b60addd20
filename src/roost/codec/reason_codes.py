"""Reason codes: one IntEnum per packet kind (MQTT 5.0 section 2.4) and 3.1.1's return codes.

Packets carry reason codes as plain ints (an IntEnum member compares equal to its
value); the ``VALID_*`` sets give the decoder an O(1) check of what each packet allows.
"""

from __future__ import annotations

from enum import IntEnum


class ConnackReturnCode(IntEnum):
    """MQTT 3.1 and 3.1.1 CONNACK return codes."""

    ACCEPTED = 0x00
    UNACCEPTABLE_PROTOCOL_VERSION = 0x01
    IDENTIFIER_REJECTED = 0x02
    SERVER_UNAVAILABLE = 0x03
    BAD_USERNAME_OR_PASSWORD = 0x04
    NOT_AUTHORIZED = 0x05


class ConnectReasonCode(IntEnum):
    """MQTT 5 CONNACK reason codes."""

    SUCCESS = 0x00
    UNSPECIFIED_ERROR = 0x80
    MALFORMED_PACKET = 0x81
    PROTOCOL_ERROR = 0x82
    IMPLEMENTATION_SPECIFIC_ERROR = 0x83
    UNSUPPORTED_PROTOCOL_VERSION = 0x84
    CLIENT_IDENTIFIER_NOT_VALID = 0x85
    BAD_USERNAME_OR_PASSWORD = 0x86
    NOT_AUTHORIZED = 0x87
    SERVER_UNAVAILABLE = 0x88
    SERVER_BUSY = 0x89
    BANNED = 0x8A
    BAD_AUTHENTICATION_METHOD = 0x8C
    TOPIC_NAME_INVALID = 0x90
    PACKET_TOO_LARGE = 0x95
    QUOTA_EXCEEDED = 0x97
    PAYLOAD_FORMAT_INVALID = 0x99
    RETAIN_NOT_SUPPORTED = 0x9A
    QOS_NOT_SUPPORTED = 0x9B
    USE_ANOTHER_SERVER = 0x9C
    SERVER_MOVED = 0x9D
    CONNECTION_RATE_EXCEEDED = 0x9F


class PubackReasonCode(IntEnum):
    """Reason codes of PUBACK and PUBREC (the same table)."""

    SUCCESS = 0x00
    NO_MATCHING_SUBSCRIBERS = 0x10
    UNSPECIFIED_ERROR = 0x80
    IMPLEMENTATION_SPECIFIC_ERROR = 0x83
    NOT_AUTHORIZED = 0x87
    TOPIC_NAME_INVALID = 0x90
    PACKET_IDENTIFIER_IN_USE = 0x91
    QUOTA_EXCEEDED = 0x97
    PAYLOAD_FORMAT_INVALID = 0x99


PubrecReasonCode = PubackReasonCode


class PubrelReasonCode(IntEnum):
    """Reason codes of PUBREL and PUBCOMP (the same table)."""

    SUCCESS = 0x00
    PACKET_IDENTIFIER_NOT_FOUND = 0x92


PubcompReasonCode = PubrelReasonCode


class SubackReasonCode(IntEnum):
    """Reason codes of SUBACK, one per requested filter (granted QoS or refusal)."""

    GRANTED_QOS_0 = 0x00
    GRANTED_QOS_1 = 0x01
    GRANTED_QOS_2 = 0x02
    UNSPECIFIED_ERROR = 0x80
    IMPLEMENTATION_SPECIFIC_ERROR = 0x83
    NOT_AUTHORIZED = 0x87
    TOPIC_FILTER_INVALID = 0x8F
    PACKET_IDENTIFIER_IN_USE = 0x91
    QUOTA_EXCEEDED = 0x97
    SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E
    SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED = 0xA1
    WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED = 0xA2


class UnsubackReasonCode(IntEnum):
    """MQTT 5 UNSUBACK reason codes, one per filter."""

    SUCCESS = 0x00
    NO_SUBSCRIPTION_EXISTED = 0x11
    UNSPECIFIED_ERROR = 0x80
    IMPLEMENTATION_SPECIFIC_ERROR = 0x83
    NOT_AUTHORIZED = 0x87
    TOPIC_FILTER_INVALID = 0x8F
    PACKET_IDENTIFIER_IN_USE = 0x91


class DisconnectReasonCode(IntEnum):
    """MQTT 5 DISCONNECT reason codes (either side may send them)."""

    NORMAL_DISCONNECTION = 0x00
    DISCONNECT_WITH_WILL_MESSAGE = 0x04
    UNSPECIFIED_ERROR = 0x80
    MALFORMED_PACKET = 0x81
    PROTOCOL_ERROR = 0x82
    IMPLEMENTATION_SPECIFIC_ERROR = 0x83
    NOT_AUTHORIZED = 0x87
    SERVER_BUSY = 0x89
    SERVER_SHUTTING_DOWN = 0x8B
    KEEP_ALIVE_TIMEOUT = 0x8D
    SESSION_TAKEN_OVER = 0x8E
    TOPIC_FILTER_INVALID = 0x8F
    TOPIC_NAME_INVALID = 0x90
    RECEIVE_MAXIMUM_EXCEEDED = 0x93
    TOPIC_ALIAS_INVALID = 0x94
    PACKET_TOO_LARGE = 0x95
    MESSAGE_RATE_TOO_HIGH = 0x96
    QUOTA_EXCEEDED = 0x97
    ADMINISTRATIVE_ACTION = 0x98
    PAYLOAD_FORMAT_INVALID = 0x99
    RETAIN_NOT_SUPPORTED = 0x9A
    QOS_NOT_SUPPORTED = 0x9B
    USE_ANOTHER_SERVER = 0x9C
    SERVER_MOVED = 0x9D
    SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E
    CONNECTION_RATE_EXCEEDED = 0x9F
    MAXIMUM_CONNECT_TIME = 0xA0
    SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED = 0xA1
    WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED = 0xA2


class AuthReasonCode(IntEnum):
    """MQTT 5 AUTH reason codes: the steps of an enhanced authentication exchange."""

    SUCCESS = 0x00
    CONTINUE_AUTHENTICATION = 0x18
    RE_AUTHENTICATE = 0x19


VALID_CONNACK_V3 = frozenset(ConnackReturnCode)
VALID_CONNACK_V5 = frozenset(ConnectReasonCode)
VALID_PUBACK = frozenset(PubackReasonCode)
VALID_PUBREL = frozenset(PubrelReasonCode)
VALID_SUBACK_V3 = frozenset((0x00, 0x01, 0x02, 0x80))
VALID_SUBACK_V5 = frozenset(SubackReasonCode)
VALID_UNSUBACK = frozenset(UnsubackReasonCode)
VALID_DISCONNECT = frozenset(DisconnectReasonCode)
VALID_AUTH = frozenset(AuthReasonCode)
