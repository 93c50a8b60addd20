"""A routed application message: stored once, encoded once per outgoing variant.

Sessions hold references to one ``Message``; the bytes a subscriber gets are built
from a cached template per (protocol level, QoS, retain flag), with only the packet
identifier (and the DUP bit on a resend) patched in per delivery.
"""

from __future__ import annotations

from roost.codec import MQTT_5, Publish
from roost.codec.primitives import encode_varint
from roost.codec.properties import EMPTY_PROPERTIES


class Message:
    """A routed application message, stored once and encoded once per outgoing variant."""

    __slots__ = (
        "_templates",
        "content_type",
        "correlation_data",
        "expires_at",
        "payload",
        "payload_format_indicator",
        "qos",
        "response_topic",
        "retain",
        "sender",
        "size",
        "store_id",
        "store_refs",
        "topic",
        "user_properties",
    )

    def __init__(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
        sender: str | None = None,
        expires_at: float | None = None,
        payload_format_indicator: int | None = None,
        content_type: str | None = None,
        response_topic: str | None = None,
        correlation_data: bytes | None = None,
        user_properties: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.sender = sender
        self.expires_at = expires_at
        self.payload_format_indicator = payload_format_indicator
        self.content_type = content_type
        self.response_topic = response_topic
        self.correlation_data = correlation_data
        self.user_properties = user_properties
        self.size = len(payload) + len(topic)
        # Its row in a durable store (0: none) and how many stored rows refer to it.
        self.store_id = 0
        self.store_refs = 0
        self._templates: dict[int, tuple[bytes, int]] = {}

    @classmethod
    def from_publish(cls, publish: Publish, sender: str | None, now: float) -> Message:
        expiry = publish.message_expiry_interval
        return cls(
            publish.topic,
            publish.payload,
            publish.qos,
            publish.retain,
            sender,
            None if expiry is None else now + expiry,
            publish.payload_format_indicator,
            publish.content_type,
            publish.response_topic,
            publish.correlation_data,
            publish.user_properties,
        )

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def to_publish(
        self,
        qos: int,
        retain: bool,
        packet_id: int = 0,
        dup: bool = False,
        subscription_identifiers: tuple[int, ...] = (),
        now: float = 0.0,
    ) -> Publish:
        expiry = None
        if self.expires_at is not None:
            expiry = max(0, int(self.expires_at - now + 0.999))
        return Publish(
            self.topic,
            self.payload,
            qos,
            retain,
            dup,
            packet_id,
            self.payload_format_indicator,
            expiry,
            None,
            self.response_topic,
            self.correlation_data,
            self.user_properties,
            subscription_identifiers,
            self.content_type,
        )

    def encode(
        self,
        version: int,
        qos: int,
        retain: bool,
        packet_id: int = 0,
        dup: bool = False,
        subscription_identifiers: tuple[int, ...] = (),
        now: float = 0.0,
    ) -> bytes:
        """The PUBLISH bytes for one delivery of this message."""
        if subscription_identifiers or (self.expires_at is not None and version == MQTT_5):
            # These vary per subscriber or per moment: no template to share.
            publish = self.to_publish(qos, retain, packet_id, dup, subscription_identifiers, now)
            return publish.encode(version)
        key = version << 3 | qos << 1 | retain
        cached = self._templates.get(key)
        if cached is None:
            cached = self._templates[key] = self._template(version, qos, retain)
        template, offset = cached
        if not qos:
            return template
        first = template[0] | 0x08 if dup else template[0]
        return b"".join(
            (
                bytes((first,)),
                template[1:offset],
                packet_id.to_bytes(2, "big"),
                template[offset + 2 :],
            )
        )

    def _template(self, version: int, qos: int, retain: bool) -> tuple[bytes, int]:
        """A PUBLISH of this message (packet id 1 at QoS > 0) and the packet id's offset."""
        v5 = version == MQTT_5
        if not v5 or (
            self.payload_format_indicator is None
            and self.content_type is None
            and self.response_topic is None
            and self.correlation_data is None
            and not self.user_properties
        ):
            # No properties to write (the usual case): built here, without a Publish
            # object; a retained catch-up builds one template per message it sends.
            topic = self.topic.encode()
            payload = self.payload
            remaining = 2 + len(topic) + (2 if qos else 0) + v5 + len(payload)
            head = bytes((0x30 | qos << 1 | retain,)) + encode_varint(remaining)
            template = b"".join(
                (
                    head,
                    len(topic).to_bytes(2, "big"),
                    topic,
                    _FIRST_PACKET_ID if qos else b"",
                    EMPTY_PROPERTIES if v5 else b"",
                    payload,
                )
            )
            return template, len(head) + 2 + len(topic)
        template = self.to_publish(qos, retain, 1 if qos else 0).encode(version)
        # The packet id follows the fixed header and the topic.
        return template, 1 + _varint_length(template) + 2 + len(self.topic.encode())


_FIRST_PACKET_ID = (1).to_bytes(2, "big")


def _varint_length(packet: bytes) -> int:
    """How many bytes the remaining length takes in an encoded packet."""
    length = 1
    while packet[length] & 0x80:
        length += 1
    return length
