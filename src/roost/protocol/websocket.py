"""What both ends of MQTT over WebSocket (RFC 6455) share: constants and pure helpers.

The broker's server layer (roost/broker/websocket.py) and the client's sans-IO side
(roost/protocol/websocket_client.py) frame differently (only clients mask), but the
handshake key, the masking, the opcodes and the close codes are the same.
"""

from __future__ import annotations

import base64
import hashlib

ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
FIN = 0x80

# Close codes (RFC 6455 section 7.4.1).
NORMAL_CLOSURE = 1000
PROTOCOL_ERROR = 1002
UNSUPPORTED_DATA = 1003
NO_STATUS = 1005
MESSAGE_TOO_BIG = 1009


def frame_header(first: int, length: int, masked: bool = False) -> bytes:
    """A frame's header: ``first`` (FIN and the opcode), then the payload length in the
    shortest of RFC 6455's three forms, with the mask bit for a client's frame."""
    mask_bit = 0x80 if masked else 0
    if length < 126:
        return bytes((first, mask_bit | length))
    if length < 65536:
        return bytes((first, mask_bit | 126)) + length.to_bytes(2, "big")
    return bytes((first, mask_bit | 127)) + length.to_bytes(8, "big")


def accept_key(key: str) -> str:
    """The Sec-WebSocket-Accept a server must answer ``key`` with (RFC 6455 section 4.2.2)."""
    digest = hashlib.sha1(key.encode("ascii") + ACCEPT_GUID).digest()  # noqa: S324  (RFC 6455 specifies SHA-1)
    return base64.b64encode(digest).decode("ascii")


def apply_mask(data: bytes | bytearray | memoryview, mask: bytes, offset: int = 0) -> bytes:
    """XOR with the 4-byte ``mask`` repeated from ``offset`` into it, at C speed via big ints.

    ``offset`` lets a frame's payload be unmasked in pieces as they arrive.
    """
    size = len(data)
    if not size:
        return b""
    if offset:
        mask = mask[offset:] + mask[:offset]
    key = (mask * (size // 4 + 1))[:size]
    value = int.from_bytes(data, "little") ^ int.from_bytes(key, "little")
    return value.to_bytes(size, "little")


def header_tokens(value: str | None) -> set[str]:
    """A comma-separated header value as a set of lower-case tokens."""
    if not value:
        return set()
    return {token.strip().lower() for token in value.split(",") if token.strip()}
