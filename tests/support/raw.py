"""A blocking raw-socket MQTT peer for exact wire-level tests, and the steps tests take with it.

No test sleeps to wait for the broker; two ordering facts stand in for waiting:

* ``sync``: the broker handles a connection's packets in order, so the PINGRESP to a
  PINGREQ comes after everything it sent in response to earlier packets: "send X, then
  sync" means X has taken effect, and the packets returned are those X caused.
* ``settle``: a publisher's ``sync`` returns once the broker has routed its messages
  (routing is synchronous), so the subscribers' copies are already on their way; each
  subscriber's own ``sync`` then shows exactly what it got, and an absence is proven
  without a timed wait.
"""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import Iterable, Sequence
from typing import TypeVar

from roost.codec import (
    MQTT_3_1_1,
    MQTT_5,
    Connack,
    Connect,
    Disconnect,
    Packet,
    Pingreq,
    Pingresp,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Subscription,
    read_packet,
)
from tests.support.cleanup import close_at_end

TIMEOUT = 5.0

P = TypeVar("P", bound=Packet)


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

    def _take(self) -> tuple[Packet, int] | None:
        """The next whole packet in the buffer and its size on the wire, if there is one."""
        result = read_packet(self.buffer, self.version)
        if result is not None:
            self.buffer = self.buffer[result[1] :]
        return result

    def recv(self, timeout: float = TIMEOUT) -> Packet:
        """The next packet from the broker; raises ConnectionError if it closed instead."""
        deadline = time.monotonic() + timeout
        while (taken := self._take()) is None:
            if not self._fill(deadline):
                raise ConnectionError("broker closed the connection")
        return taken[0]

    def recv_bytes(self, count: int, timeout: float = TIMEOUT) -> bytes:
        deadline = time.monotonic() + timeout
        while len(self.buffer) < count:
            if not self._fill(deadline):
                raise ConnectionError("broker closed the connection")
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def expect_closed(self, timeout: float = TIMEOUT) -> list[Packet]:
        """Read until the broker closes the connection; return the packets it sent first."""
        return [packet for packet, _size in self._read_until_closed(timeout)]

    def expect_closed_with_sizes(self, timeout: float = TIMEOUT) -> list[tuple[Packet, int]]:
        """Like ``expect_closed``, with each packet's size; no truncated packet may be left."""
        packets = self._read_until_closed(timeout)
        assert not self.buffer, f"a truncated packet before the close: {self.buffer!r}"
        return packets

    def _read_until_closed(self, timeout: float) -> list[tuple[Packet, int]]:
        packets: list[tuple[Packet, int]] = []
        deadline = time.monotonic() + timeout
        while True:
            if (taken := self._take()) is not None:
                packets.append(taken)
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


# Opening and connecting. Every client opened here is closed when the test ends.


def open_client(port: int, version: int = MQTT_3_1_1) -> RawClient:
    """A RawClient, not yet connected, that is closed at the end of the test."""
    client = RawClient(port, version)
    close_at_end(client.close)
    return client


def connect(port: int, version: int, client_id: str, **fields: object) -> RawClient:
    """A RawClient whose CONNECT (with ``fields``) was accepted.

    ``present=True`` among the fields expects Session Present in the CONNACK (default: not).
    """
    present = fields.pop("present", False)
    client = open_client(port, version)
    connack = client.connect(client_id, **fields)
    assert isinstance(connack, Connack), connack
    assert connack.reason_code == 0, connack
    assert connack.session_present is present, connack
    return client


def persistent(version: int) -> dict[str, object]:
    """CONNECT fields for a session that outlives its connection, at either level."""
    if version == MQTT_5:
        return {"clean_start": False, "session_expiry_interval": 60}
    return {"clean_start": False}


def drop(client: RawClient) -> None:
    """Close the socket without DISCONNECT: an abnormal close for the broker."""
    client.close()


# Ordering.


def sync(client: RawClient) -> list[Packet]:
    """Round-trip a PINGREQ; return the packets the broker sent before the PINGRESP."""
    client.send(Pingreq())
    packets: list[Packet] = []
    while True:
        packet = client.recv()
        if isinstance(packet, Pingresp):
            return packets
        packets.append(packet)


def drain(client: RawClient) -> list[Packet]:
    """Like ``sync``, answering PUBRELs of finished QoS 2 deliveries on the way."""
    packets = []
    for packet in sync(client):
        if isinstance(packet, Pubrel):
            client.send(Pubcomp(packet.packet_id))
        else:
            packets.append(packet)
    return packets


def settle(publisher: RawClient, *subscribers: RawClient) -> list[list[Packet]]:
    """After the publisher's messages are routed: what each subscriber got meanwhile."""
    assert sync(publisher) == []
    return [sync(subscriber) for subscriber in subscribers]


# Subscribing.


def subscribe(
    client: RawClient,
    *subscriptions: Subscription,
    packet_id: int = 1,
    identifier: int | None = None,
    granted: Iterable[int] | None = None,
) -> None:
    """SUBSCRIBE and check the SUBACK (by default: each requested QoS granted).

    Whatever follows the SUBACK (retained messages) is left for the test to read.
    """
    client.send(Subscribe(packet_id, subscriptions, subscription_identifier=identifier))
    codes = tuple(sub.qos for sub in subscriptions) if granted is None else tuple(granted)
    assert client.recv() == Suback(packet_id, codes)


def subscribe_and_sync(
    client: RawClient,
    *subscriptions: Subscription,
    packet_id: int = 1,
    identifier: int | None = None,
) -> list[Publish]:
    """``subscribe`` (each requested QoS granted), then ``sync``: the retained messages the
    subscription brought, which must be all that followed the SUBACK."""
    subscribe(client, *subscriptions, packet_id=packet_id, identifier=identifier)
    return publishes(sync(client))


# Publishing and receiving.


def publish(client: RawClient, message: Publish) -> None:
    """Publish and complete the exchange (successfully); on return the broker has routed
    the message."""
    client.send(message)
    if message.qos == 0:
        assert sync(client) == []
    elif message.qos == 1:
        ack = client.recv()
        assert isinstance(ack, Puback), ack
        assert ack.packet_id == message.packet_id, ack
        assert ack.reason_code < 0x80, ack
    else:
        rec = client.recv()
        assert isinstance(rec, Pubrec), rec
        assert rec.packet_id == message.packet_id, rec
        assert rec.reason_code < 0x80, rec
        client.send(Pubrel(message.packet_id))
        assert client.recv() == Pubcomp(message.packet_id)


def recv_publish(client: RawClient, timeout: float = TIMEOUT) -> Publish:
    packet = client.recv(timeout)
    assert isinstance(packet, Publish), packet
    return packet


def publishes(packets: Sequence[Packet]) -> list[Publish]:
    """``packets``, which must all be PUBLISHes."""
    assert all(isinstance(p, Publish) for p in packets), packets
    return [p for p in packets if isinstance(p, Publish)]


def acknowledge(client: RawClient, message: Publish) -> None:
    """Complete the receiving side of a QoS 1 or QoS 2 delivery."""
    if message.qos == 1:
        client.send(Puback(message.packet_id))
    elif message.qos == 2:
        client.send(Pubrec(message.packet_id))
        assert client.recv() == Pubrel(message.packet_id)
        client.send(Pubcomp(message.packet_id))


def receive_all(client: RawClient, count: int) -> list[Publish]:
    """Receive ``count`` PUBLISHes, acknowledging each as a well-behaved client would.

    PUBRELs for earlier QoS 2 deliveries may arrive between the PUBLISHes; each is
    answered with its PUBCOMP.
    """
    received: list[Publish] = []
    while len(received) < count:
        packet = client.recv()
        if isinstance(packet, Pubrel):
            client.send(Pubcomp(packet.packet_id))
            continue
        assert isinstance(packet, Publish), packet
        received.append(packet)
        if packet.qos == 1:
            client.send(Puback(packet.packet_id))
        elif packet.qos == 2:
            client.send(Pubrec(packet.packet_id))
    return received


# The end of a connection.


def expect_disconnect(
    client: RawClient, reason_code: int | None, version: int = MQTT_5
) -> Disconnect | None:
    """The broker closes the connection: in MQTT 5 after exactly one DISCONNECT with
    ``reason_code`` (returned); before MQTT 5, which cannot say why, with nothing first."""
    packets = client.expect_closed()
    if version != MQTT_5:
        assert packets == []
        return None
    assert len(packets) == 1, packets
    disconnect = packets[0]
    assert isinstance(disconnect, Disconnect), packets
    assert disconnect.reason_code == reason_code, f"0x{disconnect.reason_code:02X}"
    return disconnect


def without_reason_string(packet: P) -> P:
    """The packet with its Reason String removed: its text is the server's choice."""
    return dataclasses.replace(packet, reason_string=None)  # type: ignore[type-var]
