"""PUBLISH and its acknowledgements: PUBACK, PUBREC, PUBREL, PUBCOMP."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from roost.codec import properties as props
from roost.codec.errors import MalformedPacket, ProtocolError, TopicNameInvalid
from roost.codec.packets.base import MQTT_5, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, Packet
from roost.codec.primitives import Buffer, encode_varint, read_packet_id
from roost.codec.reason_codes import VALID_PUBACK, VALID_PUBREL

_NO_PACKET_ID = b""


@dataclass(slots=True)
class Publish(Packet):
    """An application message on its way to or from the broker, with its delivery
    flags and MQTT 5 message properties.
    """

    packet_type: ClassVar[int] = PUBLISH

    topic: str
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int = 0  # 0 for QoS 0, which carries no packet identifier
    payload_format_indicator: int | None = None
    message_expiry_interval: int | None = None
    topic_alias: int | None = None
    response_topic: str | None = None
    correlation_data: bytes | None = None
    user_properties: tuple[tuple[str, str], ...] = ()
    subscription_identifiers: tuple[int, ...] = ()
    content_type: str | None = None

    def encode(self, version: int = 4) -> bytes:
        topic = self.topic.encode()
        qos = self.qos
        if version != MQTT_5:
            block = b""
        elif (
            self.payload_format_indicator is None
            and self.message_expiry_interval is None
            and self.topic_alias is None
            and self.response_topic is None
            and self.correlation_data is None
            and not self.user_properties
            and not self.subscription_identifiers
            and self.content_type is None
        ):
            block = props.EMPTY_PROPERTIES
        else:
            block = props.encode_properties(self, props.PUBLISH)
        packet_id = self.packet_id.to_bytes(2, "big") if qos else _NO_PACKET_ID
        payload = self.payload
        remaining = 2 + len(topic) + len(packet_id) + len(block) + len(payload)
        first = 0x30 | qos << 1 | (0x08 if self.dup else 0) | (0x01 if self.retain else 0)
        return b"".join(
            (
                bytes((first,)),
                encode_varint(remaining),
                len(topic).to_bytes(2, "big"),
                topic,
                packet_id,
                block,
                payload,
            )
        )


def decode_publish(flags: int, buf: Buffer, pos: int, end: int, version: int) -> Publish:
    # The hot path: fields are read inline rather than through the primitives.
    qos = flags >> 1 & 0x03
    if qos == 3:
        raise MalformedPacket("PUBLISH with QoS 3")  # [MQTT-3.3.1-4]
    if flags & 0x08 and not qos:
        raise MalformedPacket("PUBLISH with QoS 0 and DUP set")  # [MQTT-3.3.1-2]
    if pos + 2 > end:
        raise MalformedPacket("PUBLISH ends inside the topic length")
    stop = pos + 2 + (buf[pos] << 8 | buf[pos + 1])
    if stop > end:
        raise MalformedPacket("PUBLISH topic length overruns the packet")
    raw = buf[pos + 2 : stop]
    try:
        # bytes.decode is the fast path; bytearray and memoryview go through str().
        topic = raw.decode() if type(raw) is bytes else str(raw, "utf-8")
    except UnicodeDecodeError:
        raise MalformedPacket("PUBLISH topic is not well-formed UTF-8") from None
    if "+" in topic or "#" in topic:
        raise TopicNameInvalid(f"PUBLISH topic {topic!r} contains a wildcard")  # [MQTT-3.3.2-2]
    if "\x00" in topic:
        raise MalformedPacket("PUBLISH topic contains U+0000")
    pos = stop
    packet_id = 0
    if qos:
        packet_id, pos = read_packet_id(buf, pos, end)
    if version == MQTT_5:
        if pos < end and buf[pos] == 0:
            # The usual empty property block, without the general decoder's cost.
            pos += 1
            packet_props = None
        else:
            packet_props, pos = props.decode_properties(buf, pos, end, props.PUBLISH)
        if packet_props:
            if not topic and "topic_alias" not in packet_props:
                raise ProtocolError("empty topic name without a topic alias")
            response_topic = packet_props.get("response_topic")
            if response_topic is not None and ("+" in response_topic or "#" in response_topic):
                raise ProtocolError("response topic contains a wildcard")  # [MQTT-3.3.2-14]
            return Publish(
                topic,
                bytes(buf[pos:end]),
                qos,
                bool(flags & 0x01),
                bool(flags & 0x08),
                packet_id,
                **packet_props,
            )
        if not topic:
            raise ProtocolError("empty topic name without a topic alias")
    elif not topic:
        raise TopicNameInvalid("empty PUBLISH topic name")  # [MQTT-4.7.3-1]
    payload = buf[pos:end]
    if type(payload) is not bytes:
        payload = bytes(payload)
    return Publish(topic, payload, qos, flags & 0x01 != 0, flags & 0x08 != 0, packet_id)


@dataclass(slots=True)
class _Ack(Packet):
    """The shared shape of PUBACK, PUBREC, PUBREL and PUBCOMP."""

    packet_id: int
    reason_code: int = 0
    reason_string: str | None = None
    user_properties: tuple[tuple[str, str], ...] = ()

    def encode(self, version: int = 4) -> bytes:
        if self.reason_string is None and not self.user_properties:
            return encode_ack(self.packet_type, self.packet_id, self.reason_code, version)
        first = self.packet_type << 4 | (0x02 if self.packet_type == PUBREL else 0)
        packet_id = self.packet_id.to_bytes(2, "big")
        if version != MQTT_5:
            return bytes((first, 2)) + packet_id
        body = packet_id + bytes((self.reason_code,)) + props.encode_properties(self, props.ACK)
        return bytes((first,)) + encode_varint(len(body)) + body


# The fixed headers of the property-less acknowledgements by packet type: remaining
# length 2 (packet id only) and 3 (packet id and reason code).
_ACK_HEADERS_2 = {
    kind: bytes((kind << 4 | (0x02 if kind == PUBREL else 0), 2))
    for kind in (PUBACK, PUBREC, PUBREL, PUBCOMP)
}
_ACK_HEADERS_3 = {kind: header[:1] + b"\x03" for kind, header in _ACK_HEADERS_2.items()}


def encode_ack(packet_type: int, packet_id: int, reason_code: int = 0, version: int = 4) -> bytes:
    """A PUBACK, PUBREC, PUBREL or PUBCOMP without properties, built without an object:
    a broker sends one per QoS 1/2 message, so this is on the hot path."""
    if version != MQTT_5 or reason_code == 0:
        return _ACK_HEADERS_2[packet_type] + packet_id.to_bytes(2, "big")
    return _ACK_HEADERS_3[packet_type] + packet_id.to_bytes(2, "big") + bytes((reason_code,))


@dataclass(slots=True)
class Puback(_Ack):
    """Acknowledges a QoS 1 PUBLISH; its packet identifier is then free again."""

    packet_type: ClassVar[int] = PUBACK


@dataclass(slots=True)
class Pubrec(_Ack):
    """QoS 2, step 2: the receiver has stored the PUBLISH; the sender answers with PUBREL."""

    packet_type: ClassVar[int] = PUBREC


@dataclass(slots=True)
class Pubrel(_Ack):
    """QoS 2, step 3: the sender releases the message; the receiver answers with PUBCOMP."""

    packet_type: ClassVar[int] = PUBREL


@dataclass(slots=True)
class Pubcomp(_Ack):
    """QoS 2, step 4: the exchange is complete and its packet identifier free again."""

    packet_type: ClassVar[int] = PUBCOMP


def _decode_ack(
    cls: type[_Ack], valid: frozenset[int], buf: Buffer, pos: int, end: int, version: int
) -> _Ack:
    packet_id, pos = read_packet_id(buf, pos, end)
    if version != MQTT_5 or pos == end:
        if pos != end:
            raise MalformedPacket(f"{cls.__name__.upper()} longer than its packet identifier")
        return cls(packet_id)
    reason_code = buf[pos]
    if reason_code not in valid:
        raise MalformedPacket(f"invalid {cls.__name__.upper()} reason code 0x{reason_code:02X}")
    pos += 1
    if pos == end:
        return cls(packet_id, reason_code)
    packet_props, pos = props.decode_properties(buf, pos, end, props.ACK)
    if pos != end:
        raise MalformedPacket(f"unexpected bytes after the {cls.__name__.upper()} properties")
    return cls(packet_id, reason_code, **packet_props)


def decode_puback(flags: int, buf: Buffer, pos: int, end: int, version: int) -> _Ack:
    return _decode_ack(Puback, VALID_PUBACK, buf, pos, end, version)


def decode_pubrec(flags: int, buf: Buffer, pos: int, end: int, version: int) -> _Ack:
    return _decode_ack(Pubrec, VALID_PUBACK, buf, pos, end, version)


def decode_pubrel(flags: int, buf: Buffer, pos: int, end: int, version: int) -> _Ack:
    return _decode_ack(Pubrel, VALID_PUBREL, buf, pos, end, version)


def decode_pubcomp(flags: int, buf: Buffer, pos: int, end: int, version: int) -> _Ack:
    return _decode_ack(Pubcomp, VALID_PUBREL, buf, pos, end, version)
