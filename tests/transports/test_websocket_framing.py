"""The WebSocket layer without sockets: the same byte stream fed whole, byte by byte and
in odd-sized pieces must give the protocol above exactly the same MQTT bytes."""

from __future__ import annotations

import asyncio
import base64
import os
import random
from typing import Any

import pytest

from roost.broker.websocket import WebSocketLayer
from tests.transports.helpers import frame


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 50000) if name == "peername" else default


class Recorder(asyncio.Protocol):
    def __init__(self) -> None:
        self.received = b""
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.received += data


def layer(max_frame: int = 1 << 20) -> tuple[WebSocketLayer, FakeTransport, Recorder]:
    app = Recorder()
    ws = WebSocketLayer(app, "ws test", "/mqtt", max_frame)
    raw = FakeTransport()
    ws.connection_made(raw)
    assert app.transport is ws
    return ws, raw, app


def request() -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        "GET /mqtt?x=1 HTTP/1.1\r\nHost: h\r\nUpgrade: WebSocket\r\n"
        "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Protocol: mqtt\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def stream_and_payload() -> tuple[bytes, bytes]:
    """A request, then frames (fragmented, with controls between), and their payload."""
    rng = random.Random(7)
    payload = bytes(rng.randrange(256) for _ in range(70_000))
    pieces = [payload[:1], payload[1:126], payload[126:200], payload[200:65_736], payload[65_736:]]
    frames = [
        frame(0x2, pieces[0], fin=False),
        frame(0x9, b"ping in the middle"),
        frame(0x0, pieces[1], fin=False),
        frame(0x0, pieces[2], fin=True),
        frame(0xA, b"unsolicited pong"),
        frame(0x2, pieces[3]),  # 16-bit length
        frame(0x2, b""),
        frame(0x2, pieces[4]),
    ]
    return request() + b"".join(frames), payload


@pytest.mark.parametrize("chunk", [None, 1, 2, 3, 7, 125, 4096])
def test_any_split_of_the_stream_gives_the_same_bytes(chunk: int | None) -> None:
    ws, raw, app = layer()
    stream, payload = stream_and_payload()
    size = chunk or len(stream)
    for start in range(0, len(stream), size):
        ws.data_received(stream[start : start + size])
    assert app.received == payload
    assert raw.written.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"Sec-WebSocket-Protocol: mqtt\r\n" in raw.written
    assert raw.written.endswith(b"\x8a\x12ping in the middle")  # the pong
    assert not raw.closed


def test_writes_become_binary_frames_with_the_right_length_encoding() -> None:
    ws, raw, _app = layer()
    ws.data_received(request())
    raw.written = b""
    for size in (0, 125, 126, 65_535, 65_536):
        ws.write(b"m" * size)
    expected = b"".join(
        [
            b"\x82\x00",
            b"\x82\x7d" + b"m" * 125,
            b"\x82\x7e\x00\x7e" + b"m" * 126,
            b"\x82\x7e\xff\xff" + b"m" * 65_535,
            b"\x82\x7f" + (65_536).to_bytes(8, "big") + b"m" * 65_536,
        ]
    )
    assert raw.written == expected


def test_close_sends_a_close_frame_once() -> None:
    ws, raw, _app = layer()
    ws.data_received(request())
    raw.written = b""
    ws.close()
    ws.close()
    ws.write(b"too late")
    assert raw.written == b"\x88\x02\x03\xe8"  # 1000
    assert raw.closed
    assert ws.is_closing()


def test_a_declared_length_over_the_limit_is_refused_before_the_payload() -> None:
    ws, raw, app = layer(max_frame=100)
    ws.data_received(request())
    # Only the header of a huge frame: refused without waiting for (or buffering) it.
    ws.data_received(b"\x82\xff" + (1 << 40).to_bytes(8, "big") + b"mask")
    assert raw.written.endswith(b"\x88\x02\x03\xf1")  # 1009
    assert raw.closed
    assert app.received == b""


def test_a_request_head_that_never_ends_is_refused() -> None:
    ws, raw, app = layer()
    ws.data_received(b"GET /mqtt HTTP/1.1\r\n" + b"X-Padding: " + b"a" * 20_000)
    assert raw.written.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert raw.closed
    assert app.received == b""
