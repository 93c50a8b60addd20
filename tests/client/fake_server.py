"""A scripted MQTT server for the cases real brokers will not produce on demand:
silence after CONNECT, refusals with chosen reason codes, a peer that never answers
PINGREQ. The test reads what the client sent and writes the replies itself.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import TypeVar

from roost.codec import Connect, Packet, PacketReader

P = TypeVar("P", bound=Packet)
TIMEOUT = 5.0


class FakeConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.packets = PacketReader(version=5)
        self.version = 5

    async def next(self) -> Packet | None:
        """The next packet from the client; None when it closed the connection."""
        async with asyncio.timeout(TIMEOUT):
            while True:
                packet = self.packets.next_packet()
                if packet is not None:
                    if isinstance(packet, Connect):
                        self.version = self.packets.version = packet.protocol_level
                    return packet
                data = await self.reader.read(65536)
                if not data:
                    return None
                self.packets.feed(data)

    async def expect(self, kind: type[P]) -> P:
        packet = await self.next()
        assert isinstance(packet, kind), f"expected {kind.__name__}, got {packet!r}"
        return packet

    async def closed(self) -> None:
        """Wait until the client closes the connection (packets before that are ignored)."""
        while await self.next() is not None:
            pass

    def send(self, *packets: Packet) -> None:
        for packet in packets:
            self.writer.write(packet.encode(self.version))

    def close(self) -> None:
        self.writer.close()


class FakeServer:
    def __init__(self) -> None:
        self.connections: asyncio.Queue[FakeConnection] = asyncio.Queue()
        self._server: asyncio.Server | None = None
        self._open: list[FakeConnection] = []
        self.port = 0

    async def __aenter__(self) -> FakeServer:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for conn in self._open:
            conn.close()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = FakeConnection(reader, writer)
        self._open.append(conn)
        await self.connections.put(conn)

    async def accept(self) -> FakeConnection:
        async with asyncio.timeout(TIMEOUT):
            return await self.connections.get()
