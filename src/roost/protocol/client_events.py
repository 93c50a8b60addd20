"""What the sans-IO client state machine hands its caller: events and errors.

``ClientConnection.receive_data`` (and ``server_verified``) return a list of the events
below; the caller acts on each. The exceptions are what its methods raise for input
the protocol or the server's announced limits do not allow.
"""

from __future__ import annotations

from dataclasses import dataclass

from roost.codec import (
    Auth,
    Connack,
    Disconnect,
    DisconnectReasonCode,
    ProtocolError,
    Publish,
    Suback,
    Unsuback,
)


class ReceiveMaximumExceeded(ProtocolError):
    """The server sent more unacknowledged QoS 2 messages than our Receive Maximum (0x93)."""

    reason_code = DisconnectReasonCode.RECEIVE_MAXIMUM_EXCEEDED


class KeepAliveTimeout(Exception):
    """No PINGRESP within the ping timeout: the connection is presumed dead."""


class Refused(Exception):
    """A request the server's announced limits forbid; ``reason_code`` names the rule."""

    def __init__(self, reason_code: int, message: str) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.message = message


class NoPacketIdentifier(Exception):
    """All 65535 packet identifiers are in use."""


@dataclass(slots=True)
class Connected:
    """The server accepted the connection (CONNACK 0); the session's resends are queued."""

    connack: Connack
    session_present: bool
    # QoS 2 messages that counted as delivered when the session turned out to be gone.
    completed: tuple[PublishCompleted, ...] = ()


@dataclass(slots=True)
class ConnackRefused:
    """The server refused the connection: CONNACK with a failure code. The state is
    DISCONNECTED again; the caller closes the network connection."""

    connack: Connack


@dataclass(slots=True)
class MessageReceived:
    """A PUBLISH from the server, its topic alias resolved, acknowledged as its QoS asks."""

    publish: Publish


@dataclass(slots=True)
class PublishCompleted:
    """A QoS 1/2 message of ours is done: PUBACK, PUBCOMP, or a failure PUBREC.
    ``reason_code`` >= 0x80 means the server refused it. With manual release, a
    successful PUBREC is one too (``received``): the PUBREL waits for ``release``."""

    packet_id: int
    qos: int
    reason_code: int = 0
    reason_string: str | None = None
    user_properties: tuple[tuple[str, str], ...] = ()
    received: bool = False


@dataclass(slots=True)
class SubscribeCompleted:
    """The SUBACK for our SUBSCRIBE ``packet_id``."""

    packet_id: int
    suback: Suback


@dataclass(slots=True)
class UnsubscribeCompleted:
    """The UNSUBACK for our UNSUBSCRIBE ``packet_id``."""

    packet_id: int
    unsuback: Unsuback


@dataclass(slots=True)
class DisconnectReceived:
    """The server sent DISCONNECT; the state is DISCONNECTED and nothing after it is read."""

    disconnect: Disconnect


@dataclass(slots=True)
class AuthReceived:
    """AUTH from the server: 0x18 wants ``answer_auth``; 0x00 ends a re-authentication."""

    auth: Auth


@dataclass(slots=True)
class VerifyServer:
    """A successful CONNACK of enhanced authentication: check its Authentication Data,
    then call ``server_verified(now)``, or ``disconnect()`` to refuse the server."""

    connack: Connack


# What receive_data and server_verified return, in the order things happened.
Event = (
    Connected
    | VerifyServer
    | ConnackRefused
    | MessageReceived
    | PublishCompleted
    | SubscribeCompleted
    | UnsubscribeCompleted
    | DisconnectReceived
    | AuthReceived
)
