"""Packet bytes built by hand, for tests that send what Roost's own encoders refuse to build.

These builders only frame bytes; they know nothing of what makes a packet valid.
"""

from __future__ import annotations

from roost.codec import MQTT_3_1_1, MQTT_5
from roost.codec.primitives import encode_varint


def frame(first: int, *parts: bytes) -> bytes:
    """A fixed header (first byte, shortest remaining length) followed by ``parts``."""
    body = b"".join(parts)
    return bytes((first,)) + encode_varint(len(body)) + body


def u16(value: int) -> bytes:
    return value.to_bytes(2, "big")


def u32(value: int) -> bytes:
    return value.to_bytes(4, "big")


def string(raw: bytes) -> bytes:
    """A length-prefixed string made of exactly these bytes (valid UTF-8 or not)."""
    return u16(len(raw)) + raw


def props(version: int, *items: bytes) -> bytes:
    """An MQTT 5 property block; nothing at all for earlier versions."""
    if version != MQTT_5:
        return b""
    block = b"".join(items)
    return encode_varint(len(block)) + block


def raw_connect(
    client_id: bytes = b"raw",
    *,
    name: bytes = b"MQTT",
    level: int = MQTT_3_1_1,
    flags: int = 0x02,
    keep_alive: int = 60,
    properties: bytes = b"\x00",
) -> bytes:
    """A CONNECT with any protocol name, level and flags (``properties`` from MQTT 5 on)."""
    body = b"".join(
        (
            string(name),
            bytes((level, flags)),
            u16(keep_alive),
            properties if level == MQTT_5 else b"",
            string(client_id),
        )
    )
    assert len(body) < 128  # a one-byte remaining length: tests may cut the header off
    return frame(0x10, body)
