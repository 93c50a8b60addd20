"""The broker side of one client connection: each packet's effect on sessions and routing.

Packets are handled synchronously, in order, straight from ``data_received``; nothing
here spawns a task per packet. Framing, state, topic aliases and encoding the answers
are the sans-IO ``ServerConnection``'s job, the terms of a CONNECT are ``connect.py``'s;
this module decides what the broker does with each packet, and asks the rest of the
broker only through ``ports.ConnectionHost`` and ``ports.Entrance``.

The one exception is waiting for an authentication backend (a password hash, a plugin,
an AUTH exchange): then ``_wait`` pauses the connection, its further packets stay
buffered, unparsed, and once the answer comes the packet that asked is handled again
(the answer is cached, so this time it goes through) and the buffered packets follow
in order. Connections with nothing to wait for never take that path.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import TYPE_CHECKING

from roost.broker import authenticating, publishing, subscribing
from roost.broker.auth.base import AuthResult
from roost.broker.connect import (
    NO_LIMIT,
    ConnectTerms,
    Refusal,
    connack_for,
    connect_terms,
    refusal_connack,
)
from roost.broker.limits import RateLimit
from roost.broker.sessions import Identity
from roost.broker.stats import ROUTINE_CLOSES, close_reason
from roost.broker.tls import certificate_identity
from roost.broker.topic_aliases import OutgoingAliases
from roost.broker.transport import WRITE_BUFFER_HIGH, BufferedTransport, WriteCoalescer
from roost.codec import (
    MQTT_5,
    CodecError,
    Connack,
    ConnackReturnCode,
    Connect,
    Disconnect,
    DisconnectReasonCode,
    Packet,
    ProtocolError,
    UnsupportedProtocolVersion,
)
from roost.protocol.server_conn import ServerConnection, ServerState

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from roost.broker.auth.access import ClientAccess
    from roost.broker.auth.base import EnhancedAuthentication
    from roost.broker.ports import ConnectionHost, Entrance
    from roost.broker.sessions import Session

log = logging.getLogger("roost.broker")

# Seconds a connection we closed has to take what we still had to send it; then it is
# aborted (close() waits for the write buffer to drain, which a client that reads
# nothing never lets happen).
CLOSE_TIMEOUT = 5.0
# The lingering close (nginx's): after our last packet the write side is shut down and
# what the client still sends is read and thrown away, for at most this many seconds
# and bytes, then the socket is closed. Closing at once with its bytes unread makes the
# kernel send a reset, which can destroy our DISCONNECT or CONNACK before the client
# reads it; the bounds keep a client that never stops writing from holding us open.
LINGER_TIME = 2.0
LINGER_BYTES = 64 * 1024
# A connection over max_connections or max_connection_rate is not counted in, but read
# until its CONNECT so that it can be told why (CONNACK 0x97 or 0x9F; 3.1.x: 0x03):
# within this many seconds (or connect_timeout, if shorter) and LINGER_BYTES in all,
# or it is closed unanswered. A flood must not hold sockets for long this way.
REFUSAL_TIMEOUT = 2.0
# After this many plain PUBACKs in one read, what they freed is written at once: a
# client working through a backlog works on it while the broker reads on, instead of
# both idling in turn (chosen by measurement: docs/performance.md, "second pass").
EARLY_FLUSH_ACKS = 5


class BrokerConnection(BufferedTransport):
    """The broker's end of one client connection: handles each packet's effect on the
    client's session and on routing, through the ``ConnectionHost`` seam."""

    __slots__ = (
        "_taken_over",
        "_waiting",
        "access",
        "admitted",
        "auth_exchange",
        "auth_method",
        "auth_result",
        "bridge",
        "clean_disconnect",
        "client_id",
        "closing_since",
        "connected_at",
        "drained",
        "ended_by",
        "host",
        "keep_alive",
        "last_activity",
        "listener",
        "maximum_packet_size",
        "peer",
        "pending_connect",
        "protocol",
        "publish_rate",
        "refusal",
        "send_quota",
        "session",
        "topic_aliases",
        "username",
        "version",
    )

    def __init__(self, host: ConnectionHost, listener: Entrance, coalescer: WriteCoalescer) -> None:
        super().__init__(coalescer)
        self.host = host
        self.listener = listener
        config = host.config
        self.protocol = ServerConnection(config.max_packet_size, config.topic_alias_maximum)
        self.session: Session | None = None
        self.client_id = ""
        self.version = MQTT_5
        self.keep_alive = 0
        self.send_quota = config.max_inflight_messages
        # Acknowledgements (and other packets) held for commits beyond which the client is
        # not read: its Receive Maximum, which 3.1.x clients are never told, so for them
        # the broker enforces it by reading no further, not by closing (publishing.py).
        self.held_limit = config.receive_maximum
        self.maximum_packet_size = NO_LIMIT
        self.topic_aliases: OutgoingAliases | None = None  # set at CONNECT (MQTT 5)
        self.clean_disconnect = False
        self.bridge = False  # the CONNECT said it is a bridge (Connect.bridge, try_private)
        self.peer = "?"
        self.admitted = False  # counted in by the listener and the host (connection_made)
        self.connected_at = self.last_activity = host.now()
        self.closing_since: float | None = None  # when we closed it (see check_timers)
        self.drained = 0  # bytes read and thrown away since (the lingering close)
        self._taken_over = False  # a new connection took the session (take_over)
        # Not admitted (a connection limit): answered with this at its CONNECT.
        self.refusal: Refusal | None = None
        self.publish_rate: RateLimit | None = None  # max_publish_rate, set at CONNECT
        self.ended_by: str | None = None  # why the broker ended it (close_reason), if it did
        # Authentication: the identity accepted, what it may do (None: unrestricted), the
        # MQTT 5 Authentication Method it used, and an AUTH exchange under way.
        self.username: str | None = None
        self.access: ClientAccess | None = None
        self.auth_method: str | None = None
        self.auth_exchange: EnhancedAuthentication | None = None
        self.pending_connect: Connect | None = None  # waiting for its authentication
        self.auth_result: AuthResult | None = None  # that authentication's answer
        # What packet processing waits for; None: packets are handled as they come.
        self._waiting: asyncio.Future[object] | None = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.peer = f"{peer[0]}:{peer[1]}"
        listener = self.listener
        refusal = listener.admit()
        if refusal is None:
            refusal = self.host.opened(self)
            if refusal is not None:
                listener.left()
        if refusal is not None:
            log.warning(
                "Refused connection from %s on listener %s: %s.",
                self.peer,
                listener.label,
                refusal.why,
            )
            self.host.stats.refused(refusal.reason.name.lower())
            self.host.stats.closed("connect_refused")
            self.admitted = False
            if self.host.refusing(self):
                # Not counted in, but read (bounded: check_timers, data_received) until
                # its CONNECT, which is answered with the reason code (on_connect).
                self.refusal = refusal
            else:
                # Too many being refused already: closed before a byte is read (or a
                # TLS handshake is made), the cheapest answer to a flood.
                transport.close()
            return
        self.admitted = True

    def data_received(self, data: bytes) -> None:
        host = self.host
        host.stats.bytes_received += len(data)
        if self.closing_since is not None:
            self._drain(len(data))
            return
        if self.refusal is not None:
            self.drained += len(data)
            if self.drained > LINGER_BYTES:
                log.debug("Refused connection from %s sent too much; closing.", self.peer)
                self.protocol.close()
                self.abort()
                return
        self.protocol.receive_data(data)
        if self._waiting is None:
            self._handle_packets(host.now())

    def _handle_packets(self, now: float) -> None:
        protocol = self.protocol
        handlers = _HANDLERS
        # Slots freed by plain PUBACKs in this read: the session sends what they free
        # once after the read (and once at EARLY_FLUSH_ACKS), not once per PUBACK.
        acked = 0
        try:
            # Not while the client leaves our output unread: its packets stay buffered
            # (and reading is paused) until it reads, so what it makes us answer
            # (PUBACKs, PINGRESPs, retained messages) cannot pile up without bound.
            # Nor while held_limit answers wait for store commits: a commit releases
            # them without any further input, so the pause ends (see transport.py).
            while self.writable and self._held_count < self.held_limit:
                packet = protocol.next_packet_or_puback()
                if packet is None:
                    break
                # Keep-alive counts whole packets (5.0 [MQTT-3.1.2-22]), not bytes: a client
                # trickling one packet in pieces is still cut off at 1.5 x keep-alive.
                self.last_activity = now
                if isinstance(packet, int):  # a plain PUBACK: its packet identifier
                    session = self.session
                    if session is not None and session.acknowledged(packet):
                        acked += 1
                        if acked == EARLY_FLUSH_ACKS:
                            session.pump(now)
                            self.flush()
                    continue
                if acked:  # what they freed goes before any answer to what follows
                    acked = 0
                    if self.session is not None:
                        self.session.pump(now)
                handlers[packet.packet_type](self, packet, now)
                if protocol.state is ServerState.CLOSED or self._waiting is not None:
                    break
            if acked and self.session is not None:
                self.session.pump(now)
        except CodecError as exc:
            self._protocol_violation(exc)
        except Exception:
            # A bug of ours must cost this one connection, never the broker.
            log.exception("Internal error handling client %s; disconnecting.", self.client_id)
            self.disconnect(DisconnectReasonCode.IMPLEMENTATION_SPECIFIC_ERROR)

    def connection_lost(self, exc: Exception | None) -> None:
        host = self.host
        if self.admitted:
            self.admitted = False
            host.closed(self)
            self.listener.left()
        elif self.refusal is not None:
            host.closed(self)
        self.protocol.close()
        waiting = self._waiting
        if waiting is not None:
            self._waiting = None
            waiting.cancel()
        self._leave(exc)

    def _leave(self, exc: Exception | None) -> None:
        """The MQTT connection is over: let go of the session (its will goes out unless
        the client disconnected cleanly). At close_transport, not when the socket is
        gone: a lingering close must not keep the session attached to a connection
        that will send nothing more."""
        session = self.session
        if session is None or session.connection is not self or self._taken_over:
            return
        self.session = None
        host = self.host
        if host.config.connection_messages:
            if self.clean_disconnect:
                log.info("Client %s disconnected.", self.client_id)
            elif self.ended_by is not None:
                # disconnect() has said why; the client did not leave of its own accord.
                log.debug("Client %s connection closed%s.", self.client_id, _cause(exc))
            else:
                log.info("Client %s closed its connection%s.", self.client_id, _cause(exc))
        host.detach(session, publish_will=not self.clean_disconnect, now=host.now())

    def on_writable(self) -> None:
        if self.session is not None:
            self.session.pump(self.host.now())
        # The packets left unhandled while the client was not reading (_handle_packets).
        self._carry_on()

    def wants_input(self) -> bool:
        if self.closing_since is not None:
            return True  # lingering: read (and discard) whatever comes, within bounds
        return super().wants_input() and self._waiting is None

    def on_held_back(self) -> None:
        self.host.stats.held_back += 1
        self.update_reading()

    def on_released(self) -> None:
        self.update_reading()
        # Called from the store's commit callback, which is walking its holders: handle
        # the packets left buffered on the next loop turn, not from inside it.
        asyncio.get_running_loop().call_soon(self._carry_on)

    # Waiting for an authentication backend.

    def wait_for(self, answer: Awaitable[object], then: Callable[[object], None]) -> None:
        """Pause this connection's packets until ``answer`` is ready, then ``then(it)``."""
        waiting = self._waiting = asyncio.ensure_future(answer)
        if self.transport is not None:
            # Bytes already read stay buffered in the reader; stop reading more.
            self.transport.pause_reading()
        waiting.add_done_callback(lambda done: self._answered(done, then))

    def _answered(self, done: asyncio.Future[object], then: Callable[[object], None]) -> None:
        if self._waiting is not done:
            # The connection closed meanwhile; a failure now has nobody to tell.
            if not done.cancelled():
                done.exception()
            return
        self._waiting = None
        if self.protocol.state is ServerState.CLOSED:
            return
        self.update_reading()
        try:
            then(done.result())
        except CodecError as exc:
            self._protocol_violation(exc)
            return
        except Exception:
            log.exception("Internal error handling client %s; disconnecting.", self.client_id)
            self.disconnect(DisconnectReasonCode.IMPLEMENTATION_SPECIFIC_ERROR)
            return
        self._carry_on()

    def _carry_on(self) -> None:
        # The packets that came while we waited, unless the answer closed or paused us.
        if self._waiting is None and self.protocol.state is not ServerState.CLOSED:
            self._handle_packets(self.host.now())

    # Timers and leaving.

    def check_timers(self, now: float) -> None:
        """Close the connection if its CONNECT, keep-alive or closing deadline passed."""
        closing_since = self.closing_since
        if closing_since is not None:
            transport = self.transport
            if transport is None:
                return
            if now - closing_since > CLOSE_TIMEOUT:
                log.info("Connection from %s left its last packets unread; aborted.", self.peer)
                transport.abort()
            elif now - closing_since > LINGER_TIME and not transport.is_closing():
                # Lingered long enough; close() still lets the write buffer drain.
                transport.close()
            return
        if self.refusal is not None:
            if now - self.connected_at > min(REFUSAL_TIMEOUT, self.host.config.connect_timeout):
                log.debug("Refused connection from %s sent no CONNECT in time.", self.peer)
                self.protocol.close()
                self.close_transport()
            return
        if self.session is None:
            timeout = self.host.config.connect_timeout
            if now - self.connected_at > timeout:
                log.warning("Client at %s sent no CONNECT in time; closing.", self.peer)
                self.disconnect(
                    DisconnectReasonCode.MAXIMUM_CONNECT_TIME,
                    why=f"no CONNECT within connect_timeout ({timeout:g} s)",
                )
        elif (
            self.keep_alive
            and now - self.last_activity > 1.5 * self.keep_alive
            # Not read because the store is slow: our delay, not the client's silence.
            and not self.held_back()
        ):
            log.info("Client %s has exceeded timeout, disconnecting.", self.client_id)
            self.disconnect(
                DisconnectReasonCode.KEEP_ALIVE_TIMEOUT,
                why=f"no packet within 1.5 x keep-alive ({self.keep_alive} s)",
            )

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def close_transport(self) -> None:
        """Write what is pending, then close lingering: shut the write side down (after
        the buffer drains) and keep reading, discarding, until the client closes or
        LINGER_TIME or LINGER_BYTES is reached (check_timers, _drain)."""
        self.flush()
        self._shut = True
        if self.closing_since is None:
            self.closing_since = self.host.now()
        self._leave(None)
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if transport.can_write_eof():
            transport.write_eof()
            transport.resume_reading()
        else:
            transport.close()

    def _drain(self, size: int) -> None:
        self.drained += size
        transport = self.transport
        if self.drained > LINGER_BYTES and transport is not None and not transport.is_closing():
            log.debug(
                "Connection from %s sent over %d bytes after it was closed; closing now.",
                self.peer,
                LINGER_BYTES,
            )
            transport.close()

    def disconnect(
        self, reason: int, reason_string: str | None = None, *, why: str | None = None
    ) -> None:
        """Close from the broker's side; MQTT 5 clients are told why first.

        The one place the broker ends a connection it accepted: logged (``why``, or else
        the reason string, says more for the log) and counted in ``Stats.closed``.
        """
        if self.closing_since is None and self.refusal is None:
            # Only the first close says why: a takeover or shutdown of a connection
            # already closing changes nothing (nor one refused and counted already).
            name = self.ended_by = close_reason(reason)
            self.host.stats.closed(name)
            detail = why or reason_string
            log.log(
                logging.INFO if name in ROUTINE_CLOSES else logging.WARNING,
                "Broker closed the connection of client %s (%s): %s%s.",
                self.client_id or "<unknown>",
                self.peer,
                name,
                f", {detail}" if detail else "",
            )
        # Packets still waiting for a commit promised nothing: the client resends.
        self.drop_held()
        had_session = self.session is not None
        data = self.protocol.disconnect(reason, reason_string, self.maximum_packet_size)
        if data is not None and had_session:
            self.send(data)
        self.close_transport()

    def take_over(self) -> None:
        # disconnect() tells only a connection with a session why: let go of it after,
        # or MQTT 5 clients never get the DISCONNECT 0x8E [MQTT-3.1.4-3]. The registry,
        # our caller, detaches the session itself (_leave must not, from inside it).
        self._taken_over = True
        self.disconnect(DisconnectReasonCode.SESSION_TAKEN_OVER)
        self.session = None

    def _protocol_violation(self, exc: CodecError) -> None:
        who = self.client_id or "<unknown>"
        log.warning("Client %s (%s) protocol violation: %s; disconnecting.", who, self.peer, exc)
        self.host.stats.protocol_violations += 1
        if isinstance(exc, UnsupportedProtocolVersion) and self.session is None:
            # 3.1.1's answer [MQTT-3.1.2-2]; clients of every level understand it.
            self.send(Connack(False, ConnackReturnCode.UNACCEPTABLE_PROTOCOL_VERSION).encode(4))
        self.disconnect(
            exc.reason_code,
            exc.message if self.version == MQTT_5 else None,
            why="protocol violation",
        )

    # CONNECT.

    def on_connect(self, packet: Connect, now: float) -> None:
        host = self.host
        self.version = packet.protocol_level
        self.bridge = packet.bridge
        refusal = self.refusal
        if refusal is not None:
            # Over a connection limit: logged and counted at the accept already.
            self._answer_refusal(packet, refusal)
            return
        listener = self.listener
        identity_source = listener.identity_source
        terms = connect_terms(
            packet,
            host.config,
            host.topic_limits,
            allow_anonymous=listener.allow_anonymous,
            identity_source=identity_source,
            identity=certificate_identity(
                self.transport and self.transport.get_extra_info("peercert"), identity_source
            )
            if identity_source
            else None,
            earlier_id=self.client_id,  # kept across a wait for authentication
        )
        if isinstance(terms, Refusal):
            self.refuse(packet, terms)
            return
        client_id = self.client_id = terms.client_id
        self.keep_alive = terms.keep_alive
        self.send_quota = terms.send_quota
        self.maximum_packet_size = terms.maximum_packet_size
        aliases = terms.topic_aliases_sent
        # A new network connection starts with no alias set [MQTT-3.3.2-7].
        self.topic_aliases = OutgoingAliases(aliases) if aliases else None
        if host.config.max_publish_rate:
            self.publish_rate = RateLimit(host.config.max_publish_rate, now)
        accepted = authenticating.authenticated(self, packet)
        if accepted is None:
            return  # refused, or waiting for the answer (on_connect then runs again)
        client = authenticating.client_info(self, self.username, accepted.attributes)
        identity = Identity(client, authenticating.password_file_vouched(self, packet, accepted))
        directory = host.directory
        if directory is not None:
            # A cluster: the session is claimed cluster-wide (and taken from the node
            # that held it) before it is attached here.
            self.wait_for(
                directory.claim(client_id, packet.clean_start, terms.expiry_interval),
                partial(self._claimed, packet, terms, identity, accepted),
            )
            return
        self._accept(packet, terms, identity, accepted, now)

    def _claimed(
        self,
        packet: Connect,
        terms: ConnectTerms,
        identity: Identity,
        accepted: AuthResult,
        answer: object,
    ) -> None:
        if isinstance(answer, Refusal):
            self.refuse(packet, answer)
            return
        self._accept(packet, terms, identity, accepted, self.host.now())

    def _accept(
        self,
        packet: Connect,
        terms: ConnectTerms,
        identity: Identity,
        accepted: AuthResult,
        now: float,
    ) -> None:
        host = self.host
        client_id = terms.client_id
        session, present = host.attach(
            self, identity, packet.clean_start, terms.expiry_interval, packet.will, now
        )
        self.session = session
        # After attach: taking over a session ends the old one, and its access with it.
        self.access = host.auth.access_for(identity.client)
        self.send(
            connack_for(self.version, present, terms, host.config, self.auth_method, accepted.data)
        )
        if host.config.connection_messages:
            log.info(
                "New client connected from %s as %s (p%d, c%d, k%d%s).",
                self.peer,
                client_id,
                self.version,
                packet.clean_start,
                terms.keep_alive,
                "" if self.username is None else f", u'{self.username}'",
            )
        session.resume(now)
        self.flush_burst()

    def flush_burst(self) -> None:
        """Write a burst (retained messages, a resumed session's) out now if it is large:
        the transport's high-water mark then stops _handle_packets before the next packet.
        Other packets are answered with about their own size (a PUBACK may free the slot
        of one queued message), so the size of each read bounds those.
        """
        if self.pending_bytes() >= WRITE_BUFFER_HIGH:
            self.flush()

    def refuse(self, packet: Connect, refusal: Refusal) -> None:
        """Answer a CONNECT with a refusing CONNACK (where the level has one), then close."""
        log.warning(
            "Refused connection from %s as %r (p%d): %s.",
            self.peer,
            packet.client_id,
            packet.protocol_level,
            refusal.why,
        )
        self.host.stats.refused(refusal.reason.name.lower())
        self.host.stats.closed("connect_refused")
        self._answer_refusal(packet, refusal)

    def _answer_refusal(self, packet: Connect, refusal: Refusal) -> None:
        data = refusal_connack(packet, refusal)
        if data is not None:
            self.send(data)
        self.protocol.close()
        self.close_transport()

    # The rest.

    def on_pingreq(self, packet: Packet, now: float) -> None:
        self.send(self.protocol.pingresp())

    def on_disconnect(self, packet: Disconnect, now: float) -> None:
        session = self.session
        if session is None:
            # The client gave up during an AUTH exchange, before its CONNACK.
            self.protocol.close()
            self.close_transport()
            return
        expiry = packet.session_expiry_interval
        if expiry is not None:
            if session.expiry_interval == 0 and expiry != 0:
                # MQTT 5.0 section 3.14.2.2.2: a session that was to end with the
                # connection cannot be extended now; not a valid DISCONNECT (will kept).
                self._protocol_violation(
                    _protocol_error("session expiry set on DISCONNECT after 0 at CONNECT")
                )
                return
            session.expiry_interval = min(expiry, self.host.config.max_session_expiry_interval)
        self.clean_disconnect = (
            packet.reason_code != DisconnectReasonCode.DISCONNECT_WITH_WILL_MESSAGE
        )
        if self.clean_disconnect:
            session.will = None
        self.protocol.close()
        self.close_transport()


def _protocol_error(message: str) -> CodecError:
    return ProtocolError(message)


def _cause(exc: Exception | None) -> str:
    return "" if exc is None else f" ({exc})"


def _unexpected(conn: BrokerConnection, packet: Packet, now: float) -> None:
    # ServerConnection refuses these before they get here.
    raise _protocol_error(f"unexpected {type(packet).__name__.upper()}")


_HANDLERS: tuple[Callable[[BrokerConnection, Packet, float], None], ...] = (  # type: ignore[assignment]
    _unexpected,
    BrokerConnection.on_connect,
    _unexpected,
    publishing.on_publish,
    publishing.on_puback,
    publishing.on_pubrec,
    publishing.on_pubrel,
    publishing.on_pubcomp,
    subscribing.on_subscribe,
    _unexpected,
    subscribing.on_unsubscribe,
    _unexpected,
    BrokerConnection.on_pingreq,
    _unexpected,
    BrokerConnection.on_disconnect,
    authenticating.on_auth,
)
