"""The asyncio.Protocol side of a connection: bytes in, coalesced bytes out.

Outgoing packets are collected per connection and written once per event-loop turn
(``WriteCoalescer``), so a burst of deliveries costs one system call per connection
instead of one per packet.

A connection can also *hold* its output until a store commit (``hold``/``release``):
packets sent after ``hold(n)`` wait, in order, until commit n is durable, so that an
acknowledgement never promises what a crash could still lose. A second gate (a
cluster node's JetStream acknowledgements, ``roost.cluster.durable``) holds the same
way with numbers of its own: ``hold(n, gate)`` and ``release(n, gate)``, and a third
(a cluster node's other nodes knowing a new filter, ``roost.cluster.subscribe_gate``)
holds a SUBACK; packets go out in the order they were sent once every gate has passed
what they wait for.

Flow control: every transport gets the same write-buffer marks (``WRITE_BUFFER_HIGH``
and ``_LOW``; uvloop's own low mark is 16 bytes, asyncio's 16 KiB). Above the high mark
the connection is not ``writable``: sessions drop QoS 0 messages to it and queue the
rest, and the broker stops reading from it until its buffer drains below the low mark,
so a client that sends without reading what it is sent cannot grow its buffer.

Held packets are bounded the same way: once ``held_limit`` packets wait for commits,
the connection is not read until a commit releases some (``held_back``), so a client
cannot make the broker owe it more acknowledgements than that while the disk is slow.
Nothing read later is needed to release them: the store commits on its own, so this
pause always ends.
"""

from __future__ import annotations

import asyncio
from typing import Protocol, cast

# Bytes in a transport's write buffer above which a connection is not writable, and
# below which it is again.
WRITE_BUFFER_HIGH = 64 * 1024
WRITE_BUFFER_LOW = 16 * 1024
# Packets a connection may hold for commits before it is not read any more; the broker
# sets each connection's own limit (its Receive Maximum), this is for other users.
HELD_LIMIT = 100


class Holder(Protocol):
    """A connection whose outgoing packets can wait for a store commit."""

    def hold(self, batch: int, gate: int = 0) -> None:
        """Keep every packet sent from now on until ``gate`` has passed ``batch``
        (gate 0: the store's commit ``batch`` is durable)."""

    def release(self, committed: int, gate: int = 0) -> bool:
        """Send what waited for ``gate`` up to ``committed`` (and for nothing later);
        True if some still waits."""


class WriteCoalescer:
    """Flushes every connection that has pending output, once per loop iteration."""

    __slots__ = ("_dirty", "_loop", "_scheduled", "bytes_sent")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.bytes_sent = 0
        self._dirty: list[BufferedTransport] = []
        self._scheduled = False

    def mark(self, conn: BufferedTransport) -> None:
        self._dirty.append(conn)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        dirty = self._dirty
        self._dirty = []
        for conn in dirty:
            conn.flush()


class BufferedTransport(asyncio.Protocol):
    """Base of the broker's connections: buffered writes and write flow control."""

    __slots__ = (
        "_coalescer",
        "_held",
        "_held_count",
        "_out",
        "_passed",
        "_per_packet",
        "_shut",
        "held_limit",
        "transport",
        "writable",
    )

    def __init__(self, coalescer: WriteCoalescer) -> None:
        self._coalescer = coalescer
        self._out: list[bytes] | None = None
        # Packets waiting for store commits: (gate, commit number, packets), oldest first.
        self._held: list[tuple[int, int, list[bytes]]] | None = None
        self._held_count = 0  # packets in _held
        self._passed: list[int] | None = None  # per gate, the last number released
        # The transport frames each packet on its own (WebSocket): hand it the packets,
        # not their concatenation.
        self._per_packet = False
        # Our last packet is written: nothing more may follow (the write side may be
        # shut down while the connection still reads, see close_transport).
        self._shut = False
        self.held_limit = HELD_LIMIT
        self.transport: asyncio.Transport | None = None
        self.writable = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Stream listeners only; uvloop's transports are not asyncio.Transport subclasses.
        self.transport = cast("asyncio.Transport", transport)
        self.transport.set_write_buffer_limits(WRITE_BUFFER_HIGH, WRITE_BUFFER_LOW)
        self._per_packet = getattr(transport, "frames_packets", False) is True

    def send(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            held[-1][2].append(data)
            self._held_count += 1
            if self._held_count == self.held_limit:
                self.on_held_back()
            return
        out = self._out
        if out is None:
            if self._shut or self.transport is None or self.transport.is_closing():
                return
            self._out = [data]
            self._coalescer.mark(self)
        else:
            out.append(data)

    def flush(self) -> None:
        out = self._out
        if out is None:
            return
        self._out = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if len(out) == 1:
            data = out[0]
        elif self._per_packet:
            # Every send() is one whole MQTT packet: the layer below frames each.
            self._coalescer.bytes_sent += sum(map(len, out))
            transport.writelines(out)
            return
        else:
            data = b"".join(out)
        self._coalescer.bytes_sent += len(data)
        transport.write(data)

    def pending_bytes(self) -> int:
        """Bytes sent in this loop turn and not yet written (counted when asked: O(n))."""
        out = self._out
        return 0 if out is None else sum(map(len, out))

    def hold(self, batch: int, gate: int = 0) -> None:
        """Keep every packet sent from now on until ``gate`` passes ``batch`` (gate 0:
        the store's commit ``batch`` is durable)."""
        held = self._held
        if held is None:
            self._held = [(gate, batch, [])]
        elif held[-1][0] != gate or held[-1][1] != batch:
            held.append((gate, batch, []))

    def release(self, committed: int, gate: int = 0) -> bool:
        """Send the packets that waited for ``gate`` up to ``committed``, in order, as
        far as no other gate still holds them.

        Returns True while some packets still wait.
        """
        passed = self._passed
        if passed is None:
            passed = self._passed = [0, 0, 0]
        passed[gate] = max(passed[gate], committed)
        held = self._held
        if held is None:
            return False
        count = 0
        while count < len(held) and held[count][1] <= passed[held[count][0]]:
            count += 1
        if count:
            was_held_back = self.held_back()
            self._held = None  # so that send() queues these instead of holding them
            for _gate, _batch, packets in held[:count]:
                self._held_count -= len(packets)
                for data in packets:
                    self.send(data)
            self._held = held[count:] or None
            if was_held_back and not self.held_back():
                self.on_released()
        return self._held is not None

    def held_back(self) -> bool:
        """Whether so many packets wait for commits that the connection is not read."""
        return self._held_count >= self.held_limit

    def drop_held(self) -> None:
        """Forget held packets (the connection is closing; they promised nothing yet)."""
        self._held = None
        self._held_count = 0

    def close_transport(self) -> None:
        """Write what is pending, then close."""
        self.flush()
        self._shut = True
        if self.transport is not None:
            self.transport.close()

    def pause_writing(self) -> None:
        self.writable = False
        self.update_reading()

    def resume_writing(self) -> None:
        self.writable = True
        self.update_reading()
        self.on_writable()

    def wants_input(self) -> bool:
        """Whether to read from the transport now; subclasses add reasons not to."""
        return self.writable and self._held_count < self.held_limit

    def update_reading(self) -> None:
        """Pause or resume reading from the transport, as ``wants_input`` says."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self.wants_input():
            transport.resume_reading()
        else:
            transport.pause_reading()

    def on_writable(self) -> None:
        """Called when the transport's buffer drains below its low-water mark."""

    def on_held_back(self) -> None:
        """Called when ``held_limit`` packets wait for commits: stop reading."""
        self.update_reading()

    def on_released(self) -> None:
        """Called when a commit releases enough held packets to read again."""
        self.update_reading()
