"""The client side of MQTT over WebSocket (RFC 6455), sans-IO.

``WebSocketClient`` writes the HTTP/1.1 upgrade request, checks the server's answer,
then turns MQTT bytes into masked binary frames and the server's frames back into
MQTT bytes. MQTT packets may span frames and a frame may hold several packets
(MQTT 5.0 section 6, [MQTT-6.0.0-2]), so payloads come out as a byte stream, in
pieces as they arrive, never reassembled into messages. Pings are answered, and the
closing handshake is kept: a close from the server is echoed, ours is sent once.

What it does not do: sockets, timers, TLS (wss is this over a TLS stream), extensions
(none are offered; a server that picks one anyway fails the handshake), text frames
(MQTT forbids them [MQTT-6.0.0-1]: they fail the connection), HTTP redirects or
proxies, and sending pings of its own (MQTT's keep-alive does that job).

The broker's side (roost/broker/websocket.py) parses frames the same way but expects
them masked; what both need (the accept key, masking, opcodes, close codes) lives in
roost/protocol/websocket.py.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import NoReturn

from roost.protocol.websocket import (
    BINARY,
    CLOSE,
    CONTINUATION,
    FIN,
    NO_STATUS,
    NORMAL_CLOSURE,
    PING,
    PONG,
    PROTOCOL_ERROR,
    TEXT,
    UNSUPPORTED_DATA,
    accept_key,
    apply_mask,
    frame_header,
    header_tokens,
)

SUBPROTOCOL = "mqtt"  # what MQTT 3.1.1 and 5.0 register [MQTT-6.0.0-3]
MAX_RESPONSE_HEAD = 16 * 1024

# Headers the handshake itself sets; a caller's extra headers may not replace them.
_RESERVED_HEADERS = frozenset(
    (
        "upgrade",
        "connection",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-protocol",
        "sec-websocket-extensions",
        "content-length",
        "transfer-encoding",
    )
)
_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


class WebSocketProtocolError(Exception):
    """The server broke RFC 6455 (or MQTT's use of it); ``code`` is the close code sent."""

    def __init__(self, message: str, code: int = PROTOCOL_ERROR) -> None:
        super().__init__(message)
        self.code = code


class HandshakeError(WebSocketProtocolError):
    """The server did not accept the upgrade. ``status`` is its HTTP status, if it sent one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class WebSocketState(Enum):
    """Where a WebSocketClient is in the connection's life (RFC 6455 sections 4 and 7)."""

    CONNECTING = 1  # upgrade request sent, no answer yet
    OPEN = 2
    CLOSING = 3  # our close frame is sent; waiting for the server's
    CLOSED = 4  # close frames went both ways, or the connection failed


@dataclass(slots=True)
class Accepted:
    """The upgrade succeeded; ``subprotocol`` is what the server chose (None: it named none)."""

    subprotocol: str | None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class CloseReceived:
    """The server sent a close frame (``code`` 1005: it gave none). Our echo is queued."""

    code: int
    reason: str


# What receive_data returns: MQTT bytes (a binary payload, or a piece of one), or an event.
Event = bytes | Accepted | CloseReceived


def encode_frame(first: int, payload: bytes | bytearray | memoryview, mask: bytes) -> bytes:
    """One client frame: ``first`` is FIN and the opcode; client frames are always masked."""
    return frame_header(first, len(payload), masked=True) + mask + apply_mask(payload, mask)


def host_header(host: str, port: int, secure: bool) -> str:
    """The Host header for ``host``:``port`` (the port left out when it is the default)."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address literal
    return host if port == (443 if secure else 80) else f"{host}:{port}"


def check_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Extra request headers, checked: valid names, no line breaks, none the handshake sets.

    Raises ValueError naming the problem.
    """
    checked = []
    for name, value in headers:
        if not name or not set(name) <= _TOKEN_CHARS:
            raise ValueError(f"invalid WebSocket header name {name!r}")
        if any(ch in value for ch in "\r\n\0"):
            raise ValueError(f"the WebSocket header {name} has a line break in its value")
        if name.lower() in _RESERVED_HEADERS:
            raise ValueError(f"the WebSocket handshake sets {name} itself")
        checked.append((name, value))
    return checked


def check_path(path: str) -> str:
    """A request target: starts with "/", no spaces or control characters."""
    if not path.startswith("/") or any(ch.isspace() or ord(ch) < 0x21 for ch in path):
        raise ValueError(f"invalid WebSocket path {path!r} (it must start with '/')")
    return path


def _new_mask() -> bytes:
    # RFC 6455 section 5.3: a fresh, unpredictable masking key for every frame.
    return os.urandom(4)


class WebSocketClient:
    """One client WebSocket connection: handshake, framing, closing. See the module doc."""

    __slots__ = (
        "_buffer",
        "_close_sent",
        "_headers",
        "_host",
        "_in_message",
        "_key",
        "_new_mask",
        "_out",
        "_path",
        "_remaining",
        "_subprotocols",
        "close_code",
        "state",
    )

    def __init__(
        self,
        host: str,
        path: str = "/mqtt",
        headers: Iterable[tuple[str, str]] = (),
        subprotocols: tuple[str, ...] = (SUBPROTOCOL,),
        *,
        key: str | None = None,
        new_mask: Callable[[], bytes] = _new_mask,
    ) -> None:
        self._host = host  # the Host header's value (see host_header)
        self._path = check_path(path)
        self._headers = check_headers(headers)
        self._subprotocols = subprotocols
        self._key = key or base64.b64encode(os.urandom(16)).decode("ascii")
        self._new_mask = new_mask
        self.state = WebSocketState.CONNECTING
        self.close_code: int | None = None  # the server's, once its close frame came
        self._buffer = bytearray()  # the response head, then a partial frame header
        self._out: list[bytes] = []  # pongs and close frames that receive_data produced
        self._remaining = 0  # payload bytes of the current data frame still to come
        self._in_message = False  # a fragmented message has begun and not ended
        self._close_sent = False

    # The opening handshake (RFC 6455 section 4.1).

    def handshake_request(self) -> bytes:
        """The HTTP/1.1 upgrade request to send first."""
        lines = [f"GET {self._path} HTTP/1.1"]
        if not any(name.lower() == "host" for name, _ in self._headers):
            lines.append(f"Host: {self._host}")  # unless the caller names another
        lines += [
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {self._key}",
            "Sec-WebSocket-Version: 13",
        ]
        if self._subprotocols:
            lines.append(f"Sec-WebSocket-Protocol: {', '.join(self._subprotocols)}")
        lines += [f"{name}: {value}" for name, value in self._headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")

    def _read_response(self, events: list[Event]) -> bytes | None:
        """Parse the response head once it is complete; the bytes after it, or None."""
        buffer = self._buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_RESPONSE_HEAD:
                self._fail(HandshakeError("the response head is too large"))
            return None
        head = bytes(buffer[:end]).decode("latin-1")
        rest = bytes(buffer[end + 4 :])
        buffer.clear()
        status_line, *header_lines = head.split("\r\n")
        version, _, status_text = status_line.partition(" ")
        code, _, phrase = status_text.partition(" ")
        if not version.startswith("HTTP/") or not code.isdigit():
            self._fail(HandshakeError(f"not an HTTP response: {status_line[:80]!r}"))
        headers: dict[str, str] = {}
        for line in header_lines:
            name, colon, value = line.partition(":")
            if not colon:
                self._fail(HandshakeError(f"malformed header line {line[:80]!r}"))
            name = name.strip().lower()
            value = value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        status = int(code)
        if status != 101:
            # The body (what the server says went wrong) usually came in the same read.
            body = rest[:200].decode("utf-8", "replace").strip()
            detail = f": {body}" if body else ""
            self._fail(HandshakeError(f"HTTP {status} {phrase}{detail}", status))
        if "websocket" not in header_tokens(headers.get("upgrade")):
            self._fail(HandshakeError("the response has no 'Upgrade: websocket'", status))
        if "upgrade" not in header_tokens(headers.get("connection")):
            self._fail(HandshakeError("the response has no 'Connection: Upgrade'", status))
        if headers.get("sec-websocket-accept") != accept_key(self._key):
            self._fail(HandshakeError("wrong or missing Sec-WebSocket-Accept", status))
        if headers.get("sec-websocket-extensions"):
            extensions = headers["sec-websocket-extensions"]
            self._fail(
                HandshakeError(f"the server chose extensions we did not offer: {extensions}")
            )
        chosen = headers.get("sec-websocket-protocol")
        if chosen is not None and chosen not in self._subprotocols:
            self._fail(HandshakeError(f"the server chose the sub-protocol {chosen!r}", status))
        self.state = WebSocketState.OPEN
        events.append(Accepted(chosen, headers))
        return rest

    # Bytes in.

    def receive_data(self, data: bytes) -> list[Event]:
        """The MQTT bytes and events in ``data``. Raises WebSocketProtocolError when the server
        breaks the protocol (a close frame is then queued in ``data_to_send``)."""
        events: list[Event] = []
        if self.state is WebSocketState.CLOSED:
            return events
        if self.state is WebSocketState.CONNECTING:
            self._buffer += data
            rest = self._read_response(events)
            if rest is None:
                return events
            data = rest
        if data:
            self._read_frames(data, events)
        return events

    def _read_frames(self, data: bytes, events: list[Event]) -> None:
        buffer = self._buffer
        if buffer:
            buffer += data
            data = bytes(buffer)
            buffer.clear()
        pos = 0
        end = len(data)
        # Servers send one MQTT packet per frame: the payloads of consecutive data frames
        # go up as one event, not one each, so that a read of many small frames costs the
        # MQTT side one parse call.
        pieces: list[bytes] = []
        while pos < end and self.state is not WebSocketState.CLOSED:
            remaining = self._remaining
            if remaining:
                take = min(remaining, end - pos)
                pieces.append(data[pos : pos + take])
                self._remaining = remaining - take
                pos += take
                continue
            header = self._read_header(data, pos)
            if header is None:
                break
            first, length, size = header
            opcode = first & 0x0F
            if opcode & 0x8:
                # Control frames are small (<= 125 bytes) and handled whole, in order.
                if end - pos - size < length:
                    break
                if pieces:
                    events.append(b"".join(pieces))
                    pieces.clear()
                self._control(first, opcode, data[pos + size : pos + size + length], events)
                pos += size + length
                continue
            self._start_data_frame(first, opcode)
            self._remaining = length
            pos += size
        if pieces:
            events.append(b"".join(pieces))
        if pos < end and self.state is not WebSocketState.CLOSED:
            buffer += data[pos:]

    def _read_header(self, data: bytes, pos: int) -> tuple[int, int, int] | None:
        """(first byte, payload length, header size), or None if incomplete."""
        available = len(data) - pos
        if available < 2:
            return None
        first = data[pos]
        second = data[pos + 1]
        if first & 0x70:
            self._fail(WebSocketProtocolError("reserved bits set, but no extension was agreed"))
        if second & 0x80:
            self._fail(WebSocketProtocolError("a masked frame from the server"))  # RFC 6455 5.1
        length = second & 0x7F
        size = 2
        if length == 126:
            size = 4
            if available < size:
                return None
            length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        elif length == 127:
            size = 10
            if available < size:
                return None
            length = int.from_bytes(data[pos + 2 : pos + 10], "big")
            if length >> 63:
                self._fail(WebSocketProtocolError("payload length with its top bit set"))
        if first & 0x08 and length > 125:
            self._fail(WebSocketProtocolError("control frame over 125 bytes"))
        return first, length, size

    def _start_data_frame(self, first: int, opcode: int) -> None:
        if opcode == TEXT:
            self._fail(
                WebSocketProtocolError(
                    "a text frame (MQTT travels in binary frames)", UNSUPPORTED_DATA
                )
            )
        if opcode == BINARY:
            if self._in_message:
                self._fail(WebSocketProtocolError("a new message before the fragmented one ended"))
        elif opcode == CONTINUATION:
            if not self._in_message:
                self._fail(WebSocketProtocolError("a continuation frame outside a message"))
        else:
            self._fail(WebSocketProtocolError(f"unknown opcode {opcode:#x}"))
        self._in_message = not first & FIN

    def _control(self, first: int, opcode: int, body: bytes, events: list[Event]) -> None:
        if not first & FIN:
            self._fail(WebSocketProtocolError("a fragmented control frame"))
        if opcode == PING:
            if self.state is WebSocketState.OPEN:
                self._out.append(encode_frame(FIN | PONG, body, self._new_mask()))
        elif opcode == CLOSE:
            if len(body) == 1:
                self._fail(WebSocketProtocolError("a close frame with a 1-byte body"))
            code = int.from_bytes(body[:2], "big") if body else NO_STATUS
            reason = body[2:].decode("utf-8", "replace")
            self.close_code = code
            if not self._close_sent:
                # Echo the code (RFC 6455 section 5.5.1); then the server closes TCP.
                self._queue_close(b"" if code == NO_STATUS else body[:2])
            self.state = WebSocketState.CLOSED
            events.append(CloseReceived(code, reason))
        elif opcode != PONG:
            self._fail(WebSocketProtocolError(f"unknown opcode {opcode:#x}"))

    def _fail(self, error: WebSocketProtocolError) -> NoReturn:
        """Fail the connection: a close frame with the error's code if open; then raise."""
        if self.state is WebSocketState.OPEN and not isinstance(error, HandshakeError):
            self._queue_close(error.code.to_bytes(2, "big"))
        self.state = WebSocketState.CLOSED
        self._buffer.clear()
        raise error

    # Bytes out.

    def send(self, data: bytes | bytearray | memoryview) -> bytes:
        """``data`` as one masked binary frame (b"" when no longer open)."""
        if self.state is not WebSocketState.OPEN or not data:
            return b""
        return encode_frame(FIN | BINARY, data, self._new_mask())

    def close(self, code: int = NORMAL_CLOSURE) -> bytes:
        """Our close frame (once), plus anything queued; the server answers with its own."""
        if self.state is WebSocketState.OPEN:
            self._queue_close(code.to_bytes(2, "big"))
            self.state = WebSocketState.CLOSING
        return self.data_to_send()

    def _queue_close(self, body: bytes) -> None:
        self._close_sent = True
        self._out.append(encode_frame(FIN | CLOSE, body, self._new_mask()))

    def data_to_send(self) -> bytes:
        """Frames receive_data produced (pongs, a close echo or a failure's close frame)."""
        if not self._out:
            return b""
        data = b"".join(self._out)
        self._out.clear()
        return data
