"""Topic aliases of one client network connection (MQTT 5.0 section 3.3.2.3.4), sans-IO.

An alias stands for a topic name in both directions, each side keeping its own
mapping, and lives only as long as the network connection: ``clear()`` on every new
one. Ours (set by a caller's PUBLISH with topic and alias) may not exceed the
server's Topic Alias Maximum; the server's may not exceed the maximum in our CONNECT.
"""

from __future__ import annotations

from roost.codec import (
    MQTT_5,
    DisconnectReasonCode,
    ProtocolError,
    Publish,
    TopicAliasInvalid,
)
from roost.protocol.client_events import Refused


class TopicAliases:
    """The alias-to-topic mappings of one connection: ours to the server, the server's to us."""

    __slots__ = ("_in", "_out")

    def __init__(self) -> None:
        self._in: dict[int, str] = {}
        self._out: dict[int, str] = {}

    def clear(self) -> None:
        """A new network connection: no alias is set in either direction."""
        self._in.clear()
        self._out.clear()

    # Ours.

    def check(self, packet: Publish, maximum: int, version: int) -> None:
        """Raise ``Refused`` if the server would not accept the alias ``packet`` uses."""
        alias = packet.topic_alias
        if alias is None:
            return
        if version != MQTT_5 or alias == 0 or alias > maximum:
            raise Refused(
                DisconnectReasonCode.TOPIC_ALIAS_INVALID,
                f"topic alias {alias} is above the server's maximum",
            )
        if not packet.topic and alias not in self._out:
            raise Refused(
                DisconnectReasonCode.TOPIC_ALIAS_INVALID,
                f"topic alias {alias} was not set on this connection",
            )

    def topic(self, packet: Publish) -> str:
        """The topic ``packet`` goes to, by its name or by the alias it uses."""
        return packet.topic or self._out[packet.topic_alias or 0]

    def usable(self, packet: Publish, maximum: int) -> bool:
        """Whether ``packet`` can go out as it is on this connection (e.g. a message
        queued on an earlier one, whose alias this connection may not know)."""
        alias = packet.topic_alias
        if alias is None:
            return True
        return alias <= maximum and (bool(packet.topic) or alias in self._out)

    def record(self, packet: Publish) -> Publish:
        """Note the alias ``packet`` sets (topic and alias both given); returns it."""
        alias = packet.topic_alias
        if alias is not None and packet.topic:
            self._out[alias] = packet.topic
        return packet

    # The server's.

    def resolve(self, packet: Publish, maximum: int) -> None:
        """Give a received PUBLISH its topic: set or look up the alias it carries."""
        alias = packet.topic_alias
        if alias is None:
            return
        if alias > maximum:
            raise TopicAliasInvalid(f"topic alias {alias} above our maximum")  # [MQTT-3.3.2-9]
        if packet.topic:
            self._in[alias] = packet.topic
        else:
            topic = self._in.get(alias)
            if topic is None:
                raise ProtocolError(f"topic alias {alias} was never set")
            packet.topic = topic
