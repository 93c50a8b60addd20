"""Auth plugins the tests load by dotted path, as a user's own module would be loaded."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from roost.broker.auth.base import Access, AuthRequest, AuthResult, Challenge, ClientInfo


class AllowList:
    """Users from the options with one shared password; each may use the topics under
    its own name (``alice/...``) and, with the role "admin", everything."""

    def __init__(self, options: Mapping[str, object]) -> None:
        users = options.get("users", [])
        assert isinstance(users, list)
        self.users = {str(user) for user in users}
        self.admins = {str(user) for user in options.get("admins", [])}  # type: ignore[attr-defined]
        self.password = str(options.get("password", "")).encode()
        self.authorize_calls: list[tuple[str, Access, str]] = []
        self.reloads = 0

    async def authenticate(self, request: AuthRequest) -> AuthResult | None:
        if request.username not in self.users:
            return None  # someone else's user: ask the next backend
        if request.password != self.password:
            return AuthResult.refuse(reason_string="wrong shared password")
        role = "admin" if request.username in self.admins else "user"
        return AuthResult.accept(attributes={"role": role})

    def authorize(self, client: ClientInfo, access: Access, topic: str) -> bool | None:
        self.authorize_calls.append((client.client_id, access, topic))
        if client.attributes.get("role") == "admin":
            return True
        if client.username is not None and topic.split("/", maxsplit=1)[0] == client.username:
            return True
        return None

    def reload(self) -> None:
        self.reloads += 1


# A ready-made object (not a class): loaded as it is.
instance = AllowList({"users": ["zoe"], "password": "zoe"})


class Gate:
    """An async authorizer that holds every answer until the test opens the gate.

    ``allowed`` decides the answers: topics whose first level is in it are allowed,
    except for reading those whose first level is in ``unreadable``.
    ``gated`` names the kinds of access held at the gate (default: all); the others
    are answered at once, though still asynchronously.
    """

    def __init__(self, options: Mapping[str, object]) -> None:
        allowed = options.get("allowed", [])
        gated = options.get("gated", [str(access) for access in Access])
        assert isinstance(allowed, list)
        assert isinstance(gated, list)
        self.allowed = {str(level) for level in allowed}
        unreadable = options.get("unreadable", [])
        assert isinstance(unreadable, list)
        self.unreadable = {str(level) for level in unreadable}
        self.gated = {Access(str(access)) for access in gated}
        self.calls: list[tuple[Access, str]] = []
        self._open: asyncio.Event | None = None

    def open(self) -> None:
        """Let every waiting and future answer through (call on the broker's loop)."""
        self._gate().set()

    def close(self) -> None:
        """Hold answers again (call on the broker's loop)."""
        self._gate().clear()

    def _gate(self) -> asyncio.Event:
        if self._open is None:
            self._open = asyncio.Event()
        return self._open

    async def authorize(self, client: ClientInfo, access: Access, topic: str) -> bool:
        self.calls.append((access, topic))
        if access in self.gated:
            await self._gate().wait()
        first = topic.split("/", maxsplit=1)[0]
        if access is Access.READ and first in self.unreadable:
            return False
        return first in self.allowed


class Broken:
    """A plugin whose every answer is an exception."""

    def __init__(self, options: Mapping[str, object]) -> None:
        pass

    async def authenticate(self, request: AuthRequest) -> AuthResult:
        raise RuntimeError("the user database is down")

    def authorize(self, client: ClientInfo, access: Access, topic: str) -> bool:
        raise RuntimeError("the policy server is down")


class Knock:
    """Enhanced authentication with a made-up method, "KNOCK": the client must answer
    the challenge b"who?" with b"friend"."""

    def __init__(self, options: Mapping[str, object]) -> None:
        pass

    def start_auth(self, method: str, client: ClientInfo) -> KnockExchange | None:
        return KnockExchange() if method == "KNOCK" else None


class KnockExchange:
    def __init__(self) -> None:
        self.steps = 0

    async def step(self, data: bytes | None) -> Challenge | AuthResult:
        self.steps += 1
        if self.steps == 1:
            return Challenge(b"who?")
        if data == b"friend":
            return AuthResult.accept(username="friend", data=b"welcome")
        return AuthResult.refuse(0x87, "wrong answer")


def not_a_plugin(options: Mapping[str, object]) -> object:
    return object()


class Roles:
    """Users from the options, each with a role and teams as its identity attributes;
    readers may read, writers may write, under ``a/``. Records every ``ClientInfo``
    ``authorize`` is given, so a test can compare them across a restart."""

    def __init__(self, options: Mapping[str, object]) -> None:
        roles = options.get("roles", {})
        assert isinstance(roles, dict)
        self.roles = {str(user): str(role) for user, role in roles.items()}
        self.seen: list[tuple[ClientInfo, Access, str]] = []

    async def authenticate(self, request: AuthRequest) -> AuthResult | None:
        role = self.roles.get(request.username or "")
        if role is None:
            return AuthResult.refuse(reason_string="unknown user")
        return AuthResult.accept(attributes={"role": role, "teams": ["blue", "green"]})

    def authorize(self, client: ClientInfo, access: Access, topic: str) -> bool:
        self.seen.append((client, access, topic))
        if not topic.startswith("a/"):
            return False
        role = client.attributes.get("role")
        return (role == "reader" and access is not Access.WRITE) or (
            role == "writer" and access is Access.WRITE
        )
