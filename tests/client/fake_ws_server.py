"""A scripted WebSocket server speaking MQTT, for what real brokers will not do on
demand: split a packet over frames, ping in the middle of a message, send a text frame,
answer the upgrade wrongly. The test reads the client's frames and writes the replies.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from types import TracebackType

from roost.codec import Connect, Packet, read_packet

TIMEOUT = 5.0
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def server_frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """One unmasked frame, as a server sends it."""
    first = (0x80 if fin else 0) | opcode
    length = len(payload)
    if length < 126:
        return bytes((first, length)) + payload
    if length < 65536:
        return bytes((first, 126)) + length.to_bytes(2, "big") + payload
    return bytes((first, 127)) + length.to_bytes(8, "big") + payload


class FakeWsConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.request_line = ""
        self.headers: dict[str, str] = {}
        self.version = 5
        self.stream = b""  # MQTT bytes from the client's frames, not yet read as packets

    async def read_request(self) -> None:
        async with asyncio.timeout(TIMEOUT):
            head = await self.reader.readuntil(b"\r\n\r\n")
        self.request_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
        for line in lines:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()

    def accept_value(self) -> str:
        key = self.headers["sec-websocket-key"].encode()
        return base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()  # noqa: S324

    async def upgrade(self, *extra_headers: str) -> None:
        """Read the request and accept it (with "mqtt" and any extra header lines)."""
        await self.read_request()
        lines = [
            "HTTP/1.1 101 Switching Protocols",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Accept: {self.accept_value()}",
            "Sec-WebSocket-Protocol: mqtt",
            *extra_headers,
        ]
        self.write(("\r\n".join(lines) + "\r\n\r\n").encode())

    async def frame(self) -> tuple[int, bytes]:
        """(first byte, unmasked payload) of the client's next frame."""
        async with asyncio.timeout(TIMEOUT):
            first, second = await self.reader.readexactly(2)
            assert second & 0x80, "a client frame must be masked"
            length = second & 0x7F
            if length == 126:
                length = int.from_bytes(await self.reader.readexactly(2), "big")
            elif length == 127:
                length = int.from_bytes(await self.reader.readexactly(8), "big")
            mask = await self.reader.readexactly(4)
            body = await self.reader.readexactly(length)
        return first, bytes(b ^ mask[i % 4] for i, b in enumerate(body))

    async def packet(self) -> Packet:
        """The client's next MQTT packet, from however many binary frames it takes."""
        while True:
            result = read_packet(self.stream, self.version)
            if result is not None:
                packet, used = result
                self.stream = self.stream[used:]
                if isinstance(packet, Connect):
                    self.version = packet.protocol_level
                return packet
            first, payload = await self.frame()
            assert first in (0x82, 0x02, 0x80, 0x00), f"frame {first:#x} where MQTT was due"
            self.stream += payload

    def write(self, data: bytes) -> None:
        self.writer.write(data)

    def send(self, opcode: int, payload: bytes, *, fin: bool = True) -> None:
        self.write(server_frame(opcode, payload, fin=fin))

    def close(self) -> None:
        self.writer.close()

    async def closed(self) -> bool:
        """Wait until the client closes TCP; True if it did within the timeout."""
        async with asyncio.timeout(TIMEOUT):
            while await self.reader.read(65536):
                pass
        return True


class FakeWsServer:
    def __init__(self) -> None:
        self.connections: asyncio.Queue[FakeWsConnection] = asyncio.Queue()
        self._server: asyncio.Server | None = None
        self._open: list[FakeWsConnection] = []
        self.port = 0

    async def __aenter__(self) -> FakeWsServer:
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
        conn = FakeWsConnection(reader, writer)
        self._open.append(conn)
        await self.connections.put(conn)

    async def accept(self) -> FakeWsConnection:
        async with asyncio.timeout(TIMEOUT):
            return await self.connections.get()
