"""SCRAM credentials files, and the enhanced-authentication backend that reads them.

One entry per line, one line per user and mechanism; a user may have a SCRAM-SHA-256
entry, a SCRAM-SHA-512 entry, or both::

    # USERNAME:MECHANISM$ITERATIONS:SALT$STOREDKEY:SERVERKEY
    alice:SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=

After the username comes PostgreSQL's SCRAM verifier format (``pg_authid.rolpassword``):
iteration count, base64 salt, base64 StoredKey and base64 ServerKey. The password itself
is never stored, and the stored keys are not enough to log in (RFC 5802 section 9).
``roost scram`` writes these files; comments and blank lines are kept when it edits one.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import secrets
import tempfile
from pathlib import Path

from roost.broker.auth.base import AuthResult, Challenge, ClientInfo
from roost.broker.auth.password_file import PasswordFileError, check_username
from roost.codec import ConnectReasonCode
from roost.protocol.scram import (
    DEFAULT_ITERATIONS,
    MECHANISMS,
    ScramCredentials,
    ScramError,
    ScramServer,
    derive_credentials,
    parse_client_first,
)

__all__ = ["ScramAuthentication", "ScramFile", "ScramFileError"]


class ScramFileError(PasswordFileError):
    """A SCRAM credentials file Roost cannot use; ``str()`` is ``FILE:LINE: PROBLEM``."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def format_verifier(credentials: ScramCredentials) -> str:
    return (
        f"{credentials.mechanism}${credentials.iterations}:{_b64(credentials.salt)}"
        f"${_b64(credentials.stored_key)}:{_b64(credentials.server_key)}"
    )


def parse_verifier(text: str) -> ScramCredentials:
    """``MECHANISM$ITERATIONS:SALT$STOREDKEY:SERVERKEY``; ValueError says what is wrong."""
    mechanism, sep1, rest = text.partition("$")
    head, sep2, keys = rest.partition("$")
    iterations_text, sep3, salt_text = head.partition(":")
    stored_text, sep4, server_text = keys.partition(":")
    if not (sep1 and sep2 and sep3 and sep4):
        raise ValueError("expected MECHANISM$ITERATIONS:SALT$STOREDKEY:SERVERKEY")
    if mechanism not in MECHANISMS:
        raise ValueError(f"unknown mechanism {mechanism!r} (Roost has {', '.join(MECHANISMS)})")
    if not iterations_text.isascii() or not iterations_text.isdigit() or int(iterations_text) < 1:
        raise ValueError(f"iteration count {iterations_text!r} is not a positive whole number")
    try:
        salt, stored, server = (
            base64.b64decode(part.encode("ascii"), validate=True)
            for part in (salt_text, stored_text, server_text)
        )
    except (UnicodeEncodeError, binascii.Error):
        raise ValueError("salt and keys must be base64") from None
    size = 32 if mechanism == "SCRAM-SHA-256" else 64
    if not salt or len(stored) != size or len(server) != size:
        raise ValueError(f"{mechanism} keys are {size} bytes and the salt may not be empty")
    return ScramCredentials(mechanism, int(iterations_text), salt, stored, server)


def _parse_entry(line: str) -> tuple[str, ScramCredentials]:
    username, colon, verifier = line.partition(":")
    if not colon:
        raise ValueError("expected USERNAME:MECHANISM$ITERATIONS:SALT$STOREDKEY:SERVERKEY")
    check_username(username)
    return username, parse_verifier(verifier.strip())


class ScramFile:
    """Users' SCRAM credentials per mechanism, in file order, comments kept in place."""

    __slots__ = ("_entries", "_layout")

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], ScramCredentials] = {}
        # (True, (user, mechanism)) for an entry, (False, text) for a kept line.
        self._layout: list[tuple[bool, tuple[str, str] | str]] = []

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ScramFile:
        source = os.fspath(path)
        try:
            text = Path(source).read_text(encoding="utf-8")
        except OSError as exc:
            raise ScramFileError(
                f"cannot read the file: {exc.strerror or exc}", path=source
            ) from exc
        except UnicodeDecodeError:
            raise ScramFileError("not valid UTF-8", path=source) from None
        result = cls()
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                result._layout.append((False, line))
                continue
            try:
                username, credentials = _parse_entry(line)
            except ValueError as exc:
                raise ScramFileError(str(exc), path=source, line=number) from None
            key = (username, credentials.mechanism)
            if key in result._entries:
                raise ScramFileError(
                    f"user {username!r} has a second {credentials.mechanism} entry",
                    path=source,
                    line=number,
                )
            result._entries[key] = credentials
            result._layout.append((True, key))
        return result

    def __len__(self) -> int:
        return len(self._entries)

    def usernames(self) -> list[str]:
        return list(dict.fromkeys(user for user, _mechanism in self._entries))

    def get(self, username: str, mechanism: str) -> ScramCredentials | None:
        return self._entries.get((username, mechanism))

    def set(
        self,
        username: str,
        password: str,
        mechanisms: tuple[str, ...] = tuple(MECHANISMS),
        *,
        iterations: int = DEFAULT_ITERATIONS,
    ) -> None:
        """Store ``password`` for ``username`` under each mechanism (replacing old entries)."""
        check_username(username)
        for mechanism in mechanisms:
            credentials = derive_credentials(mechanism, password, iterations=iterations)
            key = (username, mechanism)
            if key not in self._entries:
                self._layout.append((True, key))
            self._entries[key] = credentials

    def delete(self, username: str) -> bool:
        """Remove every entry of ``username``; False if it had none."""
        keys = [key for key in self._entries if key[0] == username]
        for key in keys:
            del self._entries[key]
            self._layout.remove((True, key))
        return bool(keys)

    def dumps(self) -> str:
        lines = []
        for is_entry, item in self._layout:
            if is_entry:
                assert isinstance(item, tuple)  # noqa: S101
                lines.append(f"{item[0]}:{format_verifier(self._entries[item])}")
            else:
                assert isinstance(item, str)  # noqa: S101
                lines.append(item)
        return "".join(f"{line}\n" for line in lines)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write atomically with mode 0600 (the temporary file is made 0600 from the start)."""
        target = Path(path)
        fd, temp_name = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
        )
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(self.dumps())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp_name, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp_name)
            raise


class ScramAuthentication:
    """The broker's side of one SCRAM exchange (MQTT 5 enhanced authentication).

    First step: the client-first message, answered with a challenge (server-first).
    Second step: the client-final message, answered with the result, whose data is the
    server-final message. A user the file does not know gets a decoy exchange that
    fails at the proof, like a wrong password, so the answer does not tell who exists.
    """

    __slots__ = ("_credentials", "_mechanism", "_secret", "_server", "_username")

    def __init__(self, mechanism: str, credentials: ScramFile, secret: bytes) -> None:
        self._mechanism = mechanism
        self._credentials = credentials
        self._secret = secret
        self._server: ScramServer | None = None
        self._username = ""

    async def step(self, data: bytes | None) -> Challenge | AuthResult:
        return self.step_now(data)

    def step_now(self, data: bytes | None) -> Challenge | AuthResult:
        try:
            if self._server is None:
                first = parse_client_first(data)
                credentials = self._credentials.get(first.username, self._mechanism)
                if credentials is None:
                    credentials = ScramServer.decoy(self._mechanism, first.username, self._secret)
                self._username = first.username
                self._server = ScramServer(first, credentials)
                return Challenge(self._server.server_first())
            final = self._server.finish(data)
        except ScramError as exc:
            return AuthResult.refuse(ConnectReasonCode.NOT_AUTHORIZED, f"SCRAM: {exc}")
        return AuthResult.accept(self._username, data=final)


class ScramBackend:
    """Offers SCRAM-SHA-256 and SCRAM-SHA-512 from a credentials file, reloaded on SIGHUP."""

    __slots__ = ("_secret", "credentials", "path")

    def __init__(self, path: str) -> None:
        self.path = path
        self.credentials = ScramFile.load(path)
        # Keys the decoy salts: stable for a username while the broker runs.
        self._secret = secrets.token_bytes(32)

    def reload(self) -> None:
        self.credentials = ScramFile.load(self.path)

    def start_auth(self, method: str, client: ClientInfo) -> ScramAuthentication | None:
        if method not in MECHANISMS:
            return None
        return ScramAuthentication(method, self.credentials, self._secret)
