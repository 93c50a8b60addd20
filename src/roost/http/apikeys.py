"""API keys for the HTTP API: made by ``roost apikey``, kept hashed, checked per request.

A key is 32 random bytes (``secrets``), shown once when made. The file keeps, per line,
``name:sha256:<hex digest of the key>:<created, RFC 3339>``. A fast hash is enough here
(and a slow one would cost every request, every /metrics scrape): the key is random, not
chosen by a person, so there is nothing to guess from its hash. Checking a key hashes what
was sent and compares it with every stored digest with ``hmac.compare_digest``, never
stopping early, so that the time taken says nothing about which bytes matched.

The file is read again when it changes (its modification time or size), so keys made or
deleted take effect without a restart. Standard library only: ``roost apikey`` works
without the ``roost[http]`` extra.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger("roost.http")

KEY_PREFIX = "roost_"  # marks a Roost API key in a config or a leak scanner
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_SCHEME = "sha256"


class ApiKeyError(Exception):
    """A keys file that cannot be read or written, or a bad key name."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One stored key: its name, digest and when it was made."""

    name: str
    digest: bytes
    created: str


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def read_keys(path: str | os.PathLike[str]) -> list[ApiKey]:
    """The keys in ``path``; a missing file has none. ApiKeyError names a bad line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ApiKeyError(f"{path}: {exc.strerror or exc}") from exc
    keys = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()  # noqa: PLW2901
        if not line or line.startswith("#"):
            continue
        parts = line.split(":", 3)
        if len(parts) < 3 or parts[1] != _SCHEME or not _NAME.fullmatch(parts[0]):
            raise ApiKeyError(f"{path}, line {number}: expected name:sha256:<hex digest>")
        try:
            value = bytes.fromhex(parts[2])
        except ValueError as exc:
            raise ApiKeyError(f"{path}, line {number}: the digest is not hexadecimal") from exc
        keys.append(ApiKey(parts[0], value, parts[3] if len(parts) > 3 else ""))
    return keys


def _write(path: str | os.PathLike[str], keys: list[ApiKey]) -> None:
    lines = ["# Roost API keys (roost apikey): name:sha256:<hex digest of the key>:<created>"]
    lines += [f"{key.name}:{_SCHEME}:{key.digest.hex()}:{key.created}" for key in keys]
    target = Path(path)
    temporary = target.with_name(target.name + ".tmp")
    try:
        # Owner-only from the start: the digests are not secrets, but which names exist is.
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n")
        temporary.replace(target)
    except OSError as exc:
        raise ApiKeyError(f"{path}: {exc.strerror or exc}") from exc


def create_key(path: str | os.PathLike[str], name: str) -> str:
    """Add a key called ``name`` to the file and return the key (it is not kept)."""
    if not _NAME.fullmatch(name):
        raise ApiKeyError(f"key names are 1 to 64 of A-Z a-z 0-9 _ . -, got {name!r}")
    keys = read_keys(path)
    if any(key.name == name for key in keys):
        raise ApiKeyError(f"{path} already has a key named {name!r}")
    key = new_key()
    created = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    _write(path, [*keys, ApiKey(name, digest(key), created)])
    return key


def delete_key(path: str | os.PathLike[str], name: str) -> bool:
    """Remove the key called ``name``; False if there is none."""
    keys = read_keys(path)
    kept = [key for key in keys if key.name != name]
    if len(kept) == len(keys):
        return False
    _write(path, kept)
    return True


class KeyChecker:
    """Checks a presented key against the file, re-reading it when it changes."""

    __slots__ = ("_keys", "_path", "_seen")

    def __init__(self, path: str) -> None:
        self._path = path
        self._seen: tuple[int, int] | None = None
        self._keys: list[ApiKey] = []
        self._reload()  # a broken file stops the start

    def _reload(self) -> None:
        try:
            status = os.stat(self._path)
        except FileNotFoundError:
            seen = (0, -1)
        except OSError as exc:
            raise ApiKeyError(f"{self._path}: {exc.strerror or exc}") from exc
        else:
            seen = (status.st_mtime_ns, status.st_size)
        if seen != self._seen:
            self._keys = read_keys(self._path)
            self._seen = seen

    def check(self, presented: str) -> str | None:
        """The name of the key ``presented`` is, or None. On a broken file (while the
        broker runs) the keys read before are kept."""
        try:
            self._reload()
        except ApiKeyError as exc:
            log.warning("API keys file unreadable, keeping the keys read before: %s", exc)
        wanted = digest(presented)
        found = None
        for key in self._keys:
            if hmac.compare_digest(wanted, key.digest) and found is None:
                found = key.name
        return found
