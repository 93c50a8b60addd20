"""MQTT over WebSocket (RFC 6455): the HTTP/1.1 upgrade, then binary frames both ways.

The layer only moves bytes: MQTT packets may span frames and a frame may hold several
packets (MQTT 5.0 section 6, [MQTT-6.0.0-2]), so frame payloads go to the
BrokerConnection above as a byte stream, unmasked as they arrive, never reassembled.
Going out, each MQTT packet gets a binary frame of its own (``writelines``), and the
frames of one flush leave in one write.

Not supported: extensions (permessage-deflate is simply not accepted, which the RFC
allows), text frames (MQTT forbids them [MQTT-6.0.0-1]), HTTP/2 WebSockets.
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import TYPE_CHECKING

from roost.broker.layers import StreamLayer
from roost.protocol.websocket import (
    BINARY,
    CLOSE,
    CONTINUATION,
    FIN,
    MESSAGE_TOO_BIG,
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

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Iterable


log = logging.getLogger("roost.broker")

# Sub-protocols in order of preference: "mqtt" is what MQTT 3.1.1 and 5.0 register
# [MQTT-6.0.0-4]; "mqttv3.1" is what MQTT 3.1 clients (old Paho JavaScript) offer.
_SUBPROTOCOLS = ("mqtt", "mqttv3.1")
_MAX_REQUEST_HEAD = 16 * 1024


class _Refused(Exception):
    """The upgrade request cannot be accepted: the HTTP status to answer with."""

    def __init__(self, status: int, why: str, headers: str = "") -> None:
        super().__init__(why)
        self.status = status
        self.why = why
        self.headers = headers


class _Failure(Exception):
    """The client broke RFC 6455 or MQTT's use of it: the close code to send."""

    def __init__(self, code: int, why: str) -> None:
        super().__init__(why)
        self.code = code
        self.why = why


_STATUS_TEXT = {
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    426: "Upgrade Required",
    431: "Request Header Fields Too Large",
}


class WebSocketLayer(StreamLayer):
    """The server side of one WebSocket connection, carrying MQTT for the protocol above."""

    __slots__ = (
        "_buffer",
        "_close_sent",
        "_in_message",
        "_label",
        "_mask",
        "_mask_offset",
        "_max_frame",
        "_path",
        "_remaining",
        "_upgraded",
    )

    def __init__(self, app: asyncio.Protocol, label: str, path: str, max_frame: int) -> None:
        super().__init__(app)
        self._label = label  # the listener's, for the log
        self._path = path
        self._max_frame = max_frame  # payload bytes of one frame
        self._buffer = bytearray()  # the request head, then a partial frame header
        self._upgraded = False
        self._close_sent = False
        self._in_message = False  # a fragmented message has begun and not ended
        self._remaining = 0  # payload bytes of the current data frame still to come
        self._mask = b"\0\0\0\0"
        self._mask_offset = 0

    # Bytes in.

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        if not self._upgraded:
            buffer = self._buffer
            buffer += data
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > _MAX_REQUEST_HEAD:
                    self._refuse(_Refused(431, "request head too large"))
                elif not _could_start_a_request(buffer):
                    # Plain MQTT (or TLS) to a WebSocket port: say so now rather than
                    # leave the client waiting for an answer that never comes.
                    self._refuse(_Refused(400, "not an HTTP request (plain MQTT or TLS?)"))
                return
            head = bytes(buffer[:end])
            data = bytes(buffer[end + 4 :])
            buffer.clear()
            try:
                self._upgrade(head)
            except _Refused as refused:
                self._refuse(refused)
                return
            if not data:
                return
        try:
            self._read_frames(data)
        except _Failure as failure:
            log.warning(
                "WebSocket client %s on listener %s: %s; closing.",
                self.peer(),
                self._label,
                failure.why,
            )
            self._send_close(failure.code)
            self._closed = True
            if self.raw is not None:
                self.raw.close()

    def _read_frames(self, data: bytes) -> None:
        buffer = self._buffer
        if buffer:
            buffer += data
            data = bytes(buffer)
            buffer.clear()
        payload: list[bytes] = []
        pos = 0
        end = len(data)
        # The protocol above may close the connection while handling a payload.
        while pos < end and not self._closed:
            remaining = self._remaining
            if remaining:
                take = min(remaining, end - pos)
                offset = self._mask_offset
                payload.append(apply_mask(data[pos : pos + take], self._mask, offset))
                self._mask_offset = (offset + take) & 3
                self._remaining = remaining - take
                pos += take
                continue
            header = _read_header(data, pos)
            if header is None:
                break
            first, length, mask, size = header
            opcode = first & 0x0F
            if opcode & 0x8:
                # Control frames are small and handled whole, in order with the data.
                if end - pos - size < length:
                    break
                body = apply_mask(data[pos + size : pos + size + length], mask, 0)
                pos += size + length
                if payload:
                    self._deliver(payload)
                    payload = []
                    if self._closed:
                        return
                self._control(first, opcode, body)
                if self._closed:
                    return
                continue
            self._start_data_frame(first, opcode, length)
            self._mask = mask
            self._mask_offset = 0
            self._remaining = length
            pos += size
        if pos < end:
            buffer += data[pos:]
        if payload:
            self._deliver(payload)

    def _deliver(self, payload: list[bytes]) -> None:
        if not self._closed:
            self.app.data_received(payload[0] if len(payload) == 1 else b"".join(payload))

    def _start_data_frame(self, first: int, opcode: int, length: int) -> None:
        if opcode == TEXT:
            raise _Failure(UNSUPPORTED_DATA, "text frame (MQTT travels in binary frames)")
        if opcode == BINARY:
            if self._in_message:
                raise _Failure(PROTOCOL_ERROR, "new message before the fragmented one ended")
        elif opcode == CONTINUATION:
            if not self._in_message:
                raise _Failure(PROTOCOL_ERROR, "continuation frame outside a message")
        else:
            raise _Failure(PROTOCOL_ERROR, f"unknown opcode {opcode:#x}")
        if length > self._max_frame:
            raise _Failure(
                MESSAGE_TOO_BIG, f"frame of {length} bytes, over the limit of {self._max_frame}"
            )
        self._in_message = not (first & FIN)

    def _control(self, first: int, opcode: int, body: bytes) -> None:
        if not first & FIN:
            raise _Failure(PROTOCOL_ERROR, "fragmented control frame")
        if opcode == PING:
            if not self._close_sent:  # nothing may follow our close frame (RFC 6455 5.5.1)
                self._write_frame(FIN | PONG, body)
        elif opcode == CLOSE:
            if len(body) == 1:
                raise _Failure(PROTOCOL_ERROR, "close frame with a 1-byte body")
            code = int.from_bytes(body[:2], "big") if body else NO_STATUS
            log.debug("WebSocket client %s sent close %d.", self.peer(), code)
            # Answer with the same code, then close: the server closes TCP first (7.1.1).
            self._send_close(NORMAL_CLOSURE if code == NO_STATUS else code)
            self._closed = True
            if self.raw is not None:
                self.raw.close()
        elif opcode != PONG:
            raise _Failure(PROTOCOL_ERROR, f"unknown opcode {opcode:#x}")

    # Bytes out.

    # One MQTT packet per binary frame, many frames per write: MQTT 5.0 section 6 lets a
    # receiver not assume alignment [MQTT-6.0.0-2], but clients in the field (Paho C's
    # synchronous client among them) read one packet per frame, and Mosquitto sends so.
    frames_packets = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """One MQTT packet (``BufferedTransport`` writes a single packet with this)."""
        if not self._closed and self._upgraded and not self._close_sent:
            self._write_frame(FIN | BINARY, data)

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        """Whole MQTT packets: each in its own frame, all in one write below."""
        raw = self.raw
        if self._closed or not self._upgraded or self._close_sent or raw is None:
            return
        raw.write(b"".join(_frame(FIN | BINARY, data) for data in list_of_data))

    def write_eof(self) -> None:
        """Our close frame, then the write side below shut down; frames are still read
        (the client's close frame answers ours, and then the TCP connection is closed)."""
        if self._closed or self._close_sent:
            return
        if not self._upgraded:
            self.close()  # no WebSocket yet: nothing to say first
            return
        self._send_close(NORMAL_CLOSURE)
        self.write_eof_below()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._upgraded:
            self._send_close(NORMAL_CLOSURE)
        if self.raw is not None:
            self.raw.close()

    def _write_frame(self, first: int, data: bytes | bytearray | memoryview) -> None:
        raw = self.raw
        if raw is None:
            return
        raw.write(_frame(first, data))

    def _send_close(self, code: int) -> None:
        if self._upgraded and not self._close_sent:
            self._close_sent = True
            self._write_frame(FIN | CLOSE, code.to_bytes(2, "big"))

    # The opening handshake (RFC 6455 section 4.2).

    def _upgrade(self, head: bytes) -> None:
        try:
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            method, target, version = request_line.split(" ")
        except ValueError:
            raise _Refused(400, "not an HTTP request") from None
        headers: dict[str, str] = {}
        for line in header_lines:
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip():
                raise _Refused(400, "malformed header line")
            name = name.lower()
            value = value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        if method != "GET":
            raise _Refused(405, f"method {method} (only GET upgrades)", "Allow: GET\r\n")
        if version != "HTTP/1.1":
            raise _Refused(400, f"{version} (WebSocket needs HTTP/1.1)")
        path = target.partition("?")[0]
        if path != self._path:
            raise _Refused(404, f"path {path!r} (this listener serves {self._path!r})")
        upgrade = header_tokens(headers.get("upgrade"))
        if "websocket" not in upgrade or "upgrade" not in header_tokens(headers.get("connection")):
            raise _Refused(426, "not a WebSocket upgrade request", "Upgrade: websocket\r\n")
        if headers.get("sec-websocket-version") != "13":
            raise _Refused(
                426,
                f"WebSocket version {headers.get('sec-websocket-version')!r} (only 13)",
                "Sec-WebSocket-Version: 13\r\n",
            )
        key = headers.get("sec-websocket-key", "")
        try:
            valid_key = len(base64.b64decode(key, validate=True)) == 16
        except binascii.Error:
            valid_key = False
        if not valid_key:
            raise _Refused(400, "missing or invalid Sec-WebSocket-Key")
        offered = header_tokens(headers.get("sec-websocket-protocol"))
        chosen = next((name for name in _SUBPROTOCOLS if name in offered), None)
        if offered and chosen is None:
            raise _Refused(400, f"sub-protocols {sorted(offered)} (this is MQTT: offer 'mqtt')")
        accept = accept_key(key)
        response = (
            "HTTP/1.1 101 Switching Protocols\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept}\r\n"
        )
        if chosen is not None:
            # A client that offered none gets none: naming one would fail its handshake.
            response += f"Sec-WebSocket-Protocol: {chosen}\r\n"
        if self.raw is not None:
            self.raw.write((response + "\r\n").encode())
        self._upgraded = True
        log.debug(
            "WebSocket connection from %s on listener %s (sub-protocol %s).",
            self.peer(),
            self._label,
            chosen or "none",
        )

    def _refuse(self, refused: _Refused) -> None:
        log.warning(
            "WebSocket handshake from %s on listener %s refused: %s (HTTP %d).",
            self.peer(),
            self._label,
            refused.why,
            refused.status,
        )
        body = f"{refused.why}\n".encode()
        head = (
            f"HTTP/1.1 {refused.status} {_STATUS_TEXT[refused.status]}\r\n"
            f"{refused.headers}"
            "Connection: close\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self._closed = True
        if self.raw is not None:
            self.raw.write(head.encode() + body)
            self.raw.close()


def _read_header(data: bytes, pos: int) -> tuple[int, int, bytes, int] | None:
    """(first byte, payload length, mask, header size), or None if incomplete."""
    available = len(data) - pos
    if available < 2:
        return None
    first = data[pos]
    second = data[pos + 1]
    if first & 0x70:
        raise _Failure(PROTOCOL_ERROR, "reserved bits set, but no extension was agreed")
    if not second & 0x80:
        raise _Failure(PROTOCOL_ERROR, "unmasked frame from a client")
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
            raise _Failure(PROTOCOL_ERROR, "payload length with its top bit set")
    if first & 0x08 and length > 125:
        raise _Failure(PROTOCOL_ERROR, "control frame over 125 bytes")
    if available < size + 4:
        return None
    return first, length, data[pos + size : pos + size + 4], size + 4


def _frame(first: int, data: bytes | bytearray | memoryview) -> bytes:
    """An unmasked frame (a server's) with ``data`` as its payload."""
    return frame_header(first, len(data)) + data


def _could_start_a_request(buffer: bytearray) -> bool:
    """Whether ``buffer`` can be the start of an HTTP request line: letters of a method
    (the handshake's is GET), then a space. An MQTT CONNECT starts with 0x10, a TLS
    ClientHello with 0x16."""
    method, space, _rest = bytes(buffer[:16]).partition(b" ")
    if not space and len(method) >= 16:
        return False  # no method is that long
    return (not method and not space) or (method.isalpha() and method.isupper())
