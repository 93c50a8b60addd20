"""CONNECT, CONNACK and AUTH: opening a connection and authenticating it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from roost.codec import properties as props
from roost.codec.errors import (
    MalformedPacket,
    ProtocolError,
    UnsupportedProtocolVersion,
)
from roost.codec.packets.base import AUTH, CONNACK, CONNECT, MQTT_3_1, MQTT_5, Packet
from roost.codec.primitives import (
    Buffer,
    encode_binary,
    encode_utf8,
    encode_varint,
    read_binary,
    read_byte,
    read_u16,
    read_utf8,
)
from roost.codec.reason_codes import VALID_AUTH, VALID_CONNACK_V3, VALID_CONNACK_V5
from roost.codec.topics import validate_topic_name

_PROTOCOL_NAMES = {MQTT_3_1: "MQIsdp", 4: "MQTT", MQTT_5: "MQTT"}


@dataclass(slots=True)
class Will:
    """The will message carried by CONNECT, with its MQTT 5 properties."""

    topic: str
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    will_delay_interval: int | None = None
    payload_format_indicator: int | None = None
    message_expiry_interval: int | None = None
    content_type: str | None = None
    response_topic: str | None = None
    correlation_data: bytes | None = None
    user_properties: tuple[tuple[str, str], ...] = ()


@dataclass(slots=True)
class Connect(Packet):
    """The packet that opens a session: client id, protocol level, credentials, will
    and the client's MQTT 5 limits.
    """

    packet_type: ClassVar[int] = CONNECT

    client_id: str = ""
    protocol_level: int = 4
    clean_start: bool = True
    keep_alive: int = 60
    username: str | None = None
    password: bytes | None = None
    will: Will | None = None
    session_expiry_interval: int | None = None
    receive_maximum: int | None = None
    maximum_packet_size: int | None = None
    topic_alias_maximum: int | None = None
    request_response_information: int | None = None
    request_problem_information: int | None = None
    authentication_method: str | None = None
    authentication_data: bytes | None = None
    user_properties: tuple[tuple[str, str], ...] = ()
    # Mosquitto's bridge convention ("try_private"): the protocol level byte is sent
    # with 0x80 set, telling a broker that knows it that this client is a bridge (it
    # then sends none of the bridge's own messages back to it). Not part of any spec.
    bridge: bool = False

    def encode(self, version: int | None = None) -> bytes:
        """Encode at ``protocol_level``; CONNECT itself says which version it speaks."""
        level = self.protocol_level
        flags = 0x02 if self.clean_start else 0
        will = self.will
        if will is not None:
            flags |= 0x04 | will.qos << 3 | (0x20 if will.retain else 0)
        if self.password is not None:
            flags |= 0x40
        if self.username is not None:
            flags |= 0x80
        parts = [
            encode_utf8(_PROTOCOL_NAMES[level]),
            bytes((level | 0x80 if self.bridge else level, flags)),
            self.keep_alive.to_bytes(2, "big"),
        ]
        if level == MQTT_5:
            parts.append(props.encode_properties(self, props.CONNECT))
        parts.append(encode_utf8(self.client_id))
        if will is not None:
            if level == MQTT_5:
                parts.append(props.encode_properties(will, props.WILL))
            parts.append(encode_utf8(will.topic))
            parts.append(encode_binary(will.payload))
        if self.username is not None:
            parts.append(encode_utf8(self.username))
        if self.password is not None:
            parts.append(encode_binary(self.password))
        body = b"".join(parts)
        return b"\x10" + encode_varint(len(body)) + body


def decode_connect(flags: int, buf: Buffer, pos: int, end: int, version: int) -> Connect:
    name, pos = read_utf8(buf, pos, end)
    level, pos = read_byte(buf, pos, end)
    # A Mosquitto bridge with try_private sets the level's top bit (see Connect.bridge);
    # any other unknown level is kept as it came, for the refusal to name.
    bridge = bool(level & 0x80) and _PROTOCOL_NAMES.get(level & 0x7F) == name
    if bridge:
        level &= 0x7F
    if name not in ("MQTT", "MQIsdp"):
        raise ProtocolError(f"unknown protocol name {name!r}")
    if _PROTOCOL_NAMES.get(level) != name:
        raise UnsupportedProtocolVersion(
            f"unsupported protocol {name!r} level {level}", name, level
        )
    connect_flags, pos = read_byte(buf, pos, end)
    if connect_flags & 0x01:
        raise MalformedPacket("CONNECT reserved flag is set")  # [MQTT-3.1.2-3]
    has_will = connect_flags & 0x04
    will_qos = connect_flags >> 3 & 0x03
    will_retain = bool(connect_flags & 0x20)
    has_password = connect_flags & 0x40
    has_username = connect_flags & 0x80
    if will_qos == 3:
        raise MalformedPacket("will QoS 3")
    if not has_will and (will_qos or will_retain):
        raise MalformedPacket("will QoS or retain set without a will")
    if level < MQTT_5 and has_password and not has_username:
        raise MalformedPacket("password flag set without user name flag")  # [MQTT-3.1.2-22]
    keep_alive, pos = read_u16(buf, pos, end)
    packet_props: dict[str, object] = {}
    if level == MQTT_5:
        packet_props, pos = props.decode_properties(buf, pos, end, props.CONNECT)
        if "authentication_data" in packet_props and "authentication_method" not in packet_props:
            raise ProtocolError("authentication data without authentication method")
    client_id, pos = read_utf8(buf, pos, end)
    will = None
    if has_will:
        will_props: dict[str, object] = {}
        if level == MQTT_5:
            will_props, pos = props.decode_properties(buf, pos, end, props.WILL)
        topic, pos = read_utf8(buf, pos, end)
        validate_topic_name(topic)
        payload, pos = read_binary(buf, pos, end)
        will = Will(topic, payload, will_qos, will_retain, **will_props)  # type: ignore[arg-type]
    username = password = None
    if has_username:
        username, pos = read_utf8(buf, pos, end)
    if has_password:
        password, pos = read_binary(buf, pos, end)
    if pos != end:
        raise MalformedPacket("unexpected bytes after the CONNECT payload")
    return Connect(
        client_id,
        level,
        bool(connect_flags & 0x02),
        keep_alive,
        username,
        password,
        will,
        **packet_props,  # type: ignore[arg-type]
        bridge=bridge,
    )


@dataclass(slots=True)
class Connack(Packet):
    """The server's answer to CONNECT: accepted or why not, and (MQTT 5) the limits
    the server imposes on this connection.
    """

    packet_type: ClassVar[int] = CONNACK

    session_present: bool = False
    reason_code: int = 0
    session_expiry_interval: int | None = None
    receive_maximum: int | None = None
    maximum_qos: int | None = None
    retain_available: int | None = None
    maximum_packet_size: int | None = None
    assigned_client_identifier: str | None = None
    topic_alias_maximum: int | None = None
    reason_string: str | None = None
    wildcard_subscription_available: int | None = None
    subscription_identifier_available: int | None = None
    shared_subscription_available: int | None = None
    server_keep_alive: int | None = None
    response_information: str | None = None
    server_reference: str | None = None
    authentication_method: str | None = None
    authentication_data: bytes | None = None
    user_properties: tuple[tuple[str, str], ...] = ()

    def encode(self, version: int = 4) -> bytes:
        ack_flags = 0x01 if self.session_present and version != MQTT_3_1 else 0x00
        if version != MQTT_5:
            return bytes((0x20, 2, ack_flags, self.reason_code))
        body = bytes((ack_flags, self.reason_code)) + props.encode_properties(self, props.CONNACK)
        return b"\x20" + encode_varint(len(body)) + body


def decode_connack(flags: int, buf: Buffer, pos: int, end: int, version: int) -> Connack:
    ack_flags, pos = read_byte(buf, pos, end)
    reason_code, pos = read_byte(buf, pos, end)
    if version == MQTT_3_1:
        # 3.1 reserves the whole first byte (no session present flag).
        ack_flags = 0
    elif ack_flags & 0xFE:
        raise MalformedPacket("CONNACK reserved acknowledge flags are set")
    packet_props: dict[str, object] = {}
    if version == MQTT_5:
        if reason_code not in VALID_CONNACK_V5:
            raise MalformedPacket(f"invalid CONNACK reason code 0x{reason_code:02X}")
        packet_props, pos = props.decode_properties(buf, pos, end, props.CONNACK)
    elif reason_code not in VALID_CONNACK_V3:
        raise MalformedPacket(f"invalid CONNACK return code {reason_code}")
    if pos != end:
        raise MalformedPacket("unexpected bytes after the CONNACK")
    return Connack(bool(ack_flags), reason_code, **packet_props)  # type: ignore[arg-type]


@dataclass(slots=True)
class Auth(Packet):
    """MQTT 5 enhanced authentication exchange."""

    packet_type: ClassVar[int] = AUTH

    reason_code: int = 0
    authentication_method: str | None = None
    authentication_data: bytes | None = None
    reason_string: str | None = None
    user_properties: tuple[tuple[str, str], ...] = ()

    def encode(self, version: int = MQTT_5) -> bytes:
        block = props.encode_properties(self, props.AUTH)
        if self.reason_code == 0 and block == props.EMPTY_PROPERTIES:
            return b"\xf0\x00"
        body = bytes((self.reason_code,)) + block
        return b"\xf0" + encode_varint(len(body)) + body


def decode_auth(flags: int, buf: Buffer, pos: int, end: int, version: int) -> Auth:
    if version != MQTT_5:
        raise MalformedPacket("AUTH is reserved before MQTT 5")
    if pos == end:
        return Auth()
    reason_code, pos = read_byte(buf, pos, end)
    if reason_code not in VALID_AUTH:
        raise MalformedPacket(f"invalid AUTH reason code 0x{reason_code:02X}")
    # Unlike DISCONNECT's, AUTH's property length may only be omitted together with
    # the reason code (MQTT 5.0 section 3.15.2.1).
    packet_props, pos = props.decode_properties(buf, pos, end, props.AUTH)
    if pos != end:
        raise MalformedPacket("unexpected bytes after the AUTH properties")
    if "authentication_method" not in packet_props:
        # "It is a Protocol Error to omit the Authentication Method" (MQTT 5.0 3.15.2.2.2);
        # only the Remaining Length 0 form (success, no properties) goes without.
        raise ProtocolError("AUTH without an authentication method")
    return Auth(reason_code, **packet_props)
