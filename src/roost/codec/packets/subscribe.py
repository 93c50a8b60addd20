"""SUBSCRIBE, SUBACK, UNSUBSCRIBE and UNSUBACK."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from roost.codec import properties as props
from roost.codec.errors import MalformedPacket, ProtocolError
from roost.codec.packets.base import MQTT_5, SUBACK, SUBSCRIBE, UNSUBACK, UNSUBSCRIBE, Packet
from roost.codec.primitives import Buffer, encode_utf8, encode_varint, read_packet_id, read_utf8
from roost.codec.reason_codes import VALID_SUBACK_V3, VALID_SUBACK_V5, VALID_UNSUBACK
from roost.codec.topics import SHARE_PREFIX, validate_topic_filter


@dataclass(slots=True)
class Subscription:
    """One topic filter of a SUBSCRIBE with its options (MQTT 5.0 section 3.8.3.1)."""

    topic_filter: str
    qos: int = 0
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0

    def options_byte(self, version: int) -> int:
        if version != MQTT_5:
            return self.qos
        return (
            self.qos
            | (0x04 if self.no_local else 0)
            | (0x08 if self.retain_as_published else 0)
            | self.retain_handling << 4
        )


@dataclass(slots=True)
class Subscribe(Packet):
    """A client's request to receive messages on one or more topic filters."""

    packet_type: ClassVar[int] = SUBSCRIBE

    packet_id: int
    subscriptions: tuple[Subscription, ...]
    subscription_identifier: int | None = None
    user_properties: tuple[tuple[str, str], ...] = ()

    def encode(self, version: int = 4) -> bytes:
        parts = [self.packet_id.to_bytes(2, "big")]
        if version == MQTT_5:
            parts.append(props.encode_properties(self, props.SUBSCRIBE))
        for sub in self.subscriptions:
            parts.append(encode_utf8(sub.topic_filter))
            parts.append(bytes((sub.options_byte(version),)))
        body = b"".join(parts)
        return b"\x82" + encode_varint(len(body)) + body


def decode_subscribe(flags: int, buf: Buffer, pos: int, end: int, version: int) -> Subscribe:
    packet_id, pos = read_packet_id(buf, pos, end)
    packet_props: dict[str, object] = {}
    if version == MQTT_5:
        packet_props, pos = props.decode_properties(buf, pos, end, props.SUBSCRIBE)
    subscriptions = []
    while pos < end:
        topic_filter, pos = read_utf8(buf, pos, end)
        if pos >= end:
            raise MalformedPacket("topic filter without subscription options")
        options = buf[pos]
        pos += 1
        qos = options & 0x03
        if qos == 3:
            if version == MQTT_5:
                # "It is a Protocol Error if the Maximum QoS field has the value 3" (3.8.3.1).
                raise ProtocolError("subscription with maximum QoS 3")
            raise MalformedPacket("subscription with QoS 3")  # [MQTT-3-8.3-4]
        if version == MQTT_5:
            if options & 0xC0:
                raise MalformedPacket("reserved subscription option bits are set")  # [MQTT-3.8.3-5]
            retain_handling = options >> 4 & 0x03
            if retain_handling == 3:
                raise ProtocolError("retain handling 3")
            no_local = bool(options & 0x04)
            if no_local and topic_filter.startswith(SHARE_PREFIX):
                raise ProtocolError("no local on a shared subscription")  # [MQTT-3.8.3-4]
            validate_topic_filter(topic_filter)
            subscriptions.append(
                Subscription(topic_filter, qos, no_local, bool(options & 0x08), retain_handling)
            )
        else:
            if options & 0xFC:
                raise MalformedPacket("reserved subscription option bits are set")
            validate_topic_filter(topic_filter)
            subscriptions.append(Subscription(topic_filter, qos))
    if not subscriptions:
        raise ProtocolError("SUBSCRIBE with no topic filter")  # [MQTT-3.8.3-3]
    return Subscribe(packet_id, tuple(subscriptions), **packet_props)  # type: ignore[arg-type]


@dataclass(slots=True)
class Suback(Packet):
    """The answer to SUBSCRIBE: per filter, the granted QoS or why it was refused."""

    packet_type: ClassVar[int] = SUBACK

    packet_id: int
    reason_codes: tuple[int, ...]
    reason_string: str | None = None
    user_properties: tuple[tuple[str, str], ...] = ()

    def encode(self, version: int = 4) -> bytes:
        block = props.encode_properties(self, props.ACK) if version == MQTT_5 else b""
        body = self.packet_id.to_bytes(2, "big") + block + bytes(self.reason_codes)
        return b"\x90" + encode_varint(len(body)) + body


def decode_suback(flags: int, buf: Buffer, pos: int, end: int, version: int) -> Suback:
    packet_id, pos = read_packet_id(buf, pos, end)
    packet_props: dict[str, object] = {}
    valid = VALID_SUBACK_V3
    if version == MQTT_5:
        packet_props, pos = props.decode_properties(buf, pos, end, props.ACK)
        valid = VALID_SUBACK_V5
    codes = tuple(buf[pos:end])
    if not codes:
        raise ProtocolError("SUBACK with no reason code")
    for code in codes:
        if code not in valid:
            raise MalformedPacket(f"invalid SUBACK reason code 0x{code:02X}")
    return Suback(packet_id, codes, **packet_props)  # type: ignore[arg-type]


@dataclass(slots=True)
class Unsubscribe(Packet):
    """A client's request to stop receiving messages on some topic filters."""

    packet_type: ClassVar[int] = UNSUBSCRIBE

    packet_id: int
    topic_filters: tuple[str, ...]
    user_properties: tuple[tuple[str, str], ...] = ()

    def encode(self, version: int = 4) -> bytes:
        parts = [self.packet_id.to_bytes(2, "big")]
        if version == MQTT_5:
            parts.append(props.encode_properties(self, props.UNSUBSCRIBE))
        parts.extend(encode_utf8(topic_filter) for topic_filter in self.topic_filters)
        body = b"".join(parts)
        return b"\xa2" + encode_varint(len(body)) + body


def decode_unsubscribe(flags: int, buf: Buffer, pos: int, end: int, version: int) -> Unsubscribe:
    packet_id, pos = read_packet_id(buf, pos, end)
    packet_props: dict[str, object] = {}
    if version == MQTT_5:
        packet_props, pos = props.decode_properties(buf, pos, end, props.UNSUBSCRIBE)
    topic_filters = []
    while pos < end:
        topic_filter, pos = read_utf8(buf, pos, end)
        validate_topic_filter(topic_filter)
        topic_filters.append(topic_filter)
    if not topic_filters:
        raise ProtocolError("UNSUBSCRIBE with no topic filter")  # [MQTT-3.10.3-2]
    return Unsubscribe(packet_id, tuple(topic_filters), **packet_props)  # type: ignore[arg-type]


@dataclass(slots=True)
class Unsuback(Packet):
    """The answer to UNSUBSCRIBE; MQTT 5 adds one reason code per filter."""

    packet_type: ClassVar[int] = UNSUBACK

    packet_id: int
    reason_codes: tuple[int, ...] = ()  # MQTT 5 only; 3.1.1's UNSUBACK carries none
    reason_string: str | None = None
    user_properties: tuple[tuple[str, str], ...] = ()

    def encode(self, version: int = 4) -> bytes:
        packet_id = self.packet_id.to_bytes(2, "big")
        if version != MQTT_5:
            return b"\xb0\x02" + packet_id
        body = packet_id + props.encode_properties(self, props.ACK) + bytes(self.reason_codes)
        return b"\xb0" + encode_varint(len(body)) + body


def decode_unsuback(flags: int, buf: Buffer, pos: int, end: int, version: int) -> Unsuback:
    packet_id, pos = read_packet_id(buf, pos, end)
    if version != MQTT_5:
        if pos != end:
            raise MalformedPacket("UNSUBACK longer than its packet identifier")
        return Unsuback(packet_id)
    packet_props, pos = props.decode_properties(buf, pos, end, props.ACK)
    codes = tuple(buf[pos:end])
    if not codes:
        raise ProtocolError("UNSUBACK with no reason code")
    for code in codes:
        if code not in VALID_UNSUBACK:
            raise MalformedPacket(f"invalid UNSUBACK reason code 0x{code:02X}")
    return Unsuback(packet_id, codes, **packet_props)
