"""The client's RFC 6455 layer, sans-IO: the upgrade request, the checks on the answer,
frames in (whole, byte by byte, split anywhere) and frames out (masked)."""

from __future__ import annotations

import base64
import os

import pytest

from roost.protocol.websocket import accept_key, apply_mask
from roost.protocol.websocket_client import (
    Accepted,
    CloseReceived,
    Event,
    HandshakeError,
    WebSocketClient,
    WebSocketProtocolError,
    WebSocketState,
    check_headers,
    host_header,
)

KEY = base64.b64encode(b"0123456789abcdef").decode()


def server_frame(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0) -> bytes:
    """A frame as a server sends it: unmasked."""
    first = (0x80 if fin else 0) | rsv << 4 | opcode
    length = len(payload)
    if length < 126:
        header = bytes((first, length))
    elif length < 65536:
        header = bytes((first, 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((first, 127)) + length.to_bytes(8, "big")
    return header + payload


def read_client_frame(data: bytes) -> tuple[int, bytes, bytes, int]:
    """(first byte, mask, unmasked payload, frame size) of a client frame."""
    first, second = data[0], data[1]
    assert second & 0x80, "client frames are masked"
    length, size = second & 0x7F, 2
    if length == 126:
        length, size = int.from_bytes(data[2:4], "big"), 4
    elif length == 127:
        length, size = int.from_bytes(data[2:10], "big"), 10
    mask = data[size : size + 4]
    body = data[size + 4 : size + 4 + length]
    unmasked = bytes(b ^ mask[i % 4] for i, b in enumerate(body))
    return first, mask, unmasked, size + 4 + length


def response(*extra: str, status: str = "101 Switching Protocols", key: str = KEY) -> bytes:
    lines = [
        f"HTTP/1.1 {status}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept_key(key)}",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def open_client() -> WebSocketClient:
    ws = WebSocketClient("example.com", key=KEY)
    [event] = ws.receive_data(response("Sec-WebSocket-Protocol: mqtt"))
    assert isinstance(event, Accepted)
    assert event.subprotocol == "mqtt"
    assert ws.state is WebSocketState.OPEN
    return ws


def stream(events: list[Event]) -> bytes:
    return b"".join(event for event in events if isinstance(event, bytes))


# The opening handshake.


def test_the_upgrade_request() -> None:
    ws = WebSocketClient(
        "broker.example:8080", "/mqtt/ws?token=1", [("Origin", "https://app"), ("X-Id", "7")]
    )
    head, _, rest = ws.handshake_request().partition(b"\r\n\r\n")
    assert rest == b""
    lines = head.decode().split("\r\n")
    assert lines[0] == "GET /mqtt/ws?token=1 HTTP/1.1"
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert headers["Host"] == "broker.example:8080"
    assert headers["Upgrade"] == "websocket"
    assert headers["Connection"] == "Upgrade"
    assert headers["Sec-WebSocket-Version"] == "13"
    assert headers["Sec-WebSocket-Protocol"] == "mqtt"  # [MQTT-6.0.0-3]
    assert len(base64.b64decode(headers["Sec-WebSocket-Key"])) == 16
    assert (headers["Origin"], headers["X-Id"]) == ("https://app", "7")
    # A fresh key per connection.
    other = WebSocketClient("h").handshake_request()
    assert headers["Sec-WebSocket-Key"].encode() not in other


def test_a_caller_given_host_header_replaces_ours() -> None:
    request = WebSocketClient("127.0.0.1:9001", headers=[("host", "virtual.example")])
    text = request.handshake_request().decode()
    assert "host: virtual.example\r\n" in text
    assert "Host: 127.0.0.1" not in text


def test_host_header() -> None:
    assert host_header("example.com", 80, secure=False) == "example.com"
    assert host_header("example.com", 443, secure=True) == "example.com"
    assert host_header("example.com", 443, secure=False) == "example.com:443"
    assert host_header("::1", 8080, secure=False) == "[::1]:8080"


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ([("Sec-WebSocket-Key", "x")], "sets Sec-WebSocket-Key itself"),
        ([("upgrade", "h2c")], "sets upgrade itself"),
        ([("X-A", "one\r\nEvil: 1")], "line break"),
        ([("Bad Name", "v")], "invalid WebSocket header name"),
        ([("", "v")], "invalid WebSocket header name"),
    ],
)
def test_headers_that_would_break_the_handshake_are_refused(
    headers: list[tuple[str, str]], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        check_headers(headers)


@pytest.mark.parametrize("path", ["mqtt", "/a b", "/a\r\n", ""])
def test_invalid_paths_are_refused(path: str) -> None:
    with pytest.raises(ValueError, match="WebSocket path"):
        WebSocketClient("h", path)


def test_the_answer_byte_by_byte_with_frames_after_it() -> None:
    ws = WebSocketClient("h", key=KEY)
    data = response("Sec-WebSocket-Protocol: mqtt") + server_frame(2, b"\x20\x02\x00\x00")
    events: list[Event] = []
    for index in range(len(data)):
        events += ws.receive_data(data[index : index + 1])
    assert isinstance(events[0], Accepted)
    assert events[0].subprotocol == "mqtt"
    assert stream(events) == b"\x20\x02\x00\x00"


def test_a_server_that_names_no_subprotocol_is_accepted() -> None:
    # MQTT asks the server to choose "mqtt" [MQTT-6.0.0-4], but RFC 6455 lets it say
    # nothing; brokers that do are common, so the client does not insist.
    ws = WebSocketClient("h", key=KEY)
    [event] = ws.receive_data(response())
    assert isinstance(event, Accepted)
    assert event.subprotocol is None
    assert ws.state is WebSocketState.OPEN


@pytest.mark.parametrize(
    ("answer", "problem", "status"),
    [
        (
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nno route\n",
            "HTTP 404 Not Found: no route",
            404,
        ),
        (b"HTTP/1.1 200 OK\r\n\r\n", "HTTP 200 OK", 200),
        (b"\x20\x02\x00\x00 not http\r\n\r\n", "not an HTTP response", None),
        (response(key="c29tZXRoaW5nIGVsc2UhIQ=="), "Sec-WebSocket-Accept", 101),
        (response().replace(b"Upgrade: websocket\r\n", b""), "Upgrade: websocket", 101),
        (response().replace(b"Connection: Upgrade\r\n", b"Connection: close\r\n"), "Upgrade'", 101),
        (response("Sec-WebSocket-Protocol: mqttv5"), "sub-protocol 'mqttv5'", 101),
        (response("Sec-WebSocket-Extensions: permessage-deflate"), "extensions", None),
        (b"HTTP/1.1 101 OK\r\nbroken\r\n\r\n", "malformed header line", None),
    ],
)
def test_refused_or_broken_answers(answer: bytes, problem: str, status: int | None) -> None:
    ws = WebSocketClient("h", key=KEY)
    with pytest.raises(HandshakeError, match=problem) as caught:
        ws.receive_data(answer)
    assert caught.value.status == status
    assert ws.state is WebSocketState.CLOSED
    assert ws.data_to_send() == b""  # no close frame before the upgrade: just close TCP


def test_an_endless_response_head_is_refused() -> None:
    ws = WebSocketClient("h", key=KEY)
    ws.receive_data(b"HTTP/1.1 101 Switching Protocols\r\n" + b"X-Filler: xxxx\r\n" * 1000)
    with pytest.raises(HandshakeError, match="too large"):
        ws.receive_data(b"X-Filler: " + b"x" * 1024 + b"\r\n")


# Frames in.


def test_mqtt_bytes_flow_through_frames_split_anywhere() -> None:
    # One packet over three frames (a fragmented message), a ping in the middle of it,
    # then two packets in one frame, then lengths with 16-bit and 64-bit encodings.
    publish = b"\x30\x0a\x00\x03a/bhello!"
    big = os.urandom(70000)
    data = (
        server_frame(2, publish[:3], fin=False)
        + server_frame(9, b"ping-1")
        + server_frame(0, publish[3:8], fin=False)
        + server_frame(0, publish[8:])
        + server_frame(2, b"\xd0\x00\xd0\x00")
        + server_frame(2, big[:300])
        + server_frame(2, big[300:])
        + server_frame(10, b"unsolicited pong")
    )
    expected = publish + b"\xd0\x00\xd0\x00" + big
    whole = open_client()
    assert stream(whole.receive_data(data)) == expected
    pong = whole.data_to_send()
    first, _mask, payload, size = read_client_frame(pong)
    assert (first, payload, size) == (0x8A, b"ping-1", len(pong))
    for chunk_size in (1, 7, 4096):
        ws = open_client()
        events: list[Event] = []
        for start in range(0, len(data), chunk_size):
            events += ws.receive_data(data[start : start + chunk_size])
        assert stream(events) == expected
        assert read_client_frame(ws.data_to_send())[2] == b"ping-1"


def test_consecutive_data_frames_go_up_as_one_event() -> None:
    # A server sends one MQTT packet per frame: a read holding many frames must cost the
    # MQTT side one call, and a control frame between them keeps its place.
    packets = [bytes((0x40, 0x02, 0x00, n)) for n in range(1, 6)]
    ws = open_client()
    data = b"".join(server_frame(2, packet) for packet in packets[:3])
    data += server_frame(9, b"ping") + b"".join(server_frame(2, p) for p in packets[3:])
    events = ws.receive_data(data)
    assert events == [b"".join(packets[:3]), b"".join(packets[3:])]
    assert read_client_frame(ws.data_to_send())[2] == b"ping"
    closing = open_client()
    events = closing.receive_data(server_frame(2, packets[0]) + server_frame(8, b"\x03\xe8"))
    assert events == [packets[0], CloseReceived(1000, "")]


@pytest.mark.parametrize(
    ("frame", "problem", "code"),
    [
        (bytes((0x82, 0x81)) + b"mask" + b"x", "masked frame", 1002),
        (server_frame(2, b"x", rsv=4), "reserved bits", 1002),
        (server_frame(1, b"{}"), "text frame", 1003),
        (server_frame(0, b"x"), "continuation frame outside", 1002),
        (server_frame(2, b"x", fin=False) + server_frame(2, b"y"), "new message", 1002),
        (server_frame(3, b"x"), "unknown opcode 0x3", 1002),
        (server_frame(11, b"x"), "unknown opcode 0xb", 1002),
        (server_frame(9, b"x", fin=False), "fragmented control", 1002),
        (bytes((0x89, 126)) + (200).to_bytes(2, "big") + b"p" * 200, "over 125", 1002),
        (server_frame(8, b"\x03"), "1-byte body", 1002),
        (bytes((0x82, 127)) + (1 << 63).to_bytes(8, "big"), "top bit", 1002),
    ],
)
def test_protocol_errors_fail_the_connection(frame: bytes, problem: str, code: int) -> None:
    ws = open_client()
    with pytest.raises(WebSocketProtocolError, match=problem) as caught:
        ws.receive_data(frame)
    assert caught.value.code == code
    assert ws.state is WebSocketState.CLOSED
    first, _mask, payload, _size = read_client_frame(ws.data_to_send())
    assert (first, payload) == (0x88, code.to_bytes(2, "big"))
    assert ws.receive_data(server_frame(2, b"later")) == []
    assert ws.send(b"later") == b""


def test_a_close_from_the_server_is_echoed() -> None:
    ws = open_client()
    events = ws.receive_data(server_frame(2, b"\xe0\x00") + server_frame(8, b"\x03\xe9going"))
    assert events == [b"\xe0\x00", CloseReceived(1001, "going")]
    assert ws.state is WebSocketState.CLOSED
    assert ws.close_code == 1001
    first, _mask, payload, _size = read_client_frame(ws.data_to_send())
    assert (first, payload) == (0x88, b"\x03\xe9")
    assert ws.close() == b""  # once is enough


def test_a_close_without_a_code_is_echoed_without_one() -> None:
    ws = open_client()
    assert ws.receive_data(server_frame(8, b"")) == [CloseReceived(1005, "")]
    assert read_client_frame(ws.data_to_send())[2] == b""


def test_our_close_then_the_servers_answer() -> None:
    ws = open_client()
    first, _mask, payload, _size = read_client_frame(ws.close())
    assert (first, payload) == (0x88, b"\x03\xe8")
    assert ws.state is WebSocketState.CLOSING
    assert ws.send(b"too late") == b""
    # Data the server sent before it saw our close still arrives.
    events = ws.receive_data(server_frame(2, b"\xd0\x00") + server_frame(8, b"\x03\xe8"))
    assert events == [b"\xd0\x00", CloseReceived(1000, "")]
    assert ws.close_code == 1000
    assert ws.data_to_send() == b""  # no second close frame
    assert ws.receive_data(server_frame(2, b"after")) == []  # closed: nothing more


# Frames out.


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 100_000])
def test_sent_frames_are_masked_binary_frames(size: int) -> None:
    ws = open_client()
    payload = os.urandom(size)
    frame = ws.send(payload)
    if size == 0:
        assert frame == b""  # nothing to send: no empty frame
        return
    first, mask, unmasked, length = read_client_frame(frame)
    assert (first, unmasked, length) == (0x82, payload, len(frame))
    assert read_client_frame(ws.send(payload))[1] != mask or size < 4  # fresh mask per frame


def test_nothing_is_sent_before_the_upgrade() -> None:
    ws = WebSocketClient("h")
    assert ws.send(b"\x10\x00") == b""
    assert ws.close() == b""


def test_apply_mask_matches_the_rfc_definition() -> None:
    mask = b"\x01\x80\xff\x37"
    for size in (1, 3, 4, 5, 1000):
        data = os.urandom(size)
        assert apply_mask(data, mask) == bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    assert apply_mask(b"", mask) == b""


def test_accept_key_is_the_rfc_example() -> None:
    # RFC 6455 section 1.3.
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
