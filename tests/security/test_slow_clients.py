"""Slow-loris: connections that send nothing, half a packet, or a packet a byte at a time.

What cuts each one off (docs/security.md): before CONNECT, ``connect_timeout`` counted
from the accept, however many bytes arrive; after it, keep-alive counts whole packets,
so a packet trickled in over more than 1.5 x keep-alive ends the connection; a packet
announcing more than ``max_packet_size`` is refused from its fixed header. With
keep-alive 0 there is no time limit at all: the client asked for none, and what it can
hold is one connection and one packet's buffer, bounded by ``max_packet_size``.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import pytest

from roost.codec import (
    MQTT_3_1_1,
    MQTT_5,
    Connect,
    Disconnect,
    Packet,
    Puback,
    Publish,
    Subscription,
    read_packet,
)
from tests.support.broker_thread import BrokerThread
from tests.support.raw import TIMEOUT, RawClient, connect, open_client, subscribe
from tests.support.waiting import wait_until

IDLE_SOCKETS = 500


class Trickle:
    """Sends ``data`` a byte at a time, one byte each ``interval`` in which the broker
    says nothing, until the broker closes the connection (or ``limit`` seconds pass)."""

    def __init__(self, client: RawClient, data: bytes, interval: float) -> None:
        self.client = client
        self.data = data
        self.interval = interval
        self.sent = 0
        self.received = b""

    def until_closed(self, limit: float) -> float:
        """Seconds until the broker closed the connection."""
        sock = self.client.sock
        start = time.monotonic()
        while (elapsed := time.monotonic() - start) < limit:
            sock.settimeout(self.interval)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                if self.sent < len(self.data):
                    sock.sendall(self.data[self.sent : self.sent + 1])
                    self.sent += 1
                continue
            except ConnectionResetError:
                return elapsed
            if not chunk:
                return elapsed
            self.received += chunk
        raise AssertionError(f"still open after {limit} s, {self.sent} bytes trickled")

    def packets(self, version: int) -> list[Packet]:
        packets = []
        data = self.received
        while data:
            result = read_packet(data, version)
            assert result is not None, data
            packets.append(result[0])
            data = data[result[1] :]
        return packets


def round_trip(port: int, client_id: str) -> None:
    """A well-behaved client connects, subscribes, publishes and gets its message back."""
    client = connect(port, MQTT_5, client_id)
    subscribe(client, Subscription("echo", 1))
    client.send(Publish("echo", b"hello", qos=1, packet_id=1))
    got = {type(client.recv()), type(client.recv())}
    assert got == {Puback, Publish}, got
    client.close()


def test_idle_and_half_connected_sockets_do_not_delay_a_client_and_are_closed(
    make_broker: Callable[..., BrokerThread],
) -> None:
    broker = make_broker(connect_timeout=1.0)
    half_connect = Connect("half", MQTT_3_1_1).encode(MQTT_3_1_1)[:7]
    idle = []
    for index in range(IDLE_SOCKETS):
        sock = socket.create_connection(("127.0.0.1", broker.port), timeout=TIMEOUT)
        if index % 2:
            sock.sendall(half_connect)
        idle.append(sock)
    try:
        wait_until(lambda: broker.call(lambda: len(broker.broker.connections)) == IDLE_SOCKETS)
        # All of them open, and a well-behaved client is served as usual (within TIMEOUT).
        round_trip(broker.port, "served")
        # Then the connect timeout closes every one of them; no CONNACK, no reply at all.
        deadline = time.monotonic() + 10.0
        for sock in idle:
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            assert sock.recv(100) == b""
        wait_until(lambda: broker.call(lambda: len(broker.broker.connections)) == 0)
        round_trip(broker.port, "served-again")
    finally:
        for sock in idle:
            sock.close()


def test_a_connect_trickled_in_is_cut_off_at_the_connect_timeout(
    make_broker: Callable[..., BrokerThread],
) -> None:
    broker = make_broker(connect_timeout=1.0)
    client = open_client(broker.port, MQTT_3_1_1)
    # A valid CONNECT, a byte every 0.1 s: whole after 15 s, were it let through.
    trickle = Trickle(client, Connect("x" * 140, MQTT_3_1_1).encode(MQTT_3_1_1), 0.1)
    trickle.until_closed(limit=6.0)
    assert trickle.received == b""
    assert trickle.sent < len(trickle.data)


@pytest.mark.parametrize("trickled", [True, False], ids=["trickle", "stall"])
@pytest.mark.parametrize("version", [MQTT_3_1_1, MQTT_5])
def test_half_a_packet_then_a_trickle_is_cut_off_at_keep_alive(
    make_broker: Callable[..., BrokerThread], version: int, trickled: bool
) -> None:
    """Bytes that never make a packet do not keep a connection alive: 1.5 x keep-alive
    after its last whole packet, it is closed (5.0 [MQTT-3.1.2-22], 3.1.1 [MQTT-3.1.2-24])."""
    broker = make_broker()
    client = connect(broker.port, version, "trickler", keep_alive=1)
    packet = Publish("slow", b"x" * 200, qos=1, packet_id=1).encode(version)
    client.send(packet[: len(packet) // 2])
    # A byte every 0.1 s would complete the packet after 10 s; 1.5 s plus a sweep ends
    # it, as it ends a connection that sends nothing more at all.
    trickle = Trickle(client, packet[len(packet) // 2 :] if trickled else b"", 0.1)
    trickle.until_closed(limit=6.0)
    assert trickle.sent < len(packet) // 2
    expected = [Disconnect(0x8D)] if version == MQTT_5 else []
    assert trickle.packets(version) == expected


def test_a_trickled_header_over_max_packet_size_is_refused_before_its_body(
    make_broker: Callable[..., BrokerThread],
) -> None:
    broker = make_broker(max_packet_size=1024)
    client = connect(broker.port, MQTT_5, "huge")
    # PUBLISH announcing 200 MB, a byte at a time: refused once the length is complete.
    header = b"\x30\x80\x80\xc0\x5f"
    trickle = Trickle(client, header + b"\x00" * 100, 0.05)
    trickle.until_closed(limit=5.0)
    assert trickle.sent == len(header)
    (disconnect,) = trickle.packets(MQTT_5)
    assert isinstance(disconnect, Disconnect)
    assert disconnect.reason_code == 0x95


def test_with_keep_alive_zero_a_slow_packet_is_waited_for(
    make_broker: Callable[..., BrokerThread],
) -> None:
    """No keep-alive, no time limit on a packet: it completes whenever its bytes come."""
    broker = make_broker()
    client = connect(broker.port, MQTT_5, "patient", keep_alive=0)
    packet = Publish("slow", b"x" * 50, qos=1, packet_id=9).encode(MQTT_5)
    for start in range(0, len(packet), 20):
        client.expect_silence(0.3)  # 0.9 s in all: longer than a 0.5 s sweep, twice
        client.send(packet[start : start + 20])
    assert client.recv() == Puback(9, 0x10)
