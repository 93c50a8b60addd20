"""Messages in and out: a received message with its MQTT 5 properties as attributes, and
the result of a publish."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from roost.codec import Publish
from roost.protocol.topics import topic_matches

# The MQTT 5 properties a PUBLISH can carry to a subscriber, in the order they are shown.
PROPERTY_NAMES = (
    "payload_format_indicator",
    "message_expiry_interval",
    "content_type",
    "response_topic",
    "correlation_data",
    "user_properties",
    "subscription_identifiers",
)


@dataclass(slots=True, frozen=True)
class Message:
    """A message the client received: topic, payload, flags and its MQTT 5 properties."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int = 0  # 0 for QoS 0
    payload_format_indicator: int | None = None
    message_expiry_interval: int | None = None
    content_type: str | None = None
    response_topic: str | None = None
    correlation_data: bytes | None = None
    user_properties: tuple[tuple[str, str], ...] = ()
    subscription_identifiers: tuple[int, ...] = ()
    # Which of the client's network connections it came on (counted from 1): with
    # Client(manual_ack=True), ack() uses it (see ClientConnection.acknowledge).
    connection: int = field(default=0, compare=False)

    @classmethod
    def from_publish(cls, publish: Publish, connection: int = 0) -> Message:
        """The message a received PUBLISH carries."""
        return cls(
            publish.topic,
            publish.payload,
            publish.qos,
            publish.retain,
            publish.dup,
            publish.packet_id,
            publish.payload_format_indicator,
            publish.message_expiry_interval,
            publish.content_type,
            publish.response_topic,
            publish.correlation_data,
            publish.user_properties,
            publish.subscription_identifiers,
            connection,
        )

    @property
    def text(self) -> str:
        """The payload as UTF-8 text (undecodable bytes become U+FFFD)."""
        return self.payload.decode("utf-8", "replace")

    def matches(self, topic_filter: str) -> bool:
        """True if this message's topic matches ``topic_filter`` (``+`` and ``#`` allowed)."""
        return topic_matches(topic_filter, self.topic)

    @property
    def properties(self) -> dict[str, Any]:
        """The MQTT 5 properties that are set, JSON-ready (binary values as base64)."""
        result: dict[str, Any] = {}
        for name in PROPERTY_NAMES:
            value = getattr(self, name)
            if value is None or value == ():
                continue
            if isinstance(value, bytes):
                value = base64.b64encode(value).decode("ascii")
            elif name == "user_properties":
                value = [list(pair) for pair in value]
            elif isinstance(value, tuple):
                value = list(value)
            result[name] = value
        return result


@dataclass(slots=True, frozen=True)
class PublishResult:
    """How a publish ended: for QoS 1/2 the server's PUBACK / PUBCOMP (or PUBREC) reason.

    ``reason_code`` is 0 (success) or 0x10 (accepted, no matching subscribers); codes of
    0x80 and above are raised as ``PublishError`` instead. QoS 0 has packet id 0.
    """

    packet_id: int = 0
    reason_code: int = 0
    reason_string: str | None = None
    user_properties: tuple[tuple[str, str], ...] = ()
