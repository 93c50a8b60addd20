"""Brokers with any listeners, TLS and WebSocket clients, and the broker's log."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import queue
import re
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from typing import Any, Literal

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from roost.broker.config import BrokerConfig, ListenerConfig
from roost.codec import MQTT_3_1_1, Packet, read_packet
from tests.support.broker_thread import BrokerThread
from tests.support.cleanup import close_at_end
from tests.support.paho import release
from tests.support.raw import TIMEOUT, RawClient
from tests.transports.pki import ClientCert, Pki


class ListenersBroker(BrokerThread):
    """A BrokerThread with the given listeners instead of its one TCP listener."""

    def __init__(self, listeners: Sequence[ListenerConfig], **overrides: Any) -> None:
        overrides.setdefault("persistence", "memory")  # as make_broker does
        super().__init__(BrokerConfig(**overrides))
        # BrokerThread sets one loopback TCP listener; the Broker reads the list at start.
        self.config.listeners = list(listeners)

    def port_of(self, index: int) -> int:
        return self.broker.listeners[index].port


def subscribed(broker: BrokerThread, client_id: str, topic_filter: str) -> bool:
    """Whether ``client_id``'s session has the subscription (run on the broker's loop)."""
    session = broker.broker.sessions.get(client_id)
    return session is not None and topic_filter in session.subscriptions


def tls_listener(pki: Pki, **settings: Any) -> ListenerConfig:
    files = {"certfile": str(pki.certfile), "keyfile": str(pki.keyfile)}
    return ListenerConfig(port=0, type="tls", **{**files, **settings})


def client_context(
    pki: Pki,
    *,
    cafile: object = None,
    cert: ClientCert | None = None,
    maximum_version: ssl.TLSVersion | None = None,
) -> ssl.SSLContext:
    """What a client trusts (the test CA unless told otherwise) and presents."""
    context = ssl.create_default_context(cafile=str(cafile or pki.cafile))
    if cert is not None:
        context.load_cert_chain(cert.certfile, cert.keyfile)
    if maximum_version is not None:
        context.maximum_version = maximum_version
    return context


def refused_tls_client(port: int, context: ssl.SSLContext, version: int = MQTT_3_1_1) -> None:
    """Try to connect with TLS and MQTT; the test expects this to raise.

    With TLS 1.3 the client's handshake ends before the server has checked the client's
    certificate, so a refusal may only show on the first read: the CONNACK that never
    comes.
    """
    client = tls_client(port, context, version)
    client.connect("refused")


def tls_client(port: int, context: ssl.SSLContext, version: int = MQTT_3_1_1) -> RawClient:
    """A RawClient whose socket speaks TLS (handshake done; it raises if refused)."""
    client = RawClient(port, version)
    close_at_end(client.close)
    client.sock = context.wrap_socket(client.sock, server_hostname="localhost")
    return client


class BrokerLog:
    """The broker's log lines as the test sees them (pytest's caplog, from any thread)."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.DEBUG, logger="roost")
        self._caplog = caplog

    def messages(self) -> list[str]:
        return [record.getMessage() for record in list(self._caplog.records)]

    def wait_for(self, pattern: str, timeout: float = TIMEOUT) -> str:
        """The first message matching ``pattern``, waiting for it to be logged."""
        deadline = time.monotonic() + timeout
        pause = 0.001
        while True:
            for message in self.messages():
                if re.search(pattern, message):
                    return message
            if time.monotonic() > deadline:
                lines = "\n".join(self.messages())
                raise AssertionError(f"no log message matching {pattern!r} in:\n{lines}")
            time.sleep(pause)
            pause = min(pause * 2, 0.02)


# WebSocket, spoken by hand for the tests that need to see or break the framing.

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class WsClient:
    """A blocking WebSocket client: the upgrade, then frames, then MQTT in frames."""

    def __init__(self, port: int, context: ssl.SSLContext | None = None) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname="localhost")
        self.sock = sock
        close_at_end(self.close)
        self.buffer = b""
        self.stream = b""  # MQTT bytes from binary frames, not yet read as packets
        self.version = MQTT_3_1_1

    def close(self) -> None:
        self.sock.close()

    def upgrade(
        self,
        path: str = "/mqtt",
        protocols: Sequence[str] = ("mqtt",),
        *,
        headers: dict[str, str] | None = None,
        request_line: str | None = None,
        trailing: bytes = b"",
    ) -> tuple[int, dict[str, str]]:
        """Send the opening handshake (and ``trailing`` bytes in the same write); the
        response's status and (lower-case) headers."""
        key = base64.b64encode(os.urandom(16)).decode()
        fields = {
            "Host": "localhost",
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": key,
            "Sec-WebSocket-Version": "13",
        }
        if protocols:
            fields["Sec-WebSocket-Protocol"] = ", ".join(protocols)
        fields.update(headers or {})
        lines = [request_line or f"GET {path} HTTP/1.1"]
        lines += [f"{name}: {value}" for name, value in fields.items() if value]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + trailing)
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ")[1])
        response = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            response[name.strip().lower()] = value.strip()
        if status == 101:
            digest = hashlib.sha1(key.encode() + WS_GUID).digest()  # noqa: S324  (RFC 6455)
            expected = base64.b64encode(digest).decode()
            assert response["sec-websocket-accept"] == expected
        return status, response

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("broker closed the connection")
        self.buffer += chunk

    def send_frame(
        self, opcode: int, payload: bytes, *, fin: bool = True, masked: bool = True, rsv: int = 0
    ) -> None:
        self.sock.sendall(frame(opcode, payload, fin=fin, masked=masked, rsv=rsv))

    def send_mqtt(self, data: bytes | Packet) -> None:
        if isinstance(data, Packet):
            data = data.encode(self.version)
        self.send_frame(0x2, data)

    def recv_frame(self) -> tuple[bool, int, bytes]:
        """(fin, opcode, payload) of the next frame from the broker."""
        while True:
            if len(self.buffer) >= 2:
                first, second = self.buffer[0], self.buffer[1]
                assert not second & 0x80, "the server must not mask its frames"
                length, size = second & 0x7F, 2
                if length == 126:
                    length, size = int.from_bytes(self.buffer[2:4], "big"), 4
                elif length == 127:
                    length, size = int.from_bytes(self.buffer[2:10], "big"), 10
                if len(self.buffer) >= size + length:
                    payload = self.buffer[size : size + length]
                    self.buffer = self.buffer[size + length :]
                    return bool(first & 0x80), first & 0x0F, payload
            self._fill()

    def recv_mqtt(self) -> Packet:
        """The next MQTT packet, from however many binary frames it takes."""
        while True:
            result = read_packet(self.stream, self.version)
            if result is not None:
                packet, used = result
                self.stream = self.stream[used:]
                return packet
            _fin, opcode, payload = self.recv_frame()
            assert opcode == 0x2, f"opcode {opcode:#x} from the broker"
            self.stream += payload

    def expect_close(self) -> int:
        """The status code of the broker's close frame; then the connection ends."""
        while True:
            _fin, opcode, payload = self.recv_frame()
            if opcode == 0x8:
                code = int.from_bytes(payload[:2], "big")
                try:
                    while self.sock.recv(65536):
                        pass
                except (ConnectionResetError, ssl.SSLError):
                    pass
                return code

    def expect_http_close(self) -> bytes:
        """The rest of an HTTP answer, read until the broker closes the connection."""
        data = self.buffer
        while chunk := self.sock.recv(65536):
            data += chunk
        return data


def frame(
    opcode: int, payload: bytes, *, fin: bool = True, masked: bool = True, rsv: int = 0
) -> bytes:
    """One WebSocket frame as a client sends it (masked unless told otherwise)."""
    first = (0x80 if fin else 0) | rsv << 4 | opcode
    mask_bit = 0x80 if masked else 0
    length = len(payload)
    if length < 126:
        header = bytes((first, mask_bit | length))
    elif length < 65536:
        header = bytes((first, mask_bit | 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((first, mask_bit | 127)) + length.to_bytes(8, "big")
    if masked:
        mask = os.urandom(4)
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        header += mask
    return header + payload


# paho-mqtt over TLS and WebSockets.


class Paho:
    """A connected paho client on any transport; messages arrive in ``messages``."""

    def __init__(
        self,
        port: int,
        client_id: str,
        *,
        transport: Literal["tcp", "websockets"] = "tcp",
        tls: ssl.SSLContext | None = None,
        path: str = "/mqtt",
        username: str | None = None,
        version: MQTTProtocolVersion = paho.MQTTv311,
    ) -> None:
        self.messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self.connected = threading.Event()
        self.reason: Any = None
        self.subscribed = threading.Event()
        client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, transport=transport, protocol=version
        )
        if transport == "websockets":
            client.ws_set_options(path=path)
        if tls is not None:
            client.tls_set_context(tls)
        if username is not None:
            client.username_pw_set(username)
        client.on_connect = self._on_connect
        client.on_message = lambda _c, _u, message: self.messages.put(message)
        client.on_subscribe = lambda *_args: self.subscribed.set()
        self.client = client
        client.connect("localhost" if tls is not None else "127.0.0.1", port, keepalive=30)
        client.loop_start()
        close_at_end(self.stop)
        assert self.connected.wait(TIMEOUT), "paho did not connect"

    def _on_connect(self, _client: paho.Client, _userdata: object, *args: Any) -> None:
        self.reason = args[1]
        self.connected.set()

    def subscribe(self, topic: str, qos: int = 1) -> None:
        self.subscribed.clear()
        self.client.subscribe(topic, qos)
        assert self.subscribed.wait(TIMEOUT), "no SUBACK"

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        self.client.publish(topic, payload, qos).wait_for_publish(TIMEOUT)

    def next_message(self) -> paho.MQTTMessage:
        return self.messages.get(timeout=TIMEOUT)

    def stop(self) -> None:
        self.client.disconnect()
        release(self.client)
