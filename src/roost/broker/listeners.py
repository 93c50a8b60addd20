"""The broker's listeners at run time: one server socket each, with its own transport
stack, connection limit, anonymous-access rule and (for tls/wss) TLS context.

Which layers a connection gets is decided once, here, by the listener's type:

    tcp   socket -> BrokerConnection
    tls   socket -> TlsLayer -> BrokerConnection
    ws    socket -> WebSocketLayer -> BrokerConnection
    wss   socket -> TlsLayer -> WebSocketLayer -> BrokerConnection

A ``Listener`` is the ``ports.Entrance`` its connections see; it knows the broker only
as a ``ports.ConnectionHost``, handed to it with the write coalescer when it is made.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import os
from typing import TYPE_CHECKING

from roost.broker.config import TLS_LISTENER_TYPES, ListenerConfig
from roost.broker.connect import Refusal
from roost.broker.connection import BrokerConnection
from roost.broker.limits import RateLimit
from roost.broker.tls import TlsFilesError, TlsLayer, server_context
from roost.broker.websocket import WebSocketLayer
from roost.codec import ConnectReasonCode

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable

    from roost.broker.ports import ConnectionHost
    from roost.broker.transport import WriteCoalescer

log = logging.getLogger("roost.broker")

_TRANSPORTS = {
    "tcp": "MQTT over TCP",
    "tls": "MQTT over TLS",
    "ws": "MQTT over WebSocket",
    "wss": "MQTT over WebSocket with TLS",
}


# Connections the kernel completes before the broker accepts them. asyncio's default of
# 100 overflows in a burst of connections (a storm, or a reconnecting fleet): the kernel
# then drops SYNs and clients retry only after a second. Linux caps it at somaxconn.
LISTEN_BACKLOG = 1024


class ListenerError(OSError):
    """A listener that cannot start (its TLS files, for one); the message says which."""


class Listener:
    """One configured listener at run time: its server socket, TLS context, connection
    count and anonymous-access rule."""

    __slots__ = (
        "_coalescer",
        "_host",
        "_rate",
        "_reuse_port",
        "allow_anonymous",
        "config",
        "connections",
        "identity_source",
        "index",
        "label",
        "server",
        "ssl_context",
    )

    def __init__(
        self,
        host: ConnectionHost,
        coalescer: WriteCoalescer,
        config: ListenerConfig,
        index: int,
        *,
        reuse_port: bool = False,
    ) -> None:
        self._host = host
        # SO_REUSEPORT: the workers of `roost broker --workers N` (broker/workers.py)
        # each bind the same address, and the kernel spreads connections over them.
        self._reuse_port = reuse_port
        self._coalescer = coalescer
        self.config = config
        self.index = index
        self.identity_source: str | None = config.use_identity_as_username or None
        self.connections = 0  # admitted connections (admit / left)
        self._rate: RateLimit | None = None  # max_connection_rate, made in start()
        self.server: asyncio.Server | None = None
        self.label = _label(config, config.host, config.port)
        self.allow_anonymous = False  # decided in start(), once the bound address is known
        self.ssl_context: ssl.SSLContext | None = None
        if config.type in TLS_LISTENER_TYPES:
            try:
                self.ssl_context = server_context(config)
            except TlsFilesError as exc:
                raise ListenerError(f"listeners[{index}] ({self.label}): {exc}") from exc

    async def start(self) -> None:
        config = self.config
        loop = asyncio.get_running_loop()
        try:
            self.server = server = await loop.create_server(
                self._protocol_factory(),
                config.host,
                config.port,
                backlog=LISTEN_BACKLOG,
                reuse_port=self._reuse_port or None,
            )
        except OSError as exc:
            # asyncio's message names the address but not which listener of the config
            # it belongs to, nor what to do; with several listeners both matter.
            error = ListenerError(f"listeners[{self.index}] ({self.label}): {_bind_problem(exc)}")
            error.errno = exc.errno
            raise error from exc
        addresses = [sock.getsockname() for sock in server.sockets]
        self.label = _label(config, addresses[0][0], addresses[0][1])
        anonymous = config.allow_anonymous
        if anonymous is None:
            anonymous = self._host.config.allow_anonymous
        if anonymous is None:
            anonymous = all(_is_loopback(address[0]) for address in addresses)
        self.allow_anonymous = anonymous
        if config.max_connection_rate:
            self._rate = RateLimit(config.max_connection_rate, self._host.now())
        for address in addresses:
            log.info("Listening on %s:%d (%s).", address[0], address[1], self.describe())

    def close(self) -> None:
        if self.server is not None:
            self.server.close()

    @property
    def port(self) -> int:
        assert self.server is not None  # noqa: S101  (set by start)
        return int(self.server.sockets[0].getsockname()[1])

    def describe(self) -> str:
        config = self.config
        parts = [_TRANSPORTS[config.type]]
        if config.type in ("ws", "wss"):
            parts[0] += f" at {config.path}"
        if config.cafile:
            required = "required" if config.require_certificate else "optional"
            parts.append(f"client certificates {required}")
        if config.use_identity_as_username:
            parts.append(f"username from the certificate's {config.use_identity_as_username}")
        parts.append(f"anonymous clients {'allowed' if self.allow_anonymous else 'refused'}")
        if config.max_connections:
            parts.append(f"at most {config.max_connections} connections")
        if config.max_connection_rate:
            parts.append(f"at most {config.max_connection_rate:g} new connections a second")
        return ", ".join(parts)

    def admit(self) -> Refusal | None:
        """Count a new connection in, or say why it must be refused now."""
        limit = self.config.max_connections
        if limit and self.connections >= limit:
            return Refusal(
                ConnectReasonCode.QUOTA_EXCEEDED,
                f"the listener's max_connections ({limit}) is reached",
            )
        rate = self._rate
        if rate is not None and not rate.take(self._host.now()):
            return Refusal(
                ConnectReasonCode.CONNECTION_RATE_EXCEEDED,
                f"the listener's max_connection_rate ({rate.rate:g} a second) is exceeded",
            )
        self.connections += 1
        return None

    def left(self) -> None:
        self.connections -= 1

    def reload_tls(self) -> None:
        """Read the TLS files again; new connections get them, open ones keep theirs."""
        if self.ssl_context is None:
            return
        try:
            self.ssl_context = server_context(self.config)
        except TlsFilesError as exc:
            log.error(  # noqa: TRY400  (the message says all; no traceback wanted)
                "Listener %s: TLS files not reloaded, the previous ones stay in use: %s.",
                self.label,
                exc,
            )
            return
        log.info("Listener %s: TLS certificates reloaded.", self.label)

    def _protocol_factory(self) -> Callable[[], asyncio.Protocol]:
        host = self._host
        coalescer = self._coalescer
        kind = self.config.type
        path = self.config.path
        max_frame = host.config.max_packet_size

        def connection() -> BrokerConnection:
            return BrokerConnection(host, self, coalescer)

        # The label is read per connection: start() sets it once the port is known.
        if kind == "tcp":
            return connection
        if kind == "ws":
            return lambda: WebSocketLayer(connection(), self.label, path, max_frame)
        if kind == "tls":
            return lambda: TlsLayer(self._context(), connection(), self.label)
        return lambda: TlsLayer(
            self._context(),
            WebSocketLayer(connection(), self.label, path, max_frame),
            self.label,
        )

    def _context(self) -> ssl.SSLContext:
        # Read per connection, not captured once: SIGHUP replaces it.
        assert self.ssl_context is not None  # noqa: S101  (tls and wss listeners have one)
        return self.ssl_context


def anonymous_summary(listeners: list[Listener]) -> str:
    """One line for the log: which listeners let clients in without a username."""
    allowed = [listener.label for listener in listeners if listener.allow_anonymous]
    refused = [listener.label for listener in listeners if not listener.allow_anonymous]
    parts = []
    if allowed:
        parts.append("allowed on " + ", ".join(allowed))
    if refused:
        parts.append("refused on " + ", ".join(refused))
    return "Anonymous clients: " + "; ".join(parts) + "."


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.partition("%")[0]).is_loopback
    except ValueError:
        return False


def _bind_problem(exc: OSError) -> str:
    """Why a listener could not bind, and what to do about it."""
    # asyncio's strerror repeats the address ("error while attempting to bind on
    # address ...: address already in use"); the label already names it.
    code = exc.errno
    known = code in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL)
    reason = os.strerror(code).lower() if code is not None and known else exc.strerror or str(exc)
    if exc.errno == errno.EADDRINUSE:
        return (
            f"cannot listen: {reason} (another process, perhaps another broker, has this "
            "port; stop it or choose another port)"
        )
    if exc.errno == errno.EACCES:
        return f"cannot listen: {reason} (ports below 1024 need privileges)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen: {reason} (host is not an address of this machine)"
    return f"cannot listen: {reason}"


def _label(config: ListenerConfig, host: str, port: int) -> str:
    """How the log and errors name a listener: ``tcp 127.0.0.1:1883``, or with its name."""
    where = f"{config.type} {_address(host, port)}"
    return f'"{config.name}" ({where})' if config.name else where


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
