"""A routed application message: stored once, encoded once per outgoing variant.

Sessions hold references to one ``Message``; the bytes a subscriber gets are built
from a cached template per (protocol level, QoS, retain flag), with only the packet
identifier (and the DUP bit on a resend) patched in per delivery.

An MQTT 5 connection that sends topic aliases (``topic_aliases.OutgoingAliases``) gets
its own templates, cached in the same map under (QoS, retain, alias, with the topic or
with an empty Topic Name): subscribers whose connections picked the same alias for a
topic share them, as they share the plain ones. Aliases differ per connection, so only
``_MAX_TEMPLATES`` aliased variants are kept per message (a retained message can live
long); past that each one is encoded for its delivery.
"""

from __future__ import annotations

from enum import Enum

from roost.codec import MQTT_5, Publish
from roost.codec.primitives import encode_varint
from roost.codec.properties import EMPTY_PROPERTIES

# Aliased templates kept per message (plain variants are always kept: a few at most).
_MAX_TEMPLATES = 8


class Keep(Enum):
    """``Keep.KEEP``: in ``Message.replace``, leave this property as it is."""

    KEEP = "keep"


class Message:
    """A routed application message, stored once and encoded once per outgoing variant."""

    __slots__ = (
        "_templates",
        "cluster_id",
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

    # With [cluster]: (origin, sequence number) of the message between nodes, the same
    # for every node's copy; set only by cluster code (read it with getattr: unset on
    # a broker alone, which pays nothing for it).
    cluster_id: tuple[bytes, int]

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

    def replace(
        self,
        *,
        topic: str | None = None,
        payload: bytes | None = None,
        retain: bool | None = None,
        user_properties: tuple[tuple[str, str], ...] | None = None,
        content_type: str | Keep | None = Keep.KEEP,
        payload_format_indicator: int | Keep | None = Keep.KEEP,
        response_topic: str | Keep | None = Keep.KEEP,
        correlation_data: bytes | Keep | None = Keep.KEEP,
    ) -> Message:
        """A new message with these fields changed (for broker hooks): a message is
        shared and its encodings cached, so it is never changed in place."""
        keep = Keep.KEEP
        return Message(
            self.topic if topic is None else topic,
            self.payload if payload is None else payload,
            self.qos,
            self.retain if retain is None else retain,
            self.sender,
            self.expires_at,
            self.payload_format_indicator
            if payload_format_indicator is keep
            else payload_format_indicator,
            self.content_type if content_type is keep else content_type,
            self.response_topic if response_topic is keep else response_topic,
            self.correlation_data if correlation_data is keep else correlation_data,
            self.user_properties if user_properties is None else user_properties,
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
        if not dup:
            # The common case in one expression: about 30% cheaper than the join below.
            return template[:offset] + packet_id.to_bytes(2, "big") + template[offset + 2 :]
        return b"".join(
            (
                bytes((template[0] | 0x08,)),
                template[1:offset],
                packet_id.to_bytes(2, "big"),
                template[offset + 2 :],
            )
        )

    def encode_aliased(
        self,
        alias: int,
        known: bool,
        qos: int,
        retain: bool,
        packet_id: int = 0,
        dup: bool = False,
        subscription_identifiers: tuple[int, ...] = (),
        now: float = 0.0,
    ) -> bytes:
        """The MQTT 5 PUBLISH bytes for one delivery with Topic Alias ``alias``: with an
        empty Topic Name when ``known`` (the client has the alias for this topic), else
        with the topic too (setting the alias)."""
        if subscription_identifiers or self.expires_at is not None:
            publish = self.to_publish(qos, retain, packet_id, dup, subscription_identifiers, now)
            publish.topic_alias = alias
            if known:
                publish.topic = ""
            return publish.encode(MQTT_5)
        # Above every plain key (version << 3 | qos << 1 | retain < 64).
        key = alias << 7 | (not known) << 6 | qos << 1 | retain
        templates = self._templates
        cached = templates.get(key)
        if cached is None:
            publish = self.to_publish(qos, retain, 1 if qos else 0)
            publish.topic_alias = alias
            topic_length = len(self.topic.encode())
            if known:
                publish.topic = ""
                topic_length = 0
            template = publish.encode(MQTT_5)
            cached = (template, 1 + _varint_length(template) + 2 + topic_length)
            if len(templates) < _MAX_TEMPLATES:
                templates[key] = cached
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
