"""The broker side of one MQTT connection, sans-IO.

``ServerConnection`` turns received bytes into validated packets, and the broker's
answers into bytes. It owns what is per network connection and independent of
sessions, routing and auth: the framing, the state, the protocol level agreed at
CONNECT, and the client's MQTT 5 topic aliases. It does not own clocks, sockets,
sessions or authorization: the caller feeds bytes, acts on packets and sends the bytes
the ``send`` side returns.

The states, and what moves between them (``_TRANSITIONS`` is the whole table; a
packet with no entry for the current state is a protocol error, raised at one place)::

    AWAITING_CONNECT --CONNECT--> CONNECTED
    CONNECTED --authenticating()--> AUTHENTICATING   (an MQTT 5 AUTH exchange before
    AUTHENTICATING --authenticated()--> CONNECTED     CONNACK: only AUTH, DISCONNECT)
    any --close() or an error--> CLOSED               (then every packet is ignored)

Every refusal is a ``CodecError`` carrying the reason code for the DISCONNECT (MQTT 5)
or the close (3.1.x); after one, the connection must be closed.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

from roost.codec import (
    AUTH,
    CONNACK,
    CONNECT,
    DISCONNECT,
    MQTT_5,
    PINGREQ,
    PINGRESP,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    SUBACK,
    SUBSCRIBE,
    UNSUBACK,
    UNSUBSCRIBE,
    Auth,
    CodecError,
    Disconnect,
    Packet,
    PacketReader,
    Pingresp,
    ProtocolError,
    Publish,
    PubrelReasonCode,
    Suback,
    TopicAliasInvalid,
    Unsuback,
    encode_ack,
)
from roost.codec.framing import PROTOCOL_MAX_PACKET_SIZE

if TYPE_CHECKING:
    from collections.abc import Sequence


class ServerState(Enum):
    """Where the server side of a connection is (see the module's table)."""

    AWAITING_CONNECT = 1
    CONNECTED = 2
    CLOSED = 3
    AUTHENTICATING = 4


_AWAITING = ServerState.AWAITING_CONNECT
_CONNECTED = ServerState.CONNECTED
_AUTHENTICATING = ServerState.AUTHENTICATING

# (state, packet type received) -> state after it. Nothing else is allowed.
_TRANSITIONS: dict[tuple[ServerState, int], ServerState] = {
    (_AWAITING, CONNECT): _CONNECTED,
    **{
        (_CONNECTED, kind): _CONNECTED
        for kind in (
            PUBLISH,
            PUBACK,
            PUBREC,
            PUBREL,
            PUBCOMP,
            SUBSCRIBE,
            UNSUBSCRIBE,
            PINGREQ,
            DISCONNECT,
            AUTH,
        )
    },
    (_AUTHENTICATING, AUTH): _AUTHENTICATING,
    (_AUTHENTICATING, DISCONNECT): _AUTHENTICATING,
}

# Packets only a server sends; receiving one from a client is a protocol error.
_SERVER_ONLY = frozenset((CONNACK, SUBACK, UNSUBACK, PINGRESP))

_PINGRESP = Pingresp().encode()


def _refusal(state: ServerState, packet: Packet) -> str:
    """Why ``packet`` may not come in ``state``: the one place the wording is chosen."""
    name = type(packet).__name__.upper()
    kind = packet.packet_type
    if state is _AWAITING:
        return "the first packet must be CONNECT"  # [MQTT-3.1.0-1]
    if kind == CONNECT:
        return "a second CONNECT"  # [MQTT-3.1.0-2]
    if kind in _SERVER_ONLY:
        return f"{name} sent by a client"
    return f"{name} before the authentication exchange ended"  # [MQTT-3.1.2-30]


class ServerConnection:
    """Framing, state, topic aliases and encoding for the server side of a connection."""

    __slots__ = ("_aliases", "_reader", "state", "topic_alias_maximum", "version")

    def __init__(
        self,
        max_packet_size: int = PROTOCOL_MAX_PACKET_SIZE,
        topic_alias_maximum: int = 0,
    ) -> None:
        self._reader = PacketReader(version=MQTT_5, max_size=max_packet_size)
        # The protocol level agreed at CONNECT (read per acknowledgement: an attribute).
        self.version = MQTT_5
        self.state = ServerState.AWAITING_CONNECT
        self.topic_alias_maximum = topic_alias_maximum
        self._aliases: dict[int, str] = {}

    # Receiving.

    def receive_data(self, data: bytes) -> None:
        self._reader.feed(data)

    def next_packet(self) -> Packet | None:
        """The next whole, valid packet, or None until more bytes arrive."""
        try:
            packet = self._reader.next_packet()
        except CodecError:
            self.state = ServerState.CLOSED
            raise
        if packet is None:
            return None
        state = self.state
        kind = packet.packet_type
        if kind == PUBLISH and state is _CONNECTED:  # the hot path, first
            if self.version == MQTT_5:
                self._resolve_alias(packet)  # type: ignore[arg-type]
            return packet
        return self._judge(packet)

    def next_packet_or_puback(self) -> Packet | int | None:
        """Like ``next_packet``, but once connected a PUBACK of a packet identifier alone
        comes as that identifier (an int), without a packet object: the hot path of
        QoS 1 deliveries. Before CONNECT (or while closed) every packet is a packet."""
        if self.state is not _CONNECTED:
            return self.next_packet()
        try:
            item = self._reader.next_packet_or_puback()
        except CodecError:
            self.state = ServerState.CLOSED
            raise
        if item is None or isinstance(item, int):
            return item
        if item.packet_type == PUBLISH:
            if self.version == MQTT_5:
                self._resolve_alias(item)  # type: ignore[arg-type]
            return item
        return self._judge(item)

    def _judge(self, packet: Packet) -> Packet | None:
        """Any packet but a PUBLISH once connected: allowed in this state, or refused."""
        state = self.state
        kind = packet.packet_type
        after = _TRANSITIONS.get((state, kind))
        if after is None:
            if state is ServerState.CLOSED:
                return None
            self.state = ServerState.CLOSED
            raise ProtocolError(_refusal(state, packet))
        if kind == CONNECT:
            # Packets after CONNECT are read at the level it names.
            self._reader.version = self.version = packet.protocol_level  # type: ignore[attr-defined]
        elif kind == AUTH and self.version != MQTT_5:
            self.state = ServerState.CLOSED
            raise ProtocolError("AUTH before MQTT 5")
        self.state = after
        return packet

    def _resolve_alias(self, publish: Publish) -> None:
        if publish.subscription_identifiers:
            self.state = ServerState.CLOSED
            raise ProtocolError("a client PUBLISH carries a subscription identifier")
        alias = publish.topic_alias
        if alias is None:
            return
        if alias > self.topic_alias_maximum:
            self.state = ServerState.CLOSED
            raise TopicAliasInvalid(f"topic alias {alias} above the maximum")  # [MQTT-3.3.2-9]
        if publish.topic:
            self._aliases[alias] = publish.topic
        else:
            topic = self._aliases.get(alias)
            if topic is None:
                self.state = ServerState.CLOSED
                raise ProtocolError(f"topic alias {alias} was never set")
            publish.topic = topic
        publish.topic_alias = None

    # State changes the caller makes.

    def authenticating(self) -> None:
        """An AUTH exchange has begun after CONNECT: only AUTH and DISCONNECT until it ends."""
        if self.state is _CONNECTED:
            self.state = _AUTHENTICATING

    def authenticated(self) -> None:
        """The AUTH exchange is over (CONNACK follows): back to normal packet flow."""
        if self.state is _AUTHENTICATING:
            self.state = _CONNECTED

    def close(self) -> None:
        self.state = ServerState.CLOSED

    # Sending: the broker's packets, encoded at the agreed protocol level.

    def publish_ack(self, qos: int, packet_id: int, reason: int = 0) -> bytes:
        """PUBACK (QoS 1) or PUBREC (QoS 2) for a received PUBLISH; 3.1.x gets no code."""
        return encode_ack(PUBACK if qos == 1 else PUBREC, packet_id, reason, self.version)

    def pubrel(self, packet_id: int, found: bool = True) -> bytes:
        reason = 0 if found else PubrelReasonCode.PACKET_IDENTIFIER_NOT_FOUND
        return encode_ack(PUBREL, packet_id, reason, self.version)

    def pubcomp(self, packet_id: int, found: bool = True) -> bytes:
        reason = 0 if found else PubrelReasonCode.PACKET_IDENTIFIER_NOT_FOUND
        return encode_ack(PUBCOMP, packet_id, reason, self.version)

    def suback(self, packet_id: int, codes: Sequence[int]) -> bytes:
        return Suback(packet_id, tuple(codes)).encode(self.version)

    def unsuback(self, packet_id: int, codes: Sequence[int]) -> bytes:
        return Unsuback(packet_id, tuple(codes)).encode(self.version)

    def pingresp(self) -> bytes:
        return _PINGRESP

    def auth(self, reason: int, method: str | None, data: bytes | None) -> bytes:
        return Auth(reason, method, data).encode()

    def disconnect(
        self, reason: int, reason_string: str | None = None, max_size: int = 1 << 30
    ) -> bytes | None:
        """The DISCONNECT that ends the connection (MQTT 5 only: 3.1.x just closes), fitted
        to the client's Maximum Packet Size; the state is CLOSED after it."""
        self.state = ServerState.CLOSED
        if self.version != MQTT_5:
            return None
        data = Disconnect(reason, reason_string=reason_string).encode(MQTT_5)
        if len(data) > max_size:
            # The reason string goes first if the client could not take it [MQTT-3.14.2-3].
            data = Disconnect(reason).encode(MQTT_5)
        return data
