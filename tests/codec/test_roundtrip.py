"""Property-based tests: encode/decode round trips, and no crash on any input."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roost.codec import (
    PROTOCOL_MAX_PACKET_SIZE,
    CodecError,
    Packet,
    PacketReader,
    Puback,
    Pubrec,
    read_packet,
)
from tests.codec.strategies import PACKETS, kinds_for, packets

# Deterministic and bounded, so CI runs the same examples every time.
ROUND_TRIP = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
FUZZ = settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

_KIND_VERSIONS = [(kind, version) for version in (3, 4, 5) for kind in kinds_for(version)]


@pytest.mark.parametrize(("kind", "version"), _KIND_VERSIONS)
def test_round_trip(kind: str, version: int) -> None:
    @ROUND_TRIP
    @given(PACKETS[kind](version))
    def check(packet: Packet) -> None:
        encoded = packet.encode(version)
        result = read_packet(encoded, version)
        assert result == (packet, len(encoded))
        assert result is not None
        # Canonical: encoding what was decoded gives the same bytes back.
        assert result[0].encode(version) == encoded

    check()


@pytest.mark.parametrize("version", [3, 4, 5])
def test_stream_of_packets_in_random_splits(version: int) -> None:
    @ROUND_TRIP
    @given(st.lists(packets(version), min_size=1, max_size=5), st.data())
    def check(sent: list[Packet], data: st.DataObject) -> None:
        stream = b"".join(packet.encode(version) for packet in sent)
        received = _feed_in_splits(stream, version, data)
        assert received == sent

    check()


@pytest.mark.parametrize("version", [3, 4, 5])
def test_plain_pubacks_read_without_a_packet_object(version: int) -> None:
    """``next_packet_or_puback`` (the broker's QoS 1 hot path) gives the PUBACKs of a
    packet id alone as that id and every other packet as ``next_packet`` does: read both
    ways, a stream in random pieces gives the same packets in the same order."""

    @ROUND_TRIP
    @given(st.lists(packets(version), min_size=1, max_size=6), st.data())
    def check(sent: list[Packet], data: st.DataObject) -> None:
        stream = b"".join(packet.encode(version) for packet in sent)
        reader = PacketReader(version)
        received: list[Packet] = []
        pos = 0
        while pos < len(stream):
            size = data.draw(st.integers(1, max(1, len(stream) - pos)), label="piece")
            reader.feed(stream[pos : pos + size])
            pos += size
            while (item := reader.next_packet_or_puback()) is not None:
                received.append(Puback(item) if isinstance(item, int) else item)
        assert received == sent
        assert reader.buffered == 0

    check()


def test_only_a_whole_plain_puback_comes_as_its_id() -> None:
    reader = PacketReader(5)
    with_reason = Puback(7, 0x10).encode(5)  # No matching subscribers: a reason code
    reader.feed(with_reason + Puback(8).encode(5)[:3])
    assert reader.next_packet_or_puback() == Puback(7, 0x10)
    assert reader.next_packet_or_puback() is None  # 3 of its 4 bytes so far
    reader.feed(b"\x08" + Pubrec(9).encode(5))  # then the same shape, another type
    assert reader.next_packet_or_puback() == 8
    assert reader.next_packet_or_puback() == Pubrec(9)
    assert reader.buffered == 0


def _feed_in_splits(
    stream: bytes, version: int, data: st.DataObject, max_size: int = PROTOCOL_MAX_PACKET_SIZE
) -> list[Packet]:
    """Feed ``stream`` in random pieces; collect every packet the reader hands out."""
    reader = PacketReader(version, max_size)
    received: list[Packet] = []
    pos = 0
    while pos < len(stream):
        size = data.draw(st.integers(1, max(1, len(stream) - pos)), label="piece")
        reader.feed(stream[pos : pos + size])
        pos += size
        while (packet := reader.next_packet()) is not None:
            received.append(packet)
    return received


def _survive(
    stream: bytes, version: int, data: st.DataObject, max_size: int = PROTOCOL_MAX_PACKET_SIZE
) -> None:
    """Packets, None ("need more") or CodecError; any other exception fails the test."""
    try:
        _feed_in_splits(stream, version, data, max_size)
    except CodecError as exc:
        reason_code = exc.reason_code
    else:
        return
    assert 0x80 <= reason_code <= 0xFF


@pytest.mark.parametrize("version", [3, 4, 5])
def test_arbitrary_bytes_never_crash(version: int) -> None:
    @FUZZ
    @given(st.binary(max_size=300), st.data(), st.sampled_from([8, 64, PROTOCOL_MAX_PACKET_SIZE]))
    def check(stream: bytes, data: st.DataObject, max_size: int) -> None:
        _survive(stream, version, data, max_size)

    check()


@pytest.mark.parametrize("version", [3, 4, 5])
def test_plausible_headers_never_crash(version: int) -> None:
    # Random bodies behind a valid first byte and a matching remaining length reach the
    # packet decoders far more often than fully random bytes do.
    first_bytes = st.sampled_from(
        [
            0x10,
            0x20,
            0x30,
            0x32,
            0x35,
            0x3B,
            0x40,
            0x50,
            0x62,
            0x70,
            0x82,
            0x90,
            0xA2,
            0xB0,
            0xE0,
            0xF0,
        ]
    )

    @FUZZ
    @given(first_bytes, st.binary(max_size=120), st.data())
    def check(first: int, body: bytes, data: st.DataObject) -> None:
        _survive(bytes((first, len(body))) + body, version, data)

    check()


@st.composite
def _mutated(draw: st.DrawFn, version: int) -> bytes:
    raw = bytearray(draw(packets(version)).encode(version))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        index = draw(st.integers(0, max(0, len(raw) - 1)))
        if op == "flip" and raw:
            raw[index] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and raw:
            raw[index] = draw(st.integers(0, 255))
        elif op == "insert":
            raw[index:index] = draw(st.binary(min_size=1, max_size=4))
        elif op == "delete" and raw:
            del raw[index]
        elif op == "truncate":
            del raw[index:]
    return bytes(raw)


@pytest.mark.parametrize("version", [3, 4, 5])
def test_mutated_packets_never_crash(version: int) -> None:
    @FUZZ
    @given(_mutated(version), st.data())
    def check(stream: bytes, data: st.DataObject) -> None:
        _survive(stream, version, data)

    check()
