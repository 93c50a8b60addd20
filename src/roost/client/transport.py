"""The asyncio.Protocol under a client: hands bytes and connection events to its owner.

It holds no MQTT state. Each network connection gets a new instance, so a late
callback from a connection the client has already given up on is recognisable.
"""

from __future__ import annotations

import asyncio
from typing import Protocol, cast


class Owner(Protocol):
    """What a Link reports to: the client engine. The callbacks are private to the two,
    so they are not part of the public Client API."""

    def _on_data(self, link: Link, data: bytes) -> None: ...
    def _on_lost(self, link: Link, exc: Exception | None) -> None: ...


class Link(asyncio.Protocol):
    """One network connection of a client: bytes to the owner, writes with flow control."""

    __slots__ = ("_drain", "_owner", "closed", "transport")

    def __init__(self, owner: Owner) -> None:
        self._owner = owner
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[None] = loop.create_future()
        self._drain: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        self._owner._on_data(self, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self.closed.done():
            self.closed.set_result(None)
        self.resume_writing()
        self._owner._on_lost(self, exc)

    def write(self, data: bytes) -> None:
        """Send ``data``; dropped if the connection is already closing."""
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def close(self) -> None:
        """Send what is buffered, then close."""
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Close at once, discarding what is buffered."""
        if self.transport is not None:
            self.transport.abort()

    # Write flow control: publishers wait while the socket's buffer is above its high mark.

    def pause_writing(self) -> None:
        if self._drain is None:
            self._drain = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        drain = self._drain
        self._drain = None
        if drain is not None and not drain.done():
            drain.set_result(None)

    async def drain(self) -> None:
        """Wait while the socket's write buffer is above its high-water mark."""
        if self._drain is not None:
            await asyncio.shield(self._drain)
