"""MQTT 5 enhanced authentication, the client's side: the authenticator contract, and SCRAM.

An authenticator is one authentication method. The client calls it at each step of an
exchange (MQTT 5.0 section 4.12), at CONNECT and for ``Client.reauthenticate()``::

    CONNECT / AUTH 0x19   Authentication Data = await start()
    AUTH 0x18 from server  our AUTH 0x18 carries await respond(server's data)
    CONNACK 0 / AUTH 0x00  await finish(server's data): raise to refuse the server

Any exception from these methods ends the connection (DISCONNECT 0x80, then
``AuthenticationError`` for the caller). The methods are coroutines so that an
authenticator may wait for a token service or a hardware key; the client's other work
goes on meanwhile.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from roost.protocol.scram import MECHANISMS, ScramClient, ScramError

__all__ = ["MECHANISMS", "Authenticator", "ScramAuth", "ScramError"]


class Authenticator(Protocol):
    """One MQTT 5 enhanced-authentication method, as ``Client(auth=...)`` uses it."""

    @property
    def method(self) -> str:
        """The Authentication Method, e.g. "SCRAM-SHA-256"."""
        ...

    async def start(self) -> bytes | None:
        """Begin a new exchange; the Authentication Data for CONNECT or AUTH 0x19."""
        ...

    async def respond(self, data: bytes | None) -> bytes | None:
        """The answer to the server's AUTH 0x18 with ``data``."""
        ...

    async def finish(self, data: bytes | None) -> None:
        """The server accepted, with ``data``: check it; raise if the server is not who
        it should be (its proof is wrong or missing)."""
        ...


class ScramAuth:
    """SCRAM-SHA-256 (RFC 7677) or SCRAM-SHA-512: the password never crosses the network,
    and the server proves in its CONNACK that it knows the user's credentials.

    ::

        Client("broker", auth=ScramAuth("alice", "secret", "SCRAM-SHA-256"))
    """

    __slots__ = ("_exchange", "_password", "method", "username")

    def __init__(self, username: str, password: str, mechanism: str = "SCRAM-SHA-256") -> None:
        mechanism = mechanism.upper()
        if mechanism not in MECHANISMS:
            raise ValueError(
                f"unknown SCRAM mechanism {mechanism!r}: one of {', '.join(MECHANISMS)}"
            )
        if not username:
            raise ValueError("SCRAM needs a username")
        self.method = mechanism
        self.username = username
        self._password = password
        self._exchange: ScramClient | None = None

    def __repr__(self) -> str:
        return f"ScramAuth({self.username!r}, '***', {self.method!r})"

    async def start(self) -> bytes:
        # A fresh nonce for every exchange: each connection and re-authentication.
        self._exchange = ScramClient(self.method, self.username, self._password)
        return self._exchange.first()

    async def respond(self, data: bytes | None) -> bytes:
        exchange = self._current()
        # PBKDF2 with the iteration count the server chose: off the event loop.
        return await asyncio.to_thread(exchange.final, data)

    async def finish(self, data: bytes | None) -> None:
        exchange = self._current()
        self._exchange = None
        exchange.verify(data)

    def _current(self) -> ScramClient:
        if self._exchange is None:
            raise ScramError("no SCRAM exchange is under way")
        return self._exchange
