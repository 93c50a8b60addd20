"""The table of malformed and invalid raw-byte cases, each with the error it must raise.

Written by hand from the OASIS MQTT 3.1.1 and 5.0 specifications. ``error`` is the exact
class expected (not a superclass) and ``reason_code`` the MQTT 5 reason code it carries.
Where the specification names the consequence ("is a Malformed Packet", "is a Protocol
Error", "uses DISCONNECT with Reason Code 0x94") the case cites the clause; where it only
says MUST, the codec's choice is recorded and the comment says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from roost.codec import (
    PROTOCOL_MAX_PACKET_SIZE,
    CodecError,
    MalformedPacket,
    PacketTooLarge,
    ProtocolError,
    TopicAliasInvalid,
    TopicFilterInvalid,
    TopicNameInvalid,
    UnsupportedProtocolVersion,
)

MALFORMED = 0x81
PROTOCOL = 0x82
UNSUPPORTED = 0x84
FILTER_INVALID = 0x8F
NAME_INVALID = 0x90
ALIAS_INVALID = 0x94
TOO_LARGE = 0x95


@dataclass(frozen=True, slots=True)
class BadCase:
    """Bytes that must be refused at ``version`` with ``error`` carrying ``reason_code``."""

    id: str
    version: int
    raw: bytes
    error: type[CodecError]
    reason_code: int
    max_size: int = PROTOCOL_MAX_PACKET_SIZE


def _v5_publish(properties: bytes, topic: bytes = b"\x00\x01t") -> bytes:
    """A QoS 0 PUBLISH at level 5 around a hand-written property block (length included)."""
    body = topic + properties
    return b"\x30" + bytes((len(body),)) + body


def _v5_connect(properties: bytes) -> bytes:
    """A level-5 CONNECT (client id "a") around a hand-written property block."""
    body = b"\x00\x04MQTT\x05\x02\x00\x3c" + properties + b"\x00\x01a"
    return b"\x10" + bytes((len(body),)) + body


def _v5_subscribe(topic_filter: bytes, options: int) -> bytes:
    """A level-5 SUBSCRIBE, packet identifier 1, no properties, one filter and options."""
    body = b"\x00\x01\x00" + len(topic_filter).to_bytes(2, "big") + topic_filter
    body += bytes((options,))
    return b"\x82" + bytes((len(body),)) + body


def _v4_subscribe(topic_filter: bytes, options: int = 0) -> bytes:
    """A level-4 SUBSCRIBE, packet identifier 1, one filter and its requested QoS byte."""
    body = b"\x00\x01" + len(topic_filter).to_bytes(2, "big") + topic_filter
    body += bytes((options,))
    return b"\x82" + bytes((len(body),)) + body


def _v4_unsubscribe(topic_filter: bytes) -> bytes:
    body = b"\x00\x01" + len(topic_filter).to_bytes(2, "big") + topic_filter
    return b"\xa2" + bytes((len(body),)) + body


BAD_CASES: tuple[BadCase, ...] = (
    # --- fixed header: reserved flag bits [MQTT-2.1.3-1] "is a Malformed Packet" --------
    BadCase("connect-flags-0001", 4, b"\x11\x00", MalformedPacket, MALFORMED),
    BadCase("connack-flags-1000", 4, b"\x28\x02\x00\x00", MalformedPacket, MALFORMED),
    BadCase("puback-flags-0010", 5, b"\x42\x02\x00\x01", MalformedPacket, MALFORMED),
    BadCase("pubrec-flags-0001", 4, b"\x51\x02\x00\x01", MalformedPacket, MALFORMED),
    # [MQTT-3.6.1-1]: PUBREL flags must be 0010
    BadCase("pubrel-flags-0000", 4, b"\x60\x02\x00\x01", MalformedPacket, MALFORMED),
    BadCase("pubcomp-flags-0100", 5, b"\x74\x02\x00\x01", MalformedPacket, MALFORMED),
    # [MQTT-3.8.1-1]: SUBSCRIBE flags must be 0010
    BadCase(
        "subscribe-flags-0000", 4, b"\x80\x06\x00\x01\x00\x01a\x00", MalformedPacket, MALFORMED
    ),
    BadCase("suback-flags-0010", 4, b"\x92\x03\x00\x01\x00", MalformedPacket, MALFORMED),
    # [MQTT-3.10.1-1]: UNSUBSCRIBE flags must be 0010
    BadCase("unsubscribe-flags-0011", 4, b"\xa3\x05\x00\x01\x00\x01a", MalformedPacket, MALFORMED),
    BadCase("unsuback-flags-0010", 4, b"\xb2\x02\x00\x01", MalformedPacket, MALFORMED),
    BadCase("pingreq-flags-0001", 4, b"\xc1\x00", MalformedPacket, MALFORMED),
    BadCase("pingresp-flags-1000", 3, b"\xd8\x00", MalformedPacket, MALFORMED),
    # [MQTT-3.14.1-1]
    BadCase("disconnect-flags-0001", 5, b"\xe1\x00", MalformedPacket, MALFORMED),
    # [MQTT-3.15.1-1]
    BadCase("auth-flags-0001", 5, b"\xf1\x00", MalformedPacket, MALFORMED),
    # --- PUBLISH fixed header ------------------------------------------------------------
    # 3.3.1.2: both QoS bits set "is a Malformed Packet" [MQTT-3.3.1-4]
    BadCase("publish-qos3", 4, b"\x36\x05\x00\x01t\x00\x01", MalformedPacket, MALFORMED),
    BadCase("publish-qos3-v5", 5, b"\x36\x06\x00\x01t\x00\x01\x00", MalformedPacket, MALFORMED),
    # [MQTT-3.3.1-2] DUP must be 0 for QoS 0 (a reserved-flag violation: malformed)
    BadCase("publish-qos0-dup", 4, b"\x38\x03\x00\x01t", MalformedPacket, MALFORMED),
    # --- packet identifier 0 where one is required [MQTT-2.2.1-3]; the spec names no
    # consequence, the codec treats it as a Protocol Error
    BadCase("publish-qos1-id-0", 4, b"\x32\x05\x00\x01t\x00\x00", ProtocolError, PROTOCOL),
    BadCase("publish-qos2-id-0", 5, b"\x34\x06\x00\x01t\x00\x00\x00", ProtocolError, PROTOCOL),
    BadCase("puback-id-0", 4, b"\x40\x02\x00\x00", ProtocolError, PROTOCOL),
    BadCase("pubrel-id-0", 5, b"\x62\x02\x00\x00", ProtocolError, PROTOCOL),
    BadCase("subscribe-id-0", 4, b"\x82\x06\x00\x00\x00\x01a\x00", ProtocolError, PROTOCOL),
    BadCase("unsubscribe-id-0", 4, b"\xa2\x05\x00\x00\x00\x01a", ProtocolError, PROTOCOL),
    BadCase("suback-id-0", 4, b"\x90\x03\x00\x00\x00", ProtocolError, PROTOCOL),
    BadCase("unsuback-id-0", 4, b"\xb0\x02\x00\x00", ProtocolError, PROTOCOL),
    # --- topic names: wildcards [MQTT-3.3.2-2], emptiness [MQTT-4.7.3-1] -----------------
    BadCase("publish-topic-plus", 4, b"\x30\x05\x00\x03a/+", TopicNameInvalid, NAME_INVALID),
    BadCase("publish-topic-hash", 5, b"\x30\x04\x00\x01#\x00", TopicNameInvalid, NAME_INVALID),
    BadCase("publish-topic-empty-v4", 4, b"\x30\x03\x00\x00x", TopicNameInvalid, NAME_INVALID),
    # 3.3.2.1: "It is a Protocol Error if the Topic Name is zero length and there is no
    # Topic Alias."
    BadCase("publish-topic-empty-no-alias-v5", 5, b"\x30\x03\x00\x00\x00", ProtocolError, PROTOCOL),
    BadCase(
        "publish-topic-empty-other-properties-v5",
        5,
        _v5_publish(b"\x02\x01\x01", topic=b"\x00\x00"),  # payload format 1, no alias
        ProtocolError,
        PROTOCOL,
    ),
    BadCase(
        "connect-will-topic-wildcard",
        4,
        b"\x10"  # CONNECT
        b"\x14"  # remaining length 20
        b"\x00\x04MQTT\x04"  # "MQTT", level 4
        b"\x06"  # flags: will, clean session
        b"\x00\x3c"  # keep alive
        b"\x00\x01a"  # client identifier "a"
        b"\x00\x03a/#"  # will topic "a/#"
        b"\x00\x00",  # will payload
        TopicNameInvalid,
        NAME_INVALID,
    ),
    # --- topic filters (section 4.7.1, 4.8.2): Topic Filter invalid ----------------------
    BadCase("filter-hash-not-last", 4, _v4_subscribe(b"a/#/b"), TopicFilterInvalid, FILTER_INVALID),
    BadCase("filter-plus-in-level", 4, _v4_subscribe(b"a+"), TopicFilterInvalid, FILTER_INVALID),
    BadCase(
        "filter-hash-first-level", 5, _v5_subscribe(b"#/a", 0), TopicFilterInvalid, FILTER_INVALID
    ),
    BadCase("filter-hash-in-level", 4, _v4_subscribe(b"a/b#"), TopicFilterInvalid, FILTER_INVALID),
    BadCase("filter-empty", 4, _v4_subscribe(b""), TopicFilterInvalid, FILTER_INVALID),
    BadCase("filter-empty-v5", 5, _v5_subscribe(b"", 1), TopicFilterInvalid, FILTER_INVALID),
    # [MQTT-4.8.2-1]: ShareName at least one character
    BadCase(
        "filter-share-empty-group",
        5,
        _v5_subscribe(b"$share//x", 0),
        TopicFilterInvalid,
        FILTER_INVALID,
    ),
    # [MQTT-4.8.2-2]: ShareName followed by "/" and a Topic Filter
    BadCase(
        "filter-share-no-filter",
        5,
        _v5_subscribe(b"$share/g", 0),
        TopicFilterInvalid,
        FILTER_INVALID,
    ),
    BadCase(
        "filter-share-empty-filter",
        5,
        _v5_subscribe(b"$share/g/", 0),
        TopicFilterInvalid,
        FILTER_INVALID,
    ),
    # [MQTT-4.8.2-2]: ShareName must not contain "+" or "#"
    BadCase(
        "filter-share-wildcard-group",
        5,
        _v5_subscribe(b"$share/+/x", 0),
        TopicFilterInvalid,
        FILTER_INVALID,
    ),
    BadCase(
        "filter-share-bad-inner",
        5,
        _v5_subscribe(b"$share/g/a+", 0),
        TopicFilterInvalid,
        FILTER_INVALID,
    ),
    BadCase(
        "unsubscribe-filter-invalid",
        4,
        _v4_unsubscribe(b"a/#/b"),
        TopicFilterInvalid,
        FILTER_INVALID,
    ),
    BadCase(
        "unsubscribe-filter-empty", 4, _v4_unsubscribe(b""), TopicFilterInvalid, FILTER_INVALID
    ),
    # --- UTF-8 [MQTT-1.5.4-1]: ill-formed UTF-8 "is a Malformed Packet" ------------------
    BadCase("topic-overlong-slash", 4, b"\x30\x05\x00\x03a\xc0\xaf", MalformedPacket, MALFORMED),
    BadCase("topic-overlong-nul", 4, b"\x30\x04\x00\x02\xc0\x80", MalformedPacket, MALFORMED),
    BadCase("topic-surrogate", 4, b"\x30\x05\x00\x03\xed\xa0\x80", MalformedPacket, MALFORMED),
    BadCase(
        "topic-above-10ffff", 5, b"\x30\x07\x00\x04\xf4\x90\x80\x80\x00", MalformedPacket, MALFORMED
    ),
    BadCase("topic-truncated-sequence", 4, b"\x30\x04\x00\x02\xe2\x82", MalformedPacket, MALFORMED),
    BadCase("topic-lone-continuation", 4, b"\x30\x03\x00\x01\x80", MalformedPacket, MALFORMED),
    BadCase(
        "client-id-surrogate",
        4,
        b"\x10\x0f\x00\x04MQTT\x04\x02\x00\x3c"  # CONNECT, level 4, clean session
        b"\x00\x03\xed\xbf\xbf",  # client identifier: encoded U+DFFF
        MalformedPacket,
        MALFORMED,
    ),
    BadCase("filter-overlong", 4, _v4_subscribe(b"\xe0\x80\xaf"), MalformedPacket, MALFORMED),
    # [MQTT-1.5.7-1]: both strings of a pair are UTF-8 Encoded Strings
    BadCase(
        "user-property-value-surrogate",
        5,
        _v5_publish(b"\x09\x26\x00\x01k\x00\x03\xed\xa0\x80"),
        MalformedPacket,
        MALFORMED,
    ),
    # --- U+0000 [MQTT-1.5.4-2] "is a Malformed Packet" -----------------------------------
    BadCase("topic-nul", 4, b"\x30\x04\x00\x02a\x00", MalformedPacket, MALFORMED),
    BadCase(
        "client-id-nul",
        4,
        b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c"  # CONNECT, level 4, clean session
        b"\x00\x01\x00",  # client identifier U+0000
        MalformedPacket,
        MALFORMED,
    ),
    BadCase("filter-nul", 4, _v4_subscribe(b"a\x00"), MalformedPacket, MALFORMED),
    BadCase(
        "user-property-name-nul",
        5,
        _v5_publish(b"\x07\x26\x00\x01\x00\x00\x01v"),
        MalformedPacket,
        MALFORMED,
    ),
    BadCase(
        "reason-string-nul",
        5,
        b"\x40\x08\x00\x01\x80\x04\x1f\x00\x01\x00",
        MalformedPacket,
        MALFORMED,
    ),
    # --- properties: identifier not valid for the packet type is a Malformed Packet
    # (section 2.2.2.2); so is an unknown identifier
    BadCase(
        "publish-session-expiry",
        5,
        _v5_publish(b"\x05\x11\x00\x00\x00\x01"),
        MalformedPacket,
        MALFORMED,
    ),
    BadCase("connect-topic-alias", 5, _v5_connect(b"\x03\x23\x00\x01"), MalformedPacket, MALFORMED),
    BadCase(
        "puback-content-type",
        5,
        b"\x40\x08\x00\x01\x00\x04\x03\x00\x01x",
        MalformedPacket,
        MALFORMED,
    ),
    BadCase(
        "subscribe-reason-string",
        5,
        b"\x82\x0b\x00\x01\x04\x1f\x00\x01x\x00\x01a\x00",
        MalformedPacket,
        MALFORMED,
    ),
    BadCase(
        "disconnect-topic-alias", 5, b"\xe0\x05\x00\x03\x23\x00\x01", MalformedPacket, MALFORMED
    ),
    BadCase(
        "auth-session-expiry",
        5,
        b"\xf0\x07\x18\x05\x11\x00\x00\x00\x01",
        MalformedPacket,
        MALFORMED,
    ),
    BadCase(
        "will-subscription-identifier",
        5,
        b"\x10"  # CONNECT
        b"\x16"  # remaining length 22
        b"\x00\x04MQTT\x05"  # "MQTT", version 5
        b"\x06"  # flags: will, clean start
        b"\x00\x3c"  # keep alive
        b"\x00"  # property length 0
        b"\x00\x01a"  # client identifier "a"
        b"\x02\x0b\x01"  # will properties: subscription identifier 1 (PUBLISH only)
        b"\x00\x01w"  # will topic "w"
        b"\x00\x00",  # will payload
        MalformedPacket,
        MALFORMED,
    ),
    BadCase("unknown-property-0x04", 5, _v5_publish(b"\x02\x04\x00"), MalformedPacket, MALFORMED),
    BadCase("unknown-property-0x7f", 5, b"\xe0\x04\x00\x02\x7f\x00", MalformedPacket, MALFORMED),
    # --- properties that may appear once, twice: "It is a Protocol Error to include ...
    # more than once" (3.1.2.11.2, 3.3.2.3.4, 3.4.2.2.2, 3.8.2.1.2, 3.15.2.2.2)
    BadCase(
        "connect-session-expiry-twice",
        5,
        _v5_connect(b"\x0a\x11\x00\x00\x00\x01\x11\x00\x00\x00\x02"),
        ProtocolError,
        PROTOCOL,
    ),
    BadCase(
        "publish-topic-alias-twice",
        5,
        _v5_publish(b"\x06\x23\x00\x01\x23\x00\x02"),
        ProtocolError,
        PROTOCOL,
    ),
    BadCase(
        "puback-reason-string-twice",
        5,
        b"\x40\x0c\x00\x01\x80\x08\x1f\x00\x01a\x1f\x00\x01b",
        ProtocolError,
        PROTOCOL,
    ),
    BadCase(
        "subscribe-subscription-identifier-twice",
        5,
        b"\x82\x0b\x00\x01\x04\x0b\x01\x0b\x02\x00\x01a\x00",
        ProtocolError,
        PROTOCOL,
    ),
    # 3.15.2.2.2: "It is a Protocol Error to omit the Authentication Method" (only the
    # Remaining Length 0 short form of 3.15.2.1 has no properties at all)
    BadCase("auth-without-method", 5, b"\xf0\x02\x18\x00", ProtocolError, PROTOCOL),
    BadCase(
        "auth-success-long-form-without-method", 5, b"\xf0\x02\x00\x00", ProtocolError, PROTOCOL
    ),
    BadCase(
        "auth-data-without-method", 5, b"\xf0\x07\x19\x05\x16\x00\x02ab", ProtocolError, PROTOCOL
    ),
    BadCase(
        "auth-method-twice",
        5,
        b"\xf0\x0a\x18\x08\x15\x00\x01a\x15\x00\x01b",
        ProtocolError,
        PROTOCOL,
    ),
    # --- properties: values the specification forbids --------------------------------
    # 3.1.2.11.3: receive maximum 0 is a Protocol Error
    BadCase(
        "connect-receive-maximum-0", 5, _v5_connect(b"\x03\x21\x00\x00"), ProtocolError, PROTOCOL
    ),
    # 3.2.2.3.3
    BadCase(
        "connack-receive-maximum-0", 5, b"\x20\x06\x00\x00\x03\x21\x00\x00", ProtocolError, PROTOCOL
    ),
    # 3.1.2.11.4: maximum packet size 0 is a Protocol Error
    BadCase(
        "connect-maximum-packet-size-0",
        5,
        _v5_connect(b"\x05\x27\x00\x00\x00\x00"),
        ProtocolError,
        PROTOCOL,
    ),
    # 3.1.2.11.6 / 3.1.2.11.7: values other than 0 or 1 are a Protocol Error
    BadCase("connect-request-response-2", 5, _v5_connect(b"\x02\x19\x02"), ProtocolError, PROTOCOL),
    BadCase("connect-request-problem-2", 5, _v5_connect(b"\x02\x17\x02"), ProtocolError, PROTOCOL),
    # 3.2.2.3.4 / 3.2.2.3.5: maximum QoS and retain available other than 0 or 1
    BadCase("connack-maximum-qos-2", 5, b"\x20\x05\x00\x00\x02\x24\x02", ProtocolError, PROTOCOL),
    BadCase(
        "connack-retain-available-2", 5, b"\x20\x05\x00\x00\x02\x25\x02", ProtocolError, PROTOCOL
    ),
    # 3.3.2.3.2 allows only 0 and 1; the spec names no consequence, the codec says 0x82
    BadCase("publish-payload-format-2", 5, _v5_publish(b"\x02\x01\x02"), ProtocolError, PROTOCOL),
    # 3.3.2.3.8 / 3.8.2.1.2: subscription identifier 0 is a Protocol Error
    BadCase(
        "publish-subscription-identifier-0",
        5,
        _v5_publish(b"\x02\x0b\x00"),
        ProtocolError,
        PROTOCOL,
    ),
    BadCase(
        "subscribe-subscription-identifier-0",
        5,
        b"\x82\x09\x00\x01\x02\x0b\x00\x00\x01a\x00",
        ProtocolError,
        PROTOCOL,
    ),
    # 3.3.4: "A Topic Alias value of 0 ... is a Protocol Error, the receiver uses
    # DISCONNECT with Reason Code of 0x94 (Topic Alias invalid)"
    BadCase(
        "publish-topic-alias-0",
        5,
        _v5_publish(b"\x03\x23\x00\x00"),
        TopicAliasInvalid,
        ALIAS_INVALID,
    ),
    # 3.1.2.11.10: authentication data without authentication method
    BadCase(
        "connect-auth-data-without-method",
        5,
        _v5_connect(b"\x03\x16\x00\x00"),
        ProtocolError,
        PROTOCOL,
    ),
    # [MQTT-3.3.2-14]: the response topic must not contain wildcards (codec: 0x82)
    BadCase(
        "publish-response-topic-wildcard",
        5,
        _v5_publish(b"\x06\x08\x00\x03a/+"),
        ProtocolError,
        PROTOCOL,
    ),
    # --- property block overruns ("cannot be parsed": malformed) -----------------------
    BadCase(
        "puback-property-length-overrun", 5, b"\x40\x04\x00\x01\x00\x05", MalformedPacket, MALFORMED
    ),
    BadCase(
        "publish-property-length-overrun",
        5,
        _v5_publish(b"\x09\x01\x00"),
        MalformedPacket,
        MALFORMED,
    ),
    BadCase(
        "property-value-overruns-block",
        5,
        b"\xe0\x0a\x00\x02\x1f\x00\x05abcde",  # reason string of 5 in a block of 2
        MalformedPacket,
        MALFORMED,
    ),
    BadCase(
        "property-u32-truncated", 5, _v5_publish(b"\x03\x02\x00\x00"), MalformedPacket, MALFORMED
    ),
    BadCase(
        "property-length-not-minimal",
        5,
        b"\x40\x05\x00\x01\x00\x80\x00",  # property length 0 spelled in two bytes
        MalformedPacket,
        MALFORMED,
    ),
    BadCase(
        "subscription-identifier-not-minimal",
        5,
        _v5_publish(b"\x03\x0b\x81\x00"),  # value 1 spelled in two bytes [MQTT-1.5.5-1]
        MalformedPacket,
        MALFORMED,
    ),
    # --- bytes left over inside a packet --------------------------------------------------
    BadCase("v4-puback-length-3", 4, b"\x40\x03\x00\x01\x00", MalformedPacket, MALFORMED),
    BadCase(
        "v5-puback-trailing-byte", 5, b"\x40\x05\x00\x01\x00\x00\xff", MalformedPacket, MALFORMED
    ),
    BadCase("v4-unsuback-length-3", 4, b"\xb0\x03\x00\x01\x00", MalformedPacket, MALFORMED),
    BadCase("v4-connack-length-3", 4, b"\x20\x03\x00\x00\x00", MalformedPacket, MALFORMED),
    BadCase("v5-connack-trailing-byte", 5, b"\x20\x04\x00\x00\x00\x00", MalformedPacket, MALFORMED),
    BadCase("pingreq-length-1", 4, b"\xc0\x01\x00", MalformedPacket, MALFORMED),
    BadCase("pingresp-length-1", 5, b"\xd0\x01\x00", MalformedPacket, MALFORMED),
    BadCase("v4-disconnect-length-1", 4, b"\xe0\x01\x00", MalformedPacket, MALFORMED),
    BadCase("v5-disconnect-trailing-byte", 5, b"\xe0\x03\x00\x00\x00", MalformedPacket, MALFORMED),
    BadCase("v5-auth-trailing-byte", 5, b"\xf0\x03\x00\x00\x00", MalformedPacket, MALFORMED),
    BadCase(
        "v4-connect-trailing-byte",
        4,
        b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x00"  # a whole CONNECT body ...
        b"\x00",  # ... and one byte more
        MalformedPacket,
        MALFORMED,
    ),
    BadCase(
        "subscribe-filter-without-options",
        4,
        b"\x82\x05\x00\x01\x00\x01a",
        MalformedPacket,
        MALFORMED,
    ),
    # --- fields that overrun the packet --------------------------------------------------
    BadCase("publish-topic-overrun", 4, b"\x30\x03\x00\x05a", MalformedPacket, MALFORMED),
    BadCase("publish-qos1-no-id", 4, b"\x32\x03\x00\x01t", MalformedPacket, MALFORMED),
    BadCase("v5-publish-no-property-length", 5, b"\x30\x03\x00\x01t", MalformedPacket, MALFORMED),
    BadCase("v5-connack-no-property-length", 5, b"\x20\x02\x00\x00", MalformedPacket, MALFORMED),
    BadCase("puback-length-1", 4, b"\x40\x01\x00", MalformedPacket, MALFORMED),
    BadCase(
        "connect-password-overrun",
        4,
        b"\x10\x11\x00\x04MQTT\x04\xc2\x00\x3c"  # CONNECT, user name and password flags
        b"\x00\x00"  # client identifier ""
        b"\x00\x01u"  # user name "u"
        b"\x00\x09",  # password of 9 bytes, none present
        MalformedPacket,
        MALFORMED,
    ),
    # --- empty SUBSCRIBE / UNSUBSCRIBE: "a Protocol Error" [MQTT-3.8.3-2], [MQTT-3.10.3-2]
    BadCase("subscribe-empty-v4", 4, b"\x82\x02\x00\x01", ProtocolError, PROTOCOL),
    BadCase("subscribe-empty-v5", 5, b"\x82\x03\x00\x01\x00", ProtocolError, PROTOCOL),
    BadCase("unsubscribe-empty-v4", 4, b"\xa2\x02\x00\x01", ProtocolError, PROTOCOL),
    BadCase("unsubscribe-empty-v5", 5, b"\xa2\x03\x00\x01\x00", ProtocolError, PROTOCOL),
    # --- packet types: 0 is reserved; AUTH (15) is reserved before 5.0 -------------------
    BadCase("type-0", 4, b"\x00\x00", MalformedPacket, MALFORMED),
    BadCase("type-0-v5", 5, b"\x00\x00", MalformedPacket, MALFORMED),
    BadCase("auth-at-v4", 4, b"\xf0\x00", MalformedPacket, MALFORMED),
    BadCase("auth-at-v3", 3, b"\xf0\x00", MalformedPacket, MALFORMED),
    # 3.15.2.1: only Remaining Length 0 may omit the property length; a lone reason code
    # (allowed for DISCONNECT and the PUBACK family) is not allowed for AUTH.
    BadCase("auth-reason-code-without-properties", 5, b"\xf0\x01\x18", MalformedPacket, MALFORMED),
    # --- remaining length (section 1.5.5): at most 4 bytes, minimal [MQTT-1.5.5-1] -------
    BadCase("remaining-length-5-bytes", 4, b"\x30\xff\xff\xff\xff\x01", MalformedPacket, MALFORMED),
    BadCase(
        "remaining-length-5-bytes-zero", 5, b"\xc0\x80\x80\x80\x80\x00", MalformedPacket, MALFORMED
    ),
    BadCase("remaining-length-not-minimal", 4, b"\xc0\x80\x00", MalformedPacket, MALFORMED),
    BadCase(
        "remaining-length-not-minimal-4", 4, b"\x30\x83\x80\x80\x00", MalformedPacket, MALFORMED
    ),
    # --- maximum packet size, from the fixed header alone (3.1.2.11.4, 3.2.2.3.6) ---------
    BadCase("too-large-by-one", 4, b"\x30\x09", PacketTooLarge, TOO_LARGE, max_size=10),
    BadCase(
        "too-large-huge-remaining-length",
        5,
        b"\x30\xff\xff\xff\x7f",
        PacketTooLarge,
        TOO_LARGE,
        max_size=1024,
    ),
    BadCase("too-large-connect", 5, b"\x10\x80\x08", PacketTooLarge, TOO_LARGE, max_size=1024),
    # --- CONNECT flags -------------------------------------------------------------------
    # [MQTT-3.1.2-3]: "If the reserved flag is not 0 it is a Malformed Packet"
    BadCase(
        "connect-reserved-flag",
        4,
        b"\x10\x0c\x00\x04MQTT\x04"  # CONNECT, level 4
        b"\x03"  # flags: clean session + reserved bit 0
        b"\x00\x3c\x00\x00",  # keep alive, client identifier ""
        MalformedPacket,
        MALFORMED,
    ),
    BadCase(
        "connect-reserved-flag-v5",
        5,
        b"\x10\x0d\x00\x04MQTT\x05\x01\x00\x3c\x00\x00\x00",  # flags 0x01
        MalformedPacket,
        MALFORMED,
    ),
    # [MQTT-3.1.2-11]: will QoS must be 0 without the will flag (codec: malformed)
    BadCase(
        "connect-will-qos-without-will",
        4,
        b"\x10\x0c\x00\x04MQTT\x04"  # CONNECT, level 4
        b"\x0a"  # flags: will QoS 1, clean session; no will flag
        b"\x00\x3c\x00\x00",
        MalformedPacket,
        MALFORMED,
    ),
    # [MQTT-3.1.2-13]: will retain must be 0 without the will flag (codec: malformed)
    BadCase(
        "connect-will-retain-without-will",
        5,
        b"\x10\x0d\x00\x04MQTT\x05"  # CONNECT, version 5
        b"\x22"  # flags: will retain, clean start; no will flag
        b"\x00\x3c\x00\x00\x00",
        MalformedPacket,
        MALFORMED,
    ),
    # 3.1.2.6: "A value of 3 (0x03) is a Malformed Packet"
    BadCase(
        "connect-will-qos-3",
        4,
        b"\x10\x12\x00\x04MQTT\x04"  # CONNECT, level 4
        b"\x1e"  # flags: will QoS 3, will, clean session
        b"\x00\x3c\x00\x01a\x00\x01w\x00\x00",  # keep alive, "a", will topic "w", payload
        MalformedPacket,
        MALFORMED,
    ),
    # [MQTT-3.1.2-22] (3.1.1): password flag without the user name flag
    BadCase(
        "connect-password-without-username-v4",
        4,
        b"\x10\x0f\x00\x04MQTT\x04"  # CONNECT, level 4
        b"\x42"  # flags: password, clean session; no user name
        b"\x00\x3c\x00\x00\x00\x01p",  # keep alive, client id "", password "p"
        MalformedPacket,
        MALFORMED,
    ),
    BadCase(
        "connect-password-without-username-v3",
        3,
        b"\x10\x11\x00\x06MQIsdp\x03"  # CONNECT, "MQIsdp" level 3
        b"\x42"  # flags: password, clean session; no user name
        b"\x00\x3c\x00\x00\x00\x01p",
        MalformedPacket,
        MALFORMED,
    ),
    # --- unsupported protocol levels (3.1.2.2, [MQTT-3.1.2-2]: CONNACK 0x84 / 0x01) ------
    BadCase(
        "connect-level-6",
        4,
        b"\x10\x0c\x00\x04MQTT\x06\x02\x00\x3c\x00\x00",
        UnsupportedProtocolVersion,
        UNSUPPORTED,
    ),
    BadCase(
        "connect-mqtt-level-3",
        4,
        b"\x10\x0c\x00\x04MQTT\x03\x02\x00\x3c\x00\x00",  # "MQTT" is levels 4 and 5 only
        UnsupportedProtocolVersion,
        UNSUPPORTED,
    ),
    BadCase(
        "connect-mqisdp-level-4",
        3,
        b"\x10\x0e\x00\x06MQIsdp\x04\x02\x00\x3c\x00\x00",  # "MQIsdp" is level 3 only
        UnsupportedProtocolVersion,
        UNSUPPORTED,
    ),
    # --- SUBSCRIBE options ---------------------------------------------------------------
    # [MQTT-3.8.3-4] (5.0): "It is a Protocol Error to set the No Local bit to 1 on a
    # Shared Subscription"
    BadCase(
        "subscribe-no-local-shared", 5, _v5_subscribe(b"$share/g/a", 0x04), ProtocolError, PROTOCOL
    ),
    # 3.8.3.1: "It is a Protocol Error to send a Retain Handling value of 3"
    BadCase("subscribe-retain-handling-3", 5, _v5_subscribe(b"a", 0x30), ProtocolError, PROTOCOL),
    # 3.8.3.1 (5.0): "It is a Protocol Error if the Maximum QoS field has the value 3"
    BadCase("subscribe-qos-3-v5", 5, _v5_subscribe(b"a", 0x03), ProtocolError, PROTOCOL),
    # [MQTT-3-8.3-4] (3.1.1): QoS not 0, 1 or 2, or reserved bits set: malformed
    BadCase("subscribe-qos-3-v4", 4, _v4_subscribe(b"a", 0x03), MalformedPacket, MALFORMED),
    BadCase("subscribe-reserved-bits-v4", 4, _v4_subscribe(b"a", 0x04), MalformedPacket, MALFORMED),
    # [MQTT-3.8.3-5] (5.0): reserved bits 6 and 7 set: malformed
    BadCase("subscribe-reserved-bits-v5", 5, _v5_subscribe(b"a", 0x40), MalformedPacket, MALFORMED),
    # --- reason codes outside the packet's table ----------------------------------------
    BadCase("connack-ack-flags-reserved", 4, b"\x20\x02\x02\x00", MalformedPacket, MALFORMED),
    BadCase("connack-return-code-6", 4, b"\x20\x02\x00\x06", MalformedPacket, MALFORMED),
    BadCase("connack-reason-0x01-v5", 5, b"\x20\x03\x00\x01\x00", MalformedPacket, MALFORMED),
    BadCase("puback-reason-0x01", 5, b"\x40\x03\x00\x01\x01", MalformedPacket, MALFORMED),
    BadCase("pubrel-reason-0x10", 5, b"\x62\x03\x00\x01\x10", MalformedPacket, MALFORMED),
    BadCase("suback-code-3-v4", 4, b"\x90\x03\x00\x01\x03", MalformedPacket, MALFORMED),
    BadCase("suback-code-0x11-v5", 5, b"\x90\x04\x00\x01\x00\x11", MalformedPacket, MALFORMED),
    BadCase("unsuback-code-0x01-v5", 5, b"\xb0\x04\x00\x01\x00\x01", MalformedPacket, MALFORMED),
    BadCase("disconnect-reason-0x05", 5, b"\xe0\x01\x05", MalformedPacket, MALFORMED),
    BadCase("auth-reason-0x01", 5, b"\xf0\x02\x01\x00", MalformedPacket, MALFORMED),
)
