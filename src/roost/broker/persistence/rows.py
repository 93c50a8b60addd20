"""Broker objects as SQLite rows and back: messages, wills, subscriptions.

Times in rows are wall clock; ``offset`` is ``time.time() - loop.time()``, added on
the way in and subtracted on the way out.
"""

from __future__ import annotations

import json
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from roost.broker.auth.base import ClientInfo
from roost.broker.message import Message
from roost.broker.records import SubscriptionRecord
from roost.broker.sessions import Identity
from roost.codec import Will
from roost.protocol.topics import parse_shared

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

MessageRow = tuple[
    int,  # id
    str,  # topic
    bytes,  # payload
    int,  # qos
    int,  # retain
    str | None,  # sender
    float | None,  # expires_at
    int | None,  # payload_format_indicator
    str | None,  # content_type
    str | None,  # response_topic
    bytes | None,  # correlation_data
    str | None,  # user_properties (JSON)
]


def message_row(store_id: int, message: Message, offset: float) -> MessageRow:
    expires_at = message.expires_at
    return (
        store_id,
        message.topic,
        message.payload,
        message.qos,
        int(message.retain),
        message.sender,
        None if expires_at is None else expires_at + offset,
        message.payload_format_indicator,
        message.content_type,
        message.response_topic,
        message.correlation_data,
        _properties_text(message.user_properties),
    )


def message_from_row(row: Sequence[Any], offset: float) -> Message:
    message = Message(
        row[1],
        bytes(row[2]),
        row[3],
        bool(row[4]),
        row[5],
        None if row[6] is None else row[6] - offset,
        row[7],
        row[8],
        row[9],
        None if row[10] is None else bytes(row[10]),
        _properties(row[11]),
    )
    message.store_id = row[0]
    return message


def subscription_row(client_id: str, record: SubscriptionRecord) -> tuple[object, ...]:
    return (
        client_id,
        record.topic_filter,
        record.qos,
        int(record.no_local),
        int(record.retain_as_published),
        record.retain_handling,
        record.identifier,
    )


def subscription_from_row(row: Sequence[Any]) -> SubscriptionRecord:
    topic_filter = row[1]
    group, _inner = parse_shared(topic_filter)
    return SubscriptionRecord(
        row[0], topic_filter, row[2], bool(row[3]), bool(row[4]), row[5], row[6], group
    )


def subscription_ids_text(ids: tuple[int, ...]) -> str | None:
    return ",".join(map(str, ids)) if ids else None


def subscription_ids(text: str | None) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",")) if text else ()


def will_text(will: Will | None) -> str | None:
    if will is None:
        return None
    return json.dumps(
        {
            "topic": will.topic,
            "payload": will.payload.hex(),
            "qos": will.qos,
            "retain": will.retain,
            "will_delay_interval": will.will_delay_interval,
            "payload_format_indicator": will.payload_format_indicator,
            "message_expiry_interval": will.message_expiry_interval,
            "content_type": will.content_type,
            "response_topic": will.response_topic,
            "correlation_data": None
            if will.correlation_data is None
            else will.correlation_data.hex(),
            "user_properties": will.user_properties,
        }
    )


def will_from_text(text: str | None) -> Will | None:
    if text is None:
        return None
    data = json.loads(text)
    correlation = data["correlation_data"]
    return Will(
        topic=data["topic"],
        payload=bytes.fromhex(data["payload"]),
        qos=data["qos"],
        retain=data["retain"],
        will_delay_interval=data["will_delay_interval"],
        payload_format_indicator=data["payload_format_indicator"],
        message_expiry_interval=data["message_expiry_interval"],
        content_type=data["content_type"],
        response_topic=data["response_topic"],
        correlation_data=None if correlation is None else bytes.fromhex(correlation),
        user_properties=tuple((name, value) for name, value in data["user_properties"]),
    )


def _properties_text(properties: tuple[tuple[str, str], ...]) -> str | None:
    return json.dumps(properties) if properties else None


def _properties(text: str | None) -> tuple[tuple[str, str], ...]:
    if not text:
        return ()
    return tuple((name, value) for name, value in json.loads(text))


def json_attributes(attributes: Mapping[str, object]) -> tuple[dict[str, object], list[str]]:
    """The attributes JSON can keep, and the names of those it cannot (bytes, objects)."""
    kept: dict[str, object] = {}
    lost: list[str] = []
    for name, value in attributes.items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            lost.append(name)
        else:
            kept[name] = value
    return kept, lost


def identity_columns(identity: Identity | None) -> tuple[str | None, str | None]:
    """The ``username`` and ``client`` columns of a session's row."""
    if identity is None:
        return None, None
    client = identity.client
    attributes, _lost = json_attributes(client.attributes)
    return client.username, json.dumps(
        {
            "peer": client.peer,
            "protocol_level": client.protocol_level,
            "listener": client.listener,
            "attributes": attributes,
            "password_file": identity.password_file,
        }
    )


def identity_from_columns(
    client_id: str, username: str | None, text: str | None
) -> Identity | None:
    if text is None:
        return None  # stored before schema version 2: not known
    data = json.loads(text)
    attributes = data.get("attributes") or {}
    client = ClientInfo(
        client_id,
        username,
        data.get("peer", "?"),
        data.get("protocol_level", 4),
        data.get("listener", ""),
        MappingProxyType(dict(attributes)),
    )
    return Identity(client, bool(data.get("password_file", False)))
