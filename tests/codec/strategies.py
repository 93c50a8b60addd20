"""Hypothesis strategies: packets that are valid at a given protocol level.

Only what the level can carry is generated: MQTT 5 fields stay at their defaults for
levels 3 and 4, ``Connect.protocol_level`` is the level, AUTH exists only at level 5, a
3.1 CONNACK has no session present flag, and so on. Every value respects the codec's
(and the specification's) rules, so ``read_packet(p.encode(v), v)`` must give ``p`` back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from roost.codec import (
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
    Pingreq,
    Pingresp,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Subscription,
    Unsuback,
    Unsubscribe,
    Will,
)
from roost.codec.reason_codes import (
    VALID_AUTH,
    VALID_CONNACK_V3,
    VALID_CONNACK_V5,
    VALID_DISCONNECT,
    VALID_PUBACK,
    VALID_PUBREL,
    VALID_SUBACK_V3,
    VALID_SUBACK_V5,
    VALID_UNSUBACK,
)

Strategy = st.SearchStrategy

# --- data representations (MQTT 5.0 section 1.5) ------------------------------------------

#: Characters a UTF-8 Encoded String may hold: no surrogates [MQTT-1.5.4-1], no U+0000
#: [MQTT-1.5.4-2]. Disallowed-but-legal code points (controls, non-characters) stay in.
_CHARS = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
texts = st.text(_CHARS, max_size=12)
short_binary = st.binary(max_size=16)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFF_FFFF)
varint = st.integers(1, 268_435_455)
boolean_byte = st.integers(0, 1)
packet_ids = st.integers(1, 0xFFFF)
user_properties = st.lists(st.tuples(texts, texts), max_size=4).map(tuple)

# --- topic names and filters (section 4.7, 4.8.2) -----------------------------------------

_LEVEL_CHARS = st.characters(exclude_categories=["Cs"], exclude_characters="\x00/+#")
_level = st.text(_LEVEL_CHARS, max_size=5)

#: Topic names: one or more levels, no wildcards, at least one character.
topic_names = st.lists(_level, min_size=1, max_size=4).map("/".join).filter(lambda t: t != "")


def _plain_filter(levels: list[str | None], multi: bool) -> str:
    parts = ["+" if level is None else level for level in levels]
    if multi:
        parts.append("#")
    return "/".join(parts)


#: Non-shared topic filters: literal or "+" levels, optionally a final "#".
plain_filters = st.builds(
    _plain_filter,
    st.lists(st.none() | _level, max_size=4),
    st.booleans(),
).filter(lambda f: f != "" and not f.startswith("$share/") and f != "$share")

_share_names = st.text(_LEVEL_CHARS, min_size=1, max_size=5)
shared_filters = st.builds(
    lambda group, inner: f"$share/{group}/{inner}", _share_names, plain_filters
)


def topic_filters(version: int) -> Strategy[str]:
    return plain_filters | shared_filters if version == 5 else plain_filters


def _optional(strategy: Strategy[Any]) -> Strategy[Any]:
    return st.none() | strategy


def _v5_only(version: int, strategy: Strategy[Any], default: Any = None) -> Strategy[Any]:
    return strategy if version == 5 else st.just(default)


# --- CONNECT, CONNACK, AUTH -------------------------------------------------------------------


@st.composite
def wills(draw: st.DrawFn, version: int) -> Will:
    v5 = version == 5
    return Will(
        draw(topic_names),
        draw(short_binary),
        draw(st.integers(0, 2)),
        draw(st.booleans()),
        will_delay_interval=draw(_optional(u32)) if v5 else None,
        payload_format_indicator=draw(_optional(boolean_byte)) if v5 else None,
        message_expiry_interval=draw(_optional(u32)) if v5 else None,
        content_type=draw(_optional(texts)) if v5 else None,
        response_topic=draw(_optional(topic_names)) if v5 else None,
        correlation_data=draw(_optional(short_binary)) if v5 else None,
        user_properties=draw(user_properties) if v5 else (),
    )


@st.composite
def connects(draw: st.DrawFn, version: int) -> Connect:
    v5 = version == 5
    username = draw(_optional(texts))
    # 3.1.1 forbids a password without a user name [MQTT-3.1.2-22]; 5.0 allows it.
    password = draw(_optional(short_binary)) if v5 or username is not None else None
    method = draw(_optional(texts)) if v5 else None
    data = draw(_optional(short_binary)) if method is not None else None
    return Connect(
        draw(texts),
        version,
        draw(st.booleans()),
        draw(u16),
        username,
        password,
        draw(_optional(wills(version))),
        session_expiry_interval=draw(_optional(u32)) if v5 else None,
        receive_maximum=draw(_optional(st.integers(1, 0xFFFF))) if v5 else None,
        maximum_packet_size=draw(_optional(st.integers(1, 0xFFFF_FFFF))) if v5 else None,
        topic_alias_maximum=draw(_optional(u16)) if v5 else None,
        request_response_information=draw(_optional(boolean_byte)) if v5 else None,
        request_problem_information=draw(_optional(boolean_byte)) if v5 else None,
        authentication_method=method,
        authentication_data=data,
        user_properties=draw(user_properties) if v5 else (),
    )


@st.composite
def connacks(draw: st.DrawFn, version: int) -> Connack:
    if version != 5:
        codes = sorted(VALID_CONNACK_V3)
        # MQTT 3.1 reserves the acknowledge flags byte: no session present flag.
        present = draw(st.booleans()) if version == 4 else False
        return Connack(present, draw(st.sampled_from(codes)))
    return Connack(
        draw(st.booleans()),
        draw(st.sampled_from(sorted(VALID_CONNACK_V5))),
        session_expiry_interval=draw(_optional(u32)),
        receive_maximum=draw(_optional(st.integers(1, 0xFFFF))),
        maximum_qos=draw(_optional(boolean_byte)),
        retain_available=draw(_optional(boolean_byte)),
        maximum_packet_size=draw(_optional(st.integers(1, 0xFFFF_FFFF))),
        assigned_client_identifier=draw(_optional(texts)),
        topic_alias_maximum=draw(_optional(u16)),
        reason_string=draw(_optional(texts)),
        wildcard_subscription_available=draw(_optional(boolean_byte)),
        subscription_identifier_available=draw(_optional(boolean_byte)),
        shared_subscription_available=draw(_optional(boolean_byte)),
        server_keep_alive=draw(_optional(u16)),
        response_information=draw(_optional(texts)),
        server_reference=draw(_optional(texts)),
        authentication_method=draw(_optional(texts)),
        authentication_data=draw(_optional(short_binary)),
        user_properties=draw(user_properties),
    )


def auths(version: int) -> Strategy[Auth]:
    # The Authentication Method is required (3.15.2.2.2), except in the Remaining
    # Length 0 form: success with no properties at all (3.15.2.1).
    return st.just(Auth()) | st.builds(
        Auth,
        st.sampled_from(sorted(VALID_AUTH)),
        texts,
        _optional(short_binary),
        _optional(texts),
        user_properties,
    )


# --- PUBLISH and its acknowledgements ------------------------------------------------------


@st.composite
def publishes(draw: st.DrawFn, version: int) -> Publish:
    qos = draw(st.integers(0, 2))
    packet_id = draw(packet_ids) if qos else 0
    dup = draw(st.booleans()) if qos else False  # [MQTT-3.3.1-2]
    if version != 5:
        return Publish(
            draw(topic_names),
            draw(st.binary(max_size=64)),
            qos,
            draw(st.booleans()),
            dup,
            packet_id,
        )
    alias = draw(_optional(st.integers(1, 0xFFFF)))
    # With a topic alias the topic name may be empty (3.3.2.3.4).
    topic = draw(topic_names | st.just("")) if alias is not None else draw(topic_names)
    return Publish(
        topic,
        draw(st.binary(max_size=64)),
        qos,
        draw(st.booleans()),
        dup,
        packet_id,
        payload_format_indicator=draw(_optional(boolean_byte)),
        message_expiry_interval=draw(_optional(u32)),
        topic_alias=alias,
        response_topic=draw(_optional(topic_names)),
        correlation_data=draw(_optional(short_binary)),
        user_properties=draw(user_properties),
        subscription_identifiers=tuple(draw(st.lists(varint, max_size=3))),
        content_type=draw(_optional(texts)),
    )


def _acks(
    cls: type[Puback | Pubrec | Pubrel | Pubcomp], valid: frozenset[int]
) -> Callable[[int], Strategy[Packet]]:
    def build(version: int) -> Strategy[Packet]:
        if version != 5:
            return st.builds(cls, packet_ids)
        return st.builds(
            cls,
            packet_ids,
            st.sampled_from(sorted(valid)),
            _optional(texts),
            user_properties,
        )

    return build


# --- SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK --------------------------------------------


@st.composite
def subscriptions(draw: st.DrawFn, version: int) -> Subscription:
    topic_filter = draw(topic_filters(version))
    qos = draw(st.integers(0, 2))
    if version != 5:
        return Subscription(topic_filter, qos)
    shared = topic_filter.startswith("$share/")
    return Subscription(
        topic_filter,
        qos,
        False if shared else draw(st.booleans()),  # [MQTT-3.8.3-4]
        draw(st.booleans()),
        draw(st.integers(0, 2)),
    )


@st.composite
def subscribes(draw: st.DrawFn, version: int) -> Subscribe:
    return Subscribe(
        draw(packet_ids),
        tuple(draw(st.lists(subscriptions(version), min_size=1, max_size=4))),
        draw(_v5_only(version, _optional(varint))),
        draw(_v5_only(version, user_properties, ())),
    )


@st.composite
def subacks(draw: st.DrawFn, version: int) -> Suback:
    valid = VALID_SUBACK_V5 if version == 5 else VALID_SUBACK_V3
    return Suback(
        draw(packet_ids),
        tuple(draw(st.lists(st.sampled_from(sorted(valid)), min_size=1, max_size=6))),
        draw(_v5_only(version, _optional(texts))),
        draw(_v5_only(version, user_properties, ())),
    )


@st.composite
def unsubscribes(draw: st.DrawFn, version: int) -> Unsubscribe:
    return Unsubscribe(
        draw(packet_ids),
        tuple(draw(st.lists(topic_filters(version), min_size=1, max_size=4))),
        draw(_v5_only(version, user_properties, ())),
    )


@st.composite
def unsubacks(draw: st.DrawFn, version: int) -> Unsuback:
    if version != 5:
        return Unsuback(draw(packet_ids))
    return Unsuback(
        draw(packet_ids),
        tuple(draw(st.lists(st.sampled_from(sorted(VALID_UNSUBACK)), min_size=1, max_size=6))),
        draw(_optional(texts)),
        draw(user_properties),
    )


# --- PINGREQ, PINGRESP, DISCONNECT ---------------------------------------------------------


@st.composite
def disconnects(draw: st.DrawFn, version: int) -> Disconnect:
    if version != 5:
        return Disconnect()
    return Disconnect(
        draw(st.sampled_from(sorted(VALID_DISCONNECT))),
        draw(_optional(u32)),
        draw(_optional(texts)),
        draw(_optional(texts)),
        draw(user_properties),
    )


#: Packet kind name -> strategy factory taking the protocol level.
PACKETS: dict[str, Callable[[int], Strategy[Any]]] = {
    "connect": connects,
    "connack": connacks,
    "publish": publishes,
    "puback": _acks(Puback, VALID_PUBACK),
    "pubrec": _acks(Pubrec, VALID_PUBACK),
    "pubrel": _acks(Pubrel, VALID_PUBREL),
    "pubcomp": _acks(Pubcomp, VALID_PUBREL),
    "subscribe": subscribes,
    "suback": subacks,
    "unsubscribe": unsubscribes,
    "unsuback": unsubacks,
    "pingreq": lambda version: st.just(Pingreq()),
    "pingresp": lambda version: st.just(Pingresp()),
    "disconnect": disconnects,
    "auth": auths,
}


def kinds_for(version: int) -> list[str]:
    """The packet kinds that exist at ``version`` (AUTH is MQTT 5 only)."""
    return [kind for kind in PACKETS if kind != "auth" or version == 5]


def packets(version: int) -> Strategy[Packet]:
    """Any packet valid at ``version``."""
    return st.one_of([PACKETS[kind](version) for kind in kinds_for(version)])
