"""Who the client is: a CONNECT's credentials, MQTT 5 enhanced authentication (AUTH
exchanges before CONNACK and re-authentication after it), and the ``ClientInfo`` that
authorization is asked with.

Functions over the connection (a ``ports.AuthenticatingSide``), as ``publishing.py`` and
``subscribing.py`` are: an answer a backend has not given yet pauses the connection
(``wait_for``), and once it comes the CONNECT is handled again with the answer cached
in ``auth_result``, or the AUTH exchange takes its next step.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING

from roost.broker.auth.base import AuthRequest, AuthResult, Challenge, ClientInfo
from roost.broker.connect import Refusal, backend_refusal
from roost.codec import AuthReasonCode, ConnectReasonCode, DisconnectReasonCode, ProtocolError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from roost.broker.ports import AuthenticatingSide
    from roost.codec import Auth, Connect

log = logging.getLogger("roost.broker")
_NOTHING_TO_CHECK = AuthResult.accept()


def authenticated(conn: AuthenticatingSide, packet: Connect) -> AuthResult | None:
    """The answer to this CONNECT's credentials, or None if refused or not known yet.

    Not known yet: the connection waits for the backend (or for the client's part of
    an AUTH exchange) and on_connect runs again with ``auth_result`` set.
    """
    result = conn.auth_result
    method = packet.authentication_method
    if result is None:
        auth = conn.host.auth
        conn.pending_connect = packet
        if method is not None:
            exchange = auth.start_auth(method, client_info(conn, packet.username))
            if exchange is None:
                conn.refuse(
                    packet,
                    Refusal(
                        ConnectReasonCode.BAD_AUTHENTICATION_METHOD,
                        f"authentication method {method!r} not offered",
                    ),
                )
                return None
            conn.auth_method = method
            conn.auth_exchange = exchange
            conn.wait_for(exchange.step(packet.authentication_data), partial(_auth_step_done, conn))
            return None
        # A listener that takes the username from the client certificate has checked
        # the credential already (and the CONNECT's password is not the user's).
        certified = bool(conn.listener.identity_source)
        if certified or not auth.needs_authentication(packet.username):
            result = _NOTHING_TO_CHECK
        else:
            request = AuthRequest(client_info(conn, packet.username), packet.password)
            conn.wait_for(auth.authenticate(request), partial(_credentials_checked, conn))
            return None
    conn.auth_result = None
    conn.pending_connect = None
    if not result.allowed:
        why = result.reason_string or "not authorized"
        conn.refuse(packet, backend_refusal(result.reason_code, why))
        return None
    username = packet.username if result.username is None else result.username
    if method is not None and packet.username not in (None, username):
        conn.refuse(
            packet,
            Refusal(
                ConnectReasonCode.NOT_AUTHORIZED,
                "the username differs from the identity authenticated",
            ),
        )
        return None
    conn.username = username
    return result


def password_file_vouched(conn: AuthenticatingSide, packet: Connect, accepted: AuthResult) -> bool:
    """Whether the password file accepted this client's username (not a certificate,
    an AUTH exchange, or a plugin naming another identity)."""
    username = conn.username
    return (
        username is not None
        and packet.authentication_method is None
        and not conn.listener.identity_source
        and accepted.username is None
        and conn.host.auth.in_password_file(username)
    )


def _credentials_checked(conn: AuthenticatingSide, result: object) -> None:
    assert isinstance(result, AuthResult)  # noqa: S101
    assert conn.pending_connect is not None  # noqa: S101
    conn.auth_result = result
    conn.on_connect(conn.pending_connect, conn.host.now())


def client_info(
    conn: AuthenticatingSide, username: str | None, attributes: Mapping[str, object] | None = None
) -> ClientInfo:
    label = conn.listener.label
    if attributes is None:
        return ClientInfo(conn.client_id, username, conn.peer, conn.version, label)
    return ClientInfo(conn.client_id, username, conn.peer, conn.version, label, attributes)


# Enhanced authentication (MQTT 5.0 section 4.12).


def on_auth(conn: AuthenticatingSide, packet: Auth, now: float) -> None:
    method = conn.auth_method
    if method is None:
        raise ProtocolError("AUTH without an authentication method")  # [MQTT-3.15.2-1]
    if packet.authentication_method != method:
        raise ProtocolError("AUTH with another authentication method")  # [MQTT-4.12.0-5]
    reason = packet.reason_code
    if conn.auth_exchange is None:
        if reason != AuthReasonCode.RE_AUTHENTICATE:
            raise ProtocolError(f"AUTH 0x{reason:02X} outside an authentication exchange")
        exchange = conn.host.auth.start_auth(method, client_info(conn, conn.username))
        if exchange is None:  # the method's backend went away (a reload)
            conn.disconnect(
                DisconnectReasonCode.NOT_AUTHORIZED,
                "re-authentication failed",
                why=f"re-authentication: method {method} no longer offered",
            )
            return
        conn.auth_exchange = exchange
    elif reason != AuthReasonCode.CONTINUE_AUTHENTICATION:
        raise ProtocolError(f"AUTH 0x{reason:02X} in an authentication exchange")
    conn.wait_for(
        conn.auth_exchange.step(packet.authentication_data),
        partial(_auth_step_done, conn),
    )


def _auth_step_done(conn: AuthenticatingSide, step: object) -> None:
    method = conn.auth_method
    if isinstance(step, Challenge):
        if conn.session is None:
            conn.protocol.authenticating()  # until CONNACK: only AUTH or DISCONNECT
        conn.send(conn.protocol.auth(AuthReasonCode.CONTINUE_AUTHENTICATION, method, step.data))
        return
    assert isinstance(step, AuthResult)  # noqa: S101
    conn.auth_exchange = None
    if conn.session is None:
        assert conn.pending_connect is not None  # noqa: S101
        conn.protocol.authenticated()
        conn.auth_result = step
        conn.on_connect(conn.pending_connect, conn.host.now())
        return
    # Re-authentication: the identity may not change on a connection.
    if step.allowed and step.username in (None, conn.username):
        log.info("Client %s re-authenticated with %s.", conn.client_id, method)
        conn.send(conn.protocol.auth(AuthReasonCode.SUCCESS, method, step.data))
        return
    log.warning(
        "Client %s failed re-authentication with %s: %s; disconnecting.",
        conn.client_id,
        method,
        step.reason_string if not step.allowed else "a different identity",
    )
    # [MQTT-4.12.1-2]: DISCONNECT with a reason, then close.
    conn.disconnect(DisconnectReasonCode.NOT_AUTHORIZED, "re-authentication failed")
