"""A blocking raw-socket MQTT peer for exact wire-level tests."""

from __future__ import annotations

import socket
import time

from roost.codec import MQTT_3_1_1, Connect, Packet, read_packet

TIMEOUT = 5.0


class RawClient:
    def __init__(self, port: int, version: int = MQTT_3_1_1) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.version = version
        self.buffer = b""

    def send(self, data: bytes | Packet) -> None:
        if isinstance(data, Packet):
            data = data.encode(self.version)
        self.sock.sendall(data)

    def connect(self, client_id: str = "raw", **fields: object) -> Packet:
        """Send CONNECT at this client's version and return the CONNACK."""
        self.send(Connect(client_id, self.version, **fields))  # type: ignore[arg-type]
        return self.recv()

    def _fill(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no packet from the broker in time")
        self.sock.settimeout(remaining)
        chunk = self.sock.recv(65536)
        if not chunk:
            return False
        self.buffer += chunk
        return True

    def recv(self, timeout: float = TIMEOUT) -> Packet:
        """The next packet from the broker; raises ConnectionError if it closed instead."""
        deadline = time.monotonic() + timeout
        while True:
            result = read_packet(self.buffer, self.version)
            if result is not None:
                packet, used = result
                self.buffer = self.buffer[used:]
                return packet
            if not self._fill(deadline):
                raise ConnectionError("broker closed the connection")

    def recv_bytes(self, count: int, timeout: float = TIMEOUT) -> bytes:
        deadline = time.monotonic() + timeout
        while len(self.buffer) < count:
            if not self._fill(deadline):
                raise ConnectionError("broker closed the connection")
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def expect_closed(self, timeout: float = TIMEOUT) -> list[Packet]:
        """Read until the broker closes the connection; return the packets it sent first."""
        packets: list[Packet] = []
        deadline = time.monotonic() + timeout
        while True:
            result = read_packet(self.buffer, self.version)
            if result is not None:
                packet, used = result
                self.buffer = self.buffer[used:]
                packets.append(packet)
                continue
            try:
                if not self._fill(deadline):
                    return packets
            except ConnectionResetError:
                return packets

    def expect_silence(self, seconds: float = 0.3) -> None:
        """Assert that nothing arrives for ``seconds`` (used only to show an absence)."""
        self.sock.settimeout(seconds)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected data from the broker: {chunk!r}")

    def close(self) -> None:
        self.sock.close()
