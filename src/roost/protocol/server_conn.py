"""The broker side of one MQTT connection, sans-IO.

``ServerConnection`` turns received bytes into validated packets. It owns what is
per network connection and independent of sessions, routing and auth: the framing,
the state (waiting for CONNECT, authenticating, connected, closed), the protocol level
agreed at CONNECT, and the client's MQTT 5 topic aliases. It does not own clocks, sockets,
sessions or authorization: the caller feeds bytes and acts on packets.

Every refusal is a ``CodecError`` carrying the reason code for the DISCONNECT (MQTT 5)
or the close (3.1.x); after one, the connection must be closed.
"""

from __future__ import annotations

from enum import Enum

from roost.codec import (
    CONNECT,
    MQTT_5,
    PUBLISH,
    CodecError,
    Packet,
    PacketReader,
    ProtocolError,
    Publish,
    TopicAliasInvalid,
)
from roost.codec.framing import PROTOCOL_MAX_PACKET_SIZE
from roost.codec.packets import AUTH, CONNACK, DISCONNECT, PINGRESP, SUBACK, UNSUBACK


class State(Enum):
    AWAITING_CONNECT = 1
    CONNECTED = 2
    CLOSED = 3
    # An MQTT 5 AUTH exchange before CONNACK: the client may send only AUTH or
    # DISCONNECT [MQTT-3.1.2-30]. Entered and left by the caller, which runs the exchange.
    AUTHENTICATING = 4


# Packets only a server sends; receiving one from a client is a protocol error.
_SERVER_ONLY = frozenset((CONNACK, SUBACK, UNSUBACK, PINGRESP))


class ServerConnection:
    """Framing, state and topic aliases for the server side of one connection."""

    __slots__ = ("_aliases", "_reader", "state", "topic_alias_maximum")

    def __init__(
        self,
        max_packet_size: int = PROTOCOL_MAX_PACKET_SIZE,
        topic_alias_maximum: int = 0,
    ) -> None:
        self._reader = PacketReader(version=MQTT_5, max_size=max_packet_size)
        self.state = State.AWAITING_CONNECT
        self.topic_alias_maximum = topic_alias_maximum
        self._aliases: dict[int, str] = {}

    @property
    def version(self) -> int:
        return self._reader.version

    def receive_data(self, data: bytes) -> None:
        self._reader.feed(data)

    def next_packet(self) -> Packet | None:
        """The next whole, valid packet, or None until more bytes arrive."""
        try:
            packet = self._reader.next_packet()
        except CodecError:
            self.state = State.CLOSED
            raise
        if packet is None:
            return None
        packet_type = packet.packet_type
        if packet_type == PUBLISH and self.state is State.CONNECTED:
            if self._reader.version == MQTT_5:
                self._resolve_alias(packet)  # type: ignore[arg-type]
            return packet
        if self.state is State.AWAITING_CONNECT:
            if packet_type != CONNECT:
                self.state = State.CLOSED
                raise ProtocolError("the first packet must be CONNECT")  # [MQTT-3.1.0-1]
            # Packets after CONNECT are read at the level it names.
            self._reader.version = packet.protocol_level  # type: ignore[attr-defined]
            self.state = State.CONNECTED
            return packet
        if self.state is State.CLOSED:
            return None
        if packet_type == CONNECT:
            self.state = State.CLOSED
            raise ProtocolError("a second CONNECT")  # [MQTT-3.1.0-2]
        if packet_type in _SERVER_ONLY:
            self.state = State.CLOSED
            raise ProtocolError(f"{type(packet).__name__.upper()} sent by a client")
        if self.state is State.AUTHENTICATING and packet_type not in (AUTH, DISCONNECT):
            self.state = State.CLOSED
            name = type(packet).__name__.upper()
            raise ProtocolError(f"{name} before the authentication exchange ended")
        if packet_type == AUTH and self._reader.version != MQTT_5:
            self.state = State.CLOSED
            raise ProtocolError("AUTH before MQTT 5")
        return packet

    def _resolve_alias(self, publish: Publish) -> None:
        if publish.subscription_identifiers:
            self.state = State.CLOSED
            raise ProtocolError("a client PUBLISH carries a subscription identifier")
        alias = publish.topic_alias
        if alias is None:
            return
        if alias > self.topic_alias_maximum:
            self.state = State.CLOSED
            raise TopicAliasInvalid(f"topic alias {alias} above the maximum")  # [MQTT-3.3.2-9]
        if publish.topic:
            self._aliases[alias] = publish.topic
        else:
            topic = self._aliases.get(alias)
            if topic is None:
                self.state = State.CLOSED
                raise ProtocolError(f"topic alias {alias} was never set")
            publish.topic = topic
        publish.topic_alias = None

    def authenticating(self) -> None:
        """An AUTH exchange has begun after CONNECT: only AUTH and DISCONNECT until it ends."""
        if self.state is State.CONNECTED:
            self.state = State.AUTHENTICATING

    def authenticated(self) -> None:
        """The AUTH exchange is over (CONNACK follows): back to normal packet flow."""
        if self.state is State.AUTHENTICATING:
            self.state = State.CONNECTED

    def close(self) -> None:
        self.state = State.CLOSED
