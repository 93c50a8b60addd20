"""SCRAM (RFC 5802) with SHA-256 (RFC 7677) and SHA-512: the math and the messages, pure.

No I/O, no clock, no asyncio: both the broker (``ScramServer``) and clients
(``ScramClient``) use this module, and tests drive it with the RFC's test vectors.

The exchange, as MQTT 5 enhanced authentication carries it (Authentication Data)::

    client-first   n,,n=user,r=CLIENTNONCE                  CONNECT (or AUTH 0x19)
    server-first   r=CLIENTNONCE+SERVERNONCE,s=SALT,i=4096  AUTH 0x18
    client-final   c=biws,r=FULLNONCE,p=PROOF               AUTH 0x18
    server-final   v=SERVERSIGNATURE                        CONNACK 0x00 (or AUTH 0x00)

The server stores only ``StoredKey`` and ``ServerKey`` (``ScramCredentials``): enough to
check a proof and to prove itself, never enough to log in as the user. Channel binding
(the -PLUS variants) is not offered; a client that asks for it ("p=") is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import stringprep
import unicodedata
from dataclasses import dataclass

__all__ = [
    "DEFAULT_ITERATIONS",
    "MECHANISMS",
    "ClientFirst",
    "ScramClient",
    "ScramCredentials",
    "ScramError",
    "ScramServer",
    "derive_credentials",
    "parse_client_first",
    "saslprep",
]

# Mechanism name -> hashlib name. SCRAM-SHA-512 is not in an RFC yet (there is a draft),
# but it is SCRAM with SHA-512 plugged in, which Kafka and others already use.
MECHANISMS = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
# RFC 7677 section 4: at least 4096 iterations.
DEFAULT_ITERATIONS = 4096
SALT_LENGTH = 16
_NONCE_BYTES = 18  # 24 base64 characters, as much entropy as RFC 5802's examples


class ScramError(ValueError):
    """A malformed SCRAM message, or one that fails verification.

    ``error`` is the RFC 5802 ``server-error-value`` naming the problem (for ``e=``).
    """

    def __init__(self, message: str, error: str = "other-error") -> None:
        super().__init__(message)
        self.error = error


@dataclass(frozen=True, slots=True)
class ScramCredentials:
    """What the server keeps for one user and one mechanism."""

    mechanism: str
    iterations: int
    salt: bytes
    stored_key: bytes
    server_key: bytes


def _digest(mechanism: str) -> str:
    try:
        return MECHANISMS[mechanism]
    except KeyError:
        raise ValueError(f"unknown SCRAM mechanism {mechanism!r}") from None


def _hmac(name: str, key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, name).digest()


def salted_password(mechanism: str, password: str, salt: bytes, iterations: int) -> bytes:
    """SaltedPassword := Hi(Normalize(password), salt, i); Hi is PBKDF2 (RFC 5802 2.2)."""
    name = _digest(mechanism)
    normalized = saslprep(password, allow_unassigned=True).encode("utf-8")
    return hashlib.pbkdf2_hmac(name, normalized, salt, iterations)


def _keys(mechanism: str, salted: bytes) -> tuple[bytes, bytes, bytes]:
    """(ClientKey, StoredKey, ServerKey) from a SaltedPassword."""
    name = _digest(mechanism)
    client_key = _hmac(name, salted, b"Client Key")
    return client_key, hashlib.new(name, client_key).digest(), _hmac(name, salted, b"Server Key")


def derive_credentials(
    mechanism: str,
    password: str,
    *,
    salt: bytes | None = None,
    iterations: int = DEFAULT_ITERATIONS,
) -> ScramCredentials:
    """The stored form of ``password``; a fresh random salt unless one is given."""
    if iterations < 1:
        raise ValueError("iteration count must be at least 1")
    if salt is None:
        salt = secrets.token_bytes(SALT_LENGTH)
    # Stored strings must not contain unassigned code points (RFC 4013 section 2.5).
    saslprep(password, allow_unassigned=False)
    _client, stored, server = _keys(
        mechanism, salted_password(mechanism, password, salt, iterations)
    )
    return ScramCredentials(mechanism, iterations, salt, stored, server)


# -- SASLprep (RFC 4013, a profile of stringprep, RFC 3454) ---------------------------

_PROHIBITED = (
    stringprep.in_table_c12,  # non-ASCII space
    stringprep.in_table_c21_c22,  # control characters
    stringprep.in_table_c3,  # private use
    stringprep.in_table_c4,  # non-character code points
    stringprep.in_table_c5,  # surrogates
    stringprep.in_table_c6,  # inappropriate for plain text
    stringprep.in_table_c7,  # inappropriate for canonical representation
    stringprep.in_table_c8,  # change display properties / deprecated
    stringprep.in_table_c9,  # tagging characters
)


def saslprep(text: str, *, allow_unassigned: bool = False) -> str:
    """Normalize a username or password as RFC 4013 says; ValueError if it cannot be.

    ``allow_unassigned``: True for "queries" (what a client sends), False for "stored
    strings" (what goes into a credentials file).
    """
    # 2.1 Mapping: non-ASCII spaces to SPACE, "commonly mapped to nothing" removed.
    mapped = "".join(
        " " if stringprep.in_table_c12(ch) else ch for ch in text if not stringprep.in_table_b1(ch)
    )
    # 2.2 Normalization: form KC.
    normalized = unicodedata.normalize("NFKC", mapped)
    if not normalized:
        return normalized
    for ch in normalized:
        if any(table(ch) for table in _PROHIBITED):
            raise ValueError(f"prohibited character U+{ord(ch):04X}")
        if not allow_unassigned and stringprep.in_table_a1(ch):
            raise ValueError(f"unassigned code point U+{ord(ch):04X}")
    # 2.4 Bidirectional characters (RFC 3454 section 6).
    if any(stringprep.in_table_d1(ch) for ch in normalized):
        if any(stringprep.in_table_d2(ch) for ch in normalized):
            raise ValueError("mixes right-to-left and left-to-right characters")
        if not (stringprep.in_table_d1(normalized[0]) and stringprep.in_table_d1(normalized[-1])):
            raise ValueError("right-to-left text must start and end with a right-to-left character")
    return normalized


# -- message syntax ---------------------------------------------------------------------


def _escape_name(name: str) -> str:
    # saslname: "=" and "," are written =3D and =2C (RFC 5802 section 5.1).
    return name.replace("=", "=3D").replace(",", "=2C")


def _unescape_name(text: str) -> str:
    out = []
    pos = 0
    while pos < len(text):
        ch = text[pos]
        if ch == "=":
            code = text[pos + 1 : pos + 3]
            if code == "3D":
                out.append("=")
            elif code == "2C":
                out.append(",")
            else:
                raise ScramError("badly escaped username", "invalid-username-encoding")
            pos += 3
            continue
        out.append(ch)
        pos += 1
    return "".join(out)


def _decode(data: bytes | None, what: str) -> str:
    if not data:
        raise ScramError(f"no {what}", "invalid-encoding")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ScramError(f"{what} is not UTF-8", "invalid-encoding") from None


def _attributes(message: str, what: str) -> list[tuple[str, str]]:
    """``a=1,b=2`` as [(a, 1), (b, 2)]; each attribute is one letter, "=" and a value."""
    result = []
    for part in message.split(","):
        if len(part) < 2 or part[1] != "=" or not part[0].isascii() or not part[0].isalpha():
            raise ScramError(f"malformed attribute {part!r} in the {what}", "invalid-encoding")
        result.append((part[0], part[2:]))
    return result


def _check_nonce(nonce: str) -> None:
    # printable = %x21-2B / %x2D-7E (any printable ASCII but ",")
    if not nonce or any(not 0x21 <= ord(ch) <= 0x7E or ch == "," for ch in nonce):
        raise ScramError("the nonce is empty or has characters a nonce may not have")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise ScramError(f"{what} is not valid base64", "invalid-encoding") from None


def _new_nonce() -> str:
    return _b64(secrets.token_bytes(_NONCE_BYTES))


@dataclass(frozen=True, slots=True)
class ClientFirst:
    """A parsed client-first-message."""

    gs2_header: str  # "n,," or "y,," (with ",a=AUTHZID" inside if one was given)
    username: str  # unescaped
    nonce: str
    bare: str  # client-first-message-bare, part of the AuthMessage


def parse_client_first(data: bytes | None) -> ClientFirst:
    message = _decode(data, "client-first message")
    flag, sep1, rest = message.partition(",")
    authzid, sep2, bare = rest.partition(",")
    if not sep1 or not sep2:
        raise ScramError("the client-first message has no GS2 header", "invalid-encoding")
    if flag.startswith("p="):
        raise ScramError("channel binding is not supported", "server-does-support-channel-binding")
    if flag not in ("n", "y"):
        raise ScramError(f"unknown channel binding flag {flag!r}", "invalid-encoding")
    if authzid and not authzid.startswith("a="):
        raise ScramError("malformed authorization identity", "invalid-encoding")
    attributes = _attributes(bare, "client-first message")
    if attributes[0][0] == "m":
        raise ScramError("mandatory extensions are not supported", "extensions-not-supported")
    if len(attributes) < 2 or attributes[0][0] != "n" or attributes[1][0] != "r":
        raise ScramError("the client-first message needs n= then r=", "invalid-encoding")
    username = _unescape_name(attributes[0][1])
    if not username:
        raise ScramError("the username is empty", "invalid-username-encoding")
    nonce = attributes[1][1]
    _check_nonce(nonce)
    return ClientFirst(f"{flag},{authzid},", username, nonce, bare)


class ScramServer:
    """The server's side of one exchange, once the client-first message is read.

    Give it the user's credentials; for a user that does not exist give it
    ``ScramServer.decoy(...)``, so the exchange looks the same and fails only at the
    proof (RFC 5802 section 9: do not tell attackers which usernames exist).
    """

    __slots__ = ("_credentials", "_first", "_nonce", "_server_first")

    def __init__(
        self, first: ClientFirst, credentials: ScramCredentials, server_nonce: str | None = None
    ) -> None:
        self._first = first
        self._credentials = credentials
        self._nonce = first.nonce + (server_nonce or _new_nonce())
        self._server_first = (
            f"r={self._nonce},s={_b64(credentials.salt)},i={credentials.iterations}"
        )

    @staticmethod
    def decoy(mechanism: str, username: str, secret: bytes) -> ScramCredentials:
        """Credentials no password matches, with a salt that is stable per username."""
        name = _digest(mechanism)
        salt = _hmac(name, secret, f"{mechanism}\0{username}".encode())[:SALT_LENGTH]
        size = hashlib.new(name).digest_size
        return ScramCredentials(
            mechanism,
            DEFAULT_ITERATIONS,
            salt,
            secrets.token_bytes(size),
            secrets.token_bytes(size),
        )

    def server_first(self) -> bytes:
        return self._server_first.encode("ascii")

    def finish(self, data: bytes | None) -> bytes:
        """Check the client-final message; the server-final message if the proof is right.

        Raises ScramError (``error == "invalid-proof"`` for a wrong password).
        """
        message = _decode(data, "client-final message")
        without_proof, sep, proof_text = message.rpartition(",p=")
        if not sep:
            raise ScramError("the client-final message has no proof", "invalid-encoding")
        attributes = _attributes(without_proof, "client-final message")
        if len(attributes) < 2 or attributes[0][0] != "c" or attributes[1][0] != "r":
            raise ScramError("the client-final message needs c= then r=", "invalid-encoding")
        expected_binding = _b64(self._first.gs2_header.encode("utf-8"))
        if attributes[0][1] != expected_binding:
            raise ScramError("channel binding data do not match", "channel-bindings-dont-match")
        if attributes[1][1] != self._nonce:
            raise ScramError("the nonce is not this exchange's", "other-error")
        credentials = self._credentials
        name = _digest(credentials.mechanism)
        proof = _unb64(proof_text, "the proof")
        auth_message = ",".join((self._first.bare, self._server_first, without_proof)).encode()
        signature = _hmac(name, credentials.stored_key, auth_message)
        if len(proof) != len(signature):
            raise ScramError("the proof has the wrong length", "invalid-proof")
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not hmac.compare_digest(hashlib.new(name, client_key).digest(), credentials.stored_key):
            raise ScramError("the proof is wrong", "invalid-proof")
        server_signature = _hmac(name, credentials.server_key, auth_message)
        return f"v={_b64(server_signature)}".encode("ascii")


class ScramClient:
    """The client's side of one exchange: ``first()``, ``final(server_first)``,
    ``verify(server_final)``."""

    __slots__ = ("_auth_message", "_bare", "_mechanism", "_nonce", "_password", "_salted")

    def __init__(
        self, mechanism: str, username: str, password: str, nonce: str | None = None
    ) -> None:
        _digest(mechanism)
        self._mechanism = mechanism
        self._password = password
        self._nonce = nonce or _new_nonce()
        _check_nonce(self._nonce)
        name = saslprep(username, allow_unassigned=True)
        self._bare = f"n={_escape_name(name)},r={self._nonce}"
        self._salted = b""
        self._auth_message = b""

    def first(self) -> bytes:
        return f"n,,{self._bare}".encode()

    def final(self, data: bytes | None) -> bytes:
        server_first = _decode(data, "server-first message")
        attributes = dict(_attributes(server_first, "server-first message"))
        if "e" in attributes:
            raise ScramError(f"the server refused: {attributes['e']}", attributes["e"])
        nonce, salt_text, iterations_text = (attributes.get(k) for k in "rsi")
        if nonce is None or salt_text is None or iterations_text is None:
            raise ScramError("the server-first message needs r=, s= and i=", "invalid-encoding")
        if not nonce.startswith(self._nonce) or len(nonce) == len(self._nonce):
            raise ScramError("the server's nonce does not extend ours")
        if not iterations_text.isdigit() or int(iterations_text) < 1:
            raise ScramError("the iteration count is not a positive integer", "invalid-encoding")
        salt = _unb64(salt_text, "the salt")
        self._salted = salted_password(self._mechanism, self._password, salt, int(iterations_text))
        without_proof = f"c={_b64(b'n,,')},r={nonce}"
        self._auth_message = ",".join((self._bare, server_first, without_proof)).encode()
        name = _digest(self._mechanism)
        client_key, stored_key, _server_key = _keys(self._mechanism, self._salted)
        signature = _hmac(name, stored_key, self._auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        return f"{without_proof},p={_b64(proof)}".encode("ascii")

    def verify(self, data: bytes | None) -> None:
        """Check the server-final message: it proves the server knows our credentials."""
        server_final = _decode(data, "server-final message")
        attributes = dict(_attributes(server_final, "server-final message"))
        if "e" in attributes:
            raise ScramError(f"the server refused: {attributes['e']}", attributes["e"])
        if "v" not in attributes or not self._salted:
            raise ScramError("the server-final message has no verifier", "invalid-encoding")
        _client, _stored, server_key = _keys(self._mechanism, self._salted)
        expected = _hmac(_digest(self._mechanism), server_key, self._auth_message)
        if not hmac.compare_digest(_unb64(attributes["v"], "the verifier"), expected):
            raise ScramError("the server's signature is wrong: it does not know our password")
