"""Topic aliases the broker sends on one MQTT 5 connection (MQTT 5.0 section 3.3.2.3.4).

A client that states a Topic Alias Maximum in CONNECT may get PUBLISHes whose Topic
Name is replaced by a number it learned earlier on the same connection. The first
PUBLISH on a topic carries the topic and the alias that will stand for it; later ones
carry an empty Topic Name and only the alias. When every alias is taken, the one used
least recently is given to the new topic (sent again with its topic, which replaces
the client's mapping). The mapping belongs to the network connection, not to the
session [MQTT-3.3.2-7]: each ``BrokerConnection`` makes its own at CONNECT, so a
resumed session's resends carry their topic again (with an alias of the new map).

The number of aliases is min(the client's Topic Alias Maximum, the broker's
``topic_alias_send_maximum``), never above the client's [MQTT-3.3.2-11]; with either
at 0, or for an MQTT 3.1.x client, there is no ``OutgoingAliases`` at all and the
connection sends plain PUBLISHes, as before.

Cost: a delivery on an aliased topic is built from the message's cached template for
(QoS, retain, alias, with topic or not), like a plain one (see ``Message.
encode_aliased``); one ``OrderedDict`` lookup and move per delivery picks the alias.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

from roost.codec import MQTT_5

if TYPE_CHECKING:
    from roost.broker.message import Message


class OutgoingAliases:
    """The topic-to-alias map of one connection, least recently used first."""

    __slots__ = ("_by_topic", "maximum")

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum  # >= 1
        self._by_topic: OrderedDict[str, int] = OrderedDict()

    def lookup(self, topic: str) -> tuple[int, bool]:
        """The alias for ``topic``, and whether the client already knows it stands for
        ``topic`` (then the PUBLISH may leave the Topic Name empty). An alias the client
        does not know yet becomes the topic's only with ``assign``, once it is sent."""
        by_topic = self._by_topic
        alias = by_topic.get(topic)
        if alias is not None:
            by_topic.move_to_end(topic)
            return alias, True
        if len(by_topic) < self.maximum:
            return len(by_topic) + 1, False
        return next(iter(by_topic.values())), False  # the least recently used

    def assign(self, topic: str, alias: int) -> None:
        """``alias`` was sent with ``topic`` (the alias ``lookup`` just offered)."""
        by_topic = self._by_topic
        if len(by_topic) >= self.maximum:
            by_topic.popitem(last=False)
        by_topic[topic] = alias

    def encode(
        self,
        message: Message,
        qos: int,
        retain: bool,
        packet_id: int,
        dup: bool,
        subscription_identifiers: tuple[int, ...],
        now: float,
        maximum_packet_size: int,
    ) -> bytes:
        """The PUBLISH bytes for one delivery of ``message`` on this connection.

        An alias is taken only once its packet is known to fit the client's Maximum
        Packet Size: a packet the caller drops must not leave the client's map and ours
        apart. The caller checks the size of what it gets, as for a plain PUBLISH.
        """
        topic = message.topic
        by_topic = self._by_topic
        alias = by_topic.get(topic)
        if alias is not None:
            # The usual case, inline (``lookup`` costs a call and a tuple per delivery).
            by_topic.move_to_end(topic)
            return message.encode_aliased(
                alias, True, qos, retain, packet_id, dup, subscription_identifiers, now
            )
        alias, _ = self.lookup(topic)
        data = message.encode_aliased(
            alias, False, qos, retain, packet_id, dup, subscription_identifiers, now
        )
        if len(data) > maximum_packet_size:
            # The Topic Alias property costs 3 bytes: without it the packet may fit.
            return message.encode(
                MQTT_5, qos, retain, packet_id, dup, subscription_identifiers, now
            )
        self.assign(topic, alias)
        return data
