"""Floods: more messages, packets or connections than the broker can pass on.

What holds each one (docs/security.md): a connection whose transport buffer is above
its high-water mark (64 KiB, beyond what the kernel holds) gets no more QoS 0 messages
(dropped and counted) and is not read from until it drains, so a client that sends
without reading makes the broker wait, not buffer; connections over max_connections
are closed as they are accepted. Meanwhile a well-behaved client (paho, on its own
connection) keeps getting its round trips.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from roost.broker import connection as broker_connection
from roost.broker.connection import BrokerConnection
from roost.broker.core import REFUSING_AT_MOST
from roost.codec import (
    MQTT_3_1_1,
    MQTT_5,
    Connack,
    Connect,
    Publish,
    Suback,
    Subscribe,
    Subscription,
)
from tests.support.broker_thread import BrokerThread
from tests.support.cleanup import close_at_end
from tests.support.paho import Bystander
from tests.support.raw import TIMEOUT, RawClient, connect, publish, subscribe
from tests.support.waiting import wait_until

# Far above the transport's 64 KiB mark plus one event-loop turn's output (a 256 KiB
# read fanned out), far below what the floods below would otherwise leave buffered.
BUFFER_BOUND = 1024 * 1024
SMALL_RCVBUF = 4096  # the client's receive buffer: its kernel holds little for it
DRAIN_TIMEOUT = 60.0  # for megabytes through a broker in a thread: generous
FLOOD_BYTES = 20 * 1024 * 1024


class SmallBufferClient(RawClient):
    """A RawClient whose socket has a small receive buffer (set before connecting)."""

    def __init__(self, port: int, version: int) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_RCVBUF)
        sock.settimeout(TIMEOUT)
        sock.connect(("127.0.0.1", port))
        self.sock = sock
        self.version = version
        self.buffer = b""
        close_at_end(self.close)


def slow_client(port: int, version: int, client_id: str, keep_alive: int = 0) -> RawClient:
    """A connected client with a small receive buffer, which then stops reading."""
    client = SmallBufferClient(port, version)
    connack = client.connect(client_id, keep_alive=keep_alive)
    assert isinstance(connack, Connack)
    assert connack.reason_code == 0
    return client


def connection(broker: BrokerThread, client_id: str) -> BrokerConnection:
    (conn,) = [
        c
        for c in broker.broker.connections
        if isinstance(c, BrokerConnection) and c.client_id == client_id
    ]
    return conn


def buffered(broker: BrokerThread, client_id: str) -> int:
    """Bytes waiting in the broker's transport for this client."""

    def size() -> int:
        transport = connection(broker, client_id).transport
        return 0 if transport is None else transport.get_write_buffer_size()

    return broker.call(size)


def shrink_send_buffer(broker: BrokerThread, client_id: str) -> None:
    """Give the broker's socket to this client a small send buffer, as a slow link would:
    its kernel then takes kilobytes, not the megabytes loopback autotuning allows, before
    the broker's own buffer fills (which is the part under test)."""

    def shrink() -> None:
        transport = connection(broker, client_id).transport
        assert transport is not None
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_RCVBUF)

    broker.call(shrink)


def reading(broker: BrokerThread, client_id: str) -> bool:
    def probe() -> bool:
        transport = connection(broker, client_id).transport
        return transport is not None and transport.is_reading()

    return broker.call(probe)


def send_until_stalled(sock: socket.socket, data: bytes, stall: float = 1.0) -> int:
    """Send ``data`` without blocking until the peer stops taking it for ``stall`` seconds
    (or all of it is sent); returns the bytes sent."""
    view = memoryview(data)
    sent = 0
    sock.setblocking(False)
    try:
        while sent < len(data):
            try:
                sent += sock.send(view[sent : sent + 65536])
            except BlockingIOError:
                _, writable, _ = select.select([], [sock], [], stall)
                if not writable:
                    break
    finally:
        sock.setblocking(True)
        sock.settimeout(TIMEOUT)
    return sent


def read_exactly(sock: socket.socket, count: int, into: list[bytes]) -> None:
    sock.settimeout(DRAIN_TIMEOUT)
    got = 0
    while got < count:
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        into.append(chunk)
        got += len(chunk)


@pytest.fixture
def bystander(broker: BrokerThread) -> Iterator[Bystander]:
    client = Bystander(broker.port)
    yield client
    client.close()


def test_qos0_flood_to_a_subscriber_that_does_not_read(
    broker: BrokerThread, bystander: Bystander
) -> None:
    slow = slow_client(broker.port, MQTT_5, "slow")
    subscribe(slow, Subscription("flood", 0))
    publisher = connect(broker.port, MQTT_3_1_1, "flooder")
    batch = Publish("flood", b"x" * 1000).encode(MQTT_3_1_1) * 100
    stop = threading.Event()

    def flood() -> None:
        while not stop.is_set():
            publisher.sock.sendall(batch)

    def received() -> int:
        return broker.call(lambda: broker.broker.stats.bytes_received)

    flooder = threading.Thread(target=flood)
    flooder.start()
    largest = round_trips = 0
    try:
        # Round trips go on until the broker has taken in 20 MB of the flood.
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while received() < FLOOD_BYTES and time.monotonic() < deadline:
            bystander.round_trip()
            round_trips += 1
            largest = max(largest, buffered(broker, "slow"))
    finally:
        stop.set()
        flooder.join(TIMEOUT)
    assert received() >= FLOOD_BYTES
    assert round_trips > 1
    assert broker.call(lambda: broker.broker.sessions["slow"].dropped) > 0
    assert largest <= BUFFER_BOUND, largest
    # The publisher was never held back: a QoS 0 flood costs only its subscriber.
    publish(publisher, Publish("flood", b"last"))


def test_qos1_flood_from_a_publisher_that_does_not_read(
    broker: BrokerThread, bystander: Bystander
) -> None:
    publisher = slow_client(broker.port, MQTT_3_1_1, "flooder")
    shrink_send_buffer(broker, "flooder")
    one = Publish("t", b"", qos=1, packet_id=1).encode(MQTT_3_1_1)
    puback = b"\x40\x02\x00\x01"
    count = 200_000  # 800 kB of PUBACKs: the buffers' room many times over
    data = one * count
    sent = send_until_stalled(publisher.sock, data)
    # The broker stopped reading once its PUBACKs were left unread: it waits, it does
    # not buffer them (unbounded, they were the flood's own size over again). What the
    # client sent meanwhile waits in the kernel's buffers, unread.
    wait_until(lambda: not reading(broker, "flooder"))
    assert broker.call(lambda: broker.broker.stats.bytes_received) < len(data) // 2
    assert buffered(broker, "flooder") <= BUFFER_BOUND
    bystander.round_trip()
    # Once the client reads, everything goes through: every PUBLISH acknowledged.
    chunks: list[bytes] = []
    reader = threading.Thread(
        target=read_exactly, args=(publisher.sock, count * len(puback), chunks)
    )
    reader.start()
    publisher.sock.settimeout(DRAIN_TIMEOUT)
    publisher.sock.sendall(data[sent:])
    reader.join(DRAIN_TIMEOUT)
    acks = b"".join(chunks)
    assert len(acks) == count * len(puback)
    assert acks == puback * count
    bystander.round_trip()


def test_subscribes_that_each_bring_a_large_retained_message_are_paced(
    broker: BrokerThread, bystander: Bystander
) -> None:
    """Each SUBSCRIBE sends the retained message again; a client that sends thousands
    and reads nothing would have them all answered at once (here 64 MB)."""
    owner = connect(broker.port, MQTT_5, "owner")
    publish(owner, Publish("big", b"r" * 32_000, retain=True))
    client = slow_client(broker.port, MQTT_3_1_1, "amplifier")
    count = 2000
    subscribes = b"".join(
        Subscribe(n, (Subscription("big", 0),)).encode(MQTT_3_1_1) for n in range(1, count + 1)
    )
    assert send_until_stalled(client.sock, subscribes) == len(subscribes)
    wait_until(lambda: not reading(broker, "amplifier"))
    assert buffered(broker, "amplifier") <= BUFFER_BOUND
    bystander.round_trip()
    # Nothing was dropped, only delayed: every SUBACK and every retained copy arrives.
    subacks = publishes = 0
    while subacks < count or publishes < count:
        packet = client.recv()
        if isinstance(packet, Suback):
            subacks += 1
        else:
            assert isinstance(packet, Publish), packet
            assert packet.retain
            publishes += 1
    assert (subacks, publishes) == (count, count)


def answer(sock: socket.socket) -> bytes:
    """What the broker sent before closing (closed with our CONNECT unread: a reset)."""
    try:
        return sock.recv(4)
    except ConnectionResetError:
        return b""


def test_a_connection_storm_over_max_connections(
    make_broker: Callable[..., BrokerThread], monkeypatch: pytest.MonkeyPatch
) -> None:
    # However slow the machine, the refused connections stay until the storm is over
    # (their sockets are closed at the end), so which ones are answered is fixed.
    for name in ("REFUSAL_TIMEOUT", "LINGER_TIME", "CLOSE_TIMEOUT"):
        monkeypatch.setattr(broker_connection, name, 600.0)
    broker = make_broker(max_connections=100)
    bystander = Bystander(broker.port)
    storm = []
    try:
        for index in range(300):
            sock = socket.create_connection(("127.0.0.1", broker.port), timeout=TIMEOUT)
            sock.sendall(Connect(f"storm-{index}", MQTT_3_1_1).encode(MQTT_3_1_1))
            storm.append(sock)
        bystander.round_trip()
        # In accept order: the first 99 (the bystander holds one place) are served; the
        # next REFUSING_AT_MOST are read until their CONNECT and answered 0x03 (Server
        # unavailable); the rest are closed without a CONNACK, before anything of theirs
        # is read, since that many being refused already is a flood.
        answers = [answer(sock) for sock in storm]
        assert answers[:99] == [b"\x20\x02\x00\x00"] * 99
        answered = 99 + REFUSING_AT_MOST
        assert answers[99:answered] == [b"\x20\x02\x00\x03"] * REFUSING_AT_MOST
        assert answers[answered:] == [b""] * (300 - answered)
        refused = broker.call(lambda: broker.broker.stats.refused_connections)
        assert refused == 201
    finally:
        for sock in storm:
            sock.close()
    # The places are free again once the storm's connections are gone.
    wait_until(lambda: broker.call(lambda: len(broker.broker.connections)) == 1)
    connect(broker.port, MQTT_5, "after-the-storm")
    bystander.round_trip()
    bystander.close()


def test_a_client_that_reads_nothing_is_aborted_after_its_disconnect(
    broker: BrokerThread, bystander: Bystander, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Closing waits for the write buffer to drain; this one never would. After the
    keep-alive timeout's close, it has CLOSE_TIMEOUT (here 0.5 s) and is then aborted."""
    monkeypatch.setattr(broker_connection, "CLOSE_TIMEOUT", 0.5)
    slow = slow_client(broker.port, MQTT_5, "deaf", keep_alive=1)
    subscribe(slow, Subscription("flood", 0))
    publisher = connect(broker.port, MQTT_3_1_1, "flooder")
    batch = Publish("flood", b"x" * 1000).encode(MQTT_3_1_1) * 100
    while reading(broker, "deaf"):
        publisher.sock.sendall(batch)
    # Not read from, it sends nothing more the broker sees: keep-alive (1 s) ends it,
    # and with its buffer full, the close does not complete until the abort.
    # The session leaves at the close; the connection only when the abort ends it.
    wait_until(lambda: broker.call(lambda: "deaf" not in broker.broker.sessions))
    wait_until(lambda: broker.call(lambda: len(broker.broker.connections)) == 2)
    bystander.round_trip()
