"""The asyncio.Protocol side of a connection: bytes in, coalesced bytes out.

Outgoing packets are collected per connection and written once per event-loop turn
(``WriteCoalescer``), so a burst of deliveries costs one system call per connection
instead of one per packet.

A connection can also *hold* its output until a store commit (``hold``/``release``):
packets sent after ``hold(n)`` wait, in order, until commit n is durable, so that an
acknowledgement never promises what a crash could still lose.
"""

from __future__ import annotations

import asyncio
from typing import cast


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

    __slots__ = ("_coalescer", "_held", "_out", "transport", "writable")

    def __init__(self, coalescer: WriteCoalescer) -> None:
        self._coalescer = coalescer
        self._out: list[bytes] | None = None
        # Packets waiting for store commits: (commit number, packets), oldest first.
        self._held: list[tuple[int, list[bytes]]] | None = None
        self.transport: asyncio.Transport | None = None
        self.writable = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Stream listeners only; uvloop's transports are not asyncio.Transport subclasses.
        self.transport = cast("asyncio.Transport", transport)

    def send(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            held[-1][1].append(data)
            return
        out = self._out
        if out is None:
            if self.transport is None or self.transport.is_closing():
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
        data = out[0] if len(out) == 1 else b"".join(out)
        self._coalescer.bytes_sent += len(data)
        transport.write(data)

    def hold(self, batch: int) -> None:
        """Keep every packet sent from now on until commit ``batch`` is durable."""
        held = self._held
        if held is None:
            self._held = [(batch, [])]
        elif held[-1][0] != batch:
            held.append((batch, []))

    def release(self, committed: int) -> bool:
        """Send the packets that waited for commits up to ``committed``, in order.

        Returns True while some packets still wait for a later commit.
        """
        held = self._held
        if held is None:
            return False
        count = 0
        while count < len(held) and held[count][0] <= committed:
            count += 1
        if count:
            self._held = None  # so that send() queues these instead of holding them
            for _batch, packets in held[:count]:
                for data in packets:
                    self.send(data)
            self._held = held[count:] or None
        return self._held is not None

    def drop_held(self) -> None:
        """Forget held packets (the connection is closing; they promised nothing yet)."""
        self._held = None

    def close_transport(self) -> None:
        """Write what is pending, then close."""
        self.flush()
        if self.transport is not None:
            self.transport.close()

    def pause_writing(self) -> None:
        self.writable = False

    def resume_writing(self) -> None:
        self.writable = True
        self.on_writable()

    def on_writable(self) -> None:
        """Called when the transport's buffer drains below its low-water mark."""
