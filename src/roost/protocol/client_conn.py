"""The client side of an MQTT session, sans-IO.

``ClientConnection`` keeps what lives for one network connection (framing, the state
below, the server's limits from CONNACK, keep-alive) and drives what the client must
remember across network connections. The caller moves the bytes: it passes received
data to ``receive_data``, acts on the events returned (``client_events``), and writes
``data_to_send(now)``. Its parts live beside it: the session state of MQTT 5.0 section
4.1 (QoS 1 and 2 messages sent but not completely acknowledged, QoS 2 messages received
but not released, requests not answered) in ``client_session``, the connection's topic
aliases in ``client_aliases``.

What it does not do: sockets, clocks (``now`` is an argument), timeouts other than
keep-alive, authentication decisions (what AUTH data to send, whether the server's
proof is good: the caller's authenticator), or deciding when to reconnect.

States and what moves between them: two tables in ``client_states``, each checked at
one choke point. ``TRANSITIONS`` says which trigger may move which state where, and
``_move`` is the only code that changes the state (a trigger the table does not allow
from the current state is the caller's error: RuntimeError). ``SERVER_MAY_SEND`` says
which packets the server may send in each state, and ``receive_data`` checks every
packet against it (anything else is a protocol error)::

    DISCONNECTED --connect()--> CONNECTING --CONNACK 0--> CONNECTED
         ^                          |  CONNACK >= 0x80        |  DISCONNECT from server,
         +--------------------------+-------------------------+  disconnect(), protocol
         |                          |                         |  error, connection_lost()
         |            CONNACK 0 with an Authentication Method |
         |                          v                         |
         +--disconnect()------- VERIFYING --server_verified()-+

Enhanced authentication (MQTT 5.0 section 4.12): with an Authentication Method in the
CONNECT, each AUTH 0x18 from the server is an ``AuthReceived`` event that the caller
answers with ``answer_auth(data)``. A successful CONNACK then stops in VERIFYING with a
``VerifyServer`` event: nothing of the session is resent, and nothing after the CONNACK
is parsed, until the caller has checked the server's final data and calls
``server_verified(now)`` (or ``disconnect()`` if the server failed to prove itself).
``reauthenticate(data)`` sends AUTH 0x19 while connected; the server's AUTH 0x18 are
answered the same way, and its AUTH 0x00 ends the exchange (``AuthReceived`` again).
AUTH packets out of this order, or naming another method [MQTT-4.12.0-5], are protocol
errors.

Session resumption: on a CONNACK with Session Present, unacknowledged PUBLISH packets
are resent with DUP set and PUBRELs resent, with their original packet identifiers
[MQTT-4.4.0-1]. Without Session Present the server has no state for us, so the
client's QoS 2 receive state is dropped, a QoS 2 message whose PUBREC arrived counts as
delivered, and messages not yet acknowledged are sent again as new messages of the new
session (the application still owes them). Pending SUBSCRIBE and UNSUBSCRIBE requests
are sent again after every CONNACK, since the server keeps no state for them.

For a caller with a store of its own (a bridge): ``publish(packet, packet_id)`` uses
the caller's id, ``packet_ids`` keeps the client's own ids to a range apart, and with
``manual_release`` a QoS 2 publish ends at PUBREC, its PUBREL left to ``release``
(which also resumes, at PUBREL, an exchange an earlier client state began).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

from roost.codec import (
    MQTT_5,
    Auth,
    AuthReasonCode,
    CodecError,
    Connack,
    Connect,
    Disconnect,
    DisconnectReasonCode,
    Packet,
    PacketReader,
    Pingreq,
    ProtocolError,
    Puback,
    Pubcomp,
    PubcompReasonCode,
    Publish,
    Pubrec,
    Pubrel,
    PubrelReasonCode,
    Suback,
    Subscribe,
    Subscription,
    Unsuback,
    Unsubscribe,
)
from roost.codec.framing import PROTOCOL_MAX_PACKET_SIZE
from roost.protocol.client_aliases import TopicAliases
from roost.protocol.client_events import (
    AuthReceived,
    ConnackRefused,
    Connected,
    DisconnectReceived,
    Event,
    KeepAliveTimeout,
    MessageReceived,
    NoPacketIdentifier,
    PublishCompleted,
    Refused,
    SubscribeCompleted,
    UnsubscribeCompleted,
    VerifyServer,
)
from roost.protocol.client_session import ClientSession, Outgoing
from roost.protocol.client_states import SERVER_MAY_SEND, TRANSITIONS, ClientState, Trigger

_U16_MAX = 65535


Trace = Callable[[str, Packet], None]


class ClientConnection:
    """The MQTT client's protocol state machine, sans-IO: bytes and a clock in, events
    and bytes out. Holds the session (``ClientSession``) across network connections."""

    __slots__ = (
        "_aliases",
        "_auth_reply_owed",
        "_connect",
        "_last_sent",
        "_next_id",
        "_out",
        "_ping_sent_at",
        "_reader",
        "_reauthenticating",
        "_session",
        "connack",
        "keep_alive",
        "manual_ack",
        "manual_release",
        "packet_ids",
        "ping_timeout",
        "send_quota",
        "state",
        "trace",
    )

    def __init__(
        self,
        ping_timeout: float | None = None,
        trace: Trace | None = None,
        manual_ack: bool = False,
        manual_release: bool = False,
        packet_ids: tuple[int, int] = (1, _U16_MAX),
    ) -> None:
        self._reader = PacketReader()
        # The caller acknowledges received QoS 1/2 messages itself (``acknowledge``),
        # e.g. once it has stored them: until then the server keeps them.
        self.manual_ack = manual_ack
        # A successful PUBREC completes our QoS 2 publish (``received``); the caller
        # sends the PUBREL with ``release``, e.g. once it has stored that it came.
        self.manual_release = manual_release
        # The range our own packet ids come from; a caller giving ids to ``publish``
        # keeps to the rest, so the two never collide.
        self.packet_ids = packet_ids
        self.state = ClientState.DISCONNECTED
        self._connect = Connect()
        self.connack: Connack | None = None
        self.keep_alive = 0
        # None: as long as the keep-alive itself.
        self.ping_timeout = ping_timeout
        self.trace = trace
        self._out: list[bytes] = []
        self._last_sent = 0.0
        self._ping_sent_at: float | None = None
        self._next_id = packet_ids[0]
        # Session state, kept across network connections.
        self._session = ClientSession()
        # Per network connection.
        self.send_quota = _U16_MAX
        self._aliases = TopicAliases()
        self._auth_reply_owed = False  # an AUTH 0x18 came and was not answered yet
        self._reauthenticating = False  # AUTH 0x19 sent, no AUTH 0x00 yet

    # Properties of the current connection.

    @property
    def version(self) -> int:
        """The protocol level of the current (or last) CONNECT: 3, 4 or 5."""
        return self._connect.protocol_level

    @property
    def inflight(self) -> int:
        """QoS 1/2 messages sent and not yet completely acknowledged."""
        return self._session.inflight

    @property
    def pending(self) -> int:
        """QoS 1/2 messages of the session not yet completed, sent or not."""
        return self._session.pending

    def has_session_state(self) -> bool:
        """Whether messages are owed in either direction."""
        return self._session.has_state()

    # Output.

    def data_to_send(self, now: float) -> bytes:
        """The bytes to write now; ``now`` is when they go out (it drives keep-alive)."""
        if not self._out:
            return b""
        data = b"".join(self._out)
        self._out.clear()
        self._last_sent = now
        return data

    def _move(self, trigger: Trigger) -> None:
        """The one place the state changes, as ``TRANSITIONS`` allows."""
        target = TRANSITIONS[self.state].get(trigger)
        if target is None:
            raise RuntimeError(f"{trigger.value} while {self.state.name}")
        self.state = target

    def _send(self, packet: Packet) -> None:
        if self.trace is not None:
            self.trace("sending", packet)
        self._out.append(packet.encode(self.version))

    # Opening and closing a network connection.

    def connect(self, packet: Connect, now: float) -> None:
        """Start a network connection with ``packet``; a CONNACK ends CONNECTING."""
        self._move(Trigger.CONNECT)
        self._connect = packet
        self._reader = PacketReader(
            packet.protocol_level,
            packet.maximum_packet_size or PROTOCOL_MAX_PACKET_SIZE,
        )
        self.keep_alive = packet.keep_alive
        self._aliases.clear()
        self._ping_sent_at = None
        self.connack = None
        self._auth_reply_owed = False
        self._reauthenticating = False
        self._send(packet)
        self._last_sent = now

    def disconnect(self, packet: Disconnect | None = None) -> None:
        """Send DISCONNECT (if connected); the caller then closes the network connection.

        During enhanced authentication (before or at the CONNACK) DISCONNECT is the one
        other packet a client may send [MQTT-3.1.2-30], e.g. to give up on a server
        that failed to prove itself.
        """
        state = self.state
        if (
            state is ClientState.CONNECTED
            or state is ClientState.VERIFYING
            or self._authenticating()
        ):
            self._send(packet or Disconnect())
        self._move(Trigger.CLOSED)

    def _authenticating(self) -> bool:
        return (
            self.state is ClientState.CONNECTING
            and self.version == MQTT_5
            and self._connect.authentication_method is not None
        )

    def connection_lost(self) -> None:
        """The network connection is gone; session state stays for the next one."""
        self._move(Trigger.CLOSED)
        self._ping_sent_at = None
        self._auth_reply_owed = False
        self._reauthenticating = False

    def clear_session(self) -> None:
        """Forget all session state (messages owed in both directions, pending requests)."""
        self._session.clear()

    # Requests.

    def _allocate_id(self) -> int:
        session = self._session
        first, last = self.packet_ids
        for _ in range(last - first + 1):
            packet_id = self._next_id
            self._next_id = first if packet_id >= last else packet_id + 1
            if not session.in_use(packet_id):
                return packet_id
        raise NoPacketIdentifier(f"all packet identifiers {first}-{last} are in use")

    def publish(self, packet: Publish, packet_id: int | None = None) -> int:
        """Send (QoS 0) or take ownership of (QoS 1/2) a message; returns its packet id.

        QoS 1/2 messages wait in the session while disconnected or out of send quota.
        Raises ``Refused`` for what the server said it does not accept. ``packet_id``:
        the caller's (ValueError if in use), for a caller whose own store keeps the
        exchange (a bridge), so that the server's session and that store agree on it;
        ``packet.dup`` then says that store sent it before.
        """
        self._check_publish(packet)
        if packet.qos == 0:
            if self.state is not ClientState.CONNECTED:
                raise RuntimeError("QoS 0 messages can only be sent while connected")
            self._send(self._aliases.record(packet))
            return 0
        if packet_id is None:
            packet_id = self._allocate_id()
        elif not 0 < packet_id <= _U16_MAX or self._session.in_use(packet_id):
            raise ValueError(f"packet identifier {packet_id} is in use or invalid")
        first = replace(packet, packet_id=packet_id, dup=False)
        full = first
        if packet.topic_alias is not None:
            full = replace(first, topic=self._aliases.topic(packet), topic_alias=None)
        self._session.add(packet_id, full, first, packet.dup)
        if self.state is ClientState.CONNECTED:
            self._pump()
        return packet_id

    def _check_publish(self, packet: Publish) -> None:
        connack = self.connack
        if connack is not None and self.state is ClientState.CONNECTED:
            if connack.maximum_qos is not None and packet.qos > connack.maximum_qos:
                # [MQTT-3.2.2-11]: not above the Maximum QoS the server announced.
                raise Refused(
                    DisconnectReasonCode.QOS_NOT_SUPPORTED,
                    f"the server accepts QoS {connack.maximum_qos} at most",
                )
            if packet.retain and connack.retain_available == 0:
                # [MQTT-3.2.2-14]: no retained messages to a server that said it keeps none.
                raise Refused(
                    DisconnectReasonCode.RETAIN_NOT_SUPPORTED,
                    "the server does not support retained messages",
                )
        self._aliases.check(packet, self._server_alias_maximum(), self.version)
        size = self._server_max_packet_size()
        if size is not None and len(packet.encode(self.version)) > size:
            raise Refused(
                DisconnectReasonCode.PACKET_TOO_LARGE,
                f"the message exceeds the server's maximum packet size {size}",
            )

    def _server_max_packet_size(self) -> int | None:
        connack = self.connack
        return None if connack is None else connack.maximum_packet_size

    def _server_alias_maximum(self) -> int:
        connack = self.connack
        return (connack.topic_alias_maximum if connack else None) or 0

    def subscribe(
        self,
        subscriptions: Iterable[Subscription],
        subscription_identifier: int | None = None,
        user_properties: tuple[tuple[str, str], ...] = (),
    ) -> int:
        """Send (or, while disconnected, keep for the next connection) a SUBSCRIBE;
        returns its packet id, which the ``SubscribeCompleted`` event names."""
        packet_id = self._allocate_id()
        packet = Subscribe(
            packet_id, tuple(subscriptions), subscription_identifier, user_properties
        )
        self._session.requests[packet_id] = packet
        if self.state is ClientState.CONNECTED:
            self._send(packet)
        return packet_id

    def unsubscribe(
        self, topic_filters: Iterable[str], user_properties: tuple[tuple[str, str], ...] = ()
    ) -> int:
        """Send (or keep, as ``subscribe``) an UNSUBSCRIBE; returns its packet id."""
        packet_id = self._allocate_id()
        packet = Unsubscribe(packet_id, tuple(topic_filters), user_properties)
        self._session.requests[packet_id] = packet
        if self.state is ClientState.CONNECTED:
            self._send(packet)
        return packet_id

    # Enhanced authentication.

    def answer_auth(self, data: bytes | None) -> None:
        """Answer the server's AUTH 0x18 with AUTH 0x18 carrying ``data``."""
        if not self._auth_reply_owed:
            raise RuntimeError("no AUTH from the server is waiting for an answer")
        self._auth_reply_owed = False
        self._send(
            Auth(
                AuthReasonCode.CONTINUE_AUTHENTICATION,
                self._connect.authentication_method,
                data,
            )
        )

    def reauthenticate(self, data: bytes | None) -> None:
        """Start a re-authentication (AUTH 0x19) with the CONNECT's method [MQTT-4.12.1-1]."""
        method = self._connect.authentication_method
        if self.state is not ClientState.CONNECTED or method is None:
            raise RuntimeError("re-authentication needs a connection with an authentication method")
        if self._reauthenticating:
            raise RuntimeError("a re-authentication is already under way")
        self._reauthenticating = True
        self._send(Auth(AuthReasonCode.RE_AUTHENTICATE, method, data))

    @property
    def reauthenticating(self) -> bool:
        """An AUTH 0x19 was sent and the server's AUTH 0x00 has not come yet."""
        return self._reauthenticating

    def server_verified(self, now: float) -> list[Event]:
        """The server's final authentication data checked out: finish the CONNACK's work
        (resend, Connected) and parse what arrived after it."""
        self._move(Trigger.SERVER_VERIFIED)
        connack = self.connack
        assert connack is not None  # noqa: S101  (VERIFYING is entered with the CONNACK)
        events: list[Event] = []
        self._accept(connack, events)
        events += self.receive_data(b"", now)
        return events

    def _pump(self) -> None:
        """Send queued QoS 1/2 messages while the server's Receive Maximum allows."""
        self._session.pump(self.send_quota, self._send_outgoing)

    def _send_outgoing(self, out: Outgoing) -> None:
        if out.sent:
            packet = replace(out.publish, dup=True)
        elif self._aliases.usable(out.first, self._server_alias_maximum()):
            packet = self._aliases.record(out.first)
        else:
            packet = out.publish
        self._send(packet)

    # Keep-alive.

    def next_deadline(self) -> float | None:
        """When ``handle_timer`` next has work: a PINGREQ to send or a PINGRESP overdue."""
        if self.state is not ClientState.CONNECTED or not self.keep_alive:
            return None
        if self._ping_sent_at is not None:
            timeout = self.ping_timeout if self.ping_timeout is not None else self.keep_alive
            return self._ping_sent_at + timeout
        return self._last_sent + self.keep_alive

    def handle_timer(self, now: float) -> None:
        """Send PINGREQ when due [MQTT-3.1.2-20]; raise KeepAliveTimeout when none came back."""
        deadline = self.next_deadline()
        if deadline is None or now < deadline:
            return
        if self._ping_sent_at is not None:
            self._move(Trigger.CLOSED)
            raise KeepAliveTimeout(f"no PINGRESP within {deadline - self._ping_sent_at:g} s")
        self._send(Pingreq())
        self._ping_sent_at = now

    # Input.

    def receive_data(self, data: bytes, now: float) -> list[Event]:
        """Parse ``data``; return the events. A CodecError means: close the connection.

        On a protocol error an MQTT 5 DISCONNECT naming it is queued first
        (``data_to_send``), as MQTT 5.0 section 4.13 asks.
        """
        if self.state is ClientState.DISCONNECTED:
            return []
        self._reader.feed(data)
        events: list[Event] = []
        try:
            while self._reading():
                packet = self._reader.next_packet()
                if packet is None:
                    break
                if self.trace is not None:
                    self.trace("received", packet)
                if packet.packet_type not in SERVER_MAY_SEND[self.state]:
                    raise ProtocolError(f"unexpected {type(packet).__name__.upper()}")
                self._handle(packet, events)
        except CodecError as exc:
            if self.state is ClientState.CONNECTED and self.version == MQTT_5:
                self._send(Disconnect(exc.reason_code, reason_string=exc.message[:200]))
            self._move(Trigger.CLOSED)
            raise
        return events

    def _reading(self) -> bool:
        # A DISCONNECT or refused CONNACK ends the connection: ignore what follows it.
        # VERIFYING keeps what follows a CONNACK unread until the server is verified.
        state = self.state
        return state is ClientState.CONNECTED or state is ClientState.CONNECTING

    def _handle(self, packet: Packet, events: list[Event]) -> None:
        if isinstance(packet, Publish):
            self._on_publish(packet, events)
        elif isinstance(packet, Puback):
            self._complete(packet.packet_id, 1, packet, events)
        elif isinstance(packet, Pubrec):
            self._on_pubrec(packet, events)
        elif isinstance(packet, Pubrel):
            self._on_pubrel(packet)
        elif isinstance(packet, Pubcomp):
            self._complete(packet.packet_id, 2, packet, events)
        elif isinstance(packet, Suback | Unsuback):
            self._on_request_ack(packet, events)
        elif isinstance(packet, Connack):
            self._on_connack(packet, events)
        elif isinstance(packet, Disconnect):
            self._move(Trigger.DISCONNECT_RECEIVED)
            events.append(DisconnectReceived(packet))
        elif isinstance(packet, Auth):
            self._on_auth(packet, events)
        else:  # PINGRESP
            self._ping_sent_at = None

    def _on_auth(self, packet: Auth, events: list[Event]) -> None:
        method = self._connect.authentication_method
        if method is None:
            raise ProtocolError("AUTH, but the CONNECT named no authentication method")
        reason = packet.reason_code
        # The short form (reason 0x00, no properties) carries no method; any other
        # AUTH must name the CONNECT's [MQTT-4.12.0-5].
        if packet.authentication_method != method and not (
            reason == AuthReasonCode.SUCCESS and packet.authentication_method is None
        ):
            raise ProtocolError(f"AUTH with another authentication method than {method!r}")
        if reason == AuthReasonCode.CONTINUE_AUTHENTICATION:
            if self.state is ClientState.CONNECTED and not self._reauthenticating:
                raise ProtocolError("AUTH 0x18 outside a re-authentication")
            if self._auth_reply_owed:
                raise ProtocolError("a second AUTH before our answer to the first")
            self._auth_reply_owed = True
        elif (
            reason == AuthReasonCode.SUCCESS
            and self.state is ClientState.CONNECTED
            and self._reauthenticating
        ):
            if self._auth_reply_owed:
                raise ProtocolError("AUTH 0x00 before our answer to its AUTH 0x18")
            self._reauthenticating = False
        else:
            # 0x19 comes only from clients; success during CONNECT is the CONNACK.
            raise ProtocolError(f"unexpected AUTH 0x{reason:02X}")
        events.append(AuthReceived(packet))

    def _on_connack(self, packet: Connack, events: list[Event]) -> None:
        if packet.reason_code:
            self._move(Trigger.CONNACK_REFUSED)
            events.append(ConnackRefused(packet))
            return
        method = self._connect.authentication_method
        if method is not None and self.version == MQTT_5:
            if packet.authentication_method != method:
                raise ProtocolError(f"CONNACK without the authentication method {method!r}")
            if self._auth_reply_owed:
                raise ProtocolError("CONNACK before our answer to the server's AUTH")
            self._move(Trigger.CONNACK_TO_VERIFY)
            self.connack = packet
            events.append(VerifyServer(packet))
            return
        self._move(Trigger.CONNACK_ACCEPTED)
        self._accept(packet, events)

    def _accept(self, packet: Connack, events: list[Event]) -> None:
        """The server accepted (and, with enhanced authentication, proved itself): now
        CONNECTED, resume or restart the session."""
        self.connack = packet
        if packet.server_keep_alive is not None:
            self.keep_alive = packet.server_keep_alive  # [MQTT-3.1.2-21]
        self.send_quota = packet.receive_maximum or _U16_MAX
        session = self._session
        completed: list[PublishCompleted] = []
        if packet.session_present:
            session.resend(self.send_quota, self._send)
        else:
            # The server has no session for us: what we owe is sent again as new messages.
            completed = [PublishCompleted(packet_id, 2) for packet_id in session.restart()]
        for request in session.requests.values():
            self._send(request)
        self._pump()
        events.append(Connected(packet, packet.session_present, tuple(completed)))

    def _on_publish(self, packet: Publish, events: list[Event]) -> None:
        if self.version == MQTT_5:
            self._aliases.resolve(packet, self._connect.topic_alias_maximum or 0)
        qos = packet.qos
        packet_id = packet.packet_id
        if qos == 1:
            if not self.manual_ack:
                self._send(Puback(packet_id))
        elif qos == 2:
            maximum = self._connect.receive_maximum or _U16_MAX
            new = self._session.received_qos2(packet_id, maximum, not self.manual_ack)
            if new is None:
                # A resend of a message already delivered and acknowledged (method B of
                # MQTT 5.0 section 4.3.3): acknowledge again, deliver once.
                self._send(Pubrec(packet_id))
                return
            if not new:
                return  # a resend of one the caller has and will acknowledge
            if not self.manual_ack:
                self._send(Pubrec(packet_id))
        events.append(MessageReceived(packet))

    def acknowledge(self, packet_id: int, qos: int, same_connection: bool) -> None:
        """With ``manual_ack``: the caller has taken a QoS 1/2 message; acknowledge it.

        ``same_connection`` says the message came on the current network connection. A
        PUBACK for one that came on an earlier connection is not sent: the server has
        resent it since (and the resend is acknowledged in its turn), and its packet
        identifier may already name another message. A QoS 2 id stays the server's until
        PUBREL, so its PUBREC may go on any connection (or wait for the resend).
        """
        if qos == 1:
            if same_connection and self.state is ClientState.CONNECTED:
                self._send(Puback(packet_id))
            return
        # Unknown: the server dropped our session since, nothing to acknowledge.
        if self._session.acknowledged(packet_id) and self.state is ClientState.CONNECTED:
            self._send(Pubrec(packet_id))

    def _on_pubrec(self, packet: Pubrec, events: list[Event]) -> None:
        if not self._session.expects_pubrec(packet.packet_id):
            if self.version == MQTT_5 and packet.reason_code < 0x80:
                self._send(Pubrel(packet.packet_id, PubrelReasonCode.PACKET_IDENTIFIER_NOT_FOUND))
            return
        if packet.reason_code >= 0x80:
            # A failure PUBREC ends the exchange (MQTT 5.0 section 4.3.3): no PUBREL, and
            # the packet identifier is free again.
            self._complete(packet.packet_id, 2, packet, events)
            return
        if self._session.released(packet.packet_id, self.manual_release):
            self._send(Pubrel(packet.packet_id))
        elif self.manual_release:
            events.append(
                PublishCompleted(
                    packet.packet_id,
                    2,
                    packet.reason_code,
                    packet.reason_string,
                    packet.user_properties,
                    received=True,
                )
            )

    def release(self, packet_id: int) -> None:
        """With ``manual_release``: send the PUBREL of a QoS 2 message whose PUBREC came;
        its PUBCOMP then completes it. An id this session does not know resumes an
        exchange at the PUBREL stage (the caller's store says the server sent PUBREC to
        an earlier client state). ValueError for an id whose PUBREC has not come."""
        if self._session.release(packet_id) and self.state is ClientState.CONNECTED:
            self._send(Pubrel(packet_id))

    def _on_pubrel(self, packet: Pubrel) -> None:
        awaiting = self._session.awaiting_pubrel
        if packet.packet_id in awaiting:
            awaiting.discard(packet.packet_id)
            self._send(Pubcomp(packet.packet_id))
        elif self.version == MQTT_5:
            self._send(Pubcomp(packet.packet_id, PubcompReasonCode.PACKET_IDENTIFIER_NOT_FOUND))
        else:
            self._send(Pubcomp(packet.packet_id))

    def _complete(
        self, packet_id: int, qos: int, ack: Puback | Pubrec | Pubcomp, events: list[Event]
    ) -> None:
        if not self._session.complete(packet_id, qos, isinstance(ack, Pubcomp)):
            return  # a late or stray acknowledgement: nothing is waiting for it
        events.append(
            PublishCompleted(
                packet_id, qos, ack.reason_code, ack.reason_string, ack.user_properties
            )
        )
        self._pump()

    def _on_request_ack(self, packet: Suback | Unsuback, events: list[Event]) -> None:
        requests = self._session.requests
        request = requests.get(packet.packet_id)
        expected = Subscribe if isinstance(packet, Suback) else Unsubscribe
        if not isinstance(request, expected):
            return
        del requests[packet.packet_id]
        if isinstance(packet, Suback):
            events.append(SubscribeCompleted(packet.packet_id, packet))
        else:
            events.append(UnsubscribeCompleted(packet.packet_id, packet))
