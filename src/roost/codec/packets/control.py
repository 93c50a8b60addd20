"""PINGREQ, PINGRESP and DISCONNECT."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from roost.codec import properties as props
from roost.codec.errors import MalformedPacket
from roost.codec.packets.base import DISCONNECT, MQTT_5, PINGREQ, PINGRESP, Packet
from roost.codec.primitives import Buffer, encode_varint
from roost.codec.reason_codes import VALID_DISCONNECT


@dataclass(slots=True)
class Pingreq(Packet):
    """Keep-alive probe from the client; it carries nothing."""

    packet_type: ClassVar[int] = PINGREQ

    def encode(self, version: int = 4) -> bytes:
        return b"\xc0\x00"


@dataclass(slots=True)
class Pingresp(Packet):
    """The server's answer to PINGREQ; it carries nothing."""

    packet_type: ClassVar[int] = PINGRESP

    def encode(self, version: int = 4) -> bytes:
        return b"\xd0\x00"


def _expect_empty(name: str, pos: int, end: int) -> None:
    if pos != end:
        raise MalformedPacket(f"{name} must have no body")


def decode_pingreq(flags: int, buf: Buffer, pos: int, end: int, version: int) -> Pingreq:
    _expect_empty("PINGREQ", pos, end)
    return Pingreq()


def decode_pingresp(flags: int, buf: Buffer, pos: int, end: int, version: int) -> Pingresp:
    _expect_empty("PINGRESP", pos, end)
    return Pingresp()


@dataclass(slots=True)
class Disconnect(Packet):
    """Ends a connection on purpose; in MQTT 5 either side sends it, with a reason."""

    packet_type: ClassVar[int] = DISCONNECT

    reason_code: int = 0
    session_expiry_interval: int | None = None
    reason_string: str | None = None
    server_reference: str | None = None
    user_properties: tuple[tuple[str, str], ...] = ()

    def encode(self, version: int = 4) -> bytes:
        if version != MQTT_5:
            return b"\xe0\x00"
        block = props.encode_properties(self, props.DISCONNECT)
        if block == props.EMPTY_PROPERTIES:
            if self.reason_code == 0:
                return b"\xe0\x00"
            return bytes((0xE0, 1, self.reason_code))
        body = bytes((self.reason_code,)) + block
        return b"\xe0" + encode_varint(len(body)) + body


def decode_disconnect(flags: int, buf: Buffer, pos: int, end: int, version: int) -> Disconnect:
    if version != MQTT_5 or pos == end:
        _expect_empty("DISCONNECT", pos, end)
        return Disconnect()
    reason_code = buf[pos]
    if reason_code not in VALID_DISCONNECT:
        raise MalformedPacket(f"invalid DISCONNECT reason code 0x{reason_code:02X}")
    pos += 1
    if pos == end:
        return Disconnect(reason_code)
    packet_props, pos = props.decode_properties(buf, pos, end, props.DISCONNECT)
    if pos != end:
        raise MalformedPacket("unexpected bytes after the DISCONNECT properties")
    return Disconnect(reason_code, **packet_props)
