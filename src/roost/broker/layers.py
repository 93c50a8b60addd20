"""A layer between a socket and a BrokerConnection: TLS, WebSocket framing, or both.

A layer is the asyncio.Protocol of the transport below it and the asyncio.Transport
of the protocol above it, so BrokerConnection runs unchanged over any stack of them
(``socket -> TLS -> WebSocket -> BrokerConnection`` for a wss listener). Plain TCP
connections have no layer at all: their hot path stays free of this indirection.

The layer calls the protocol above's ``connection_made`` as soon as the socket is
accepted, before any handshake of its own, so BrokerConnection's limits and its
connect timeout (the broker's sweep) cover the handshakes too.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast


class StreamLayer(asyncio.Protocol, asyncio.Transport):
    """What every layer shares: passing events up and transport calls down."""

    __slots__ = ("_closed", "app", "raw")

    def __init__(self, app: asyncio.Protocol) -> None:
        super().__init__()
        self.app = app  # the protocol above
        self.raw: asyncio.Transport | None = None  # the transport below
        self._closed = False

    # Events from below.

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.raw = cast("asyncio.Transport", transport)
        self.app.connection_made(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.app.connection_lost(exc)

    def pause_writing(self) -> None:
        self.app.pause_writing()

    def resume_writing(self) -> None:
        self.app.resume_writing()

    # Calls from above.

    def is_closing(self) -> bool:
        raw = self.raw
        return self._closed or raw is None or raw.is_closing()

    def can_write_eof(self) -> bool:
        # Every layer can end its own stream first (TLS close_notify, WebSocket close
        # frame), then shut the socket's write side down if the transport below can.
        return True

    def write_eof_below(self) -> None:
        """Shut down the write side of the transport below (or close it if it cannot)."""
        raw = self.raw
        if raw is None or raw.is_closing():
            return
        if raw.can_write_eof():
            raw.write_eof()
        else:
            raw.close()

    def abort(self) -> None:
        self._closed = True
        if self.raw is not None:
            self.raw.abort()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        raw = self.raw
        return default if raw is None else raw.get_extra_info(name, default)

    def get_write_buffer_size(self) -> int:
        return 0 if self.raw is None else self.raw.get_write_buffer_size()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if self.raw is not None:
            self.raw.set_write_buffer_limits(high, low)

    def pause_reading(self) -> None:
        if self.raw is not None:
            self.raw.pause_reading()

    def resume_reading(self) -> None:
        if self.raw is not None:
            self.raw.resume_reading()

    def is_reading(self) -> bool:
        return self.raw is not None and self.raw.is_reading()

    def peer(self) -> str:
        """host:port of the remote end, for log lines."""
        return format_peer(self.get_extra_info("peername"))


def format_peer(peername: object) -> str:
    if isinstance(peername, tuple) and len(peername) >= 2:
        return f"{peername[0]}:{peername[1]}"
    return "?"
