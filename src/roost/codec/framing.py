"""The incremental reader: fixed header, remaining length, then the packet's decoder.

``read_packet`` looks at one buffer from an offset and returns the packet and the
number of bytes it used, or None when the buffer does not yet hold a whole packet.
The size limit is enforced from the fixed header alone, so an oversized packet is
refused before a byte of its body has to be buffered.
"""

from __future__ import annotations

from collections.abc import Callable

from roost.codec.errors import MalformedPacket, PacketTooLarge
from roost.codec.packets.base import AUTH, MQTT_3_1_1, PUBLISH, Packet
from roost.codec.packets.connect import decode_auth, decode_connack, decode_connect
from roost.codec.packets.control import decode_disconnect, decode_pingreq, decode_pingresp
from roost.codec.packets.publish import (
    decode_puback,
    decode_pubcomp,
    decode_publish,
    decode_pubrec,
    decode_pubrel,
)
from roost.codec.packets.subscribe import (
    decode_suback,
    decode_subscribe,
    decode_unsuback,
    decode_unsubscribe,
)
from roost.codec.primitives import Buffer

# The largest packet the protocol can describe: 1 type byte, 4 length bytes, body.
PROTOCOL_MAX_PACKET_SIZE = 1 + 4 + 268_435_455

Decoder = Callable[[int, Buffer, int, int, int], Packet]

_DECODERS: tuple[Decoder | None, ...] = (
    None,  # 0 is reserved
    decode_connect,
    decode_connack,
    decode_publish,
    decode_puback,
    decode_pubrec,
    decode_pubrel,
    decode_pubcomp,
    decode_subscribe,
    decode_suback,
    decode_unsubscribe,
    decode_unsuback,
    decode_pingreq,
    decode_pingresp,
    decode_disconnect,
    decode_auth,
)

# A PUBACK's first byte (type 4, no flags), then remaining length 2: the packet id alone.
_PLAIN_PUBACK = 0x40

# The fixed-header flags each type must carry (MQTT 5.0 section 2.1.3); PUBLISH's vary.
_REQUIRED_FLAGS = (0, 0, 0, -1, 0, 0, 2, 0, 2, 0, 2, 0, 0, 0, 0, 0)


def check_first_byte(first: int, version: int) -> None:
    """Refuse a reserved packet type or wrong fixed-header flags as soon as they arrive."""
    packet_type = first >> 4
    if packet_type == 0 or (packet_type == AUTH and version < 5):
        raise MalformedPacket(f"reserved packet type {packet_type}")
    required = _REQUIRED_FLAGS[packet_type]
    if required >= 0 and first & 0x0F != required:
        raise MalformedPacket(
            f"invalid fixed header flags 0x{first & 0x0F:X} for type {packet_type}"
        )


def read_packet(
    buf: Buffer,
    version: int = MQTT_3_1_1,
    max_size: int = PROTOCOL_MAX_PACKET_SIZE,
    offset: int = 0,
) -> tuple[Packet, int] | None:
    """Decode the packet at ``buf[offset:]``: ``(packet, bytes used)``, or None for need more.

    ``version`` is the protocol level agreed at CONNECT (a CONNECT states its own);
    ``max_size`` counts the whole packet, fixed header included, as MQTT 5 does.
    """
    size = len(buf)
    if offset >= size:
        return None
    first = buf[offset]
    packet_type = first >> 4
    if packet_type != PUBLISH:
        check_first_byte(first, version)
    pos = offset + 1
    if pos >= size:
        return None
    remaining = buf[pos]
    pos += 1
    if remaining & 0x80:
        remaining &= 0x7F
        shift = 7
        while True:
            if pos >= size:
                return None
            byte = buf[pos]
            pos += 1
            remaining |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            if shift == 28:
                raise MalformedPacket("remaining length longer than 4 bytes")
        if byte == 0:
            raise MalformedPacket("remaining length not in its shortest form")
    end = pos + remaining
    if end - offset > max_size:
        raise PacketTooLarge(f"packet of {end - offset} bytes exceeds the maximum of {max_size}")
    if end > size:
        return None
    if packet_type == PUBLISH:
        return decode_publish(first & 0x0F, buf, pos, end, version), end - offset
    decoder = _DECODERS[packet_type]
    if decoder is None:  # unreachable: check_first_byte refused type 0
        raise MalformedPacket("reserved packet type 0")
    return decoder(first & 0x0F, buf, pos, end, version), end - offset


class PacketReader:
    """Buffers a byte stream and hands out whole packets one at a time.

    Packets are handed out singly because the first one (CONNECT) decides the
    protocol level the rest are read at: set ``version`` before the next call.
    After a CodecError the stream is unusable; close the connection.
    """

    __slots__ = ("_buffer", "_pos", "max_size", "version")

    def __init__(self, version: int = MQTT_3_1_1, max_size: int = PROTOCOL_MAX_PACKET_SIZE) -> None:
        self.version = version
        self.max_size = max_size
        self._buffer: bytes | bytearray = b""
        self._pos = 0

    def feed(self, data: bytes) -> None:
        buffer = self._buffer
        if self._pos >= len(buffer):
            # The common case: everything before was consumed; parse the new bytes as they are.
            self._buffer = data
        elif type(buffer) is bytearray:
            # A packet arriving in many pieces grows one bytearray (amortized O(n)),
            # rather than copying everything buffered on every feed.
            del buffer[: self._pos]
            buffer += data
        else:
            self._buffer = bytearray(buffer[self._pos :]) + data
        self._pos = 0

    def next_packet(self) -> Packet | None:
        result = read_packet(self._buffer, self.version, self.max_size, self._pos)
        if result is None:
            return None
        packet, used = result
        self._pos += used
        return packet

    def next_packet_or_puback(self) -> Packet | int | None:
        """Like ``next_packet``, but a PUBACK of a packet identifier alone (3.1.x, or MQTT
        5 success without properties) comes as that identifier, an int, with no packet
        object built: the QoS 1 subscriber's hot path (a Puback per acknowledgement cost
        a third of a retained catch-up's time in the broker)."""
        buf = self._buffer
        pos = self._pos
        if len(buf) - pos >= 4 and buf[pos] == _PLAIN_PUBACK and buf[pos + 1] == 2:
            self._pos = pos + 4
            return buf[pos + 2] << 8 | buf[pos + 3]
        result = read_packet(buf, self.version, self.max_size, pos)
        if result is None:
            return None
        packet, used = result
        self._pos = pos + used
        return packet

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a whole packet."""
        return len(self._buffer) - self._pos
