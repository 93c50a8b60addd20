"""MQTT data representations (MQTT 5.0 section 1.5): integers, varints, strings, binary.

Readers take ``(buf, pos, end)`` and return ``(value, new_pos)``; they never read past
``end``, so a field that overruns its packet is a MalformedPacket, not an IndexError.
"""

from __future__ import annotations

from roost.codec.errors import MalformedPacket, ProtocolError

Buffer = bytes | bytearray | memoryview

MAX_VARINT = 268_435_455
_U16_MAX = 0xFFFF


def read_byte(buf: Buffer, pos: int, end: int) -> tuple[int, int]:
    if pos >= end:
        raise MalformedPacket("packet ends inside a one-byte field")
    return buf[pos], pos + 1


def read_u16(buf: Buffer, pos: int, end: int) -> tuple[int, int]:
    if pos + 2 > end:
        raise MalformedPacket("packet ends inside a two-byte integer")
    return buf[pos] << 8 | buf[pos + 1], pos + 2


def read_u32(buf: Buffer, pos: int, end: int) -> tuple[int, int]:
    if pos + 4 > end:
        raise MalformedPacket("packet ends inside a four-byte integer")
    return int.from_bytes(buf[pos : pos + 4], "big"), pos + 4


def read_varint(buf: Buffer, pos: int, end: int) -> tuple[int, int]:
    """A Variable Byte Integer: at most 4 bytes, in its shortest form [MQTT-1.5.5-1]."""
    value = 0
    shift = 0
    start = pos
    while True:
        if pos >= end:
            raise MalformedPacket("packet ends inside a variable byte integer")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
        if shift == 28:
            raise MalformedPacket("variable byte integer longer than 4 bytes")
    if byte == 0 and pos - start > 1:
        raise MalformedPacket("variable byte integer not in its shortest form")
    return value, pos


def check_text(text: str) -> None:
    # The UTF-8 codec already refuses surrogates, overlong forms and code points above
    # U+10FFFF; the one extra rule MQTT adds is no U+0000 [MQTT-1.5.4-2].
    if "\x00" in text:
        raise MalformedPacket("UTF-8 string contains U+0000")


def read_utf8(buf: Buffer, pos: int, end: int) -> tuple[str, int]:
    if pos + 2 > end:
        raise MalformedPacket("packet ends inside a string length")
    stop = pos + 2 + (buf[pos] << 8 | buf[pos + 1])
    if stop > end:
        raise MalformedPacket("string length overruns the packet")
    try:
        text = str(buf[pos + 2 : stop], "utf-8")
    except UnicodeDecodeError:
        raise MalformedPacket("ill-formed UTF-8 string") from None
    if "\x00" in text:
        raise MalformedPacket("UTF-8 string contains U+0000")
    return text, stop


def read_binary(buf: Buffer, pos: int, end: int) -> tuple[bytes, int]:
    if pos + 2 > end:
        raise MalformedPacket("packet ends inside a binary data length")
    stop = pos + 2 + (buf[pos] << 8 | buf[pos + 1])
    if stop > end:
        raise MalformedPacket("binary data length overruns the packet")
    return bytes(buf[pos + 2 : stop]), stop


def read_packet_id(buf: Buffer, pos: int, end: int) -> tuple[int, int]:
    if pos + 2 > end:
        raise MalformedPacket("packet ends inside the packet identifier")
    packet_id = buf[pos] << 8 | buf[pos + 1]
    if packet_id == 0:
        raise ProtocolError("packet identifier 0 where a non-zero one is required")
    return packet_id, pos + 2


_SMALL_VARINTS = tuple(bytes((n,)) for n in range(128))


def encode_varint(value: int) -> bytes:
    if value < 128:
        return _SMALL_VARINTS[value]
    if value > MAX_VARINT:
        raise ValueError(f"{value} does not fit a variable byte integer")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_u16(value: int) -> bytes:
    return value.to_bytes(2, "big")


def encode_u32(value: int) -> bytes:
    return value.to_bytes(4, "big")


def encode_utf8(text: str) -> bytes:
    data = text.encode()
    if len(data) > _U16_MAX:
        raise ValueError("string longer than 65535 bytes")
    return len(data).to_bytes(2, "big") + data


def encode_binary(data: bytes) -> bytes:
    if len(data) > _U16_MAX:
        raise ValueError("binary data longer than 65535 bytes")
    return len(data).to_bytes(2, "big") + data


def fixed_header(first_byte: int, remaining_length: int) -> bytes:
    return bytes((first_byte,)) + encode_varint(remaining_length)
