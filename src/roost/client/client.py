"""The asyncio MQTT client's public API: ``Client``. See docs/client.md.

Each method checks its arguments (``roost.client.arguments``), hands the request to the
sans-IO ``ClientConnection`` and waits for the outcome; ``ClientEngine``
(``roost.client.engine``) runs the connection underneath and resolves what they wait on.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import ssl
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from roost.client.arguments import (
    Headers,
    Payload,
    UserProperties,
    connect_packet,
    pairs,
    publish_packet,
    subscriptions,
    topic_filters,
)
from roost.client.auth import Authenticator
from roost.client.connecting import TRANSPORTS, default_port
from roost.client.engine import ClientEngine, OnConnect, OnDisconnect
from roost.client.errors import (
    AuthenticationError,
    ClientClosed,
    ConnectionLost,
    PublishError,
    SubscribeError,
    UnsubscribeError,
    is_failure,
)
from roost.client.inbox import MessageStream
from roost.client.message import Message, PublishResult
from roost.client.reconnect import ReconnectPolicy
from roost.codec import (
    MQTT_5,
    Connack,
    Disconnect,
    DisconnectReasonCode,
    Suback,
    Subscription,
    Unsuback,
    Will,
)
from roost.protocol.client_events import Refused
from roost.protocol.client_states import ClientState
from roost.protocol.websocket_client import check_headers, check_path


class Client(ClientEngine):
    """An MQTT 3.1, 3.1.1 and 5.0 client. See docs/client.md.

    ::

        async with Client("localhost") as client:
            await client.subscribe("sensors/#", qos=1)
            await client.publish("sensors/kitchen", "21.5", qos=1)
            async for message in client.messages():
                print(message.topic, message.text)
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int | None = None,
        *,
        version: int = MQTT_5,
        client_id: str = "",
        clean_start: bool = True,
        keep_alive: int = 60,
        username: str | None = None,
        password: str | bytes | None = None,
        will: Will | None = None,
        tls: ssl.SSLContext | bool | None = None,
        server_hostname: str | None = None,
        session_expiry_interval: int | None = None,
        receive_maximum: int | None = None,
        maximum_packet_size: int | None = None,
        topic_alias_maximum: int | None = None,
        request_response_information: bool | None = None,
        request_problem_information: bool | None = None,
        user_properties: UserProperties = (),
        connect_timeout: float = 10.0,
        ping_timeout: float | None = None,
        reconnect: ReconnectPolicy | bool = False,
        max_queued_messages: int = 0,
        transport: str = "tcp",
        websocket_path: str = "/mqtt",
        websocket_headers: Headers = (),
        auth: Authenticator | None = None,
        on_connect: OnConnect | None = None,
        on_disconnect: OnDisconnect | None = None,
        response_topic_prefix: str = "roost/responses",
        fallback_addresses: Sequence[tuple[str, int]] = (),
        manual_ack: bool = False,
        manual_release: bool = False,
        packet_ids: tuple[int, int] = (1, 0xFFFF),
        bridge: bool = False,
    ) -> None:
        connect = connect_packet(
            version,
            client_id,
            clean_start,
            keep_alive,
            username,
            password,
            will,
            session_expiry_interval,
            receive_maximum,
            maximum_packet_size,
            topic_alias_maximum,
            request_response_information,
            request_problem_information,
            user_properties,
        )
        if bridge:
            if version == MQTT_5:
                raise ValueError("bridge (try_private) is for MQTT 3.1 and 3.1.1 only")
            connect.bridge = True
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be 'tcp' or 'websockets', not {transport!r}")
        if auth is not None and version != MQTT_5:
            raise ValueError("enhanced authentication (auth=) needs version=5")
        if isinstance(tls, bool):
            tls = ssl.create_default_context() if tls else None
        self.host = host
        self.port = port if port is not None else default_port(transport, tls is not None)
        self.transport = transport
        self.websocket_path = check_path(websocket_path)
        self.websocket_headers = tuple(check_headers(pairs(websocket_headers)))
        self.auth = auth
        self.version = version
        self.client_id = client_id
        self.clean_start = clean_start
        self.tls = tls
        self.server_hostname = server_hostname
        self.connect_timeout = connect_timeout
        self.reconnect = ReconnectPolicy() if reconnect is True else reconnect or None
        self.on_connect = on_connect
        self.on_disconnect = on_disconnect
        self.response_topic_prefix = response_topic_prefix.rstrip("/")
        self._first_address = (host, self.port)
        self.fallback_addresses = tuple((str(h), int(p)) for h, p in fallback_addresses)
        first, last = packet_ids
        if not 0 < first <= last <= 0xFFFF:
            raise ValueError(f"packet_ids must be a range within 1-65535, not {packet_ids}")
        super().__init__(
            connect, ping_timeout, max_queued_messages, manual_ack, manual_release, (first, last)
        )
        self._response_lock = asyncio.Lock()

    # State.

    @property
    def session_present(self) -> bool:
        """The last CONNACK said the server had kept a session for this client."""
        return bool(self.connack and self.connack.session_present)

    @property
    def pending(self) -> int:
        """QoS 1/2 messages handed to the client and not yet completely acknowledged."""
        return self._conn.pending

    # Connecting and disconnecting.

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.disconnect()

    async def connect(self) -> Connack:
        """Open the connection; raises ConnectError (TLSError, WebSocketError),
        ConnectTimeout, ConnectRefused, AuthenticationError."""
        if self._link is not None:
            raise RuntimeError("already connected")
        self._closing = False
        self._failure = None
        self._inbox.reopen()
        return await self._open(self.clean_start)

    async def disconnect(
        self,
        reason_code: int = DisconnectReasonCode.NORMAL_DISCONNECTION,
        *,
        session_expiry_interval: int | None = None,
        reason_string: str | None = None,
        user_properties: UserProperties = (),
    ) -> None:
        """Send DISCONNECT and close. Messages still owed stay in the session state."""
        self._closing = True
        await self._reconnector.cancel()
        auth_tasks = [t for t in self._auth_tasks if t is not asyncio.current_task()]
        for auth_task in auth_tasks:
            auth_task.cancel()
        await asyncio.gather(*auth_tasks, return_exceptions=True)
        link = self._link
        was_up = self.connected
        if link is not None:
            if self._conn.state is ClientState.CONNECTED:
                self._conn.disconnect(
                    Disconnect(
                        reason_code,
                        session_expiry_interval,
                        reason_string,
                        user_properties=pairs(user_properties),
                    )
                )
                self._flush()
            self._link = None
            self._conn.connection_lost()
            self._cancel_timer()
            link.close()
            try:
                async with asyncio.timeout(self.connect_timeout):
                    await asyncio.shield(link.closed)
            except TimeoutError:
                link.abort()
        for dropped in self._dropped:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.connect_timeout):
                    await asyncio.shield(dropped.closed)
        self._dropped.clear()
        self._subscriptions.clear()
        self._response_topic = None
        self._fail(ClientClosed("the client was closed"), clean=True)
        if was_up and self.on_disconnect is not None:
            self._call_back("on_disconnect", self.on_disconnect, None)

    # Publishing.

    async def publish(
        self,
        topic: str,
        payload: Payload = b"",
        qos: int = 0,
        retain: bool = False,
        *,
        payload_format_indicator: int | None = None,
        message_expiry_interval: int | None = None,
        content_type: str | None = None,
        response_topic: str | None = None,
        correlation_data: bytes | None = None,
        user_properties: UserProperties = (),
        topic_alias: int | None = None,
    ) -> PublishResult:
        """Publish; returns when the QoS flow is complete (QoS 0: when written).

        A QoS 1/2 message belongs to the session once handed over: if the connection
        drops it is resent when the session resumes, even if this call is cancelled.
        """
        packet = publish_packet(
            self.version,
            topic,
            payload,
            qos,
            retain,
            payload_format_indicator=payload_format_indicator,
            message_expiry_interval=message_expiry_interval,
            content_type=content_type,
            response_topic=response_topic,
            correlation_data=correlation_data,
            user_properties=user_properties,
            topic_alias=topic_alias,
        )
        if qos == 0:
            await self._wait_connected()
        else:
            self._check_usable()
        try:
            packet_id = self._conn.publish(packet)
        except Refused as exc:
            raise PublishError(exc.reason_code, exc.message) from None
        if qos == 0:
            self._flush()
            if self._link is not None:
                await self._link.drain()
            return PublishResult()
        future: asyncio.Future[PublishResult] = asyncio.get_running_loop().create_future()
        self._publishes[packet_id] = future
        self._flush()
        if self._link is not None:
            await self._link.drain()
        return await future

    def publish_nowait(
        self,
        topic: str,
        payload: Payload = b"",
        qos: int = 0,
        retain: bool = False,
        *,
        packet_id: int | None = None,
        dup: bool = False,
        **properties: Any,
    ) -> asyncio.Future[PublishResult]:
        """Hand a message to the session now, without waiting: the returned future ends
        as ``publish()`` would return or raise. Messages handed over in turn are sent in
        that order. QoS 0 needs a connection up (else ClientClosed); the other keyword
        arguments are ``publish()``'s MQTT 5 properties.

        ``packet_id`` (QoS 1/2): use this id rather than one of the client's own
        (``Client(packet_ids=...)`` keeps those apart); ValueError if it is in use.
        ``dup``: the message was sent before under that id (by an earlier client, say),
        so it goes with DUP set. Both are for a caller that keeps its own store of the
        exchange, a bridge: the server's session and that store then agree on the id.
        """
        packet = publish_packet(
            self.version,
            topic,
            payload,
            qos,
            retain,
            payload_format_indicator=properties.get("payload_format_indicator"),
            message_expiry_interval=properties.get("message_expiry_interval"),
            content_type=properties.get("content_type"),
            response_topic=properties.get("response_topic"),
            correlation_data=properties.get("correlation_data"),
            user_properties=properties.get("user_properties", ()),
            topic_alias=None,
        )
        future: asyncio.Future[PublishResult] = asyncio.get_running_loop().create_future()
        if qos == 0:
            if not self.connected:
                raise ClientClosed("not connected")
        else:
            self._check_usable()
        packet.dup = dup and qos > 0
        try:
            packet_id = self._conn.publish(packet, packet_id if qos else None)
        except Refused as exc:
            raise PublishError(exc.reason_code, exc.message) from None
        if qos == 0:
            future.set_result(PublishResult())
        else:
            self._publishes[packet_id] = future
        self._flush()
        return future

    def release(self, packet_id: int) -> asyncio.Future[PublishResult]:
        """With ``Client(manual_release=True)``: send the PUBREL of a QoS 2 message whose
        publish ended at its PUBREC; the future ends at the PUBCOMP (PublishError for a
        failure code, such as MQTT 5's 0x92 for an id the server does not know).

        An id this client does not know resumes an exchange at the PUBREL stage: for a
        caller whose store says an earlier client's message got its PUBREC (a restart,
        a new client). Releasing one already released returns the same future."""
        self._check_usable()
        self._conn.release(packet_id)  # ValueError if its PUBREC has not come
        future = self._publishes.get(packet_id)
        if future is None or future.done():
            future = asyncio.get_running_loop().create_future()
            self._publishes[packet_id] = future
        self._flush()
        return future

    def ack(self, message: Message) -> None:
        """With ``Client(manual_ack=True)``: acknowledge a received QoS 1/2 message (its
        PUBACK or PUBREC goes out); until then the server holds it as unacknowledged."""
        if not message.qos:
            return
        self._conn.acknowledge(
            message.packet_id, message.qos, message.connection == self._connection_number
        )
        self._flush()

    # Request and response (MQTT 5).

    async def request(
        self,
        topic: str,
        payload: Payload = b"",
        *,
        qos: int = 0,
        timeout: float | None = 10.0,
        content_type: str | None = None,
        payload_format_indicator: int | None = None,
        message_expiry_interval: int | None = None,
        user_properties: UserProperties = (),
    ) -> Message:
        """Publish a request and return the response (MQTT 5.0 section 4.10).

        The request carries a Response Topic (this client's, subscribed at the first
        request) and a fresh Correlation Data; the response is the message on that
        topic with the same Correlation Data, as a responder sends it back. Raises
        ``TimeoutError`` if none comes within ``timeout`` seconds (None: no limit),
        and ``ValueError`` with MQTT 3.1.x, which has neither property.
        """
        if self.version != MQTT_5:
            raise ValueError(
                "request() needs MQTT 5 (version=5): MQTT 3.1.x has no Response Topic "
                "or Correlation Data to pair a response with its request"
            )
        deadline = asyncio.timeout(timeout)
        correlation = secrets.token_bytes(16)
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        try:
            async with deadline:
                response_topic = await self._response_subscription()
                self._responses[correlation] = future
                await self.publish(
                    topic,
                    payload,
                    qos,
                    response_topic=response_topic,
                    correlation_data=correlation,
                    content_type=content_type,
                    payload_format_indicator=payload_format_indicator,
                    message_expiry_interval=message_expiry_interval,
                    user_properties=user_properties,
                )
                return await future
        except TimeoutError:
            if not deadline.expired():
                raise
            raise TimeoutError(
                f"no response to the request on {topic!r} within {timeout:g} s"
            ) from None
        finally:
            self._responses.pop(correlation, None)

    async def _response_subscription(self) -> str:
        """This client's response topic, subscribed once (again after a disconnect())."""
        async with self._response_lock:
            if self._response_topic is None:
                # A server may name the prefix to use (Response Information, asked for
                # with request_response_information=True); else the client's own.
                info = self.connack.response_information if self.connack else None
                prefix = (info or self.response_topic_prefix).rstrip("/")
                topic = f"{prefix}/{secrets.token_hex(8)}"
                await self.subscribe(topic, qos=2)
                self._response_topic = topic
            return self._response_topic

    # Subscribing.

    async def subscribe(
        self,
        topic: str | Subscription | Sequence[str | Subscription],
        qos: int = 0,
        *,
        no_local: bool = False,
        retain_as_published: bool = False,
        retain_handling: int = 0,
        subscription_identifier: int | None = None,
        user_properties: UserProperties = (),
    ) -> tuple[int, ...]:
        """Subscribe; returns the granted QoS per filter. Raises SubscribeError on a refusal.

        ``topic`` is one filter, a ``Subscription`` (per-filter options), or a list of
        either; the keyword options apply to the plain strings.
        """
        props = pairs(user_properties)
        subs = subscriptions(
            self.version,
            topic,
            qos,
            no_local,
            retain_as_published,
            retain_handling,
            subscription_identifier,
            props,
        )
        self._check_usable()
        packet_id = self._conn.subscribe(subs, subscription_identifier, props)
        suback = await self._request(packet_id)
        assert isinstance(suback, Suback)  # noqa: S101  (the state machine pairs them)
        codes = suback.reason_codes
        for sub, code in zip(subs, codes, strict=False):
            if not is_failure(code):
                self._subscriptions[sub.topic_filter] = (sub, subscription_identifier, props)
        if any(is_failure(code) for code in codes):
            raise SubscribeError(codes, suback.reason_string)
        return codes

    async def unsubscribe(
        self, topic: str | Sequence[str], *, user_properties: UserProperties = ()
    ) -> tuple[int, ...]:
        """Unsubscribe; returns MQTT 5 reason codes (() for 3.1.x). Raises UnsubscribeError."""
        filters = topic_filters(topic)
        self._check_usable()
        packet_id = self._conn.unsubscribe(filters, pairs(user_properties))
        unsuback = await self._request(packet_id)
        assert isinstance(unsuback, Unsuback)  # noqa: S101
        for topic_filter in filters:
            self._subscriptions.pop(topic_filter, None)
        codes = unsuback.reason_codes
        if any(is_failure(code) for code in codes):
            raise UnsubscribeError(codes, unsuback.reason_string)
        return codes

    async def _request(self, packet_id: int) -> Suback | Unsuback:
        future: asyncio.Future[Suback | Unsuback] = asyncio.get_running_loop().create_future()
        self._requests[packet_id] = future
        self._flush()
        return await future

    def messages(self, *topic_filters: str) -> MessageStream:
        """Received messages, all or those matching ``topic_filters``; see MessageStream."""
        return self._inbox.open(topic_filters)

    def drop_connection(self, why: str = "dropped by the application") -> None:
        """Break the network connection as if it had been lost: with a reconnect policy
        the client reconnects (trying the first address first), else it is closed."""
        if self._link is not None:
            self._loss = ConnectionLost(why)
            self._link.abort()

    # Enhanced authentication.

    async def reauthenticate(self) -> None:
        """Authenticate again on the live connection (MQTT 5 AUTH 0x19, [MQTT-4.12.1-1]).

        Returns when the server has accepted and proved itself (AUTH 0x00); other
        traffic goes on meanwhile. A refusal ends the connection: the server sends
        DISCONNECT 0x87 (``ServerDisconnected``); a server that fails to prove itself
        raises ``AuthenticationError`` (the client disconnects). Wrap it in
        ``asyncio.timeout`` to bound the wait.
        """
        auth = self.auth
        if auth is None:
            raise RuntimeError("reauthenticate() needs Client(auth=...)")
        if self._reauth is not None or self._conn.reauthenticating:
            raise RuntimeError("a re-authentication is already under way")
        if self._failure is not None:
            raise self._failure
        if not self.connected:
            raise ClientClosed("not connected")
        try:
            data = await auth.start()
        except Exception as exc:
            raise AuthenticationError(f"the authenticator failed to start: {exc}") from exc
        if not self.connected:
            raise self._failure or ClientClosed("the connection was lost")
        if self._reauth is not None or self._conn.reauthenticating:
            raise RuntimeError("a re-authentication is already under way")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._reauth = future
        self._conn.reauthenticate(data)
        self._flush()
        try:
            await future
        finally:
            self._reauth = None
