"""The broker side of one client connection: each packet's effect on sessions and routing.

Packets are handled synchronously, in order, straight from ``data_received``; nothing
here spawns a task per packet. Framing, state and topic aliases are the sans-IO
``ServerConnection``'s job; this module decides what the broker does with them.

The one exception is waiting for an authentication backend (a password hash, a plugin,
an AUTH exchange): then ``_wait`` pauses the connection, its further packets stay
buffered, unparsed, and once the answer comes the packet that asked is handled again
(the answer is cached, so this time it goes through) and the buffered packets follow
in order. Connections with nothing to wait for never take that path.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING

from roost.broker.auth.base import AuthRequest, AuthResult, Challenge, ClientInfo
from roost.broker.message import Message
from roost.broker.sessions import Session, SubscriptionRecord
from roost.broker.tls import certificate_identity
from roost.broker.transport import WRITE_BUFFER_HIGH, BufferedTransport
from roost.codec import (
    MQTT_3_1,
    MQTT_5,
    Auth,
    AuthReasonCode,
    CodecError,
    Connack,
    ConnackReturnCode,
    Connect,
    ConnectReasonCode,
    Disconnect,
    DisconnectReasonCode,
    Packet,
    ProtocolError,
    Puback,
    PubackReasonCode,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    PubrelReasonCode,
    Suback,
    SubackReasonCode,
    Subscribe,
    Unsuback,
    UnsubackReasonCode,
    Unsubscribe,
    UnsupportedProtocolVersion,
)
from roost.protocol.server_conn import ServerConnection, State
from roost.protocol.topics import parse_shared

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from roost.broker.auth.access import ClientAccess
    from roost.broker.auth.base import EnhancedAuthentication
    from roost.broker.listeners import Listener
    from roost.broker.server import Broker

log = logging.getLogger("roost.broker")

_PINGRESP = b"\xd0\x00"
_NO_LIMIT = 1 << 30
_NOTHING_TO_CHECK = AuthResult.accept()


class ClientConnection(BufferedTransport):
    __slots__ = (
        "_auth_result",
        "_connect",
        "_exchange",
        "_waiting",
        "access",
        "auth_method",
        "broker",
        "clean_disconnect",
        "client_id",
        "closing_since",
        "connected_at",
        "keep_alive",
        "last_activity",
        "listener",
        "maximum_packet_size",
        "peer",
        "protocol",
        "send_quota",
        "session",
        "username",
        "version",
    )

    def __init__(self, broker: Broker, listener: Listener) -> None:
        super().__init__(broker.coalescer)
        self.broker = broker
        self.listener = listener
        config = broker.config
        self.protocol = ServerConnection(config.max_packet_size, config.topic_alias_maximum)
        self.session: Session | None = None
        self.client_id = ""
        self.version = MQTT_5
        self.keep_alive = 0
        self.send_quota = config.max_inflight_messages
        self.maximum_packet_size = _NO_LIMIT
        self.clean_disconnect = False
        self.peer = "?"
        self.connected_at = self.last_activity = broker.now()
        self.closing_since: float | None = None  # when we closed it (see Broker.sweep)
        # Authentication: the identity accepted, what it may do (None: unrestricted), the
        # MQTT 5 Authentication Method it used, and an AUTH exchange under way.
        self.username: str | None = None
        self.access: ClientAccess | None = None
        self.auth_method: str | None = None
        self._exchange: EnhancedAuthentication | None = None
        self._connect: Connect | None = None  # waiting for its authentication
        self._auth_result: AuthResult | None = None  # that authentication's answer
        # What packet processing waits for; None: packets are handled as they come.
        self._waiting: asyncio.Future[object] | None = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.peer = f"{peer[0]}:{peer[1]}"
        listener = self.listener
        refusal = listener.refusal()
        if refusal is not None:
            # Refused before a byte is read (or a TLS handshake is made): the cheapest
            # answer to a flood, and Mosquitto's. Clients see the connection closed.
            log.warning(
                "Refused connection from %s on listener %s: %s.", self.peer, listener.label, refusal
            )
            self.broker.stats.refused_connections += 1
            transport.close()
            return
        listener.connections += 1
        self.broker.connections.add(self)

    def data_received(self, data: bytes) -> None:
        broker = self.broker
        broker.stats.bytes_received += len(data)
        protocol = self.protocol
        protocol.receive_data(data)
        if self._waiting is None:
            self._handle_packets(broker.now())

    def _handle_packets(self, now: float) -> None:
        protocol = self.protocol
        handlers = _HANDLERS
        try:
            # Not while the client leaves our output unread: its packets stay buffered
            # (and reading is paused) until it reads, so what it makes us answer
            # (PUBACKs, PINGRESPs, retained messages) cannot pile up without bound.
            while self.writable:
                packet = protocol.next_packet()
                if packet is None:
                    return
                # Keep-alive counts whole packets (5.0 [MQTT-3.1.2-22]), not bytes: a client
                # trickling one packet in pieces is still cut off at 1.5 x keep-alive.
                self.last_activity = now
                handlers[packet.packet_type](self, packet, now)
                if protocol.state is State.CLOSED or self._waiting is not None:
                    return
        except CodecError as exc:
            self._protocol_violation(exc)
        except Exception:
            # A bug of ours must cost this one connection, never the broker.
            log.exception("Internal error handling client %s; disconnecting.", self.client_id)
            self.disconnect(DisconnectReasonCode.IMPLEMENTATION_SPECIFIC_ERROR)

    def connection_lost(self, exc: Exception | None) -> None:
        broker = self.broker
        if self in broker.connections:
            broker.connections.remove(self)
            self.listener.connections -= 1
        self.protocol.close()
        waiting = self._waiting
        if waiting is not None:
            self._waiting = None
            waiting.cancel()
        session = self.session
        if session is None or session.connection is not self:
            return
        self.session = None
        now = broker.now()
        if self.clean_disconnect:
            log.info("Client %s disconnected.", self.client_id)
        else:
            log.info("Client %s closed its connection%s.", self.client_id, _cause(exc))
        broker.detach(session, publish_will=not self.clean_disconnect, now=now)

    def on_writable(self) -> None:
        if self.session is not None:
            self.session.pump(self.broker.now())
        # The packets left unhandled while the client was not reading (_handle_packets).
        self._carry_on()

    def wants_input(self) -> bool:
        return self.writable and self._waiting is None

    # Waiting for an authentication backend.

    def _wait(self, answer: Awaitable[object], then: Callable[[object], None]) -> None:
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
        if self.protocol.state is State.CLOSED:
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
        if self._waiting is None and self.protocol.state is not State.CLOSED:
            self._handle_packets(self.broker.now())

    # Leaving.

    def close_transport(self) -> None:
        super().close_transport()
        if self.closing_since is None:
            self.closing_since = self.broker.now()

    def disconnect(self, reason: int, reason_string: str | None = None) -> None:
        """Close from the broker's side; MQTT 5 clients are told why first."""
        # Packets still waiting for a commit promised nothing: the client resends.
        self.drop_held()
        if self.version == MQTT_5 and self.session is not None:
            data = Disconnect(reason, reason_string=reason_string).encode(MQTT_5)
            if len(data) > self.maximum_packet_size:
                # The reason string goes first if the client could not take it [MQTT-3.14.2-3].
                data = Disconnect(reason).encode(MQTT_5)
            self.send(data)
        self.protocol.close()
        self.close_transport()

    def _protocol_violation(self, exc: CodecError) -> None:
        who = self.client_id or "<unknown>"
        log.warning("Client %s (%s) protocol violation: %s; disconnecting.", who, self.peer, exc)
        self.broker.stats.protocol_violations += 1
        if isinstance(exc, UnsupportedProtocolVersion) and self.session is None:
            # 3.1.1's answer [MQTT-3.1.2-2]; clients of every level understand it.
            self.send(Connack(False, ConnackReturnCode.UNACCEPTABLE_PROTOCOL_VERSION).encode(4))
        self.disconnect(exc.reason_code, exc.message if self.version == MQTT_5 else None)

    # CONNECT.

    def on_connect(self, packet: Connect, now: float) -> None:
        broker = self.broker
        config = broker.config
        version = self.version = packet.protocol_level
        v5 = version == MQTT_5
        client_id = packet.client_id
        assigned = False
        if not client_id:
            if version == MQTT_3_1 or (not v5 and not packet.clean_start):
                self._refuse(
                    packet, ConnectReasonCode.CLIENT_IDENTIFIER_NOT_VALID, "empty client id"
                )
                return
            # Kept across a wait for authentication, which runs on_connect again.
            client_id = self.client_id or f"auto-{uuid.uuid4()}"
            assigned = True
        if len(client_id.encode()) > config.max_client_id_length:  # bytes, as documented
            self._refuse(
                packet, ConnectReasonCode.CLIENT_IDENTIFIER_NOT_VALID, "client id too long"
            )
            return
        identity_source = self.listener.config.use_identity_as_username
        if identity_source:
            # The certificate names the client; a username in CONNECT does not count.
            packet.username = certificate_identity(
                self.transport and self.transport.get_extra_info("peercert"), identity_source
            )
            if packet.username is None:
                self._refuse(
                    packet, ConnectReasonCode.NOT_AUTHORIZED, "no client certificate identity"
                )
                return
        if (
            packet.username is None
            and packet.authentication_method is None
            and not self.listener.allow_anonymous
        ):
            self._refuse(packet, ConnectReasonCode.NOT_AUTHORIZED, "anonymous access not allowed")
            return
        keep_alive = packet.keep_alive
        server_keep_alive = None
        if keep_alive > config.max_keep_alive or (
            keep_alive == 0 and config.max_keep_alive < 65535
        ):
            if not v5:
                # 3.1.x cannot be told another keep-alive; refuse as Mosquitto does.
                self._refuse(
                    packet, ConnectReasonCode.CLIENT_IDENTIFIER_NOT_VALID, "keep alive too long"
                )
                return
            keep_alive = server_keep_alive = config.max_keep_alive
        will = packet.will
        if will is not None and will.qos > config.maximum_qos:
            # [MQTT-3.2.2-12]; 3.1.x has no return code for it (see _V3_UNANSWERED).
            self._refuse(packet, ConnectReasonCode.QOS_NOT_SUPPORTED, "will QoS not supported")
            return
        if will is not None and will.retain and not config.retain_available:
            # [MQTT-3.2.2-13]; likewise closed without a CONNACK at 3.1.x.
            self._refuse(
                packet, ConnectReasonCode.RETAIN_NOT_SUPPORTED, "will retain not supported"
            )
            return
        limits = broker.topic_limits
        if will is not None and len(will.topic) > limits.gate:
            why = limits.topic_refusal(will.topic)
            if why is not None:
                # A will is published like any PUBLISH, so its topic meets the same limits.
                self._refuse(packet, ConnectReasonCode.TOPIC_NAME_INVALID, f"will {why}")
                return
        self.client_id = client_id
        self.keep_alive = keep_alive
        if v5:
            if packet.receive_maximum is not None:
                self.send_quota = min(packet.receive_maximum, config.max_inflight_messages)
            if packet.maximum_packet_size is not None:
                self.maximum_packet_size = packet.maximum_packet_size
            requested = packet.session_expiry_interval or 0
            expiry = min(requested, config.max_session_expiry_interval)
        else:
            requested = expiry = 0 if packet.clean_start else config.persistent_session_expiry
        accepted = self._authenticated(packet)
        if accepted is None:
            return  # refused, or waiting for the answer (on_connect then runs again)
        session, present = broker.attach(self, client_id, packet.clean_start, now)
        session.expiry_interval = expiry
        session.will = packet.will
        self.session = session
        # After attach: taking over a session ends the old one, and its access with it.
        self.access = broker.auth.access_for(self._client_info(self.username, accepted.attributes))
        broker.session_connected(session)
        if v5:
            connack = Connack(
                present,
                ConnectReasonCode.SUCCESS,
                session_expiry_interval=expiry if expiry != requested else None,
                receive_maximum=config.receive_maximum,
                maximum_qos=config.maximum_qos if config.maximum_qos < 2 else None,
                retain_available=int(config.retain_available),
                maximum_packet_size=config.max_packet_size,
                assigned_client_identifier=client_id if assigned else None,
                topic_alias_maximum=config.topic_alias_maximum,
                wildcard_subscription_available=1,
                subscription_identifier_available=1,
                shared_subscription_available=1,
                server_keep_alive=server_keep_alive,
                authentication_method=self.auth_method,
                authentication_data=accepted.data,
            )
            data = connack.encode(MQTT_5)
            if len(data) > self.maximum_packet_size:
                # [MQTT-3.1.2-24]: a client with a tiny Maximum Packet Size still gets its
                # CONNACK; the properties that only restate their defaults go first.
                connack.retain_available = None if config.retain_available else 0
                connack.wildcard_subscription_available = None
                connack.subscription_identifier_available = None
                connack.shared_subscription_available = None
                data = connack.encode(MQTT_5)
            self.send(data)
        else:
            self.send(Connack(present, ConnackReturnCode.ACCEPTED).encode(version))
        log.info(
            "New client connected from %s as %s (p%d, c%d, k%d%s).",
            self.peer,
            client_id,
            version,
            packet.clean_start,
            keep_alive,
            "" if self.username is None else f", u'{self.username}'",
        )
        session.resume(now)
        self._flush_burst()

    def _flush_burst(self) -> None:
        """Write a burst (retained messages, a resumed session's) out now if it is large:
        the transport's high-water mark then stops _handle_packets before the next packet.
        Other packets are answered with about their own size (a PUBACK may free the slot
        of one queued message), so the size of each read bounds those.
        """
        if self.pending_bytes() >= WRITE_BUFFER_HIGH:
            self.flush()

    def _authenticated(self, packet: Connect) -> AuthResult | None:
        """The answer to this CONNECT's credentials, or None if refused or not known yet.

        Not known yet: the connection waits for the backend (or for the client's part of
        an AUTH exchange) and on_connect runs again with ``_auth_result`` set.
        """
        result = self._auth_result
        method = packet.authentication_method
        if result is None:
            auth = self.broker.auth
            self._connect = packet
            if method is not None:
                exchange = auth.start_auth(method, self._client_info(packet.username))
                if exchange is None:
                    self._refuse(
                        packet,
                        ConnectReasonCode.BAD_AUTHENTICATION_METHOD,
                        f"authentication method {method!r} not offered",
                    )
                    return None
                self.auth_method = method
                self._exchange = exchange
                self._wait(exchange.step(packet.authentication_data), self._auth_step_done)
                return None
            # A listener that takes the username from the client certificate has checked
            # the credential already (and the CONNECT's password is not the user's).
            certified = bool(self.listener.config.use_identity_as_username)
            if certified or not auth.needs_authentication(packet.username):
                result = _NOTHING_TO_CHECK
            else:
                request = AuthRequest(self._client_info(packet.username), packet.password)
                self._wait(auth.authenticate(request), self._credentials_checked)
                return None
        self._auth_result = None
        self._connect = None
        if not result.allowed:
            why = result.reason_string or "not authorized"
            self._refuse(packet, _refusal(result.reason_code), why)
            return None
        username = packet.username if result.username is None else result.username
        if method is not None and packet.username not in (None, username):
            self._refuse(
                packet,
                ConnectReasonCode.NOT_AUTHORIZED,
                "the username differs from the identity authenticated",
            )
            return None
        self.username = username
        return result

    def _credentials_checked(self, result: object) -> None:
        assert isinstance(result, AuthResult)  # noqa: S101
        assert self._connect is not None  # noqa: S101
        self._auth_result = result
        self.on_connect(self._connect, self.broker.now())

    def _client_info(
        self, username: str | None, attributes: Mapping[str, object] | None = None
    ) -> ClientInfo:
        label = self.listener.label
        if attributes is None:
            return ClientInfo(self.client_id, username, self.peer, self.version, label)
        return ClientInfo(self.client_id, username, self.peer, self.version, label, attributes)

    def _refuse(self, packet: Connect, reason: ConnectReasonCode, why: str) -> None:
        log.warning(
            "Refused connection from %s as %r (p%d): %s.",
            self.peer,
            packet.client_id,
            packet.protocol_level,
            why,
        )
        self.broker.stats.refused_connections += 1
        if packet.protocol_level == MQTT_5:
            data = Connack(False, reason, reason_string=why).encode(MQTT_5)
            limit = packet.maximum_packet_size
            if limit is not None and len(data) > limit:
                # The reason string goes first if the client could not take it [MQTT-3.2.2-19].
                data = Connack(False, reason).encode(MQTT_5)
            self.send(data)
        elif reason not in _V3_UNANSWERED:
            code = _V3_CODES.get(reason, ConnackReturnCode.NOT_AUTHORIZED)
            self.send(Connack(False, code).encode(packet.protocol_level))
        self.protocol.close()
        self.close_transport()

    # PUBLISH and its acknowledgements.

    def on_publish(self, packet: Publish, now: float) -> None:
        broker = self.broker
        config = broker.config
        session = self.session
        assert session is not None  # noqa: S101  (the state machine only passes PUBLISH after CONNECT)
        limits = broker.topic_limits
        if len(packet.topic) > limits.gate:
            why = limits.topic_refusal(packet.topic)
            if why is not None:
                self._publish_refused(packet, why)
                return
        access = self.access
        if access is None:
            # Nothing restricts this client but the $-topic rule.
            allowed = packet.topic[:1] != "$" or broker.auth.sys_publish_allowed(packet.topic)
        else:
            decision = access.may_write(packet.topic)
            if not isinstance(decision, bool):
                # A plugin is deciding: handle this PUBLISH again once it has (cached).
                self._wait(decision, lambda _: self.on_publish(packet, self.broker.now()))
                return
            allowed = decision
        qos = packet.qos
        broker.stats.messages_received += 1
        if qos > config.maximum_qos:
            self.disconnect(DisconnectReasonCode.QOS_NOT_SUPPORTED, "QoS not supported")
            return
        if packet.retain and not config.retain_available:
            self.disconnect(DisconnectReasonCode.RETAIN_NOT_SUPPORTED, "retain not supported")
            return
        packet_id = packet.packet_id
        store = broker.store
        changes = store.op_count
        if qos:
            awaiting = session.awaiting_release
            if qos == 2 and packet_id in awaiting:
                # A resend of a message already accepted: acknowledge, do not deliver again.
                self.send(Pubrec(packet_id).encode(self.version))
                return
            # A QoS 1 PUBLISH is unacknowledged until our PUBACK, so it counts as well.
            if len(awaiting) >= config.receive_maximum:
                self.disconnect(
                    DisconnectReasonCode.RECEIVE_MAXIMUM_EXCEEDED, "receive maximum exceeded"
                )
                return
            if qos == 2:
                awaiting.add(packet_id)
                if session.store is not None:
                    session.store.receive_id_added(session, packet_id)
        if not allowed:
            # By the ACL or plugin, or a $-topic (the broker's own, e.g. $SYS) not allowed
            # by allow_sys_publish. MQTT 3.1.1 cannot say no: acknowledged, not delivered.
            log.warning("Client %s denied PUBLISH to %r.", self.client_id, packet.topic)
            if qos == 2 and self.version == MQTT_5:
                # Our PUBREC 0x87 ends the exchange: the id is free again [MQTT-4.3.3-9].
                session.awaiting_release.discard(packet_id)
                if session.store is not None:
                    session.store.receive_id_removed(session, packet_id)
            if store.op_count != changes:
                store.hold(self)
            self._acknowledge(qos, packet_id, PubackReasonCode.NOT_AUTHORIZED)
            return
        message = Message.from_publish(packet, self.client_id, now)
        if packet.retain:
            broker.router.store_retained(message)
        delivered = broker.router.publish(message, now)
        broker.stats.messages_sent += delivered
        if qos:
            if store.op_count != changes:
                # Acknowledged means durable: the PUBACK/PUBREC waits for the commit.
                store.hold(self)
            self._acknowledge(
                qos,
                packet_id,
                PubackReasonCode.SUCCESS if delivered else PubackReasonCode.NO_MATCHING_SUBSCRIBERS,
            )

    def _publish_refused(self, packet: Publish, why: str) -> None:
        """A PUBLISH over max_topic_length or max_topic_levels: never delivered."""
        log.warning("Client %s PUBLISH refused: %s.", self.client_id, why)
        if packet.qos and self.version == MQTT_5:
            # 0x90: the topic is well formed but this server does not accept it. The
            # exchange ends there (a PUBREC >= 0x80 frees the id [MQTT-4.3.3-9]).
            self._acknowledge(packet.qos, packet.packet_id, PubackReasonCode.TOPIC_NAME_INVALID)
            return
        # QoS 0 has no acknowledgement to refuse with, and 3.1.x no reason codes: an
        # acknowledged and dropped message would be lost without a word.
        self.disconnect(DisconnectReasonCode.TOPIC_NAME_INVALID, why)

    def _acknowledge(self, qos: int, packet_id: int, reason: int) -> None:
        if not qos:
            return
        version = self.version
        if version != MQTT_5 or reason == 0:
            first = b"\x40\x02" if qos == 1 else b"\x50\x02"
            self.send(first + packet_id.to_bytes(2, "big"))
        elif qos == 1:
            self.send(Puback(packet_id, reason).encode(version))
        else:
            self.send(Pubrec(packet_id, reason).encode(version))

    def on_pubrel(self, packet: Pubrel, now: float) -> None:
        assert self.session is not None  # noqa: S101
        awaiting = self.session.awaiting_release
        if packet.packet_id in awaiting:
            awaiting.discard(packet.packet_id)
            store = self.session.store
            if store is not None:
                # Until the id's removal is durable, PUBCOMP must wait: after a crash
                # the restored id would make us drop the client's next message with it.
                store.receive_id_removed(self.session, packet.packet_id)
                store.hold(self)
            self.send(b"\x70\x02" + packet.packet_id.to_bytes(2, "big"))
        else:
            reason = PubrelReasonCode.PACKET_IDENTIFIER_NOT_FOUND
            self.send(Pubcomp(packet.packet_id, reason).encode(self.version))

    def on_puback(self, packet: Puback, now: float) -> None:
        assert self.session is not None  # noqa: S101
        self.session.puback(packet.packet_id, now)

    def on_pubrec(self, packet: Pubrec, now: float) -> None:
        assert self.session is not None  # noqa: S101
        session = self.session
        if session.pubrec(packet.packet_id, packet.reason_code >= 0x80, now):
            self.send(b"\x62\x02" + packet.packet_id.to_bytes(2, "big"))
        elif packet.reason_code < 0x80:
            reason = PubrelReasonCode.PACKET_IDENTIFIER_NOT_FOUND
            self.send(Pubrel(packet.packet_id, reason).encode(self.version))

    def on_pubcomp(self, packet: Pubcomp, now: float) -> None:
        assert self.session is not None  # noqa: S101
        self.session.pubcomp(packet.packet_id, now)

    # SUBSCRIBE and UNSUBSCRIBE.

    def on_subscribe(self, packet: Subscribe, now: float) -> None:
        session = self.session
        assert session is not None  # noqa: S101
        access = self.access
        limits = self.broker.topic_limits
        if access is not None:
            decisions = [
                access.may_subscribe(_inner(sub.topic_filter))
                for sub in packet.subscriptions
                if limits.filter_refusal(sub.topic_filter) is None  # not worth asking
            ]
            undecided = [decision for decision in decisions if not isinstance(decision, bool)]
            if undecided:
                # A plugin is deciding: handle this SUBSCRIBE again once it has (cached).
                answers = asyncio.gather(*undecided)
                self._wait(answers, lambda _: self.on_subscribe(packet, self.broker.now()))
                return
        broker = self.broker
        router = broker.router
        maximum_qos = broker.config.maximum_qos
        max_subscriptions = broker.config.max_subscriptions_per_client
        v5 = self.version == MQTT_5
        codes: list[int] = []
        retained_to_send: list[tuple[SubscriptionRecord, bool]] = []
        for sub in packet.subscriptions:
            why = limits.filter_refusal(sub.topic_filter)
            if why is not None:
                log.warning("Client %s SUBSCRIBE refused: %s.", self.client_id, why)
                codes.append(SubackReasonCode.TOPIC_FILTER_INVALID if v5 else 0x80)
                continue
            group, inner = parse_shared(sub.topic_filter)
            if access is not None and access.may_subscribe(inner) is not True:
                # Refused in the SUBACK, not silently accepted as Mosquitto does.
                log.warning("Client %s denied SUBSCRIBE to %r.", self.client_id, sub.topic_filter)
                codes.append(SubackReasonCode.NOT_AUTHORIZED if v5 else 0x80)
                continue
            if (
                max_subscriptions
                and len(session.subscriptions) >= max_subscriptions
                and sub.topic_filter not in session.subscriptions
            ):
                log.warning(
                    "Client %s SUBSCRIBE refused: over max_subscriptions_per_client (%d).",
                    self.client_id,
                    max_subscriptions,
                )
                codes.append(SubackReasonCode.QUOTA_EXCEEDED if v5 else 0x80)
                continue
            granted = min(sub.qos, maximum_qos)
            record = SubscriptionRecord(
                self.client_id,
                sub.topic_filter,
                granted,
                sub.no_local,
                sub.retain_as_published,
                sub.retain_handling,
                packet.subscription_identifier,
                group,
            )
            is_new = router.tree.add(self.client_id, sub.topic_filter, record)
            session.subscriptions[sub.topic_filter] = record
            if session.store is not None:
                session.store.subscription_added(session, record)
            codes.append(granted)
            if group is None and (
                sub.retain_handling == 0 or (sub.retain_handling == 1 and is_new)
            ):
                retained_to_send.append((record, is_new))
        if session.store is not None:
            session.store.hold(self)
        self.send(Suback(packet.packet_id, tuple(codes)).encode(self.version))
        for record, _is_new in retained_to_send:
            broker.send_retained(session, record, now)
        self._flush_burst()

    def on_unsubscribe(self, packet: Unsubscribe, now: float) -> None:
        session = self.session
        assert session is not None  # noqa: S101
        tree = self.broker.router.tree
        codes = []
        for topic_filter in packet.topic_filters:
            if session.subscriptions.pop(topic_filter, None) is None:
                codes.append(UnsubackReasonCode.NO_SUBSCRIPTION_EXISTED)
            else:
                tree.remove(self.client_id, topic_filter)
                codes.append(UnsubackReasonCode.SUCCESS)
                if session.store is not None:
                    session.store.subscription_removed(session, topic_filter)
        if session.store is not None:
            session.store.hold(self)
        self.send(Unsuback(packet.packet_id, tuple(codes)).encode(self.version))

    # The rest.

    def on_pingreq(self, packet: Packet, now: float) -> None:
        self.send(_PINGRESP)

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
            session.expiry_interval = min(expiry, self.broker.config.max_session_expiry_interval)
        self.clean_disconnect = (
            packet.reason_code != DisconnectReasonCode.DISCONNECT_WITH_WILL_MESSAGE
        )
        if self.clean_disconnect:
            session.will = None
        self.protocol.close()
        self.close_transport()

    # Enhanced authentication (MQTT 5.0 section 4.12).

    def on_auth(self, packet: Auth, now: float) -> None:
        method = self.auth_method
        if method is None:
            raise _protocol_error("AUTH without an authentication method")  # [MQTT-3.15.2-1]
        if packet.authentication_method != method:
            raise _protocol_error("AUTH with another authentication method")  # [MQTT-4.12.0-5]
        reason = packet.reason_code
        if self._exchange is None:
            if reason != AuthReasonCode.RE_AUTHENTICATE:
                raise _protocol_error(f"AUTH 0x{reason:02X} outside an authentication exchange")
            exchange = self.broker.auth.start_auth(method, self._client_info(self.username))
            if exchange is None:  # the method's backend went away (a reload)
                self.disconnect(DisconnectReasonCode.NOT_AUTHORIZED, "re-authentication failed")
                return
            self._exchange = exchange
        elif reason != AuthReasonCode.CONTINUE_AUTHENTICATION:
            raise _protocol_error(f"AUTH 0x{reason:02X} in an authentication exchange")
        self._wait(self._exchange.step(packet.authentication_data), self._auth_step_done)

    def _auth_step_done(self, step: object) -> None:
        method = self.auth_method
        if isinstance(step, Challenge):
            if self.session is None:
                self.protocol.authenticating()  # until CONNACK: only AUTH or DISCONNECT
            self.send(Auth(AuthReasonCode.CONTINUE_AUTHENTICATION, method, step.data).encode())
            return
        assert isinstance(step, AuthResult)  # noqa: S101
        self._exchange = None
        if self.session is None:
            assert self._connect is not None  # noqa: S101
            self.protocol.authenticated()
            self._auth_result = step
            self.on_connect(self._connect, self.broker.now())
            return
        # Re-authentication: the identity may not change on a connection.
        if step.allowed and step.username in (None, self.username):
            log.info("Client %s re-authenticated with %s.", self.client_id, method)
            self.send(Auth(AuthReasonCode.SUCCESS, method, step.data).encode())
            return
        log.warning(
            "Client %s failed re-authentication with %s: %s; disconnecting.",
            self.client_id,
            method,
            step.reason_string if not step.allowed else "a different identity",
        )
        # [MQTT-4.12.1-2]: DISCONNECT with a reason, then close.
        self.disconnect(DisconnectReasonCode.NOT_AUTHORIZED, "re-authentication failed")


def _inner(topic_filter: str) -> str:
    """What a subscription filter reaches: of a shared one, the filter after the group."""
    return parse_shared(topic_filter)[1]


def _protocol_error(message: str) -> CodecError:
    return ProtocolError(message)


def _cause(exc: Exception | None) -> str:
    return "" if exc is None else f" ({exc})"


def _unexpected(conn: ClientConnection, packet: Packet, now: float) -> None:
    # ServerConnection refuses these before they get here.
    raise _protocol_error(f"unexpected {type(packet).__name__.upper()}")


def _refusal(code: int) -> ConnectReasonCode:
    """A backend's refusal code as a CONNACK reason; anything not a failure code is 0x87."""
    try:
        reason = ConnectReasonCode(code)
    except ValueError:
        return ConnectReasonCode.NOT_AUTHORIZED
    return reason if reason >= 0x80 else ConnectReasonCode.NOT_AUTHORIZED


_V3_CODES = {
    ConnectReasonCode.CLIENT_IDENTIFIER_NOT_VALID: ConnackReturnCode.IDENTIFIER_REJECTED,
    ConnectReasonCode.BAD_USERNAME_OR_PASSWORD: ConnackReturnCode.BAD_USERNAME_OR_PASSWORD,
    ConnectReasonCode.NOT_AUTHORIZED: ConnackReturnCode.NOT_AUTHORIZED,
    ConnectReasonCode.BAD_AUTHENTICATION_METHOD: ConnackReturnCode.NOT_AUTHORIZED,
    ConnectReasonCode.SERVER_UNAVAILABLE: ConnackReturnCode.SERVER_UNAVAILABLE,
    ConnectReasonCode.SERVER_BUSY: ConnackReturnCode.SERVER_UNAVAILABLE,
}

# Refusals that no 3.1.x return code describes: the connection is closed without a
# CONNACK (3.1.1 [MQTT-3.2.2-6]), as 3.1.x closes a PUBLISH above these limits.
_V3_UNANSWERED = frozenset(
    (
        ConnectReasonCode.QOS_NOT_SUPPORTED,
        ConnectReasonCode.RETAIN_NOT_SUPPORTED,
        ConnectReasonCode.TOPIC_NAME_INVALID,
    )
)

_HANDLERS: tuple[Callable[[ClientConnection, Packet, float], None], ...] = (  # type: ignore[assignment]
    _unexpected,
    ClientConnection.on_connect,
    _unexpected,
    ClientConnection.on_publish,
    ClientConnection.on_puback,
    ClientConnection.on_pubrec,
    ClientConnection.on_pubrel,
    ClientConnection.on_pubcomp,
    ClientConnection.on_subscribe,
    _unexpected,
    ClientConnection.on_unsubscribe,
    _unexpected,
    ClientConnection.on_pingreq,
    _unexpected,
    ClientConnection.on_disconnect,
    ClientConnection.on_auth,
)
