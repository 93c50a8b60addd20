"""Mosquitto-compatible password files: read, verify, edit and write them atomically.

One entry per line, ``username:HASH``, where HASH is one of Mosquitto's two formats:

* ``$7$<iterations>$<base64 salt>$<base64 hash>``: PBKDF2-HMAC-SHA512 with a 64-byte
  output. ``mosquitto_passwd`` 2.0 writes 101 iterations and a 12-byte salt
  (``PW_DEFAULT_ITERATIONS`` and ``SALT_LEN`` in its ``password_mosq.h``); later Mosquitto
  versions write a 64-byte salt, which Mosquitto (and so Roost) also reads.
* ``$6$<base64 salt>$<base64 hash>``: one SHA-512 over ``password + salt``, written by
  Mosquitto 1.6 and earlier. Read and verified so old files keep working; never written.

Blank lines and ``#`` comment lines are kept in place when a file is edited and saved.
Verification is CPU-bound on purpose (that is what PBKDF2 is for), so the broker calls
:meth:`PasswordFile.verify_async`, which runs it off the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "DEFAULT_ITERATIONS",
    "HASH_LENGTH",
    "SALT_LENGTH",
    "PasswordFile",
    "PasswordFileError",
    "PasswordHash",
    "check_username",
    "compute_digest",
    "hash_password",
]

DEFAULT_ITERATIONS = 101
SALT_LENGTH = 12
HASH_LENGTH = 64
# Salt lengths Mosquitto accepts when reading: 12 from 2.0, 64 from later versions.
_SALT_LENGTHS = frozenset({12, 64})
_FILE_MODE = 0o600


class PasswordFileError(Exception):
    """A password file Roost cannot use; ``str()`` is ``FILE:LINE: PROBLEM``.

    The parts are also attributes; ``line`` is None for problems with the whole file
    (for example, it cannot be read).
    """

    def __init__(self, problem: str, *, path: str, line: int | None = None) -> None:
        self.problem = problem
        self.path = path
        self.line = line
        where = path if line is None else f"{path}:{line}"
        super().__init__(f"{where}: {problem}")


def compute_digest(kind: Literal[6, 7], password: bytes, salt: bytes, iterations: int) -> bytes:
    """The raw hash Mosquitto stores for ``password``: the one place hashing happens."""
    if kind == 7:
        return hashlib.pbkdf2_hmac("sha512", password, salt, iterations, HASH_LENGTH)
    return hashlib.sha512(password + salt).digest()


@dataclass(frozen=True, slots=True)
class PasswordHash:
    """One parsed hash field. ``iterations`` is 1 for the single-round ``$6$`` kind."""

    kind: Literal[6, 7]
    iterations: int
    salt: bytes
    digest: bytes

    @classmethod
    def parse(cls, text: str) -> PasswordHash:
        """Parse a ``$6$``/``$7$`` field; ValueError names what is wrong with it."""
        parts = text.split("$")
        if len(parts) < 2 or parts[0] != "":
            raise ValueError("the password is not hashed (hash a plain-text file with -U)")
        if parts[1] == "7":
            if len(parts) != 5:
                raise ValueError("ill-formed $7$ hash: expected $7$ITERATIONS$SALT$HASH")
            iterations = _parse_iterations(parts[2])
            salt_text, digest_text = parts[3], parts[4]
            kind: Literal[6, 7] = 7
        elif parts[1] == "6":
            if len(parts) != 4:
                raise ValueError("ill-formed $6$ hash: expected $6$SALT$HASH")
            iterations = 1
            salt_text, digest_text = parts[2], parts[3]
            kind = 6
        else:
            raise ValueError(f"unsupported hash type ${parts[1]}$ (Roost reads $6$ and $7$)")
        salt = _decode_base64(salt_text, "salt")
        if len(salt) not in _SALT_LENGTHS:
            raise ValueError(f"salt is {len(salt)} bytes; Mosquitto uses 12 or 64")
        digest = _decode_base64(digest_text, "hash")
        if len(digest) != HASH_LENGTH:
            raise ValueError(f"hash is {len(digest)} bytes; SHA-512 gives {HASH_LENGTH}")
        return cls(kind, iterations, salt, digest)

    def encode(self) -> str:
        salt = base64.b64encode(self.salt).decode("ascii")
        digest = base64.b64encode(self.digest).decode("ascii")
        if self.kind == 7:
            return f"$7${self.iterations}${salt}${digest}"
        return f"$6${salt}${digest}"

    def matches(self, password: bytes) -> bool:
        computed = compute_digest(self.kind, password, self.salt, self.iterations)
        return hmac.compare_digest(computed, self.digest)


def _parse_iterations(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise ValueError(f"iteration count {text!r} is not a whole number")
    iterations = int(text)
    if iterations < 1:
        raise ValueError("iteration count must be at least 1")
    return iterations


def _decode_base64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise ValueError(f"{what} is not valid base64") from exc


def _as_bytes(password: str | bytes) -> bytes:
    return password.encode("utf-8") if isinstance(password, str) else password


def hash_password(
    password: str | bytes, iterations: int = DEFAULT_ITERATIONS, salt: bytes | None = None
) -> str:
    """A ``$7$`` hash field as ``mosquitto_passwd`` writes it; a fresh random salt by default."""
    return _new_hash(password, iterations, salt).encode()


def _new_hash(password: str | bytes, iterations: int, salt: bytes | None = None) -> PasswordHash:
    if iterations < 1:
        raise ValueError("iteration count must be at least 1")
    if salt is None:
        salt = secrets.token_bytes(SALT_LENGTH)
    return PasswordHash(
        7, iterations, salt, compute_digest(7, _as_bytes(password), salt, iterations)
    )


def check_username(username: str) -> None:
    """Raise ValueError if ``username`` cannot be stored in a password file."""
    if not username:
        raise ValueError("the username is empty")
    if ":" in username:
        raise ValueError("the username must not contain ':'")
    if any(ord(char) < 32 or ord(char) == 127 for char in username):
        raise ValueError("the username must not contain control characters")
    # mosquitto_passwd trims blanks around a username when it reads a file, so such an
    # entry would not survive Mosquitto's tools; refuse it rather than write it.
    if username != username.strip():
        raise ValueError("the username must not start or end with whitespace")
    if len(username.encode("utf-8")) > 65535:
        raise ValueError("the username is longer than MQTT allows (65535 bytes)")


class PasswordFile:
    """Users and their password hashes, in file order, with comments kept in place."""

    __slots__ = ("_dummy", "_entries", "_layout")

    def __init__(self) -> None:
        self._entries: dict[str, PasswordHash] = {}
        # File order: (True, username) for an entry, whose line is rebuilt from
        # _entries on save, or (False, text) for a blank or comment line kept verbatim.
        self._layout: list[tuple[bool, str]] = []
        self._dummy: PasswordHash | None = None

    # -- reading ---------------------------------------------------------------

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PasswordFile:
        """Read a password file; any problem raises PasswordFileError naming the line."""
        source = os.fspath(path)
        result = cls()
        first_line: dict[str, int] = {}
        for number, line in _read_lines(source):
            if not line.strip() or line.lstrip().startswith("#"):
                result._layout.append((False, line))
                continue
            username, field = _split_entry(line, source, number)
            try:
                check_username(username)
                hashed = PasswordHash.parse(field)
            except ValueError as exc:
                raise PasswordFileError(str(exc), path=source, line=number) from None
            _check_first_mention(username, first_line, source, number)
            result._entries[username] = hashed
            result._layout.append((True, username))
        return result

    @classmethod
    def hash_plaintext(
        cls, path: str | os.PathLike[str], iterations: int = DEFAULT_ITERATIONS
    ) -> PasswordFile:
        """Read a plain ``username:password`` file (what ``-U`` converts) and hash it.

        Everything after the first ':' is the password, spaces included. A line that is
        already hashed is refused: hashing a hash would silently lock that user out.
        """
        source = os.fspath(path)
        result = cls()
        first_line: dict[str, int] = {}
        for number, line in _read_lines(source):
            if not line.strip() or line.lstrip().startswith("#"):
                result._layout.append((False, line))
                continue
            username, password = _split_entry(line, source, number, strip_value=False)
            try:
                check_username(username)
            except ValueError as exc:
                raise PasswordFileError(str(exc), path=source, line=number) from None
            if not password:
                raise PasswordFileError("the password is empty", path=source, line=number)
            if _is_hashed(password):
                raise PasswordFileError(
                    "the password is already hashed; -U expects a plain-text file",
                    path=source,
                    line=number,
                )
            _check_first_mention(username, first_line, source, number)
            result.set(username, password, iterations=iterations)
        return result

    # -- querying --------------------------------------------------------------

    def __contains__(self, username: object) -> bool:
        return username in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def usernames(self) -> list[str]:
        return list(self._entries)

    def get(self, username: str) -> PasswordHash | None:
        return self._entries.get(username)

    def verify(self, username: str, password: bytes) -> bool:
        """True if ``password`` is ``username``'s. Takes the same time for unknown users.

        An unknown user is hashed against a dummy entry with the file's highest
        iteration count, so the response time does not reveal which usernames exist.
        """
        entry = self._entries.get(username)
        known = entry is not None
        if entry is None:
            entry = self._dummy_entry()
        matched = entry.matches(password)
        return known and matched

    async def verify_async(self, username: str, password: bytes) -> bool:
        """:meth:`verify` in a worker thread, so PBKDF2 does not stall the event loop."""
        return await asyncio.to_thread(self.verify, username, password)

    def _dummy_entry(self) -> PasswordHash:
        if self._dummy is None:
            iterations = max(
                (e.iterations for e in self._entries.values() if e.kind == 7),
                default=DEFAULT_ITERATIONS,
            )
            # A random digest no password can be expected to produce.
            self._dummy = PasswordHash(
                7, iterations, secrets.token_bytes(SALT_LENGTH), secrets.token_bytes(HASH_LENGTH)
            )
        return self._dummy

    # -- editing ---------------------------------------------------------------

    def set(
        self, username: str, password: str | bytes, *, iterations: int = DEFAULT_ITERATIONS
    ) -> None:
        """Add ``username`` or replace its password; ValueError for an unusable username."""
        check_username(username)
        self.set_hash(username, _new_hash(password, iterations))

    def set_hash(self, username: str, hashed: PasswordHash) -> None:
        """Store an already-computed hash (for example one copied from another file)."""
        check_username(username)
        if username not in self._entries:
            self._layout.append((True, username))
        self._entries[username] = hashed
        self._dummy = None

    def delete(self, username: str) -> bool:
        """Remove ``username``; False if it was not there."""
        if self._entries.pop(username, None) is None:
            return False
        self._layout.remove((True, username))
        self._dummy = None
        return True

    # -- writing ---------------------------------------------------------------

    def dumps(self) -> str:
        """The file's text: entries and kept lines in order, one per line."""
        lines = [
            f"{item}:{self._entries[item].encode()}" if is_user else item
            for is_user, item in self._layout
        ]
        return "".join(f"{line}\n" for line in lines)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write atomically with mode 0600: a reader sees the old file or the new one."""
        target = Path(path)
        # The temporary file must be in the same directory for os.replace to be atomic;
        # mkstemp creates it 0600, which is the mode the password file keeps.
        fd, temp_name = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
        )
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(self.dumps())
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temp_name, _FILE_MODE)
            os.replace(temp_name, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp_name)
            raise
        _fsync_directory(target.parent)


def _check_first_mention(
    username: str, first_line: dict[str, int], source: str, number: int
) -> None:
    # Two entries for one user would leave which password counts to the reader.
    if username in first_line:
        raise PasswordFileError(
            f"user {username!r} is listed again (first on line {first_line[username]})",
            path=source,
            line=number,
        )
    first_line[username] = number


def _is_hashed(field: str) -> bool:
    try:
        PasswordHash.parse(field)
    except ValueError:
        return False
    return True


def _read_lines(source: str) -> list[tuple[int, str]]:
    try:
        raw = Path(source).read_bytes()
    except OSError as exc:
        raise PasswordFileError(
            f"cannot read the file: {exc.strerror or exc}", path=source
        ) from exc
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    result = []
    for number, raw_line in enumerate(lines, start=1):
        try:
            text = raw_line.decode("utf-8")
        except UnicodeDecodeError:
            raise PasswordFileError("not valid UTF-8", path=source, line=number) from None
        result.append((number, text.removesuffix("\r")))
    return result


def _split_entry(
    line: str, source: str, number: int, *, strip_value: bool = True
) -> tuple[str, str]:
    username, colon, value = line.partition(":")
    if not colon:
        raise PasswordFileError(
            "ill-formed entry: expected USERNAME:PASSWORD_HASH", path=source, line=number
        )
    # Mosquitto trims blanks around both fields when it reads the file.
    username = username.strip()
    if strip_value:
        value = value.strip()
    if not username:
        raise PasswordFileError("ill-formed entry: the username is empty", path=source, line=number)
    if strip_value and not value:
        raise PasswordFileError(
            "ill-formed entry: the password hash is empty", path=source, line=number
        )
    return username, value


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; not every platform lets a directory be opened.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
