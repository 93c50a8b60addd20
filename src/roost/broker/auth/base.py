"""The contract between the broker and whatever decides who may connect and do what.

A backend, built in (password file, ACL file, SCRAM credentials) or a plugin loaded by
dotted path from the configuration (``auth_plugin``), is an object with any of:

``async def authenticate(self, request: AuthRequest) -> AuthResult | bool | None``
    Check a CONNECT's credentials. ``True`` or ``AuthResult.accept()`` lets the client
    in, ``False`` or ``AuthResult.refuse()`` refuses it, ``None`` says "not mine": the
    next backend is asked. Called off the packet hot path, once per CONNECT.

``def authorize(self, client: ClientInfo, access: Access, topic: str) -> bool | None``
    May ``client`` publish to (``WRITE``), receive from (``READ``) the topic name
    ``topic``, or subscribe (``SUBSCRIBE``) with the filter ``topic``? ``None`` passes
    the question on; when every backend passes, the answer is no. It may be a plain
    method (answered at once) or ``async`` (the broker pauses that client's packets
    while it waits, so their order is kept). Either way each answer is cached per
    client, so a plugin is asked about a topic once, not once per message.

``def start_auth(self, method: str, client: ClientInfo) -> EnhancedAuthentication | None``
    Begin an MQTT 5 enhanced authentication (AUTH packet) exchange for ``method``, or
    return None if this backend does not know the method.

``def reload(self) -> None``
    Called on SIGHUP, to re-read whatever the backend reads.

Every method is optional. The broker asks the built-in backends first, then the plugin.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Protocol

from roost.codec import ConnectReasonCode

__all__ = [
    "Access",
    "AuthRequest",
    "AuthResult",
    "Challenge",
    "ClientInfo",
    "EnhancedAuthentication",
]

_NO_ATTRIBUTES: Mapping[str, object] = MappingProxyType({})


class Access(StrEnum):
    """What a client asks to do with a topic."""

    READ = "read"  # receive a message published to a topic name
    WRITE = "write"  # publish to a topic name
    SUBSCRIBE = "subscribe"  # subscribe with a topic filter (of a $share, the inner one)


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """Who is asking: what the broker knows about one client connection."""

    client_id: str
    username: str | None  # after authentication: the identity it was accepted as
    peer: str = "?"  # "host:port"
    protocol_level: int = 4  # 3 (MQTT 3.1), 4 (3.1.1) or 5
    listener: str = ""  # e.g. "tcp 127.0.0.1:1883"
    # What the authenticating backend chose to attach (roles, token claims, ...).
    attributes: Mapping[str, object] = field(default_factory=lambda: _NO_ATTRIBUTES)


@dataclass(frozen=True, slots=True)
class AuthRequest:
    """The credentials of one CONNECT."""

    client: ClientInfo
    password: bytes | None

    @property
    def username(self) -> str | None:
        return self.client.username


@dataclass(frozen=True, slots=True)
class AuthResult:
    """The end of an authentication: let the client in, or refuse it and say why."""

    allowed: bool
    # Refused: the CONNACK reason (MQTT 5; mapped to the nearest 3.1.1 return code).
    reason_code: int = 0
    reason_string: str | None = None
    # Accepted: the identity the client is known as from now on (ACLs, %u, logs);
    # None keeps the username it sent.
    username: str | None = None
    attributes: Mapping[str, object] = field(default_factory=lambda: _NO_ATTRIBUTES)
    # Enhanced authentication: Authentication Data for the CONNACK (or AUTH 0x00).
    data: bytes | None = None

    @classmethod
    def accept(
        cls,
        username: str | None = None,
        attributes: Mapping[str, object] | None = None,
        data: bytes | None = None,
    ) -> AuthResult:
        return cls(
            True,
            username=username,
            attributes=_NO_ATTRIBUTES if attributes is None else MappingProxyType(dict(attributes)),
            data=data,
        )

    @classmethod
    def refuse(
        cls,
        reason_code: int = ConnectReasonCode.BAD_USERNAME_OR_PASSWORD,
        reason_string: str | None = None,
    ) -> AuthResult:
        return cls(False, reason_code, reason_string)


@dataclass(frozen=True, slots=True)
class Challenge:
    """An enhanced-authentication step that needs the client's answer: sent in AUTH 0x18."""

    data: bytes | None


class EnhancedAuthentication(Protocol):
    """One AUTH exchange with one client, for one method (SCRAM-SHA-256, say).

    ``step`` gets the client's Authentication Data (from the CONNECT or AUTH 0x19 first,
    then from each AUTH 0x18) and answers with a ``Challenge`` for another round or an
    ``AuthResult`` to end the exchange.
    """

    async def step(self, data: bytes | None) -> Challenge | AuthResult: ...
