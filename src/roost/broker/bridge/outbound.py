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

Packet ids: a QoS 1/2 message goes to the remote under the session's own packet id
(``publish_nowait(packet_id=...)``), so the remote's session and the local store name
each exchange alike across a Roost restart and across clients: a resend is the same id
with DUP set, which the remote's session recognises (exactly once for QoS 2). The
client's own ids (SUBSCRIBE, the notification publish) come from above
``SESSION_PACKET_IDS``, which the session never gives out. QoS 2 runs in two steps, as
for a client connection: the remote's PUBREC moves the session's item to the PUBREL
stage (stored), and the sink then sends PUBREL (``client.release``); after a restart or
with a new client the session's PUBREL resumes the exchange there. With the store's
``sync`` commit policy the sink holds what it forwards until the store has committed
what the session recorded with it (``hold``/``release``), as a client connection's
output waits: a QoS 2 id is durable before the remote sees it, and the PUBREL stage
before the PUBREL goes.
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


# The bridge session's packet ids; the bridge's client takes its own from the rest.
SESSION_PACKET_IDS = 0xFF00
CLIENT_PACKET_IDS = (SESSION_PACKET_IDS + 1, 0xFFFF)


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
        # Packet ids whose exchange the current client has under way (it resends them
        # itself after a reconnect): a resend from the session is not sent twice.
        self.owned: set[int] = set()
        self.releasing: set[int] = set()  # of those, the ones past PUBREL
        # What waits for a store commit: (batch, packets), oldest first (see hold).
        self._held: list[tuple[int, list[bytes]]] | None = None
        self.forwarded = 0  # messages the remote acknowledged (or took, at QoS 0)

    def use_client(self, client: Client) -> None:
        """A new client (the last one gave up): it owns nothing of ours yet."""
        self.client = client
        self.owned.clear()
        self.releasing.clear()

    # Sink.

    def send(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            held[-1][1].append(data)
            return
        found = read_packet(memoryview(data), MQTT_5)
        if found is None:  # pragma: no cover  (the session sends whole packets)
            return
        packet = found[0]
        if isinstance(packet, Pubrel):
            self._release(packet.packet_id)
            return
        if not isinstance(packet, Publish):  # pragma: no cover
            return
        if packet.packet_id in self.owned:
            return  # the client resends it on its own
        self._forward(packet)

    def hold(self, batch: int, gate: int = 0) -> None:
        """Keep what is sent from now on until the store has committed ``batch``
        (only the store's gate holds a bridge)."""
        if gate:
            return
        held = self._held
        if held is None:
            self._held = [(batch, [])]
        elif held[-1][0] != batch:
            held.append((batch, []))

    def release(self, committed: int, gate: int = 0) -> bool:
        """Forward what waited for commits up to ``committed``; True if some still waits."""
        held = self._held
        if held is None or gate:
            return held is not None
        count = 0
        while count < len(held) and held[count][0] <= committed:
            count += 1
        self._held = None  # so that send() forwards these rather than holding them
        for _batch, packets in held[:count]:
            for data in packets:
                self.send(data)
        rest = held[count:]
        if rest:
            if self._held is not None:  # held again while forwarding: behind the rest
                rest.extend(self._held)
            self._held = rest
        return self._held is not None

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
                topic,
                packet.payload,
                packet.qos,
                packet.retain,
                packet_id=session_id or None,
                dup=packet.dup,
                **properties,
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
        client = self.client
        future.add_done_callback(
            lambda done: self._acknowledged(client, session_id, packet.qos, done)
        )

    def _acknowledged(
        self, client: Client, session_id: int, qos: int, future: asyncio.Future[PublishResult]
    ) -> None:
        """PUBACK, or PUBREC for QoS 2 (the client's manual release), or a failure."""
        if future.cancelled() or not isinstance(future.exception(), PublishError | None):
            # The client gave up on its connection: the message stays in the session's
            # flight and goes again (same id, DUP) with the next client.
            self._disown(client, session_id)
            return
        exc = future.exception()
        session = self.session
        now = asyncio.get_running_loop().time()
        if exc is not None:
            log.warning("Bridge %s: the remote refused a message: %s", self.config.name, exc)
            self._disown(client, session_id)
            if session is not None:
                if qos == 1:
                    session.puback(session_id, now)
                else:
                    session.pubrec(session_id, True, now)
            return
        self.forwarded += 1
        if qos == 1:
            self._disown(client, session_id)
            if session is not None:
                session.puback(session_id, now)
            return
        # The remote has it. The session records the PUBREL stage; its PUBREL goes
        # through send() like the session's own, so after that record is committed.
        if session is not None and session.pubrec(session_id, False, now):
            self.send(Pubrel(session_id).encode(MQTT_5))
        else:
            self._release(session_id)  # no longer the session's: just end the exchange

    def _disown(self, client: Client, session_id: int) -> None:
        # A client given up may answer late: what the new one owns is not its to free.
        if client is self.client:
            self.owned.discard(session_id)
            self.releasing.discard(session_id)

    def _release(self, session_id: int) -> None:
        """PUBREL for ``session_id``: the client's if it has the exchange, else resumed
        on this client (after a restart, or with a new client)."""
        if session_id in self.releasing:
            return  # the client resends its PUBREL on its own
        try:
            future = self.client.release(session_id)
        except ClientClosed:
            return  # stays in flight: released again on the next connection
        except (MQTTError, ValueError) as exc:  # pragma: no cover  (no PUBREC yet)
            log.warning("Bridge %s: cannot release %d: %s", self.config.name, session_id, exc)
            return
        self.owned.add(session_id)
        self.releasing.add(session_id)
        client = self.client
        future.add_done_callback(lambda done: self._completed(client, session_id, done))

    def _completed(
        self, client: Client, session_id: int, future: asyncio.Future[PublishResult]
    ) -> None:
        self._disown(client, session_id)
        if future.cancelled() or not isinstance(future.exception(), PublishError | None):
            return  # released again with the next client
        # A failure PUBCOMP (MQTT 5's 0x92: the remote does not know the id) ends the
        # exchange as well: the remote released the message before, or lost its session.
        if self.session is not None:
            self.session.pubcomp(session_id, asyncio.get_running_loop().time())

    def _later(self, session_id: int, qos: int) -> None:
        asyncio.get_running_loop().call_soon(self._complete, session_id, qos)

    def _complete(self, session_id: int, qos: int) -> None:
        session = self.session
        if session is None:
            return
        now = asyncio.get_running_loop().time()
        if qos == 1:
            session.puback(session_id, now)
        else:
            session.pubrec(session_id, True, now)

    def take_over(self) -> None:  # pragma: no cover  (no client may use a bridge's key)
        log.error("Bridge %s: its session was taken over.", self.config.name)
