"""One MQTT client connection of the load generator: a raw asyncio.Protocol.

Everything it sends is encoded by roost.codec (PUBLISH once, as a template; see
publisher.py). Incoming CONNACK, SUBACK and the rare packets go through the codec's
``read_packet``; the two that arrive by the million, PUBLISH and the two-byte
acknowledgements, are framed inline here, because a packet object per delivery would
make the generator, not the broker, the bottleneck. Bytes to send while handling one
read (PUBACKs, PUBRECs, ...) are collected and written once at the end of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from roost.client.connecting import os_error_text
from roost.client.errors import reason_name
from roost.codec import (
    MQTT_5,
    Connack,
    Connect,
    Disconnect,
    Packet,
    Pingresp,
    Suback,
    Subscribe,
    Subscription,
    read_packet,
)
from roost.codec.packets.base import PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL

if TYPE_CHECKING:
    from roost.loadtest.stats import Tracker

PINGREQ = b"\xc0\x00"
HEADER = struct.Struct(">IIQ")  # publisher id, sequence number, monotonic send time (ns)
HEADER_SIZE = HEADER.size
# IP_BIND_ADDRESS_NO_PORT (Linux): choose the source port at connect(), not at bind(),
# so many connections from one source address are limited by 4-tuples, not by ports.
_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
_unpack_header = HEADER.unpack_from
_monotonic_ns = time.monotonic_ns


class PublisherHooks(Protocol):
    """What a connection calls on the publisher that hangs off it.

    Spelled out here rather than naming ``publisher.Publisher``, which is built on this
    module: the two importing each other would be an import cycle.
    """

    def acknowledged(self, kind: int, packet_id: int) -> None: ...
    def after_read(self) -> None: ...
    def connection_lost(self) -> None: ...
    def schedule(self) -> None: ...


class ConnectFailed(Exception):
    """The broker refused the connection, or it did not come up in time."""


def _ack(packet_type: int, packet_id: int) -> bytes:
    first = packet_type << 4 | (0x02 if packet_type == PUBREL else 0)
    return bytes((first, 2, packet_id >> 8, packet_id & 0xFF))


class BenchConnection(asyncio.Protocol):
    """The protocol side of one connection; a publisher and/or a tracker hang off it."""

    __slots__ = (
        "_buffer",
        "_out",
        "_waiters",
        "closed",
        "connack",
        "index",
        "last_sent",
        "lost",
        "on_read",
        "ping_since",
        "pings",
        "pongs",
        "publisher",
        "tracker",
        "transport",
        "version",
        "write_paused",
    )

    def __init__(self, version: int, index: int = 0) -> None:
        loop = asyncio.get_running_loop()
        self.version = version
        self.index = index  # the client's slot in the scenario (shared counters)
        self.transport: asyncio.Transport | None = None
        self._buffer = b""
        self._out: list[bytes] = []
        self.connack: asyncio.Future[Connack] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self._waiters: dict[int, asyncio.Future[Suback]] = {}
        self.tracker: Tracker | None = None
        self.publisher: PublisherHooks | None = None
        self.on_read: Callable[[BenchConnection], None] | None = None
        self.last_sent = time.monotonic()
        self.ping_since = 0.0  # when the outstanding PINGREQ was sent; 0 = none
        self.pings = 0
        self.pongs = 0
        self.lost = False  # closed by the peer or by an error, not by us
        self.write_paused = False

    # -- asyncio.Protocol ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        error = ConnectionError("connection lost") if exc is None else exc
        if not self.connack.done():
            self.connack.set_exception(error)
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.set_exception(error)
        if not self.closed.done():
            self.closed.set_result(None)
        if self.publisher is not None:
            self.publisher.connection_lost()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.publisher is not None:
            self.publisher.schedule()

    def data_received(self, data: bytes) -> None:
        buf = self._buffer + data if self._buffer else data
        size = len(buf)
        pos = 0
        now_ns = 0
        out = self._out
        tracker = self.tracker
        publisher = self.publisher
        while size - pos >= 2:
            first = buf[pos]
            length = buf[pos + 1]
            start = pos + 2
            if length & 0x80:
                length, start = _long_length(buf, pos + 1, size)
                if start < 0:
                    break
            end = start + length
            if end > size:
                break
            kind = first >> 4
            if kind == PUBLISH:
                qos = first >> 1 & 0x03
                at = start + 2 + (buf[start] << 8 | buf[start + 1])
                if qos:
                    packet_id = buf[at] << 8 | buf[at + 1]
                    out.append(_ack(PUBACK if qos == 1 else PUBREC, packet_id))
                    at += 2
                if self.version == MQTT_5:
                    at = _skip_properties(buf, at)
                if tracker is not None:
                    if end - at >= HEADER_SIZE:
                        if not now_ns:
                            now_ns = _monotonic_ns()
                        publisher_id, seq, sent_ns = _unpack_header(buf, at)
                        tracker.record(publisher_id, seq, (now_ns - sent_ns) // 1000, now_ns)
                    else:
                        tracker.counts.received += 1
                        tracker.counts.invalid += 1
            elif length == 2 and kind in (PUBACK, PUBREC, PUBCOMP, PUBREL):
                packet_id = buf[start] << 8 | buf[start + 1]
                if kind == PUBREL:
                    out.append(_ack(PUBCOMP, packet_id))
                elif publisher is not None:
                    publisher.acknowledged(kind, packet_id)
            else:
                result = read_packet(buf, self.version, offset=pos)
                if result is not None:
                    self._control(result[0])
            pos = end
        self._buffer = buf[pos:] if pos < size else b""
        if out:
            self.write(b"".join(out))
            out.clear()
        if self.on_read is not None:
            self.on_read(self)
        if publisher is not None:
            publisher.after_read()

    def _control(self, packet: Packet) -> None:
        if isinstance(packet, Connack):
            if not self.connack.done():
                self.connack.set_result(packet)
        elif isinstance(packet, Suback):
            waiter = self._waiters.pop(packet.packet_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(packet)
        elif isinstance(packet, Pingresp):
            self.pongs += 1
            self.ping_since = 0.0
        elif isinstance(packet, Disconnect):
            if self.transport is not None:
                self.transport.close()
        elif self.publisher is not None:
            # An acknowledgement with a reason code or properties (MQTT 5).
            packet_id = getattr(packet, "packet_id", None)
            if packet_id is not None:
                self.publisher.acknowledged(packet.packet_type, packet_id)

    # -- sending ------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)
            self.last_sent = time.monotonic()

    def ping(self, now: float) -> None:
        self.write(PINGREQ)
        self.pings += 1
        self.ping_since = now

    async def subscribe(
        self, packet_id: int, filters: list[str], qos: int, timeout: float
    ) -> tuple[int, ...]:
        """SUBSCRIBE and wait for the SUBACK; returns its reason codes."""
        waiter: asyncio.Future[Suback] = asyncio.get_running_loop().create_future()
        self._waiters[packet_id] = waiter
        subscriptions = tuple(Subscription(f, qos) for f in filters)
        self.write(Subscribe(packet_id, subscriptions).encode(self.version))
        suback = await asyncio.wait_for(waiter, timeout)
        return suback.reason_codes

    def disconnect(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(Disconnect().encode(self.version))
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Close with a reset after DISCONNECT, as mqttload does: thousands of sockets
            # in TIME_WAIT would slow the next run's connects (and use up ports).
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.close()


def _long_length(buf: bytes, pos: int, size: int) -> tuple[int, int]:
    """A remaining length of 2-4 bytes at ``buf[pos]``: (length, body start), or (0, -1)."""
    value = 0
    shift = 0
    for _ in range(4):
        if pos >= size:
            return 0, -1
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise ConnectionError("remaining length longer than 4 bytes")


def _skip_properties(buf: bytes, pos: int) -> int:
    if buf[pos] == 0:
        return pos + 1
    length, start = _long_length(buf, pos, len(buf))
    return start + length


async def open_connection(
    host: str,
    port: int,
    client_id: str,
    *,
    version: int,
    keepalive: int,
    timeout: float,
    source: str | None = None,
    index: int = 0,
    username: str | None = None,
    password: str | None = None,
) -> BenchConnection:
    """Connect (from ``source`` when given), send CONNECT and wait for a CONNACK of 0."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if source is not None:
            # Not Linux: bind() picks the port, which works too, for fewer connections.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_IP, _BIND_ADDRESS_NO_PORT, 1)
            sock.bind((source, 0))
        await asyncio.wait_for(loop.sock_connect(sock, (host, port)), timeout)
        _, protocol = await loop.create_connection(
            lambda: BenchConnection(version, index), sock=sock
        )
    except BaseException:
        sock.close()
        raise
    connect = Connect(
        client_id=client_id,
        protocol_level=version,
        clean_start=True,
        keep_alive=keepalive,
        username=username,
        password=password.encode() if password is not None else None,
    )
    protocol.write(connect.encode())
    try:
        connack = await asyncio.wait_for(protocol.connack, timeout)
    except BaseException:
        if protocol.transport is not None:
            protocol.transport.abort()
        raise
    if connack.reason_code != 0:
        if protocol.transport is not None:
            protocol.transport.abort()
        code = connack.reason_code
        raise ConnectFailed(
            f"connection refused: {reason_name(code, version)} [0x{code:02X}] (CONNACK)"
        )
    return protocol


def failure_text(exc: BaseException, timeout: float) -> str:
    """A connect or subscribe failure in words, as ``roost pub`` words them: "connection
    refused", not ``ConnectionRefusedError(111, "Connect call failed ...")``."""
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, OSError):
        return os_error_text(exc)
    return str(exc) or type(exc).__name__
