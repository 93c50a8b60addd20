"""TLS for the broker's listeners: contexts from the configured files, the TLS layer of a
connection, and a client certificate's identity.

The layer does TLS itself over ``ssl.MemoryBIO`` rather than through asyncio's
``create_server(ssl=...)``: asyncio reports a failed handshake to nobody (outside debug
mode), and the broker must say in its log why a client was refused (wrong CA, expired
or missing certificate). Doing it here also lets each connection take the listener's
*current* context, which is how SIGHUP swaps certificates without touching the
connections that are already up.
"""

from __future__ import annotations

import contextlib
import logging
import re
import ssl
from typing import TYPE_CHECKING, Any

from roost.broker.layers import StreamLayer

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Iterator

    from roost.broker.config import ListenerConfig

log = logging.getLogger("roost.broker")

_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
# One TLS record holds at most 16 KiB; reading more per call saves calls on bursts.
_READ_SIZE = 256 * 1024


class TlsFilesError(Exception):
    """A certificate, key, CA or CRL file that could not be loaded; says which."""


def server_context(config: ListenerConfig) -> ssl.SSLContext:
    """A server-side SSLContext from a listener's files; raises TlsFilesError."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _VERSIONS[config.tls_version]
    # Renegotiation is a denial-of-service lever and nothing MQTT needs.
    context.options |= ssl.OP_NO_RENEGOTIATION
    with _loading("certfile", config.certfile):
        context.load_cert_chain(config.certfile, config.keyfile or None)
    if config.cafile:
        with _loading("cafile", config.cafile):
            context.load_verify_locations(cafile=config.cafile)
        # With a CA, certificates are asked for; unless required, a client may send none.
        context.verify_mode = ssl.CERT_REQUIRED if config.require_certificate else ssl.CERT_OPTIONAL
    if config.crlfile:
        with _loading("crlfile", config.crlfile):
            context.load_verify_locations(cafile=config.crlfile)
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    return context


@contextlib.contextmanager
def _loading(key: str, path: str) -> Iterator[None]:
    try:
        yield
    except ssl.SSLError as exc:
        raise TlsFilesError(f"cannot load {key} {path!r}: {_ssl_message(exc)}") from exc
    except OSError as exc:
        raise TlsFilesError(f"cannot load {key} {path!r}: {exc.strerror or exc}") from exc


def certificate_identity(peercert: object, source: str) -> str | None:
    """The client certificate's common name (``"cn"``) or first DNS/email/URI subject
    alternative name (``"san"``); None without a verified certificate or such a name."""
    if not isinstance(peercert, dict) or not peercert:
        return None
    if source == "cn":
        for rdn in peercert.get("subject", ()):
            for key, value in rdn:
                if key == "commonName":
                    return str(value)
        return None
    for kind, value in peercert.get("subjectAltName", ()):
        if kind in ("DNS", "email", "URI"):
            return str(value)
    return None


class TlsLayer(StreamLayer):
    """Server-side TLS between the socket and the protocol above (MQTT or WebSocket)."""

    __slots__ = ("_established", "_incoming", "_label", "_outgoing", "_tls", "_told_close")

    def __init__(self, context: ssl.SSLContext, app: asyncio.Protocol, label: str) -> None:
        super().__init__(app)
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._established = False
        self._told_close = False  # our close_notify is sent (write_eof): nothing follows
        self._label = label  # the listener's, for the log

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        self._incoming.write(data)
        tls = self._tls
        if not self._established:
            try:
                tls.do_handshake()
            except ssl.SSLWantReadError:
                self._send_pending()
                return
            except ssl.SSLError as exc:
                self._fail("TLS handshake", exc)
                return
            self._established = True
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "TLS connection from %s on listener %s: %s, %s, client certificate %s.",
                    self.peer(),
                    self._label,
                    tls.version(),
                    (tls.cipher() or ("?",))[0],
                    _subject(tls.getpeercert()),
                )
        chunks: list[bytes] = []
        ended = False
        try:
            while True:
                chunk = tls.read(_READ_SIZE)
                if not chunk:  # the client's close_notify
                    ended = True
                    break
                chunks.append(chunk)
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:
            ended = True
        except ssl.SSLError as exc:
            if self._told_close:
                # Lingering after our close_notify: nothing more to say, nor to log.
                self.close()
            else:
                self._fail("TLS", exc)
            return
        # Reading can produce output: session tickets, key updates, alerts.
        self._send_pending()
        if chunks:
            self.app.data_received(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        if ended:
            self.close()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        # Nothing above writes before it has read, and it reads only after the handshake.
        if self._closed or not self._established or self._told_close:
            return
        try:
            self._tls.write(data)
        except ssl.SSLError as exc:
            self._fail("TLS", exc)
            return
        self._send_pending()

    def write_eof(self) -> None:
        """Our close_notify, then the socket's write side shut down; reading goes on
        (the client's data after it still decrypts, its close_notify ends the link)."""
        if self._closed or self._told_close:
            return
        if not self._established:
            self.close()  # no TLS session to end: nothing to say first
            return
        self._send_close_notify()
        self.write_eof_below()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._established:
            # The client's answer to our close_notify is not waited for.
            self._send_close_notify()
        if self.raw is not None:
            self.raw.close()

    def _send_close_notify(self) -> None:
        if self._told_close:
            return
        self._told_close = True
        with contextlib.suppress(ssl.SSLError):
            self._tls.unwrap()  # queues it; raises SSLWantReadError for the answer
        self._send_pending()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "ssl_object":
            return self._tls
        if name == "peercert":
            return self._tls.getpeercert() if self._established else default
        if name == "cipher":
            return self._tls.cipher() if self._established else default
        return super().get_extra_info(name, default)

    def _send_pending(self) -> None:
        data = self._outgoing.read()
        if data and self.raw is not None:
            self.raw.write(data)

    def _fail(self, stage: str, exc: ssl.SSLError) -> None:
        log.warning(
            "%s with %s on listener %s failed: %s; closing.",
            stage,
            self.peer(),
            self._label,
            describe_tls_error(exc),
        )
        self._send_pending()  # the alert, which tells the client why
        self._closed = True
        if self.raw is not None:
            self.raw.close()


# OpenSSL's reason codes for what goes wrong most, in words an operator can act on.
_EXPLANATIONS = {
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": "the client sent no certificate and this listener"
    " requires one",
    "TLSV1_ALERT_UNKNOWN_CA": "the client does not trust this listener's certificate (unknown CA)",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the client rejected this listener's certificate",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "the client rejected this listener's certificate",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "the client rejected this listener's certificate as expired",
    "TLSV1_ALERT_DECRYPT_ERROR": "the client rejected this listener's certificate",
    "UNSUPPORTED_PROTOCOL": "the client offered only TLS versions below this listener's"
    " tls_version",
    "TLSV1_ALERT_PROTOCOL_VERSION": "no TLS version in common with the client",
    "NO_SHARED_CIPHER": "no cipher suite in common with the client",
    "WRONG_VERSION_NUMBER": "the client did not start a TLS handshake (plain MQTT on a TLS"
    " listener?)",
    "HTTP_REQUEST": "the client sent plain HTTP to a TLS listener",
}


def describe_tls_error(exc: ssl.SSLError) -> str:
    """One line saying why a TLS handshake or connection failed."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"client certificate rejected: {exc.verify_message} (CERTIFICATE_VERIFY_FAILED)"
    reason = exc.reason or ""
    explanation = _EXPLANATIONS.get(reason)
    return f"{explanation} ({reason})" if explanation else _ssl_message(exc)


_SOURCE_SUFFIX = re.compile(r"\s*\(_ssl\.c:\d+\)$")


def _ssl_message(exc: ssl.SSLError) -> str:
    return _SOURCE_SUFFIX.sub("", str(exc.args[1] if len(exc.args) > 1 else exc))


def _subject(peercert: object) -> str:
    if not isinstance(peercert, dict) or not peercert:
        return "none"
    parts = [f"{key}={value}" for rdn in peercert.get("subject", ()) for key, value in rdn]
    return ", ".join(parts) or "without subject"
