"""Opening the network connection under a client: TCP, TLS on it, and the WebSocket
upgrade on that. Failures come out as the client's errors (``ConnectError``,
``TLSError``, ``WebSocketError``), each naming the address it was trying.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import ssl
from dataclasses import dataclass

from roost.client.errors import ConnectError, ConnectionLost, MQTTError, TLSError, WebSocketError
from roost.client.transport import Link, Owner
from roost.client.websocket import WebSocketLink
from roost.protocol.websocket_client import WebSocketClient, WebSocketProtocolError, host_header

TRANSPORTS = ("tcp", "websockets")
# (transport, TLS) -> the port when none is given: MQTT's registered ports, and for
# WebSocket the ports of ws:// and wss:// URLs (RFC 6455 section 3).
_DEFAULT_PORTS = {
    ("tcp", False): 1883,
    ("tcp", True): 8883,
    ("websockets", False): 80,
    ("websockets", True): 443,
}


def default_port(transport: str, secure: bool) -> int:
    """The port to connect to when none is given."""
    return _DEFAULT_PORTS[transport, secure]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and how to connect."""

    host: str
    port: int
    tls: ssl.SSLContext | None = None
    server_hostname: str | None = None
    transport: str = "tcp"
    websocket_path: str = "/mqtt"
    websocket_headers: tuple[tuple[str, str], ...] = ()

    @property
    def where(self) -> str:
        """The address for messages: host:port, or the ws:// / wss:// URL."""
        if self.transport == "websockets":
            scheme = "wss" if self.tls else "ws"
            return f"{scheme}://{self.host}:{self.port}{self.websocket_path}"
        return f"{self.host}:{self.port}"


async def open_link(endpoint: Endpoint, owner: Owner) -> Link:
    """A connected Link (for WebSocket: upgraded), or the client error saying why not."""
    loop = asyncio.get_running_loop()
    where = endpoint.where
    ws = None
    if endpoint.transport == "websockets":
        ws = WebSocketClient(
            host_header(endpoint.host, endpoint.port, endpoint.tls is not None),
            endpoint.websocket_path,
            endpoint.websocket_headers,
        )

    def make_link() -> Link:
        return Link(owner) if ws is None else WebSocketLink(owner, ws)

    tls = endpoint.tls
    try:
        _, link = await loop.create_connection(
            make_link,
            endpoint.host,
            endpoint.port,
            ssl=tls,
            server_hostname=(endpoint.server_hostname or endpoint.host) if tls else None,
        )
    except ssl.SSLError as exc:
        detail = exc.reason or str(exc)
        if isinstance(exc, ssl.SSLCertVerificationError):
            detail = f"certificate verify failed: {exc.verify_message}"
        elif isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError):
            detail = f"the server closed the connection ({detail}){_PLAIN_PORT}"
        elif "WRONG_VERSION_NUMBER" in detail:  # its answer was not TLS at all
            detail = f"the server does not answer in TLS ({detail}){_PLAIN_PORT}"
        raise TLSError(f"TLS handshake with {where} failed: {detail}") from exc
    except OSError as exc:
        if tls is not None and isinstance(exc, _HANDSHAKE_CUT):
            # The TCP connection was made (a refusal is ConnectionRefusedError), so the
            # server cut the handshake: a plain MQTT port drops a ClientHello so.
            raise TLSError(
                f"TLS handshake with {where} failed: the server closed the connection "
                f"({os_error_text(exc)}){_PLAIN_PORT}"
            ) from exc
        raise ConnectError(f"cannot connect to {where}: {os_error_text(exc)}") from exc
    if isinstance(link, WebSocketLink):
        try:
            await link.opened
        except BaseException as exc:
            link.abort()
            await link.closed  # at once: no socket outlives a failed connect
            error = _upgrade_error(where, tls is not None, exc)
            if error is exc:
                raise  # cancelled (e.g. the connect timeout)
            raise error from exc
    return link


def _upgrade_error(where: str, secure: bool, exc: BaseException) -> BaseException:
    if isinstance(exc, WebSocketProtocolError):
        status = getattr(exc, "status", None)
        return WebSocketError(f"WebSocket upgrade at {where} failed: {exc}", status)
    if isinstance(exc, ssl.SSLError):
        return TLSError(f"TLS failure during the WebSocket upgrade at {where}: {ssl_text(exc)}")
    if isinstance(exc, OSError):
        if secure:
            # A TLS 1.3 server refusing our certificate says so after our side of the
            # handshake is done: it shows up as a reset here.
            return TLSError(
                f"the server closed the TLS connection during the WebSocket upgrade at "
                f"{where} ({exc}); does it require a client certificate?"
            )
        return ConnectError(f"cannot connect to {where}: {exc}")
    return exc


_PLAIN_PORT = "; is it a plain MQTT port rather than a TLS one?"
# What a server that hangs up in the middle of the TLS handshake shows up as.
_HANDSHAKE_CUT = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)


def os_error_text(exc: OSError) -> str:
    """ "connection refused" rather than asyncio's "Connect call failed ('::1', 1883, 0, 0)"."""
    if isinstance(exc, socket.gaierror):
        # The resolver's own words ("Name or service not known"); os.strerror knows
        # nothing of its negative codes and says "unknown error -2".
        return f"unknown host: {exc.strerror or exc}"
    if exc.errno:
        return os.strerror(exc.errno).lower()
    # Several addresses failed (e.g. ::1 and 127.0.0.1): name the errno if they agree.
    errnos = set(re.findall(r"\[Errno (\d+)\]", str(exc)))
    if len(errnos) == 1:
        return os.strerror(int(errnos.pop())).lower()
    # asyncio raises some without errno or text, e.g. ConnectionResetError().
    return str(exc) or _UNTOLD.get(type(exc), type(exc).__name__)


_UNTOLD: dict[type[OSError], str] = {
    ConnectionResetError: "connection reset",
    ConnectionAbortedError: "connection aborted",
    BrokenPipeError: "broken pipe",
}


def foreign_answer(data: bytes) -> str | None:
    """What a server's first bytes say about it when they cannot start an MQTT answer.

    An MQTT server's first packet is CONNACK (0x20), AUTH or DISCONNECT; "HTTP/" and a
    TLS record (content type 0x15 alert or 0x16 handshake, version 3.x) can be neither.
    """
    if data.startswith(b"HTTP/"):
        status = data.split(b"\r\n", 1)[0].decode("latin-1")[:80]
        return (
            f"the server answered in HTTP ({status!r}), not MQTT: this looks like a "
            "WebSocket (HTTP) port; connect with transport='websockets' (roost tools: --ws)"
        )
    if len(data) >= 2 and data[0] in (0x15, 0x16) and data[1] == 3:
        return (
            "the server answered with TLS, not MQTT: this looks like a TLS port; "
            "connect with TLS (tls=..., roost tools: --cafile or --tls-use-os-certs)"
        )
    return None


def no_connack_error(where: str, exc: Exception | None, secure: bool) -> ConnectError:
    """The error for a server that closed the connection before any CONNACK."""
    how = "closed the connection" if exc is None else f"reset the connection ({exc})"
    hint = (
        ""
        if secure
        else "; if it expects TLS or MQTT over WebSocket, connect with tls=... or "
        "transport='websockets' (roost tools: --cafile, --ws)"
    )
    error = ConnectError(f"no CONNACK from {where}: the server {how} without answering{hint}")
    error.__cause__ = exc
    return error


def loss_error(exc: Exception | None) -> MQTTError:
    """The client error for a connection that ended with ``exc`` (None: a clean close)."""
    if isinstance(exc, ssl.SSLError):
        error: MQTTError = TLSError(f"TLS failure: {ssl_text(exc)}")
    elif exc is None:
        error = ConnectionLost("the server closed the connection")
    else:
        error = ConnectionLost(f"the connection was lost: {exc}")
    error.__cause__ = exc
    return error


def ssl_text(exc: ssl.SSLError) -> str:
    """What went wrong in a TLS failure, in words, with a hint where one helps."""
    reason = exc.reason or str(exc)
    if "CERTIFICATE_REQUIRED" in reason:
        # TLS 1.3: the alert comes after our side of the handshake, on the first read.
        return f"{reason} (the server requires a client certificate)"
    return reason
