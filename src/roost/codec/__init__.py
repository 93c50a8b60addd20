"""Roost's MQTT codec: pure bytes <-> packet objects for MQTT 3.1, 3.1.1 and 5.0.

No I/O, no event loop, no logging, no clock. ``read_packet`` decodes, each packet's
``encode(version)`` encodes, and every invalid input raises ``CodecError`` carrying
the reason code to reply with.
"""

from roost.codec.errors import (
    CodecError,
    MalformedPacket,
    PacketTooLarge,
    ProtocolError,
    TopicAliasInvalid,
    TopicFilterInvalid,
    TopicNameInvalid,
    UnsupportedProtocolVersion,
)
from roost.codec.framing import PROTOCOL_MAX_PACKET_SIZE, PacketReader, read_packet
from roost.codec.packets import *  # noqa: F403  (the packet classes are the codec's API)
from roost.codec.packets import __all__ as _packet_names
from roost.codec.properties import PropertyId
from roost.codec.reason_codes import (
    AuthReasonCode,
    ConnackReturnCode,
    ConnectReasonCode,
    DisconnectReasonCode,
    PubackReasonCode,
    PubcompReasonCode,
    PubrecReasonCode,
    PubrelReasonCode,
    SubackReasonCode,
    UnsubackReasonCode,
)

__all__ = [  # noqa: PLE0604
    "PROTOCOL_MAX_PACKET_SIZE",
    "AuthReasonCode",
    "CodecError",
    "ConnackReturnCode",
    "ConnectReasonCode",
    "DisconnectReasonCode",
    "MalformedPacket",
    "PacketReader",
    "PacketTooLarge",
    "PropertyId",
    "ProtocolError",
    "PubackReasonCode",
    "PubcompReasonCode",
    "PubrecReasonCode",
    "PubrelReasonCode",
    "SubackReasonCode",
    "TopicAliasInvalid",
    "TopicFilterInvalid",
    "TopicNameInvalid",
    "UnsubackReasonCode",
    "UnsupportedProtocolVersion",
    "read_packet",
    *_packet_names,
]
