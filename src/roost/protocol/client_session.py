"""The client's session state (MQTT 5.0 section 4.1), sans-IO: what outlives a connection.

``ClientSession`` keeps, across network connections, the QoS 1 and 2 messages the
client has published and the server has not completely acknowledged (in the order
they were published, each with where its flow stands), the SUBSCRIBE and UNSUBSCRIBE
requests not yet answered, and the QoS 2 messages received and not yet released. It
decides what to send, resend or forget; ``ClientConnection`` owns the connection,
encodes the packets and turns the outcomes into events.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

from roost.codec import Packet, Publish, Pubrel, Subscribe, Unsubscribe
from roost.protocol.client_events import ReceiveMaximumExceeded

# Where an outgoing QoS 1/2 message's flow stands.
_QUEUED = 0  # waiting for a connection or for send quota
_AWAIT_ACK = 1  # PUBLISH sent; waiting for PUBACK (QoS 1) or PUBREC (QoS 2)
_AWAIT_COMP = 2  # PUBREL sent; waiting for PUBCOMP
_RECEIVED = 3  # manual release: PUBREC came; the PUBREL waits for the caller's release()


@dataclass(slots=True)
class Outgoing:
    """One QoS 1/2 message of the session, from publish() until its flow completes."""

    publish: Publish  # full topic, no alias: what a resend on a new connection carries
    first: Publish  # as the caller gave it (may use a topic alias on this connection)
    state: int = _QUEUED
    sent: bool = False  # sent on some connection: a resend must set DUP


class ClientSession:
    """What a client owes the server and what the server owes it, across connections."""

    __slots__ = ("_messages", "_queue", "awaiting_pubrel", "inflight", "requests", "unacknowledged")

    def __init__(self) -> None:
        self._messages: dict[int, Outgoing] = {}
        self.inflight = 0  # how many of those were sent and count against the quota
        self._queue: deque[int] = deque()  # the _QUEUED ones, in the order to send them
        # QoS 2 messages received (and delivered to the caller) whose PUBREL has not come.
        self.awaiting_pubrel: set[int] = set()
        # With manual acknowledgement: QoS 2 messages handed to the caller that it has
        # not acknowledged yet (no PUBREC sent; a resend of one is not delivered again).
        self.unacknowledged: set[int] = set()
        self.requests: dict[int, Subscribe | Unsubscribe] = {}

    @property
    def pending(self) -> int:
        """QoS 1/2 messages not yet completed, sent or not."""
        return len(self._messages)

    def has_state(self) -> bool:
        """Whether there is anything a server's session would have to match."""
        return bool(self._messages or self.awaiting_pubrel or self.unacknowledged)

    def in_use(self, packet_id: int) -> bool:
        """Whether ``packet_id`` belongs to a message or request still under way."""
        return packet_id in self._messages or packet_id in self.requests

    def clear(self) -> None:
        """Forget everything (messages owed in both directions, pending requests)."""
        self._messages.clear()
        self.inflight = 0
        self._queue.clear()
        self.awaiting_pubrel.clear()
        self.unacknowledged.clear()
        self.requests.clear()

    # Outgoing QoS 1/2 messages.

    def add(self, packet_id: int, full: Publish, first: Publish, sent: bool = False) -> None:
        """Take ownership of a message; it waits in the queue until ``pump`` sends it.
        ``sent``: another session state sent it before (it goes with DUP set)."""
        self._messages[packet_id] = Outgoing(full, first, sent=sent)
        self._queue.append(packet_id)

    def pump(self, quota: int, send: Callable[[Outgoing], None]) -> None:
        """Send queued messages (``send`` picks the packet) while ``quota`` allows."""
        queue = self._queue
        messages = self._messages
        while queue and self.inflight < quota:
            out = messages.get(queue.popleft())
            if out is None or out.state != _QUEUED:
                continue
            send(out)
            out.state = _AWAIT_ACK
            out.sent = True
            self.inflight += 1

    def resend(self, quota: int, send: Callable[[Packet], None]) -> None:
        """The server kept our session: resend PUBLISH (DUP) and PUBREL in their original
        order [MQTT-4.4.0-1]; what does not fit the quota waits in the queue."""
        queue: list[int] = []
        inflight = 0
        for packet_id, out in self._messages.items():
            if out.state == _AWAIT_COMP:
                send(Pubrel(packet_id))
                inflight += 1
            elif out.state == _RECEIVED:
                inflight += 1  # its PUBREL goes when the caller releases it
            elif out.state == _AWAIT_ACK and inflight < quota:
                send(replace(out.publish, dup=True))
                inflight += 1
            else:
                out.state = _QUEUED
                queue.append(packet_id)
        # Messages not yet sent keep their place behind those that were.
        requeued = set(queue)
        queue.extend(pid for pid in self._queue if pid not in requeued)
        self._queue = deque(queue)
        self.inflight = inflight

    def restart(self) -> list[int]:
        """The server has no session for us: what we owe is queued again as new messages,
        the QoS 2 receive state is dropped. Returns the QoS 2 messages that count as
        delivered (their PUBREC came)."""
        self.awaiting_pubrel.clear()
        self.unacknowledged.clear()
        self.inflight = 0
        delivered: list[int] = []
        queue: list[int] = []
        for packet_id, out in list(self._messages.items()):
            if out.state == _AWAIT_COMP:
                # PUBREC said the server had the message; it was delivered.
                del self._messages[packet_id]
                delivered.append(packet_id)
                continue
            if out.state == _RECEIVED:
                # Its caller already heard of the PUBREC; a later release() is harmless.
                del self._messages[packet_id]
                continue
            out.state = _QUEUED
            out.sent = False
            queue.append(packet_id)
        self._queue = deque(queue)
        return delivered

    # Incoming QoS 2 messages.

    def received_qos2(self, packet_id: int, maximum: int, acknowledge: bool) -> bool | None:
        """A QoS 2 PUBLISH came: True if it is new (deliver it; ``acknowledge``: its
        PUBREC goes now, else when the caller acknowledges), False for a resend of one
        delivered and not yet acknowledged, None for a resend of one acknowledged."""
        if packet_id in self.awaiting_pubrel:
            return None
        if packet_id in self.unacknowledged:
            return False
        if len(self.awaiting_pubrel) + len(self.unacknowledged) >= maximum:
            raise ReceiveMaximumExceeded("the server exceeded our Receive Maximum")
        (self.awaiting_pubrel if acknowledge else self.unacknowledged).add(packet_id)
        return True

    def acknowledged(self, packet_id: int) -> bool:
        """The caller acknowledged a QoS 2 message: it now waits for PUBREL. False if the
        id is not one delivered and unacknowledged (the session was dropped since)."""
        if packet_id not in self.unacknowledged:
            return False
        self.unacknowledged.discard(packet_id)
        self.awaiting_pubrel.add(packet_id)
        return True

    def expects_pubrec(self, packet_id: int) -> bool:
        """Whether ``packet_id`` is a QoS 2 message of ours (a PUBREC for it is no stray)."""
        out = self._messages.get(packet_id)
        return out is not None and out.publish.qos == 2

    def released(self, packet_id: int, manual: bool) -> bool:
        """PUBREC came: True if our PUBREL goes out now (the message then waits for
        PUBCOMP). ``manual``: a first PUBREC leaves the PUBREL to the caller (False)."""
        out = self._messages[packet_id]
        if out.state == _AWAIT_ACK:
            out.state = _RECEIVED if manual else _AWAIT_COMP
        return out.state == _AWAIT_COMP

    def release(self, packet_id: int) -> bool:
        """The caller releases a QoS 2 message whose PUBREC came: True if its PUBREL is
        to be sent (False: it already was). An id the session does not know is taken
        as one a server may hold at the PUBREL stage (from an earlier session state of
        the caller's): the exchange resumes there [MQTT-4.3.3]. ValueError for an id
        whose PUBREC has not come."""
        out = self._messages.get(packet_id)
        if out is None:
            if not 0 < packet_id <= 0xFFFF or packet_id in self.requests:
                raise ValueError(f"packet identifier {packet_id} cannot be released")
            placeholder = Publish("", qos=2, packet_id=packet_id)
            self._messages[packet_id] = Outgoing(placeholder, placeholder, _AWAIT_COMP, True)
            self.inflight += 1
            return True
        if out.state == _AWAIT_COMP:
            return False
        if out.state != _RECEIVED:
            raise ValueError(f"no PUBREC has come for packet identifier {packet_id}")
        out.state = _AWAIT_COMP
        return True

    def complete(self, packet_id: int, qos: int, pubcomp: bool) -> bool:
        """An acknowledgement ends a flow (PUBACK, PUBCOMP, or a failure PUBREC): forget
        the message and free its quota. False for a late or stray acknowledgement."""
        out = self._messages.get(packet_id)
        if out is None or out.publish.qos != qos or out.state == _QUEUED:
            return False  # nothing is waiting for it
        if pubcomp and out.state != _AWAIT_COMP:
            return False
        del self._messages[packet_id]
        self.inflight -= 1
        return True
