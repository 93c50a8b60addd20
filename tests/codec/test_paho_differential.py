"""Differential tests against an independent implementation: Eclipse paho-mqtt 2.x.

paho's public-ish building blocks are compared with Roost's over many random inputs:
``paho.mqtt.properties.Properties`` (pack/unpack and its per-packet property table),
``VariableByteIntegers``, ``SubscribeOptions`` and ``ReasonCode``. paho's packet decoders
(``paho.mqtt._packet``) then read what Roost's encoders write.

Where paho departs from the specification the test says so and keeps out of the way:
paho refuses U+FEFF in strings (MQTT 5.0 [MQTT-1.5.4-3] says it must be kept), caps
Maximum Packet Size at 268,435,455 (it is a Four Byte Integer, 3.1.2.11.4), and its
reason-code table differs from the per-packet tables in two places (see below).
"""

from __future__ import annotations

import dataclasses
import importlib
import types
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from roost.codec import CodecError, Packet, read_packet
from roost.codec import properties as roost_props
from roost.codec.primitives import encode_varint, read_varint
from roost.codec.reason_codes import (
    VALID_AUTH,
    VALID_CONNACK_V5,
    VALID_DISCONNECT,
    VALID_PUBACK,
    VALID_PUBREL,
    VALID_SUBACK_V5,
    VALID_UNSUBACK,
)
from tests.codec.strategies import PACKETS

# paho's modules are untyped; hold them as Any rather than sprinkle ignores.
_properties: Any = importlib.import_module("paho.mqtt.properties")
_packettypes: Any = importlib.import_module("paho.mqtt.packettypes")
_subscribeoptions: Any = importlib.import_module("paho.mqtt.subscribeoptions")
_reasoncodes: Any = importlib.import_module("paho.mqtt.reasoncodes")
_enums: Any = importlib.import_module("paho.mqtt.enums")

Properties: Any = _properties.Properties
VariableByteIntegers: Any = _properties.VariableByteIntegers
PacketTypes: Any = _packettypes.PacketTypes
SubscribeOptions: Any = _subscribeoptions.SubscribeOptions
ReasonCode: Any = _reasoncodes.ReasonCode

DIFFERENTIAL = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

#: paho packet type -> Roost's property table for it (identifier -> attribute).
TABLES: dict[int, Mapping[int, str]] = {
    PacketTypes.CONNECT: roost_props.CONNECT,
    PacketTypes.WILLMESSAGE: roost_props.WILL,
    PacketTypes.CONNACK: roost_props.CONNACK,
    PacketTypes.PUBLISH: roost_props.PUBLISH,
    PacketTypes.PUBACK: roost_props.ACK,
    PacketTypes.PUBREC: roost_props.ACK,
    PacketTypes.PUBREL: roost_props.ACK,
    PacketTypes.PUBCOMP: roost_props.ACK,
    PacketTypes.SUBSCRIBE: roost_props.SUBSCRIBE,
    PacketTypes.SUBACK: roost_props.ACK,
    PacketTypes.UNSUBSCRIBE: roost_props.UNSUBSCRIBE,
    PacketTypes.UNSUBACK: roost_props.ACK,
    PacketTypes.DISCONNECT: roost_props.DISCONNECT,
    PacketTypes.AUTH: roost_props.AUTH,
}
_PAHO_KINDS = {
    "Byte": roost_props.BYTE,
    "Two Byte Integer": roost_props.U16,
    "Four Byte Integer": roost_props.U32,
    "Variable Byte Integer": roost_props.VARINT,
    "Binary Data": roost_props.BINARY,
    "UTF-8 Encoded String": roost_props.UTF8,
    "UTF-8 String Pair": roost_props.PAIR,
}


def _paho_name(prop_id: int) -> str:
    name: str = Properties(PacketTypes.PUBLISH).getNameFromIdent(prop_id)
    return name.replace(" ", "")


# --- the property tables ---------------------------------------------------------------


@pytest.mark.parametrize("packet_type", sorted(TABLES))
def test_same_properties_allowed_per_packet(packet_type: int) -> None:
    paho = Properties(packet_type)
    allowed_by_paho = {
        pid for pid, (_kind, types_) in paho.properties.items() if packet_type in types_
    }
    assert allowed_by_paho == set(TABLES[packet_type])


def test_same_property_data_types() -> None:
    paho = Properties(PacketTypes.PUBLISH)
    paho_kinds = {
        pid: _PAHO_KINDS[paho.types[kind]] for pid, (kind, _types) in paho.properties.items()
    }
    assert paho_kinds == roost_props.KIND
    assert {pid for pid in paho_kinds if paho.allowsMultiple(_paho_name(pid))} == {
        roost_props.PropertyId.SUBSCRIPTION_IDENTIFIER,
        roost_props.PropertyId.USER_PROPERTY,
    }


# --- random property sets, both directions ------------------------------------------------

# paho refuses U+FEFF when decoding (a departure from [MQTT-1.5.4-3]); keep it out.
_text = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00\ufeff"), max_size=10
)
_NON_ZERO_U16 = {roost_props.PropertyId.RECEIVE_MAXIMUM, roost_props.PropertyId.TOPIC_ALIAS}


def _value(prop_id: int) -> st.SearchStrategy[Any]:
    kind = roost_props.KIND[prop_id]
    if kind == roost_props.BYTE:
        return st.integers(0, 1)
    if kind == roost_props.U16:
        return st.integers(1 if prop_id in _NON_ZERO_U16 else 0, 0xFFFF)
    if kind == roost_props.U32:
        if prop_id == roost_props.PropertyId.MAXIMUM_PACKET_SIZE:
            return st.integers(1, 268_435_455)  # paho's cap (the spec allows 2**32 - 1)
        return st.integers(0, 0xFFFF_FFFF)
    if kind == roost_props.VARINT:
        return st.integers(1, 268_435_455)
    if kind == roost_props.UTF8:
        return _text
    if kind == roost_props.BINARY:
        return st.binary(max_size=12)
    return st.tuples(_text, _text)


@st.composite
def _property_sets(draw: st.DrawFn) -> tuple[int, dict[str, Any]]:
    """A paho packet type and Roost attribute values valid for it."""
    packet_type = draw(st.sampled_from(sorted(TABLES)))
    values: dict[str, Any] = {}
    for prop_id, attr in TABLES[packet_type].items():
        if attr == "user_properties":
            pairs = draw(st.lists(_value(prop_id), max_size=4))
            duplicate: bool = draw(st.booleans())
            # Duplicates on purpose: order and repeats must survive [MQTT-3.3.2-18].
            if pairs and duplicate:
                pairs.append(pairs[0])
            if pairs:
                values[attr] = tuple(pairs)
        elif attr == "subscription_identifiers":
            ids = draw(st.lists(_value(prop_id), max_size=3))
            if ids:
                values[attr] = tuple(ids)
        elif draw(st.booleans()):
            values[attr] = draw(_value(prop_id))
    if "authentication_data" in values and "authentication_method" not in values:
        del values["authentication_data"]
    return packet_type, values


def _to_paho(packet_type: int, values: Mapping[str, Any]) -> Any:
    paho = Properties(packet_type)
    for prop_id, attr in TABLES[packet_type].items():
        if attr not in values:
            continue
        value = values[attr]
        setattr(paho, _paho_name(prop_id), list(value) if attr in roost_props.REPEATABLE else value)
    return paho


def _from_paho(packet_type: int, paho: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for prop_id, attr in TABLES[packet_type].items():
        name = _paho_name(prop_id)
        if not hasattr(paho, name):
            continue
        value = getattr(paho, name)
        if attr in roost_props.REPEATABLE:
            values[attr] = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        elif isinstance(value, list):  # paho keeps SUBSCRIBE's one identifier in a list
            (values[attr],) = value
        else:
            values[attr] = value
    return values


@DIFFERENTIAL
@given(_property_sets())
def test_paho_packs_roost_decodes(drawn: tuple[int, dict[str, Any]]) -> None:
    packet_type, values = drawn
    block = bytes(_to_paho(packet_type, values).pack())
    decoded, end = roost_props.decode_properties(block, 0, len(block), TABLES[packet_type])
    assert end == len(block)
    assert decoded == values


@DIFFERENTIAL
@given(_property_sets())
def test_roost_encodes_paho_unpacks(drawn: tuple[int, dict[str, Any]]) -> None:
    packet_type, values = drawn
    table = TABLES[packet_type]
    source = types.SimpleNamespace(
        **{attr: () if attr in roost_props.REPEATABLE else None for attr in table.values()}
    )
    vars(source).update(values)
    block = roost_props.encode_properties(source, table)
    paho, used = Properties(packet_type).unpack(block)
    assert used == len(block)
    assert _from_paho(packet_type, paho) == values


# --- Variable Byte Integer -------------------------------------------------------------------


@DIFFERENTIAL
@given(st.integers(0, 268_435_455))
def test_variable_byte_integer(value: int) -> None:
    ours = encode_varint(value)
    assert bytes(VariableByteIntegers.encode(value)) == ours
    assert VariableByteIntegers.decode(ours) == (value, len(ours))
    assert read_varint(ours, 0, len(ours)) == (value, len(ours))


# --- subscription options --------------------------------------------------------------------


@pytest.mark.parametrize("options", range(256))
def test_subscription_options_byte(options: int) -> None:
    raw = b"\x82\x07\x00\x01\x00\x00\x01a" + bytes((options,))  # v5 SUBSCRIBE to "a"
    paho = SubscribeOptions()
    try:
        paho.unpack(bytes((options,)))
        paho_ok = True
    except AssertionError:  # paho's refusal of QoS 3 / retain handling 3
        paho_ok = False
    try:
        result = read_packet(raw, 5)
    except CodecError:
        # Roost also refuses the reserved bits 6 and 7 [MQTT-3.8.3-5]; paho ignores them.
        assert not paho_ok or options & 0xC0
        return
    assert paho_ok
    assert result is not None
    (sub,) = result[0].subscriptions  # type: ignore[attr-defined]
    assert (sub.qos, sub.no_local, sub.retain_as_published, sub.retain_handling) == (
        paho.QoS,
        paho.noLocal,
        paho.retainAsPublished,
        paho.retainHandling,
    )
    assert bytes(paho.pack()) == bytes((sub.options_byte(5),))


# --- reason codes -----------------------------------------------------------------------------

# paho's table is section 2.4's Table 2-6, which lists 0x8C (Bad authentication method)
# for DISCONNECT; Table 3-10 of section 3.14.2.1 (which [MQTT-3.14.2-1] refers to) does
# not. paho leaves 0x99 (Payload format invalid) out of CONNACK; Table 3-1 has it.
_PAHO_ONLY = {PacketTypes.DISCONNECT: {0x8C}}
_ROOST_ONLY = {PacketTypes.CONNACK: {0x99}}


@pytest.mark.parametrize(
    ("packet_type", "valid"),
    [
        (PacketTypes.CONNACK, VALID_CONNACK_V5),
        (PacketTypes.PUBACK, VALID_PUBACK),
        (PacketTypes.PUBREC, VALID_PUBACK),
        (PacketTypes.PUBREL, VALID_PUBREL),
        (PacketTypes.PUBCOMP, VALID_PUBREL),
        (PacketTypes.SUBACK, VALID_SUBACK_V5),
        (PacketTypes.UNSUBACK, VALID_UNSUBACK),
        (PacketTypes.DISCONNECT, VALID_DISCONNECT),
        (PacketTypes.AUTH, VALID_AUTH),
    ],
)
def test_reason_code_tables(packet_type: int, valid: frozenset[int]) -> None:
    paho_valid = set()
    for code in range(256):
        try:
            ReasonCode(packet_type, identifier=code)
        except (KeyError, ValueError):
            continue
        paho_valid.add(code)
    assert paho_valid - set(valid) == _PAHO_ONLY.get(packet_type, set())
    assert set(valid) - paho_valid == _ROOST_ONLY.get(packet_type, set())


# --- whole packets: Roost encodes, paho's decoders read ---------------------------------------

_packet: Any = pytest.importorskip("paho.mqtt._packet")  # paho's internal decoders
_PROTOCOLS = {
    3: _enums.MQTTProtocolVersion.MQTTv31,
    4: _enums.MQTTProtocolVersion.MQTTv311,
    5: _enums.MQTTProtocolVersion.MQTTv5,
}


def _body(packet: Packet, version: int) -> tuple[int, bytes]:
    """First byte and body (after the remaining length) of ``packet`` at ``version``."""
    raw = packet.encode(version)
    _length, start = read_varint(raw, 1, len(raw))
    return raw[0], raw[start:]


def _has_bom(value: object) -> bool:
    """Whether U+FEFF appears in any string of ``value`` (a packet, tuple or string)."""
    if isinstance(value, str):
        return "\ufeff" in value
    if isinstance(value, tuple):
        return any(_has_bom(item) for item in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return any(_has_bom(getattr(value, f.name)) for f in dataclasses.fields(value))
    return False


def _roost_props(packet: Packet, table: Mapping[int, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for attr in table.values():
        value = getattr(packet, attr)
        if value is not None and value != ():
            values[attr] = value
    return values


@pytest.mark.parametrize("version", [3, 4, 5])
def test_paho_reads_roost_publish(version: int) -> None:
    @DIFFERENTIAL
    @given(PACKETS["publish"](version))
    def check(packet: Any) -> None:
        # paho refuses U+FEFF in property strings; the topic it keeps as bytes.
        assume(version != 5 or not _has_bom(dataclasses.replace(packet, topic="")))
        first, body = _body(packet, version)
        got = _packet.decode_publish(first, body, _PROTOCOLS[version])
        assert (got.dup, got.qos, got.retain, got.mid) == (
            packet.dup,
            packet.qos,
            packet.retain,
            packet.packet_id,
        )
        assert got.topic.decode() == packet.topic
        assert bytes(got.payload) == packet.payload
        if version == 5:
            assert _from_paho(PacketTypes.PUBLISH, got.properties) == _roost_props(
                packet, roost_props.PUBLISH
            )

    check()


_ACK_DECODERS = {
    "puback": ("decode_puback", PacketTypes.PUBACK),
    "pubrec": ("decode_pubrec", PacketTypes.PUBREC),
    "pubrel": ("decode_pubrel", PacketTypes.PUBREL),
    "pubcomp": ("decode_pubcomp", PacketTypes.PUBCOMP),
}


@pytest.mark.parametrize("kind", sorted(_ACK_DECODERS))
@pytest.mark.parametrize("version", [4, 5])
def test_paho_reads_roost_acks(kind: str, version: int) -> None:
    decoder_name, packet_type = _ACK_DECODERS[kind]

    @DIFFERENTIAL
    @given(PACKETS[kind](version))
    def check(packet: Any) -> None:
        assume(not _has_bom(packet))
        first, body = _body(packet, version)
        got = getattr(_packet, decoder_name)(first, body, _PROTOCOLS[version])
        assert got.mid == packet.packet_id
        assert got.reason.value == packet.reason_code
        assert _from_paho(packet_type, got.properties) == _roost_props(packet, roost_props.ACK)

    check()


@pytest.mark.parametrize("version", [4, 5])
def test_paho_reads_roost_suback_unsuback(version: int) -> None:
    @DIFFERENTIAL
    @given(PACKETS["suback"](version) | PACKETS["unsuback"](version))
    def check(packet: Any) -> None:
        assume(not _has_bom(packet))
        first, body = _body(packet, version)
        is_suback = packet.packet_type == PacketTypes.SUBACK
        decoder = _packet.decode_suback if is_suback else _packet.decode_unsuback
        got = decoder(first, body, _PROTOCOLS[version])
        assert got.mid == packet.packet_id
        assert [code.value for code in got.reason_codes] == list(packet.reason_codes)
        packet_type = PacketTypes.SUBACK if is_suback else PacketTypes.UNSUBACK
        assert _from_paho(packet_type, got.properties) == _roost_props(packet, roost_props.ACK)

    check()


@DIFFERENTIAL
@given(st.sampled_from([4, 5]).flatmap(lambda v: st.tuples(st.just(v), PACKETS["connack"](v))))
def test_paho_reads_roost_connack(drawn: tuple[int, Any]) -> None:
    version, packet = drawn
    assume(not _has_bom(packet))
    assume(version == 4 or packet.reason_code != 0x99)  # missing from paho's table
    assume((packet.maximum_packet_size or 0) <= 268_435_455)  # paho's cap
    first, body = _body(packet, version)
    got = _packet.decode_connack(first, body, _PROTOCOLS[version])
    assert got.flags == int(packet.session_present)
    assert got.rc == packet.reason_code
    if version == 5:
        assert _from_paho(PacketTypes.CONNACK, got.properties) == _roost_props(
            packet, roost_props.CONNACK
        )


@DIFFERENTIAL
@given(PACKETS["disconnect"](5))
def test_paho_reads_roost_disconnect(packet: Any) -> None:
    assume(not _has_bom(packet))
    first, body = _body(packet, 5)
    got = _packet.decode_disconnect(first, body, _PROTOCOLS[5])
    if not body:
        assert got.reason is None
        return
    assert got.reason.value == packet.reason_code
    props = {} if got.properties is None else _from_paho(PacketTypes.DISCONNECT, got.properties)
    assert props == _roost_props(packet, roost_props.DISCONNECT)
