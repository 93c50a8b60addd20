"""What the client raises. Every refusal by the server carries its reason code and string.

::

    MQTTError
    ├── ConnectError            could not open a network connection (refused, unreachable, DNS)
    │   ├── TLSError            the TLS handshake failed (certificate, hostname, protocol)
    │   └── WebSocketError      the WebSocket upgrade failed (HTTP status, bad answer)
    ├── AuthenticationError     enhanced authentication failed on our side (the server's
    │                           proof was wrong or missing, or its data malformed)
    ├── ConnectTimeout          no CONNACK (or no TCP/TLS connection) in time; also a TimeoutError
    ├── ConnectionLost          an established connection ended (keep-alive, reset, protocol error)
    │   └── ServerDisconnected  the server sent DISCONNECT (MQTT 5) with a reason code
    ├── ClientClosed            the operation cannot finish: the client was closed
    └── ReasonCodeError         the server answered a request with a failure reason code
        ├── ConnectRefused      CONNACK refused the connection (bad credentials, ...)
        ├── PublishError        PUBACK / PUBREC with a reason code >= 0x80
        ├── SubscribeError      SUBACK with a failure for at least one filter
        └── UnsubscribeError    UNSUBACK with a failure for at least one filter
"""

from __future__ import annotations

from roost.codec import (
    ConnackReturnCode,
    ConnectReasonCode,
    DisconnectReasonCode,
    PubackReasonCode,
    SubackReasonCode,
    UnsubackReasonCode,
)

# MQTT 5.0 section 2.4: reason codes from 0x80 up report a failure. MQTT 3.1.1's one
# SUBACK failure code is 0x80 too, so the same test serves every version.
_FIRST_FAILURE = 0x80

_BAD_CREDENTIALS = frozenset(
    (
        ConnackReturnCode.BAD_USERNAME_OR_PASSWORD,
        ConnackReturnCode.NOT_AUTHORIZED,
        ConnectReasonCode.BAD_USERNAME_OR_PASSWORD,
        ConnectReasonCode.NOT_AUTHORIZED,
        ConnectReasonCode.BAD_AUTHENTICATION_METHOD,
    )
)

_ENUMS = (
    ConnectReasonCode,
    PubackReasonCode,
    SubackReasonCode,
    UnsubackReasonCode,
    DisconnectReasonCode,
)


def is_failure(reason_code: int) -> bool:
    """True for a reason code that reports a failure (0x80 and above)."""
    return reason_code >= _FIRST_FAILURE


def reason_name(code: int, version: int = 5) -> str:
    """A reason code's name in words: ``reason_name(0x86)`` is "bad username or password"."""
    if version < 5:
        try:
            return ConnackReturnCode(code).name.replace("_", " ").lower()
        except ValueError:
            return f"return code {code}"
    for enum in _ENUMS:
        try:
            return enum(code).name.replace("_", " ").lower()
        except ValueError:
            continue
    return f"reason code 0x{code:02X}"


def _detail(reason_string: str | None, name: str) -> str:
    """The server's reason string for a message, unless it only repeats the code's name
    (Roost's "bad username or password" after "bad username or password [0x86]")."""
    if not reason_string or reason_string.strip().lower() == name:
        return ""
    return f" ({reason_string})"


class MQTTError(Exception):
    """Base of every error the client raises."""


class ConnectError(MQTTError):
    """The network connection to the server could not be opened."""


class TLSError(ConnectError):
    """The TLS handshake failed; ``__cause__`` is the ``ssl.SSLError``."""


class WebSocketError(ConnectError):
    """The server did not accept the WebSocket upgrade; ``status`` is its HTTP status
    (None when the answer was not an acceptable upgrade at all)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AuthenticationError(MQTTError):
    """Enhanced authentication failed on the client's side: the server did not prove
    itself (a wrong or missing SCRAM signature), sent data the authenticator could not
    use, or the authenticator raised. The client sent DISCONNECT and closed; the
    authenticator's exception is ``__cause__``."""


class ConnectTimeout(MQTTError, TimeoutError):
    """The connection (TCP, TLS and CONNACK together) took longer than ``connect_timeout``."""


class ConnectionLost(MQTTError):
    """A connection that was up has ended."""


class ClientClosed(MQTTError):
    """The client was closed (or never connected) before the operation could finish."""


class ReasonCodeError(MQTTError):
    """The server answered with a failure reason code."""

    def __init__(
        self,
        what: str,
        reason_code: int,
        reason_string: str | None = None,
        version: int = 5,
    ) -> None:
        self.reason_code = reason_code
        self.reason_string = reason_string
        self.reason_name = reason_name(reason_code, version)
        detail = _detail(reason_string, self.reason_name)
        super().__init__(f"{what}: {self.reason_name} [0x{reason_code:02X}]{detail}")


class ServerDisconnected(ConnectionLost):
    """The server sent an MQTT 5 DISCONNECT with ``reason_code`` and ``reason_string``."""

    def __init__(self, reason_code: int, reason_string: str | None = None) -> None:
        self.reason_code = reason_code
        self.reason_string = reason_string
        self.reason_name = reason_name(reason_code)
        detail = _detail(reason_string, self.reason_name)
        super().__init__(
            f"the server disconnected: {self.reason_name} [0x{reason_code:02X}]{detail}"
        )


class ConnectRefused(ReasonCodeError):
    """CONNACK refused the connection. For 3.1.x ``reason_code`` is the return code (1-5)."""

    def __init__(
        self, reason_code: int, reason_string: str | None = None, version: int = 5
    ) -> None:
        super().__init__("connection refused", reason_code, reason_string, version)

    @property
    def bad_credentials(self) -> bool:
        """True for a refusal about who the client is: user name, password, authorization."""
        if self.reason_name.startswith("return code"):
            return False
        return self.reason_code in _BAD_CREDENTIALS or "authori" in self.reason_name


class PublishError(ReasonCodeError):
    """The server refused a message (PUBACK or PUBREC >= 0x80), or the client did before
    sending it because the server's announced limits forbid it."""

    def __init__(
        self, reason_code: int, reason_string: str | None = None, packet_id: int = 0
    ) -> None:
        super().__init__("publish refused", reason_code, reason_string)
        self.packet_id = packet_id


class SubscribeError(ReasonCodeError):
    """At least one filter was refused; ``reason_codes`` has one code per filter."""

    def __init__(self, reason_codes: tuple[int, ...], reason_string: str | None = None) -> None:
        failed = next(code for code in reason_codes if is_failure(code))
        super().__init__("subscribe refused", failed, reason_string)
        self.reason_codes = reason_codes


class UnsubscribeError(ReasonCodeError):
    """At least one filter's UNSUBACK code is a failure; ``reason_codes`` has one per filter."""

    def __init__(self, reason_codes: tuple[int, ...], reason_string: str | None = None) -> None:
        failed = next(code for code in reason_codes if is_failure(code))
        super().__init__("unsubscribe refused", failed, reason_string)
        self.reason_codes = reason_codes
