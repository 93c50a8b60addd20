"""PasswordFile: Mosquitto's $7$ and $6$ formats, timing-equal verify, atomic save."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import stat
import threading
from pathlib import Path
from typing import Literal

import pytest

from roost.broker.auth import password_file
from roost.broker.auth.password_file import (
    DEFAULT_ITERATIONS,
    PasswordFile,
    PasswordFileError,
    PasswordHash,
    hash_password,
)
from tests.auth.real_mosquitto import mosquitto_passwd, needs_mosquitto_passwd

B64 = "[A-Za-z0-9+/]"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def sha512_entry(password: bytes, salt: bytes) -> str:
    """A $6$ field built from its definition: base64(SHA-512(password + salt))."""
    return f"$6${b64(salt)}${b64(hashlib.sha512(password + salt).digest())}"


def pbkdf2_entry(password: bytes, salt: bytes, iterations: int) -> str:
    digest = hashlib.pbkdf2_hmac("sha512", password, salt, iterations, 64)
    return f"$7${iterations}${b64(salt)}${b64(digest)}"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# -- the format ---------------------------------------------------------------------


def test_hash_password_writes_mosquitto_passwd_defaults() -> None:
    field = hash_password("secret")
    # 12 salt bytes are 16 base64 characters; 64 hash bytes are 86 plus "==".
    assert re.fullmatch(rf"\$7\$101\${B64}{{16}}\${B64}{{86}}==", field)
    parsed = PasswordHash.parse(field)
    assert (parsed.kind, parsed.iterations, len(parsed.salt), len(parsed.digest)) == (
        7,
        DEFAULT_ITERATIONS,
        12,
        64,
    )
    assert parsed.matches(b"secret")
    assert not parsed.matches(b"Secret")


def test_hash_password_with_given_salt_and_iterations_is_pbkdf2_sha512() -> None:
    salt = bytes(range(12))
    assert hash_password(b"pw", iterations=1000, salt=salt) == pbkdf2_entry(b"pw", salt, 1000)


def test_hash_password_uses_a_fresh_salt_each_time() -> None:
    assert hash_password("same") != hash_password("same")


def test_hash_password_rejects_zero_iterations() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        hash_password("pw", iterations=0)


def test_encode_round_trips_both_kinds() -> None:
    for field in (sha512_entry(b"a", bytes(12)), pbkdf2_entry(b"a", bytes(64), 7)):
        assert PasswordHash.parse(field).encode() == field


# -- verification -------------------------------------------------------------------


@needs_mosquitto_passwd
def test_files_written_by_mosquitto_passwd_batch_verify(tmp_path: Path) -> None:
    path = tmp_path / "passwords"
    assert mosquitto_passwd("-c", "-b", str(path), "alice", "alice-pw").returncode == 0
    assert mosquitto_passwd("-b", str(path), "bob", "b:o b").returncode == 0
    passwords = PasswordFile.load(path)
    assert passwords.usernames() == ["alice", "bob"]
    assert passwords.verify("alice", b"alice-pw")
    assert passwords.verify("bob", b"b:o b")
    assert not passwords.verify("alice", b"b:o b")
    assert not passwords.verify("bob", b"alice-pw")
    assert not passwords.verify("carol", b"alice-pw")


@needs_mosquitto_passwd
def test_files_hashed_by_mosquitto_passwd_update_verify(tmp_path: Path) -> None:
    path = write(tmp_path / "passwords", "alice:first\nbob:second\n")
    assert mosquitto_passwd("-U", str(path)).returncode == 0
    passwords = PasswordFile.load(path)
    assert passwords.verify("alice", b"first")
    assert passwords.verify("bob", b"second")
    assert not passwords.verify("alice", b"second")


def test_legacy_sha512_entries_verify(tmp_path: Path) -> None:
    salt = bytes.fromhex("00112233445566778899aabb")
    path = write(tmp_path / "passwords", f"old:{sha512_entry(b'legacy pw', salt)}\n")
    passwords = PasswordFile.load(path)
    assert passwords.verify("old", b"legacy pw")
    assert not passwords.verify("old", b"legacy")
    assert not passwords.verify("old", b"legacy pw" + salt)


@pytest.mark.parametrize(
    ("salt_length", "iterations"),
    [(12, 101), (64, 1000), (64, 210_000), (12, 1)],
    ids=["mosquitto-2.0", "later-64-byte-salt", "later-210000", "one-iteration"],
)
def test_pbkdf2_entries_with_other_parameters_verify(
    tmp_path: Path, salt_length: int, iterations: int
) -> None:
    salt = os.urandom(salt_length)
    path = write(tmp_path / "passwords", f"u:{pbkdf2_entry(b'pw', salt, iterations)}\n")
    passwords = PasswordFile.load(path)
    assert passwords.verify("u", b"pw")
    assert not passwords.verify("u", b"pW")


def test_unknown_user_is_false() -> None:
    passwords = PasswordFile()
    assert not passwords.verify("nobody", b"")
    passwords.set("alice", "pw")
    assert not passwords.verify("nobody", b"pw")
    assert not passwords.verify("Alice", b"pw")


def count_digests(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Record (kind, iterations) for each hash computed while the test runs."""
    calls: list[tuple[int, int]] = []
    real = password_file.compute_digest

    def counting(kind: Literal[6, 7], password: bytes, salt: bytes, iterations: int) -> bytes:
        calls.append((kind, iterations))
        return real(kind, password, salt, iterations)

    monkeypatch.setattr(password_file, "compute_digest", counting)
    return calls


def test_unknown_user_is_hashed_like_a_known_one(monkeypatch: pytest.MonkeyPatch) -> None:
    passwords = PasswordFile()
    passwords.set("fast", "pw", iterations=5)
    passwords.set("slow", "pw", iterations=300)
    calls = count_digests(monkeypatch)

    assert passwords.verify("slow", b"pw")
    assert not passwords.verify("nobody", b"pw")
    # The unknown user cost one PBKDF2 run at the file's highest iteration count, the
    # same work as the most expensive real user: no early return that a clock would see.
    assert calls == [(7, 300), (7, 300)]


def test_unknown_user_in_an_empty_file_uses_the_default_cost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = count_digests(monkeypatch)
    assert not PasswordFile().verify("nobody", b"pw")
    assert calls == [(7, DEFAULT_ITERATIONS)]


def test_verify_async_hashes_off_the_event_loop_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    passwords = PasswordFile()
    passwords.set("alice", "pw")
    threads: list[int] = []
    real = password_file.compute_digest

    def recording(kind: Literal[6, 7], password: bytes, salt: bytes, iterations: int) -> bytes:
        threads.append(threading.get_ident())
        return real(kind, password, salt, iterations)

    monkeypatch.setattr(password_file, "compute_digest", recording)

    async def check() -> tuple[bool, bool, bool]:
        return (
            await passwords.verify_async("alice", b"pw"),
            await passwords.verify_async("alice", b"wrong"),
            await passwords.verify_async("nobody", b"pw"),
        )

    assert asyncio.run(check()) == (True, False, False)
    assert len(threads) == 3
    assert threading.get_ident() not in threads


# -- editing and saving -------------------------------------------------------------


def test_set_replaces_in_place_and_delete_removes(tmp_path: Path) -> None:
    text = f"# users\nalice:{hash_password('a')}\n\nbob:{hash_password('b')}\n"
    path = write(tmp_path / "passwords", text)
    passwords = PasswordFile.load(path)
    passwords.set("alice", "new")
    passwords.set("carol", "c")
    assert passwords.delete("bob")
    assert not passwords.delete("bob")
    assert not passwords.delete("nobody")
    passwords.save(path)

    lines = path.read_text().splitlines()
    # Comments and blank lines stay where they were; a replaced user keeps its place.
    assert lines[0] == "# users"
    assert lines[1].startswith("alice:$7$101$")
    assert lines[2] == ""
    assert lines[3].startswith("carol:$7$101$")
    assert len(lines) == 4
    reloaded = PasswordFile.load(path)
    assert reloaded.verify("alice", b"new")
    assert not reloaded.verify("alice", b"a")
    assert reloaded.verify("carol", b"c")
    assert "bob" not in reloaded


def test_unchanged_file_saves_byte_for_byte(tmp_path: Path) -> None:
    text = f"#c\nu:{sha512_entry(b'x', bytes(12))}\nv:{pbkdf2_entry(b'y', bytes(64), 9)}\n"
    path = write(tmp_path / "passwords", text)
    PasswordFile.load(path).save(path)
    assert path.read_text() == text


@pytest.mark.parametrize("username", ["a:b", "", "tab\there", " padded", "nl\n"])
def test_set_refuses_usernames_a_file_cannot_hold(username: str) -> None:
    with pytest.raises(ValueError, match="username"):
        PasswordFile().set(username, "pw")


def test_save_is_mode_0600_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "passwords"
    path.write_text("")
    path.chmod(0o644)
    passwords = PasswordFile()
    passwords.set("alice", "pw")
    passwords.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["passwords"]


def test_failed_save_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = f"alice:{hash_password('pw')}\n"
    path = write(tmp_path / "passwords", original)
    passwords = PasswordFile.load(path)
    passwords.set("bob", "pw")

    def failing_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space"):
        passwords.save(path)
    assert path.read_text() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["passwords"]


# -- malformed files ----------------------------------------------------------------

GOOD = pbkdf2_entry(b"pw", bytes(12), 101)
GOOD_SALT = b64(bytes(12))
GOOD_HASH = b64(bytes(64))


@pytest.mark.parametrize(
    ("bad_line", "problem"),
    [
        ("alice", "ill-formed entry: expected USERNAME:PASSWORD_HASH"),
        ("alice:", "the password hash is empty"),
        (f":{GOOD}", "the username is empty"),
        ("alice:plain-text", "not hashed"),
        (f"alice:$7$lots${GOOD_SALT}${GOOD_HASH}", "iteration count 'lots'"),
        (f"alice:$7$0${GOOD_SALT}${GOOD_HASH}", "at least 1"),
        (f"alice:$7$101${GOOD_SALT}", "ill-formed $7$ hash"),
        (f"alice:$6${GOOD_SALT}", "ill-formed $6$ hash"),
        (f"alice:$7$101$!!!!${GOOD_HASH}", "salt is not valid base64"),
        (f"alice:$7$101${b64(bytes(10))}${GOOD_HASH}", "salt is 10 bytes"),
        (f"alice:$7$101${GOOD_SALT}${b64(bytes(32))}", "hash is 32 bytes"),
        (f"alice:$7$101${GOOD_SALT}$not base64", "hash is not valid base64"),
        ("alice:$argon2id$v=19$m=47104,t=1,p=1$c2FsdA$aGFzaA", "unsupported hash type"),
        (f"ali\x01ce:{GOOD}", "control characters"),
        (f"first:{GOOD}", "user 'first' is listed again (first on line 1)"),
    ],
)
def test_malformed_lines_are_reported_with_file_and_line(
    tmp_path: Path, bad_line: str, problem: str
) -> None:
    path = write(tmp_path / "passwords", f"first:{GOOD}\n# note\n{bad_line}\nlast:{GOOD}\n")
    with pytest.raises(PasswordFileError) as caught:
        PasswordFile.load(path)
    error = caught.value
    assert error.path == str(path)
    assert error.line == 3
    assert problem in error.problem
    assert str(error) == f"{path}:3: {error.problem}"


def test_invalid_utf8_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "passwords"
    path.write_bytes(f"first:{GOOD}\n".encode() + b"\xff:x\n")
    with pytest.raises(PasswordFileError, match=r":2: not valid UTF-8"):
        PasswordFile.load(path)


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "absent"
    with pytest.raises(PasswordFileError) as caught:
        PasswordFile.load(path)
    assert caught.value.line is None
    assert str(caught.value).startswith(f"{path}: cannot read the file")


def test_crlf_line_endings_and_blank_lines_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "passwords"
    path.write_bytes(f"\r\n  # indented comment\r\nalice:{GOOD}\r\n".encode())
    assert PasswordFile.load(path).verify("alice", b"pw")


# -- plain-text files (-U) ----------------------------------------------------------


def test_hash_plaintext_hashes_every_line(tmp_path: Path) -> None:
    path = write(tmp_path / "plain", "# staff\nalice:a pw:with colon\nbob:b\n")
    passwords = PasswordFile.hash_plaintext(path)
    assert passwords.verify("alice", b"a pw:with colon")
    assert passwords.verify("bob", b"b")
    assert passwords.dumps().startswith("# staff\nalice:$7$101$")


def test_hash_plaintext_refuses_a_file_that_is_already_hashed(tmp_path: Path) -> None:
    path = write(tmp_path / "plain", f"alice:pw\nbob:{GOOD}\n")
    with pytest.raises(PasswordFileError, match=r":2: the password is already hashed"):
        PasswordFile.hash_plaintext(path)


def test_hash_plaintext_refuses_an_empty_password(tmp_path: Path) -> None:
    path = write(tmp_path / "plain", "alice:\n")
    with pytest.raises(PasswordFileError, match=r":1: the password is empty"):
        PasswordFile.hash_plaintext(path)


def test_hash_plaintext_refuses_a_user_listed_twice(tmp_path: Path) -> None:
    path = write(tmp_path / "plain", "alice:a\nbob:b\nalice:c\n")
    with pytest.raises(
        PasswordFileError, match=r":3: user 'alice' is listed again \(first on line 1\)"
    ):
        PasswordFile.hash_plaintext(path)
