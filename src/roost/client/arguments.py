"""What a caller passes to Client, checked and turned into packets.

Every check raises ValueError naming the problem before anything is sent: a mistake
in a call never reaches the server, where it would cost the connection. Nothing here
knows about connections; the Client sends what these functions build.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from roost.codec import (
    MQTT_3_1,
    MQTT_3_1_1,
    MQTT_5,
    CodecError,
    Connect,
    Publish,
    Subscription,
    Will,
)
from roost.protocol.topics import validate_topic_filter, validate_topic_name

Payload = str | bytes | bytearray | memoryview | int | float | None
UserProperties = Sequence[tuple[str, str]] | Mapping[str, str]
Headers = Sequence[tuple[str, str]] | Mapping[str, str]


def pairs(value: UserProperties) -> tuple[tuple[str, str], ...]:
    """User properties (or headers) as the tuple of pairs that packets carry."""
    items = value.items() if isinstance(value, Mapping) else value
    return tuple((str(name), str(text)) for name, text in items)


def payload_bytes(value: Payload) -> bytes:
    """A payload as bytes: text as UTF-8, numbers as their decimal text (as paho sends
    them), None as the empty payload; anything else is a TypeError.

    ``bytes()`` alone would accept too much: a list of ints becomes bytes silently, a
    dict fails with an error about something else, and an int makes zero bytes.
    """
    if value is None:
        return b""
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value).encode()
    raise TypeError(
        "payload must be str, bytes, bytearray, memoryview, int, float or None, "
        f"not {type(value).__name__} (encode other objects first, e.g. with json.dumps)"
    )


def connect_packet(
    version: int,
    client_id: str,
    clean_start: bool,
    keep_alive: int,
    username: str | None,
    password: str | bytes | None,
    will: Will | None,
    session_expiry_interval: int | None,
    receive_maximum: int | None,
    maximum_packet_size: int | None,
    topic_alias_maximum: int | None,
    request_response_information: bool | None,
    request_problem_information: bool | None,
    user_properties: UserProperties,
) -> Connect:
    """The CONNECT a client sends on every connection, from ``Client()``'s arguments."""
    if version not in (MQTT_3_1, MQTT_3_1_1, MQTT_5):
        raise ValueError(f"version must be 3 (3.1), 4 (3.1.1) or 5, not {version!r}")
    v5_only = (
        session_expiry_interval,
        receive_maximum,
        maximum_packet_size,
        topic_alias_maximum,
        request_response_information,
        request_problem_information,
    )
    if version != MQTT_5 and (any(v is not None for v in v5_only) or user_properties):
        raise ValueError("MQTT 5 properties need version=5")
    if not 0 <= keep_alive <= 65535:
        raise ValueError("keep_alive must be 0..65535 seconds")
    return Connect(
        client_id,
        version,
        clean_start,
        keep_alive,
        username,
        password.encode() if isinstance(password, str) else password,
        will,
        session_expiry_interval,
        receive_maximum,
        maximum_packet_size,
        topic_alias_maximum,
        None if request_response_information is None else int(request_response_information),
        None if request_problem_information is None else int(request_problem_information),
        user_properties=pairs(user_properties),
    )


def publish_packet(
    version: int,
    topic: str,
    payload: Payload,
    qos: int,
    retain: bool,
    *,
    payload_format_indicator: int | None,
    message_expiry_interval: int | None,
    content_type: str | None,
    response_topic: str | None,
    correlation_data: bytes | None,
    user_properties: UserProperties,
    topic_alias: int | None,
) -> Publish:
    """The PUBLISH for ``Client.publish()``'s arguments (no packet identifier yet)."""
    if qos not in (0, 1, 2):
        raise ValueError(f"qos must be 0, 1 or 2, not {qos!r}")
    if topic or topic_alias is None:
        try:
            validate_topic_name(topic)
        except CodecError as exc:
            raise ValueError(str(exc)) from None
    packet = Publish(
        topic,
        payload_bytes(payload),
        qos,
        retain,
        payload_format_indicator=payload_format_indicator,
        message_expiry_interval=message_expiry_interval,
        topic_alias=topic_alias,
        response_topic=response_topic,
        correlation_data=correlation_data,
        user_properties=pairs(user_properties),
        content_type=content_type,
    )
    if version != MQTT_5 and (
        packet.user_properties
        or topic_alias is not None
        or any(
            value is not None
            for value in (
                payload_format_indicator,
                message_expiry_interval,
                content_type,
                response_topic,
                correlation_data,
            )
        )
    ):
        raise ValueError("MQTT 5 properties need version=5")
    return packet


def subscriptions(
    version: int,
    topic: str | Subscription | Sequence[str | Subscription],
    qos: int,
    no_local: bool,
    retain_as_published: bool,
    retain_handling: int,
    subscription_identifier: int | None,
    user_properties: tuple[tuple[str, str], ...],
) -> list[Subscription]:
    """The filters of ``Client.subscribe()``, each with its options; the keyword options
    apply to the plain strings."""
    items = [topic] if isinstance(topic, str | Subscription) else list(topic)
    checked = []
    for item in items:
        sub = item
        if isinstance(item, str):
            sub = Subscription(item, qos, no_local, retain_as_published, retain_handling)
        assert isinstance(sub, Subscription)  # noqa: S101  (narrowing for mypy)
        try:
            validate_topic_filter(sub.topic_filter)
        except CodecError as exc:
            raise ValueError(str(exc)) from None
        if sub.qos not in (0, 1, 2) or sub.retain_handling not in (0, 1, 2):
            raise ValueError("qos and retain_handling must be 0, 1 or 2")
        checked.append(sub)
    if not checked:
        raise ValueError("nothing to subscribe to")
    if version != MQTT_5 and (subscription_identifier is not None or user_properties):
        raise ValueError("MQTT 5 properties need version=5")
    return checked


def topic_filters(topic: str | Sequence[str]) -> list[str]:
    """The filters of ``Client.unsubscribe()``, checked."""
    filters = [topic] if isinstance(topic, str) else list(topic)
    for topic_filter in filters:
        try:
            validate_topic_filter(topic_filter)
        except CodecError as exc:
            raise ValueError(str(exc)) from None
    return filters
