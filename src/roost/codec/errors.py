"""The codec's one error type: every refusal carries the reason code to answer with.

MQTT 5 lets a server name the problem in its DISCONNECT (or CONNACK); MQTT 3.1.1 can
only close the connection. Either way the caller needs just ``exc.reason_code``.
"""

from __future__ import annotations


class CodecError(Exception):
    """Invalid input. ``reason_code`` is the MQTT 5 reason code to reply with."""

    reason_code: int = 0x81

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class MalformedPacket(CodecError):
    """The bytes do not parse as the specification says (0x81)."""

    reason_code = 0x81


class ProtocolError(CodecError):
    """The packet parses but breaks a rule of the protocol (0x82)."""

    reason_code = 0x82


class UnsupportedProtocolVersion(CodecError):
    """CONNECT names a protocol level this codec does not speak (0x84).

    The server answers with a CONNACK (0x01 in 3.1.1's format, 0x84 in 5.0's)
    before closing, so the level the client asked for is kept.
    """

    reason_code = 0x84

    def __init__(self, message: str, protocol_name: str, protocol_level: int) -> None:
        super().__init__(message)
        self.protocol_name = protocol_name
        self.protocol_level = protocol_level


class TopicFilterInvalid(CodecError):
    """A topic filter breaks the wildcard or shared-subscription syntax (0x8F)."""

    reason_code = 0x8F


class TopicNameInvalid(CodecError):
    """A topic name is empty where it may not be, or holds a wildcard (0x90)."""

    reason_code = 0x90


class TopicAliasInvalid(ProtocolError):
    """A PUBLISH carries Topic Alias 0: a Protocol Error answered with 0x94.

    MQTT 5.0 section 3.3.4: "A Topic Alias value of 0 or greater than the Maximum
    Topic Alias is a Protocol Error, the receiver uses DISCONNECT with Reason Code of
    0x94 (Topic Alias invalid)". The codec sees the 0; the session sees the maximum.
    """

    reason_code = 0x94


class PacketTooLarge(CodecError):
    """The fixed header announces a packet above the maximum packet size (0x95)."""

    reason_code = 0x95
