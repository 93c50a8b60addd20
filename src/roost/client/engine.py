"""The part of the client that runs from the event loop: connection, bytes, events, timers.

``ClientEngine`` is what ``Client`` stands on. Client's methods are the coroutines an
application awaits: they check arguments, hand requests to the sans-IO
``ClientConnection`` and wait on futures. Everything that resolves those futures lives
here: opening a connection and waiting for its CONNACK, the callbacks from the ``Link``
(bytes in, connection lost), the events of the state machine, the keep-alive timer,
the enhanced-authentication steps, and the decision to reconnect or to give up.

Packets are handled synchronously in ``Link.data_received``; the only tasks are the
caller's own, with a reconnect policy one reconnect loop, and with enhanced
authentication one short task per step of an exchange (the authenticator's methods are
coroutines), and one per call of a coroutine ``on_connect`` / ``on_disconnect``
callback. Keep-alive is a single ``loop.call_at`` timer re-armed from the state
machine's next deadline. The byte stream runs over TCP, TLS, or a WebSocket
(``WebSocketLink``) over either.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from roost.client.auth import Authenticator
from roost.client.connecting import (
    Endpoint,
    foreign_answer,
    loss_error,
    no_connack_error,
    open_link,
)
from roost.client.errors import (
    AuthenticationError,
    ClientClosed,
    ConnectError,
    ConnectionLost,
    ConnectRefused,
    ConnectTimeout,
    MQTTError,
    PublishError,
    ServerDisconnected,
    TLSError,
    is_failure,
)
from roost.client.inbox import Inbox
from roost.client.message import Message, PublishResult
from roost.client.reconnect import Reconnector, ReconnectPolicy, worth_reconnecting
from roost.client.trace import describe
from roost.client.transport import Link
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
    Suback,
    Subscription,
    Unsuback,
)
from roost.protocol.client_conn import ClientConnection
from roost.protocol.client_events import (
    AuthReceived,
    ConnackRefused,
    Connected,
    DisconnectReceived,
    Event,
    KeepAliveTimeout,
    MessageReceived,
    PublishCompleted,
    SubscribeCompleted,
    UnsubscribeCompleted,
)
from roost.protocol.client_states import ClientState

log = logging.getLogger("roost.client")
packet_log = logging.getLogger("roost.client.packets")

# Client(on_connect=...): called after every accepted CONNECT, the first and each
# reconnect (``reconnect`` says which), with the server's CONNACK.
OnConnect = Callable[[Connack, bool], Awaitable[None] | None]
# Client(on_disconnect=...): called when a connection that was up ends; None for the
# application's own disconnect(), else the error (ConnectionLost, ServerDisconnected...).
OnDisconnect = Callable[[BaseException | None], Awaitable[None] | None]


class ClientEngine:
    """The connection machinery under ``Client``: one network connection at a time, the
    futures its requests wait on, keep-alive, enhanced authentication and reconnecting."""

    # The configuration: Client.__init__ sets it from its arguments.
    host: str
    port: int
    transport: str
    websocket_path: str
    websocket_headers: tuple[tuple[str, str], ...]
    tls: ssl.SSLContext | None
    server_hostname: str | None
    auth: Authenticator | None
    version: int
    client_id: str
    clean_start: bool
    connect_timeout: float
    reconnect: ReconnectPolicy | None
    on_connect: OnConnect | None
    on_disconnect: OnDisconnect | None

    # Tried in order at every (re)connect after the first address (the host and port
    # given to Client), until one accepts; host and port then name the one connected.
    fallback_addresses: tuple[tuple[str, int], ...]
    _first_address: tuple[str, int]

    def __init__(
        self,
        connect: Connect,
        ping_timeout: float | None,
        max_queued_messages: int,
        manual_ack: bool = False,
        manual_release: bool = False,
        packet_ids: tuple[int, int] = (1, 0xFFFF),
    ) -> None:
        self._connect_packet = connect
        self._conn = ClientConnection(
            ping_timeout,
            manual_ack=manual_ack,
            manual_release=manual_release,
            packet_ids=packet_ids,
        )
        self._connection_number = 0  # network connections opened so far
        self._inbox = Inbox(max_queued_messages)
        self._link: Link | None = None
        self._dropped: list[Link] = []
        self._connack: asyncio.Future[Connack] | None = None
        self.connack: Connack | None = None
        self._publishes: dict[int, asyncio.Future[PublishResult]] = {}
        # request(): the response topic once subscribed, and the requests awaiting a
        # response by correlation data. Messages on that topic go here, not to streams.
        self._response_topic: str | None = None
        self._responses: dict[bytes, asyncio.Future[Message]] = {}
        self._callback_tasks: set[asyncio.Task[None]] = set()
        self._requests: dict[int, asyncio.Future[Suback | Unsuback]] = {}
        self._waiters: list[asyncio.Future[None]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._reconnector = Reconnector(self._reopen, self._fail)
        self._auth_tasks: set[asyncio.Task[None]] = set()
        self._reauth: asyncio.Future[None] | None = None
        self._closing = False
        self._failure: BaseException | None = None
        self._loss: BaseException | None = None
        self._ever_connected = False
        # While connecting: None before the network connection is up, then whether
        # the server has sent anything at all (a silent server is named in the timeout).
        self._answered: bool | None = None
        # What to subscribe to again when a reconnect finds the session gone.
        self._subscriptions: dict[str, tuple[Subscription, int | None, tuple[tuple[str, str], ...]]]
        self._subscriptions = {}

    @property
    def connected(self) -> bool:
        """A connection is up and the server has accepted it."""
        return self._conn.state is ClientState.CONNECTED and self._link is not None

    # Opening a connection.

    async def _open(self, clean_start: bool) -> Connack:
        """Connect to host:port, else to each fallback address in turn; the last
        failure is raised. A success stays on that address until it is lost."""
        fallbacks = self.fallback_addresses
        if not fallbacks:
            return await self._open_one(clean_start)
        first = self._first_address
        failure: Exception | None = None
        for host, port in (first, *fallbacks):
            self.host, self.port = host, port
            try:
                return await self._open_one(clean_start)
            except (MQTTError, OSError) as exc:
                if self._closing:
                    raise
                log.info("Connecting to %s:%d failed: %s", host, port, exc)
                failure = exc
        assert failure is not None  # noqa: S101  (the loop ran at least once)
        self.host, self.port = first
        raise failure

    async def _open_one(self, clean_start: bool) -> Connack:
        self._answered = None
        try:
            async with asyncio.timeout(self.connect_timeout):
                return await self._handshake(clean_start)
        except TimeoutError as exc:
            if isinstance(exc, MQTTError):
                raise
            where = self._endpoint().where
            if self._answered is False and self.transport == "tcp":
                # The connection was up and the server said nothing: the way a WebSocket
                # port waits for an HTTP request that an MQTT CONNECT never completes.
                raise ConnectTimeout(
                    f"connected to {where} but no CONNACK came within "
                    f"{self.connect_timeout:g} s: is it a WebSocket port (connect with "
                    "transport='websockets', roost tools: --ws), or not MQTT at all?"
                ) from None
            raise ConnectTimeout(
                f"no connection to {where} within {self.connect_timeout:g} s"
            ) from None

    async def _reopen(self) -> Connack:
        """One attempt of the reconnect loop."""
        # MQTT 5 asks to resume; the session expiry decides whether the server kept one.
        return await self._open(self.clean_start if self.version != MQTT_5 else False)

    def _endpoint(self) -> Endpoint:
        return Endpoint(
            self.host,
            self.port,
            self.tls,
            self.server_hostname,
            self.transport,
            self.websocket_path,
            self.websocket_headers,
        )

    async def _handshake(self, clean_start: bool) -> Connack:
        loop = asyncio.get_running_loop()
        endpoint = self._endpoint()
        where = endpoint.where
        auth = self.auth
        first: bytes | None = None
        if auth is not None:
            try:
                first = await auth.start()
            except Exception as exc:
                raise AuthenticationError(f"the authenticator failed to start: {exc}") from exc
        link = await open_link(endpoint, self)
        self._link = link
        self._connection_number += 1
        self._answered = False
        self._loss = None
        connack_future: asyncio.Future[Connack] = loop.create_future()
        self._connack = connack_future
        conn = self._conn
        conn.trace = self._trace if packet_log.isEnabledFor(logging.DEBUG) else None
        packet = self._connect_packet
        packet.clean_start = clean_start
        if auth is not None:
            packet.authentication_method = auth.method
            packet.authentication_data = first
        conn.connect(packet, loop.time())
        self._flush()
        try:
            connack = await connack_future
        except BaseException:
            self._drop_link()
            raise
        reconnect = self.connack is not None
        self.connack = connack
        if connack.assigned_client_identifier is not None:
            self.client_id = connack.assigned_client_identifier
        log.info(
            "Connected to %s as %r (MQTT %s, session present %d).",
            where,
            self.client_id,
            {3: "3.1", 4: "3.1.1", 5: "5.0"}[self.version],
            connack.session_present,
        )
        if self.on_connect is not None:
            self._call_back("on_connect", self.on_connect, connack, reconnect)
        return connack

    def _call_back(
        self, name: str, callback: Callable[..., Awaitable[None] | None], *args: Any
    ) -> None:
        """Run an application callback; a coroutine one as a task. What it raises is
        logged: the connection's life does not depend on the application's code."""
        try:
            result = callback(*args)
        except Exception:
            log.exception("The %s callback raised.", name)
            return
        if inspect.isawaitable(result):
            task = asyncio.get_running_loop().create_task(self._await_callback(name, result))
            self._callback_tasks.add(task)
            task.add_done_callback(self._callback_tasks.discard)

    async def _await_callback(self, name: str, result: Awaitable[None]) -> None:
        try:
            await result
        except Exception:
            log.exception("The %s callback raised.", name)

    def _drop_link(self) -> None:
        link = self._link
        self._link = None
        self._conn.connection_lost()
        self._cancel_timer()
        if link is not None:
            link.abort()
            # disconnect() waits for it to close, so no socket outlives the client.
            self._dropped.append(link)
        # Publishers waiting for this connection look again: wait on, or give up.
        self._wake_waiters()

    # Waiting for a usable connection.

    def _check_usable(self) -> None:
        """QoS 1/2 and requests may wait in the session while a reconnect is under way."""
        if self._failure is not None:
            raise self._failure
        if self._link is None and not self._reconnector.running:
            raise ClientClosed("not connected")

    async def _wait_connected(self) -> None:
        while not self.connected:
            self._check_usable()
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    def _wake_waiters(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    # Bytes in and out (called from Link).

    def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        data = self._conn.data_to_send(loop.time())
        if data and self._link is not None:
            self._link.write(data)
        self._arm_timer()

    def _on_data(self, link: Link, data: bytes) -> None:
        """Bytes from ``link``: parse them, act on the events, send what they call for."""
        if link is not self._link:
            return
        self._answered = True
        if self._conn.state is ClientState.CONNECTING and self.transport == "tcp":
            foreign = foreign_answer(data)
            if foreign is not None:
                # Not MQTT at all: say what it is rather than how it fails to parse.
                self._loss = ConnectError(f"cannot connect to {self._endpoint().where}: {foreign}")
                link.abort()
                return
        now = asyncio.get_running_loop().time()
        try:
            events = self._conn.receive_data(data, now)
        except CodecError as exc:
            self._protocol_error(link, exc)
            return
        for event in events:
            self._dispatch(event)
        self._flush()

    def _protocol_error(self, link: Link, exc: CodecError) -> None:
        log.warning("Protocol error from the server: %s; disconnecting.", exc)
        self._loss = ConnectionLost(f"protocol error from the server: {exc}")
        self._flush()
        link.close()

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, MessageReceived):
            message = Message.from_publish(event.publish, self._connection_number)
            if message.topic == self._response_topic:
                self._take_response(message)
            else:
                self._inbox.deliver(message)
        elif isinstance(event, PublishCompleted):
            self._complete_publish(event)
        elif isinstance(event, SubscribeCompleted | UnsubscribeCompleted):
            request = self._requests.pop(event.packet_id, None)
            ack = event.suback if isinstance(event, SubscribeCompleted) else event.unsuback
            if request is not None and not request.done():
                request.set_result(ack)
        elif isinstance(event, Connected):
            self._on_connected(event)
        elif isinstance(event, ConnackRefused):
            connack = event.connack
            error = ConnectRefused(connack.reason_code, connack.reason_string, self.version)
            if self._connack is not None and not self._connack.done():
                self._connack.set_exception(error)
        elif isinstance(event, DisconnectReceived):
            packet = event.disconnect
            # Not logged here: _on_lost logs the loss it causes (or connect() raises
            # it), and the packet trace has the DISCONNECT itself.
            self._loss = ServerDisconnected(packet.reason_code, packet.reason_string)
        elif isinstance(event, AuthReceived):
            self._on_auth(event.auth)
        else:  # VerifyServer
            self._run_auth_step(self._verify_server(self._link, event.connack))

    def _take_response(self, message: Message) -> None:
        future = self._responses.pop(message.correlation_data or b"", None)
        if future is None or future.done():
            # Late (its request timed out) or not ours: nobody is waiting for it.
            log.debug("Response on %s matches no request; dropped.", message.topic)
            return
        future.set_result(message)

    def _complete_publish(self, event: PublishCompleted) -> None:
        future = self._publishes.pop(event.packet_id, None)
        if future is None or future.done():
            return
        if is_failure(event.reason_code):
            future.set_exception(
                PublishError(event.reason_code, event.reason_string, event.packet_id)
            )
        else:
            future.set_result(
                PublishResult(
                    event.packet_id, event.reason_code, event.reason_string, event.user_properties
                )
            )

    def _on_connected(self, event: Connected) -> None:
        for completed in event.completed:
            self._complete_publish(completed)
        if self._ever_connected and not event.session_present and self._subscriptions:
            # The server forgot our subscriptions; make them again (no one awaits these).
            for sub, identifier, props in self._subscriptions.values():
                self._conn.subscribe([sub], identifier, props)
        self._ever_connected = True
        if self._connack is not None and not self._connack.done():
            self._connack.set_result(event.connack)
        self._wake_waiters()

    # Enhanced authentication: each step awaits the authenticator in a task of its own.

    def _run_auth_step(self, step: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(step)
        self._auth_tasks.add(task)
        task.add_done_callback(self._auth_tasks.discard)

    def _on_auth(self, packet: Auth) -> None:
        # The state machine let only an expected AUTH through: 0x18 (answer it) or the
        # 0x00 that ends a re-authentication (check the server's final data).
        if packet.reason_code == AuthReasonCode.CONTINUE_AUTHENTICATION:
            self._run_auth_step(self._answer_auth(self._link, packet.authentication_data))
        else:
            self._run_auth_step(self._finish_reauth(self._link, packet.authentication_data))

    async def _answer_auth(self, link: Link | None, data: bytes | None) -> None:
        assert self.auth is not None  # noqa: S101  (no AUTH gets through without it)
        try:
            reply = await self.auth.respond(data)
        except Exception as exc:  # noqa: BLE001  (any authenticator failure ends the exchange)
            self._auth_failed(link, exc)
            return
        if link is not None and link is self._link:
            self._conn.answer_auth(reply)
            self._flush()

    async def _verify_server(self, link: Link | None, connack: Connack) -> None:
        assert self.auth is not None  # noqa: S101
        try:
            await self.auth.finish(connack.authentication_data)
        except Exception as exc:  # noqa: BLE001
            self._auth_failed(link, exc)
            return
        if link is None or link is not self._link:
            return
        try:
            events = self._conn.server_verified(asyncio.get_running_loop().time())
        except CodecError as exc:
            self._protocol_error(link, exc)
            return
        for event in events:
            self._dispatch(event)
        self._flush()

    async def _finish_reauth(self, link: Link | None, data: bytes | None) -> None:
        assert self.auth is not None  # noqa: S101
        try:
            await self.auth.finish(data)
        except Exception as exc:  # noqa: BLE001
            self._auth_failed(link, exc)
            return
        reauth = self._reauth
        if link is self._link and reauth is not None and not reauth.done():
            reauth.set_result(None)

    def _auth_failed(self, link: Link | None, exc: Exception) -> None:
        """Our side refuses the exchange: DISCONNECT, close, and tell whoever waits."""
        if link is None or link is not self._link:
            return
        where = self._endpoint().where
        error = AuthenticationError(f"authentication with {where} failed: {exc}")
        error.__cause__ = exc
        log.warning("%s", error)
        self._conn.disconnect(
            Disconnect(
                DisconnectReasonCode.UNSPECIFIED_ERROR, reason_string="authentication failed"
            )
        )
        self._flush()
        self._loss = error
        for future in (self._connack, self._reauth):
            if future is not None and not future.done():
                future.set_exception(error)
        link.close()

    # Losing the connection.

    def _on_lost(self, link: Link, exc: Exception | None) -> None:
        """``link`` closed: fail the connect under way, or reconnect, or give up."""
        if link is not self._link:
            return
        self._link = None
        self._conn.connection_lost()
        self._cancel_timer()
        error = self._loss or loss_error(exc)
        reauth = self._reauth
        if reauth is not None and not reauth.done():
            reauth.set_exception(error)
        if self._connack is not None and not self._connack.done():
            # Still connecting: _handshake raises it, and whoever connects decides.
            if self.tls is not None and exc is not None and not isinstance(error, TLSError):
                # With TLS 1.3 a server refusing our certificate (or its absence) says so
                # after our side of the handshake is done: it shows up as a reset here.
                error = TLSError(
                    f"the server closed the TLS connection before CONNACK ({exc}); "
                    "does it require a client certificate?"
                )
                error.__cause__ = exc
            elif self._loss is None and not isinstance(error, TLSError):
                # Closed before any answer: most often a TLS or WebSocket port that
                # could make nothing of our CONNECT; "connection lost" would hide that.
                error = no_connack_error(self._endpoint().where, exc, self.tls is not None)
            self._connack.set_exception(error)
            return
        if self._closing:
            return
        log.warning("Connection to %s:%d lost: %s", self.host, self.port, error)
        if self.on_disconnect is not None:
            self._call_back("on_disconnect", self.on_disconnect, error)
        if self.reconnect is not None and worth_reconnecting(error):
            self._reconnector.start(self.reconnect)
        else:
            self._fail(error)

    def _fail(self, error: BaseException, clean: bool = False) -> None:
        """The client is down for good: fail what waits, end the message streams."""
        self._failure = error
        self._reconnector.forget()
        reauth = self._reauth
        if reauth is not None and not reauth.done():
            reauth.set_exception(error)
        for futures in (self._publishes, self._requests):
            for future in futures.values():
                if not future.done():
                    future.set_exception(error)
            futures.clear()
        for response in self._responses.values():
            if not response.done():
                response.set_exception(error)
        self._responses.clear()
        self._wake_waiters()
        self._inbox.end(None if clean else error)

    # Keep-alive.

    def _arm_timer(self) -> None:
        deadline = self._conn.next_deadline()
        timer = self._timer
        if deadline is None:
            self._cancel_timer()
            return
        if timer is not None:
            if timer.when() <= deadline:
                return  # fires early, then re-arms for the later deadline
            timer.cancel()
        self._timer = asyncio.get_running_loop().call_at(deadline, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        try:
            self._conn.handle_timer(asyncio.get_running_loop().time())
        except KeepAliveTimeout as exc:
            self._loss = ConnectionLost(f"keep-alive timeout: {exc}")
            if self._link is not None:
                self._link.abort()
            return
        self._flush()

    def _trace(self, direction: str, packet: Packet) -> None:
        packet_log.debug("Client %s %s %s", self.client_id or "-", direction, describe(packet))
