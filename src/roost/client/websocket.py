"""The client's Link over a WebSocket: RFC 6455 framing between the socket and the owner.

The framing itself is ``roost.protocol.websocket_client`` (sans-IO); this adapter sends
the upgrade request when the TCP (or TLS) connection is up, resolves ``opened`` when
the server accepts, and from then on behaves as a plain Link: the owner sees MQTT bytes
and writes MQTT bytes. Until ``opened`` is resolved, failures go to that future, not to
the owner.
"""

from __future__ import annotations

import asyncio
import logging

from roost.client.transport import Link, Owner
from roost.protocol.websocket_client import (
    Accepted,
    CloseReceived,
    WebSocketClient,
    WebSocketProtocolError,
    WebSocketState,
)

log = logging.getLogger("roost.client")


class HandshakeClosed(ConnectionError):
    """The server closed the connection before answering the upgrade request."""


class WebSocketLink(Link):
    """A Link whose bytes travel in WebSocket frames; ``opened`` resolves on the upgrade."""

    __slots__ = ("_error", "_ws", "opened")

    def __init__(self, owner: Owner, ws: WebSocketClient) -> None:
        super().__init__(owner)
        self._ws = ws
        self._error: Exception | None = None
        self.opened: asyncio.Future[Accepted] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        super().write(self._ws.handshake_request())

    def data_received(self, data: bytes) -> None:
        ws = self._ws
        try:
            events = ws.receive_data(data)
        except WebSocketProtocolError as exc:
            self._failed(exc)
            return
        for event in events:
            if isinstance(event, bytes):
                if self.opened.done() and self.transport is not None:
                    self._owner._on_data(self, event)
            elif isinstance(event, Accepted):
                if not self.opened.done():
                    self.opened.set_result(event)
            elif isinstance(event, CloseReceived):
                log.debug("The server closed the WebSocket (%d %s).", event.code, event.reason)
        self._send_queued()
        if ws.state is WebSocketState.CLOSED and self.transport is not None:
            # Close frames went both ways: nothing more can come (RFC 6455 section 7.1.1).
            self.transport.close()

    def _failed(self, exc: WebSocketProtocolError) -> None:
        log.debug("WebSocket failure: %s", exc)
        self._error = exc
        self._send_queued()
        if not self.opened.done():
            self.opened.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    def _send_queued(self) -> None:
        queued = self._ws.data_to_send()
        if queued:
            super().write(queued)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(
                exc or self._error or HandshakeClosed("the connection closed during the upgrade")
            )
            # The owner never had this connection: tell it nothing, as Link would not
            # have been handed over either.
            self.transport = None
            if not self.closed.done():
                self.closed.set_result(None)
            self.resume_writing()
            return
        super().connection_lost(exc or self._error)

    def write(self, data: bytes) -> None:
        super().write(self._ws.send(data))

    def close(self) -> None:
        """Start the closing handshake; the server answers and closes the connection."""
        if self._ws.state is WebSocketState.OPEN:
            super().write(self._ws.close())
        elif self.transport is not None:
            self.transport.close()
