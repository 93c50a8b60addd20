"""The hand-written tables drive decoding (whole, byte by byte, with trailing bytes),
encoding, and every refusal."""

from __future__ import annotations

import pytest

from roost.codec import (
    PROTOCOL_MAX_PACKET_SIZE,
    CodecError,
    Connect,
    PacketReader,
    PacketTooLarge,
    Pingreq,
    Publish,
    UnsupportedProtocolVersion,
    read_packet,
)
from roost.codec.properties import PropertyId
from tests.codec.bad_cases import BAD_CASES, BadCase
from tests.codec.cases import CASES, Case

_TRAILING = b"\xc0\x00\xd0"  # a whole PINGREQ, then the first byte of a PINGRESP


def _ids(case: Case | BadCase) -> str:
    return case.id


# --- the valid table ----------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_decode_whole(case: Case) -> None:
    assert read_packet(case.raw, case.version) == (case.packet, len(case.raw))


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_decode_at_exact_max_size(case: Case) -> None:
    # max_size counts the whole packet, fixed header included (MQTT 5.0 section 2.1.4).
    assert read_packet(case.raw, case.version, len(case.raw)) == (case.packet, len(case.raw))
    with pytest.raises(PacketTooLarge) as info:
        read_packet(case.raw, case.version, len(case.raw) - 1)
    assert info.value.reason_code == 0x95


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_decode_one_byte_at_a_time(case: Case) -> None:
    reader = PacketReader(case.version)
    last = len(case.raw) - 1
    for index in range(len(case.raw)):
        reader.feed(case.raw[index : index + 1])
        packet = reader.next_packet()
        if index < last:
            assert packet is None, f"a packet appeared after {index + 1} bytes"
        else:
            assert packet == case.packet
    assert reader.next_packet() is None
    assert reader.buffered == 0


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_decode_with_trailing_bytes(case: Case) -> None:
    buffer = bytearray(case.raw + _TRAILING)
    assert read_packet(buffer, case.version) == (case.packet, len(case.raw))
    assert buffer == case.raw + _TRAILING  # nothing consumed or changed
    # The same from an offset, and through a memoryview as a transport would pass it.
    prefixed = memoryview(b"\xff\xff" + case.raw + _TRAILING)
    assert read_packet(prefixed, case.version, PROTOCOL_MAX_PACKET_SIZE, 2) == (
        case.packet,
        len(case.raw),
    )


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_reader_leaves_trailing_bytes(case: Case) -> None:
    reader = PacketReader(case.version)
    reader.feed(case.raw + _TRAILING)
    assert reader.next_packet() == case.packet
    assert reader.buffered == len(_TRAILING)
    assert reader.next_packet() == Pingreq()
    assert reader.buffered == 1
    assert reader.next_packet() is None  # the PINGRESP's first byte waits for more


@pytest.mark.parametrize("case", [c for c in CASES if isinstance(c.packet, Connect)], ids=_ids)
@pytest.mark.parametrize("reader_version", [3, 4, 5])
def test_connect_states_its_own_level(case: Case, reader_version: int) -> None:
    # The reader's level is not known before CONNECT: the packet's own level decides.
    assert read_packet(case.raw, reader_version) == (case.packet, len(case.raw))
    assert case.packet.encode(reader_version) == case.packet.encode()


@pytest.mark.parametrize("case", [c for c in CASES if c.canonical], ids=_ids)
def test_encode(case: Case) -> None:
    assert case.packet.encode(case.version) == case.raw


@pytest.mark.parametrize("case", [c for c in CASES if not c.canonical], ids=_ids)
def test_non_canonical_encodes_to_an_equivalent(case: Case) -> None:
    encoded = case.packet.encode(case.version)
    assert encoded != case.raw
    assert read_packet(encoded, case.version) == (case.packet, len(encoded))


def test_table_covers_every_packet_type_at_every_level() -> None:
    seen = {(case.version, case.packet.packet_type) for case in CASES}
    expected = {(v, t) for v in (3, 4, 5) for t in range(1, 15)} | {(5, 15)}
    assert seen == expected


def test_table_covers_every_property() -> None:
    # Every MQTT 5 property identifier appears, as identifier byte, in some v5 case; the
    # objects carry the matching attribute (checked by the decode tests above).
    attributes: set[str] = set()
    for case in CASES:
        if case.version != 5:
            continue
        packet = case.packet
        holders: list[object] = [packet]
        if isinstance(packet, Connect) and packet.will is not None:
            holders.append(packet.will)
        for holder in holders:
            for name in dir(holder):
                if name.startswith("_") or name in {"topic", "payload", "packet_type"}:
                    continue
                value = getattr(holder, name)
                if value is not None and value != () and not callable(value):
                    attributes.add(name)
    expected = {
        "payload_format_indicator",
        "message_expiry_interval",
        "content_type",
        "response_topic",
        "correlation_data",
        "subscription_identifiers",
        "subscription_identifier",
        "session_expiry_interval",
        "assigned_client_identifier",
        "server_keep_alive",
        "authentication_method",
        "authentication_data",
        "request_problem_information",
        "will_delay_interval",
        "request_response_information",
        "response_information",
        "server_reference",
        "reason_string",
        "receive_maximum",
        "topic_alias_maximum",
        "topic_alias",
        "maximum_qos",
        "retain_available",
        "user_properties",
        "maximum_packet_size",
        "wildcard_subscription_available",
        "subscription_identifier_available",
        "shared_subscription_available",
    }
    assert expected <= attributes
    # 27 identifiers; subscription identifier has two attribute spellings.
    assert len(PropertyId) == 27
    assert len(expected) == 28


# --- the refusal table ---------------------------------------------------------------------


def _check(error: CodecError, case: BadCase) -> None:
    assert type(error) is case.error, f"{type(error).__name__}: {error}"
    assert error.reason_code == case.reason_code


@pytest.mark.parametrize("case", BAD_CASES, ids=_ids)
def test_refuse_whole(case: BadCase) -> None:
    with pytest.raises(CodecError) as info:
        read_packet(case.raw, case.version, case.max_size)
    _check(info.value, case)


@pytest.mark.parametrize("case", BAD_CASES, ids=_ids)
def test_refuse_one_byte_at_a_time(case: BadCase) -> None:
    reader = PacketReader(case.version, case.max_size)
    with pytest.raises(CodecError) as info:  # noqa: PT012  (the loop is the act)
        for index in range(len(case.raw)):
            reader.feed(case.raw[index : index + 1])
            assert reader.next_packet() is None
    _check(info.value, case)


@pytest.mark.parametrize("case", BAD_CASES, ids=_ids)
def test_refuse_after_a_valid_packet(case: BadCase) -> None:
    reader = PacketReader(case.version, case.max_size)
    reader.feed(b"\xc0\x00" + case.raw + b"\x00\x00")
    assert reader.next_packet() == Pingreq()
    with pytest.raises(CodecError) as info:
        reader.next_packet()
    _check(info.value, case)


@pytest.mark.parametrize(
    ("raw", "name", "level"),
    [
        (b"\x10\x0c\x00\x04MQTT\x06\x02\x00\x3c\x00\x00", "MQTT", 6),
        (b"\x10\x0c\x00\x04MQTT\x03\x02\x00\x3c\x00\x00", "MQTT", 3),
        (b"\x10\x0e\x00\x06MQIsdp\x04\x02\x00\x3c\x00\x00", "MQIsdp", 4),
        (b"\x10\x0e\x00\x06MQIsdp\xff\x02\x00\x3c\x00\x00", "MQIsdp", 255),
    ],
)
def test_unsupported_level_is_kept(raw: bytes, name: str, level: int) -> None:
    # The server answers with a CONNACK in the format of the level asked for.
    with pytest.raises(UnsupportedProtocolVersion) as info:
        read_packet(raw, 4)
    assert info.value.protocol_name == name
    assert info.value.protocol_level == level
    assert info.value.reason_code == 0x84


# --- the size limit is applied from the fixed header alone -------------------------------


@pytest.mark.parametrize(
    ("header", "max_size"),
    [
        (b"\x30\x09", 10),  # 11 bytes announced
        (b"\x30\xff\x7f", 16_000),  # 16_386 bytes announced
        (b"\x30\xff\xff\x7f", 2_000_000),  # 2_097_156 bytes announced
        (b"\x30\xff\xff\xff\x7f", PROTOCOL_MAX_PACKET_SIZE - 1),  # the protocol maximum
    ],
)
def test_too_large_raised_as_the_fixed_header_completes(header: bytes, max_size: int) -> None:
    reader = PacketReader(4, max_size)
    for byte in header[:-1]:
        reader.feed(bytes((byte,)))
        assert reader.next_packet() is None
    reader.feed(header[-1:])
    with pytest.raises(PacketTooLarge) as info:
        reader.next_packet()
    assert info.value.reason_code == 0x95
    assert reader.buffered == len(header)  # nothing of the body was needed


def test_largest_remaining_length_needs_more() -> None:
    assert read_packet(b"\x30\xff\xff\xff\x7f\x00\x01t", 4) is None


def test_four_byte_remaining_length() -> None:
    payload = b"\xaa" * (2_097_152 - 3)
    raw = (
        b"\x30"  # PUBLISH, QoS 0
        b"\x80\x80\x80\x01"  # remaining length 2_097_152 = 128 ** 3
        b"\x00\x01t" + payload  # topic name "t"
    )
    assert read_packet(raw, 4) == (Publish("t", payload), len(raw))
    assert read_packet(raw[:-1], 4) is None
    assert Publish("t", payload).encode(4) == raw


def test_empty_and_exhausted_buffers_need_more() -> None:
    assert read_packet(b"", 4) is None
    assert read_packet(b"\xc0\x00", 4, PROTOCOL_MAX_PACKET_SIZE, 2) is None
    assert read_packet(b"\x30", 4) is None
    assert read_packet(b"\x30\x80", 4) is None
