"""BufferedTransport's bound on packets held for store commits, without sockets: once
``held_limit`` packets wait, reading pauses; a commit that releases them resumes it."""

from __future__ import annotations

import asyncio

from roost.broker.transport import BufferedTransport, WriteCoalescer


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.reading = True
        self.written: list[bytes] = []

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        return

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))


class Recorder(BufferedTransport):
    def __init__(self, coalescer: WriteCoalescer) -> None:
        super().__init__(coalescer)
        self.released = 0

    def on_released(self) -> None:
        self.released += 1
        super().on_released()


def test_held_packets_pause_reading_until_a_commit_releases_them() -> None:
    loop = asyncio.new_event_loop()
    try:
        conn = Recorder(WriteCoalescer(loop))
        transport = FakeTransport()
        conn.connection_made(transport)
        conn.held_limit = 3
        conn.hold(1)
        conn.send(b"a")
        conn.send(b"b")
        assert transport.reading
        assert conn.wants_input()
        conn.hold(2)
        conn.send(b"c")  # the third held packet: no more input
        assert not transport.reading
        assert conn.held_back()
        assert not conn.wants_input()
        conn.send(b"d")
        assert conn.release(1)  # a and b go out; c and d still wait for commit 2
        assert transport.reading
        assert conn.released == 1
        conn.flush()
        assert transport.written == [b"ab"]
        assert not conn.release(2)
        conn.flush()
        assert transport.written == [b"ab", b"cd"]
        assert conn.released == 1  # it was not held back any more
        conn.hold(3)
        for data in (b"e", b"f", b"g"):
            conn.send(data)
        assert not transport.reading
        conn.drop_held()  # closing: what waited is forgotten, and so is its count
        assert not conn.held_back()
    finally:
        loop.close()
