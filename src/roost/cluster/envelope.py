"""What travels between nodes: an MQTT 5 PUBLISH behind a short header, and the
window that tells a node whether it has seen a message already.

The envelope is a format byte, the origin's length (one byte), the origin (node name
and a per-process token) and an 8-byte sequence number, then the message:

- format 1: the message encoded as an MQTT 5 PUBLISH by the codec every connection
  uses, so flags and properties (expiry, content type, user properties...) need no
  format of their own;
- format 2, for the common message with no properties: a flags byte (QoS << 1 |
  retain), the topic's length (two bytes), the topic in UTF-8, the payload. It costs a
  join instead of an encoding on the publishing node.

A QoS 1 or 2 message another node's subscribers want travels in the ``ROOST_QOS``
stream (``durable.py``); a copy also sent on core NATS for shared groups has
``SHARES_ONLY`` set in its format byte, so that plain subscriptions skip it.

A node holds one NATS subscription per filter, so a message whose topic matches two of
a node's filters arrives twice. ``SeenWindow`` remembers the last ``WINDOW`` sequence
numbers of each origin to deliver it once. NATS keeps one publisher's order on each
subscription, and the client library hands each subscription's messages over in
order, so a copy arrives at most a few socket reads after the first; one older than
the window is counted and dropped (docs/clustering.md).
"""

from __future__ import annotations

from array import array
from typing import Final

from roost.broker.message import Message
from roost.codec import MQTT_5, CodecError, Publish, read_packet

VERSION: Final = 1  # an MQTT 5 PUBLISH follows the header
PLAIN: Final = 2  # flags, topic and payload follow the header
SHARES_ONLY: Final = 0x80  # flag in the format byte: for NATS queue groups only
WINDOW: Final = 1 << 16
_MASK: Final = WINDOW - 1


def encode(origin: bytes, seq: int, message: Message, now: float) -> bytes:
    """``message`` as the other nodes receive it."""
    qos = message.qos
    if (
        message.expires_at is None
        and not message.user_properties
        and message.payload_format_indicator is None
        and message.content_type is None
        and message.response_topic is None
        and message.correlation_data is None
    ):
        topic = message.topic.encode()
        return b"".join(
            (
                bytes((PLAIN, len(origin))),
                origin,
                seq.to_bytes(8, "big"),
                bytes((qos << 1 | message.retain,)),
                len(topic).to_bytes(2, "big"),
                topic,
                message.payload,
            )
        )
    packet = message.encode(MQTT_5, qos, message.retain, 1 if qos else 0, now=now)
    return b"".join((bytes((VERSION, len(origin))), origin, seq.to_bytes(8, "big"), packet))


def header(data: bytes) -> tuple[bytes, int, int]:
    """(origin, sequence number, where the PUBLISH starts); ValueError if ``data`` is
    not an envelope. Cheap: a duplicate is recognised before its PUBLISH is decoded."""
    if len(data) < 11 or data[0] & 0x7F not in (VERSION, PLAIN):
        raise ValueError("not a Roost cluster envelope")
    end = 2 + data[1]
    return data[2:end], int.from_bytes(data[end : end + 8], "big"), end + 8


def message(data: bytes, offset: int, now: float) -> Message:
    """The message in an envelope whose body starts at ``offset``; ValueError if bad."""
    if data[0] & 0x7F == PLAIN:
        end = offset + 3 + int.from_bytes(data[offset + 1 : offset + 3], "big")
        flags = data[offset] if len(data) >= end else 0xFF
        if flags > 5:
            raise ValueError("truncated or bad plain envelope")
        try:
            topic = data[offset + 3 : end].decode()
        except UnicodeDecodeError as exc:
            raise ValueError(f"bad topic in envelope: {exc}") from exc
        return Message(topic, data[end:], flags >> 1, bool(flags & 1))
    try:
        found = read_packet(memoryview(data), MQTT_5, len(data), offset)
    except CodecError as exc:
        raise ValueError(f"bad PUBLISH in envelope: {exc}") from exc
    if found is None or not isinstance(found[0], Publish):
        raise ValueError("truncated envelope")
    return Message.from_publish(found[0], None, now)


def shares_only(data: bytes) -> bytes:
    """``data`` marked for shared groups only (their copy goes through the stream)."""
    return bytes((data[0] | SHARES_ONLY,)) + data[1:]


class SeenWindow:
    """The sequence numbers of one origin delivered lately: ``first_time`` says
    whether a number is new, and remembers it."""

    __slots__ = ("_ring", "highest", "too_old")

    def __init__(self) -> None:
        self._ring = array("q", [-1]) * WINDOW
        self.highest = -1
        self.too_old = 0  # arrivals older than the window: dropped, counted

    def first_time(self, seq: int) -> bool:
        ring = self._ring
        slot = seq & _MASK
        if ring[slot] == seq:
            return False
        if seq <= self.highest - WINDOW:
            self.too_old += 1
            return False
        ring[slot] = seq
        self.highest = max(self.highest, seq)
        return True
