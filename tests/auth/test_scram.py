"""SCRAM: the RFC test vectors, both sides against each other, the credentials file, the CLI."""

from __future__ import annotations

import asyncio
import base64
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from roost.broker.auth.base import AuthResult, Challenge
from roost.broker.auth.scram_file import (
    ScramAuthentication,
    ScramFile,
    ScramFileError,
    format_verifier,
    parse_verifier,
)
from roost.protocol.scram import (
    ScramClient,
    ScramError,
    ScramServer,
    derive_credentials,
    parse_client_first,
    saslprep,
)


# RFC 7677 section 3: SCRAM-SHA-256, user "user", password "pencil".
class RFC7677:
    client_nonce = "rOprNGfwEbeRWgbNEkqO"
    server_nonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    client_first = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    server_first = (
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    )
    client_final = (
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    )
    server_final = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


MECHANISMS = ["SCRAM-SHA-256", "SCRAM-SHA-512"]


def test_the_client_side_reproduces_rfc_7677() -> None:
    client = ScramClient("SCRAM-SHA-256", "user", "pencil", nonce=RFC7677.client_nonce)
    assert client.first() == RFC7677.client_first
    assert client.final(RFC7677.server_first) == RFC7677.client_final
    client.verify(RFC7677.server_final)


def test_the_server_side_reproduces_rfc_7677_from_stored_keys_only() -> None:
    credentials = derive_credentials("SCRAM-SHA-256", "pencil", salt=RFC7677.salt)
    first = parse_client_first(RFC7677.client_first)
    assert (first.username, first.nonce, first.bare) == (
        "user",
        RFC7677.client_nonce,
        "n=user,r=rOprNGfwEbeRWgbNEkqO",
    )
    server = ScramServer(first, credentials, server_nonce=RFC7677.server_nonce)
    assert server.server_first() == RFC7677.server_first
    assert server.finish(RFC7677.client_final) == RFC7677.server_final


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_client_and_server_agree(mechanism: str) -> None:
    credentials = derive_credentials(mechanism, "correct horse", iterations=64)
    client = ScramClient(mechanism, "alice", "correct horse")
    server = ScramServer(parse_client_first(client.first()), credentials)
    client.verify(server.finish(client.final(server.server_first())))


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_a_wrong_password_fails_the_proof(mechanism: str) -> None:
    credentials = derive_credentials(mechanism, "right", iterations=64)
    client = ScramClient(mechanism, "alice", "wrong")
    server = ScramServer(parse_client_first(client.first()), credentials)
    with pytest.raises(ScramError) as caught:
        server.finish(client.final(server.server_first()))
    assert caught.value.error == "invalid-proof"


def test_the_client_rejects_a_server_that_does_not_know_the_password() -> None:
    client = ScramClient("SCRAM-SHA-256", "user", "pencil", nonce=RFC7677.client_nonce)
    client.final(RFC7677.server_first)
    with pytest.raises(ScramError, match="signature"):
        client.verify(b"v=" + base64.b64encode(bytes(32)))


def test_usernames_with_comma_and_equals_are_escaped() -> None:
    client = ScramClient("SCRAM-SHA-256", "a,b=c", "pw")
    assert b"n=a=2Cb=3Dc," in client.first()
    assert parse_client_first(client.first()).username == "a,b=c"


def test_a_decoy_for_an_unknown_user_is_stable_per_user_and_never_matches() -> None:
    secret = b"k" * 32
    one = ScramServer.decoy("SCRAM-SHA-256", "nobody", secret)
    again = ScramServer.decoy("SCRAM-SHA-256", "nobody", secret)
    other = ScramServer.decoy("SCRAM-SHA-256", "somebody", secret)
    # The salt (all an attacker sees before the proof) does not change between attempts.
    assert one.salt == again.salt != other.salt
    assert one.iterations == 4096
    client = ScramClient("SCRAM-SHA-256", "nobody", "")
    server = ScramServer(parse_client_first(client.first()), one)
    with pytest.raises(ScramError):
        server.finish(client.final(server.server_first()))


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (b"", "invalid-encoding"),
        (b"\xff", "invalid-encoding"),
        (b"p=tls-unique,,n=user,r=abc", "server-does-support-channel-binding"),
        (b"x,,n=user,r=abc", "invalid-encoding"),
        (b"n,,r=abc,n=user", "invalid-encoding"),
        (b"n,,n=user", "invalid-encoding"),
        (b"n,,n=,r=abc", "invalid-username-encoding"),
        (b"n,,n=a=2Xb,r=abc", "invalid-username-encoding"),
        (b"n,,m=ext,n=user,r=abc", "extensions-not-supported"),
        (b"n,,n=user,r=a\x01b", "other-error"),
    ],
)
def test_malformed_client_first_messages(message: bytes, error: str) -> None:
    with pytest.raises(ScramError) as caught:
        parse_client_first(message)
    assert caught.value.error == error


def test_the_client_final_must_carry_this_exchanges_nonce_and_binding() -> None:
    credentials = derive_credentials("SCRAM-SHA-256", "pencil", salt=RFC7677.salt)
    first = parse_client_first(RFC7677.client_first)
    server = ScramServer(first, credentials, server_nonce="other")
    with pytest.raises(ScramError, match="nonce"):
        server.finish(RFC7677.client_final)
    server = ScramServer(first, credentials, server_nonce=RFC7677.server_nonce)
    tampered = RFC7677.client_final.replace(b"c=biws", b"c=eSws")  # "y,,"
    with pytest.raises(ScramError) as caught:
        server.finish(tampered)
    assert caught.value.error == "channel-bindings-dont-match"


def test_saslprep() -> None:
    assert saslprep("I\u00adX") == "IX"  # soft hyphen is mapped to nothing
    assert saslprep("user") == "user"
    assert saslprep("USER") == "USER"
    assert saslprep("\u00aa") == "a"  # NFKC
    assert saslprep("\u2168") == "IX"
    assert saslprep("a\u2000b") == "a b"  # non-ASCII space becomes SPACE
    with pytest.raises(ValueError, match="prohibited"):
        saslprep("\u0007")
    with pytest.raises(ValueError, match="right-to-left"):
        saslprep("\u0627\u0031")
    with pytest.raises(ValueError, match="unassigned"):
        saslprep("\U000e0fff\u0378")


# -- the credentials file -------------------------------------------------------------


def test_a_verifier_round_trips_in_postgresql_format() -> None:
    credentials = derive_credentials("SCRAM-SHA-256", "pencil", salt=RFC7677.salt)
    text = format_verifier(credentials)
    assert text.startswith("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$")
    assert parse_verifier(text) == credentials


def test_the_file_keeps_comments_and_both_mechanisms(tmp_path: Path) -> None:
    path = tmp_path / "scram"
    path.write_text("# the team\n\n")
    credentials = ScramFile.load(path)
    credentials.set("alice", "pencil", iterations=64)
    credentials.set("bob", "pw", ("SCRAM-SHA-512",), iterations=64)
    credentials.save(path)
    lines = path.read_text().splitlines()
    assert lines[:2] == ["# the team", ""]
    assert [line.split("$")[0] for line in lines[2:]] == [
        "alice:SCRAM-SHA-256",
        "alice:SCRAM-SHA-512",
        "bob:SCRAM-SHA-512",
    ]
    assert "pencil" not in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = ScramFile.load(path)
    assert again.usernames() == ["alice", "bob"]
    assert again.get("bob", "SCRAM-SHA-256") is None
    assert again.delete("alice")
    assert again.usernames() == ["bob"]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("alice", "expected USERNAME:"),
        ("alice:SCRAM-SHA-1$4096:c2FsdA==$a:b", "unknown mechanism"),
        ("alice:SCRAM-SHA-256$0:c2FsdA==$a:b", "iteration count"),
        ("alice:SCRAM-SHA-256$4096:c2FsdA==$!!:b", "base64"),
        ("alice:SCRAM-SHA-256$4096:c2FsdA==$YQ==:YQ==", "32 bytes"),
        (":SCRAM-SHA-256$4096:c2FsdA==$YQ==:YQ==", "username is empty"),
    ],
)
def test_broken_lines_are_named(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "scram"
    path.write_text(f"# ok\n{line}\n")
    with pytest.raises(ScramFileError, match=problem) as caught:
        ScramFile.load(path)
    assert caught.value.line == 2


def test_a_second_entry_for_a_user_and_mechanism_is_refused(tmp_path: Path) -> None:
    credentials = ScramFile()
    credentials.set("alice", "pencil", ("SCRAM-SHA-256",), iterations=64)
    line = credentials.dumps()
    path = tmp_path / "scram"
    path.write_text(line + line)
    with pytest.raises(ScramFileError, match="second SCRAM-SHA-256 entry"):
        ScramFile.load(path)


def test_the_backend_exchange_ends_with_the_identity_and_server_final() -> None:
    credentials = ScramFile()
    credentials.set("alice", "pencil", iterations=64)
    exchange = ScramAuthentication("SCRAM-SHA-512", credentials, b"s" * 32)
    client = ScramClient("SCRAM-SHA-512", "alice", "pencil")
    challenge = asyncio.run(exchange.step(client.first()))
    assert isinstance(challenge, Challenge)
    result = asyncio.run(exchange.step(client.final(challenge.data)))
    assert isinstance(result, AuthResult)
    assert result.allowed
    assert result.username == "alice"
    client.verify(result.data)


# -- roost scram ----------------------------------------------------------------------


def roost(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "roost", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_roost_scram_creates_updates_and_deletes(tmp_path: Path) -> None:
    path = tmp_path / "scram"
    assert roost("scram", "-c", "-b", "-I", "64", str(path), "alice", "pencil").returncode == 0
    assert roost("scram", "-b", "-m", "SCRAM-SHA-256", str(path), "bob", "pw").returncode == 0
    credentials = ScramFile.load(path)
    assert credentials.usernames() == ["alice", "bob"]
    alice = credentials.get("alice", "SCRAM-SHA-256")
    assert alice is not None
    assert alice.iterations == 64
    assert credentials.get("bob", "SCRAM-SHA-512") is None
    # The stored keys are the ones the password derives.
    assert derive_credentials("SCRAM-SHA-256", "pencil", salt=alice.salt, iterations=64) == alice
    assert roost("scram", "-D", str(path), "alice").returncode == 0
    assert ScramFile.load(path).usernames() == ["bob"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-D", "{path}", "nobody"), "not in"),
        (("-b", "{missing}", "alice", "pw"), "does not exist"),
        (("-b", "{path}", "a:b", "pw"), "':'"),
        (("-c", "-D", "{path}", "alice"), "cannot be used together"),
        (("{path}", "alice", "pw"), "-b"),
    ],
)
def test_roost_scram_errors(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    path = tmp_path / "scram"
    path.write_text("")
    argv = [a.format(path=path, missing=tmp_path / "missing") for a in args]
    result = roost("scram", *argv)
    assert result.returncode == 1
    assert message in result.stderr
