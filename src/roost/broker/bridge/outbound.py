"""The outgoing half of a bridge: a local session whose connection is the remote broker.

The bridge's local side is an ordinary durable ``Session`` (under the key
``$bridge/<name>``, which no client may use) subscribed to the bridge's ``out``
patterns. ``RemoteSink`` is the ``Sink`` it sends through: each PUBLISH the session
sends is handed to the bridge's client (topic renamed by the pattern's prefixes), and
the session's in-flight item is completed only when the remote broker acknowledges it
(PUBACK, or PUBCOMP for QoS 2). So queueing while the remote is down, order, the queue
limit and the queue's survival across a restart are the session's and the store's, as
for any client; the sink only translates.

While the remote is not connected the sink is not ``writable``: the session queues
QoS 1/2 messages (durably) and drops QoS 0 ones (counted as ``slow_client``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from roost.broker.connect import NO_LIMIT
from roost.client import ClientClosed, MQTTError, PublishError
from roost.codec import MQTT_5, Publish, Pubrel, read_packet
from roost.protocol.topics import topic_matches

if TYPE_CHECKING:
    from roost.broker.bridge_config import BridgeConfig, BridgeTopic
    from roost.broker.sessions import Session
    from roost.broker.topic_aliases import OutgoingAliases
    from roost.client import Client, PublishResult

log = logging.getLogger("roost.broker.bridge")


def remote_topic(topics: list[BridgeTopic], local: str) -> tuple[str, int] | None:
    """The remote topic and QoS cap of a local topic, by the first ``out`` pattern
    that matches it; None if none does."""
    for topic in topics:
        if topic.outgoing and topic_matches(topic.local_filter(), local):
            return topic.remote_prefix + local[len(topic.local_prefix) :], topic.qos
    return None


class RemoteSink:
    """The bridge session's connection: forwards to the remote through ``client``."""

    # The session encodes for us at MQTT 5, so that every property survives the trip
    # to a 5.0 remote; for 3.1.x the properties are left behind.
    version = MQTT_5

    def __init__(self, config: BridgeConfig, client: Client) -> None:
        self.config = config
        self.client = client
        self.session: Session | None = None
        self.send_quota = config.max_inflight_messages
        self.maximum_packet_size = NO_LIMIT
        # The session must hand us whole topics: the client decodes each PUBLISH and
        # publishes it anew (with aliases of its own, if the remote takes them).
        self.topic_aliases: OutgoingAliases | None = None
        self.writable = False  # the remote is connected
        # Session packet ids whose PUBLISH the current client owns (it resends them
        # itself after a reconnect): a resend from the session is not sent twice.
        self.owned: set[int] = set()
        self.forwarded = 0  # messages the remote acknowledged (or took, at QoS 0)

    def use_client(self, client: Client) -> None:
        """A new client (the last one gave up): it owns nothing of ours yet."""
        self.client = client
        self.owned.clear()

    # Sink.

    def send(self, data: bytes) -> None:
        found = read_packet(memoryview(data), MQTT_5)
        if found is None:  # pragma: no cover  (the session sends whole packets)
            return
        packet = found[0]
        if isinstance(packet, Pubrel):
            # A QoS 2 message the remote had acknowledged with PUBREC before a restart:
            # it has the message; this client cannot finish that exchange, so count it
            # as delivered (docs/bridges.md).
            if packet.packet_id not in self.owned:
                asyncio.get_running_loop().call_soon(self._completed_qos2, packet.packet_id)
            return
        if not isinstance(packet, Publish):  # pragma: no cover
            return
        if packet.packet_id in self.owned:
            return  # the client resends it on its own
        self._forward(packet)

    def _forward(self, packet: Publish) -> None:
        target = remote_topic(self.config.topics, packet.topic)
        session_id = packet.packet_id
        if target is None:
            # Subscribed once to a pattern no longer configured: done with it.
            log.debug("Bridge %s: no out pattern for %r.", self.config.name, packet.topic)
            self._later(session_id, packet.qos)
            return
        topic, _cap = target
        properties = {}
        if self.client.version == MQTT_5:
            properties = {
                "payload_format_indicator": packet.payload_format_indicator,
                "message_expiry_interval": packet.message_expiry_interval,
                "content_type": packet.content_type,
                "response_topic": packet.response_topic,
                "correlation_data": packet.correlation_data,
                "user_properties": packet.user_properties,
            }
        try:
            future = self.client.publish_nowait(
                topic, packet.payload, packet.qos, packet.retain, **properties
            )
        except (MQTTError, ValueError) as exc:
            log.warning("Bridge %s: cannot forward %r: %s", self.config.name, topic, exc)
            if packet.qos == 0:
                return
            if isinstance(exc, ClientClosed):
                return  # stays in flight: sent again on the next connection
            self._later(session_id, packet.qos)  # refused for good: never resent
            return
        if packet.qos == 0:
            self.forwarded += 1
            return
        self.owned.add(session_id)
        future.add_done_callback(lambda done: self._acknowledged(session_id, packet.qos, done))

    def _acknowledged(
        self, session_id: int, qos: int, future: asyncio.Future[PublishResult]
    ) -> None:
        self.owned.discard(session_id)
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None and not isinstance(exc, PublishError):
            # The client gave up on its connection: the message stays in the session's
            # flight and goes again with the next client (docs/bridges.md).
            return
        if exc is not None:
            log.warning("Bridge %s: the remote refused a message: %s", self.config.name, exc)
        else:
            self.forwarded += 1
        self._complete(session_id, qos)

    def _later(self, session_id: int, qos: int) -> None:
        asyncio.get_running_loop().call_soon(self._complete, session_id, qos)

    def _complete(self, session_id: int, qos: int) -> None:
        session = self.session
        if session is None:
            return
        now = asyncio.get_running_loop().time()
        if qos == 1:
            session.puback(session_id, now)
        elif session.pubrec(session_id, False, now):
            session.pubcomp(session_id, now)

    def _completed_qos2(self, session_id: int) -> None:
        if self.session is not None:
            self.session.pubcomp(session_id, asyncio.get_running_loop().time())

    def take_over(self) -> None:  # pragma: no cover  (no client may use a bridge's key)
        log.error("Bridge %s: its session was taken over.", self.config.name)

    # The store's holding of acknowledgements concerns client connections only.
    def hold(self, batch: int) -> None:
        return

    def release(self, committed: int) -> bool:
        return False
