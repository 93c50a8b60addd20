"""The client state machine's states and its two tables, sans-IO.

``ClientConnection`` (client_conn.py) is in one ``ClientState`` at a time. Two tables
say what may happen in each: ``TRANSITIONS``, which ``Trigger`` moves it from which
state to which (anything else is its caller's error), and ``SERVER_MAY_SEND``, which
packet types the server may send (anything else is a protocol error). The connection
checks each table at one place: every state change goes through ``_move``, every
received packet through ``receive_data``. Kept apart from the machine, as h11 keeps
its ``_state.py``, so that the rules read as tables rather than as code paths.
"""

from __future__ import annotations

from enum import Enum

from roost.codec import (
    AUTH,
    CONNACK,
    DISCONNECT,
    PINGRESP,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    SUBACK,
    UNSUBACK,
)


class ClientState(Enum):
    """Where a ClientConnection is in its network connection (diagram: client_conn.py)."""

    DISCONNECTED = 1
    CONNECTING = 2
    CONNECTED = 3
    VERIFYING = 4  # CONNACK 0 read; the caller checks the server's authentication data


class Trigger(Enum):
    """What moves a ClientConnection between states; the value names it in errors."""

    CONNECT = "connect()"
    CONNACK_ACCEPTED = "CONNACK 0"
    CONNACK_TO_VERIFY = "CONNACK 0 with an authentication method"
    CONNACK_REFUSED = "a refusing CONNACK"
    SERVER_VERIFIED = "server_verified()"
    DISCONNECT_RECEIVED = "DISCONNECT from the server"
    # disconnect(), connection_lost(), a protocol error, a keep-alive timeout.
    CLOSED = "the end of the connection"


# Where each trigger may lead from each state; one that is missing is not allowed there.
TRANSITIONS: dict[ClientState, dict[Trigger, ClientState]] = {
    ClientState.DISCONNECTED: {
        Trigger.CONNECT: ClientState.CONNECTING,
        Trigger.CLOSED: ClientState.DISCONNECTED,
    },
    ClientState.CONNECTING: {
        Trigger.CONNACK_ACCEPTED: ClientState.CONNECTED,
        Trigger.CONNACK_TO_VERIFY: ClientState.VERIFYING,
        Trigger.CONNACK_REFUSED: ClientState.DISCONNECTED,
        Trigger.DISCONNECT_RECEIVED: ClientState.DISCONNECTED,
        Trigger.CLOSED: ClientState.DISCONNECTED,
    },
    ClientState.VERIFYING: {
        Trigger.SERVER_VERIFIED: ClientState.CONNECTED,
        Trigger.CLOSED: ClientState.DISCONNECTED,
    },
    ClientState.CONNECTED: {
        Trigger.DISCONNECT_RECEIVED: ClientState.DISCONNECTED,
        Trigger.CLOSED: ClientState.DISCONNECTED,
    },
}

# What the server may send in each state; anything else is a protocol error.
SERVER_MAY_SEND: dict[ClientState, frozenset[int]] = {
    ClientState.DISCONNECTED: frozenset(),
    ClientState.VERIFYING: frozenset(),  # nothing is parsed until server_verified()
    ClientState.CONNECTING: frozenset((CONNACK, AUTH, DISCONNECT)),
    ClientState.CONNECTED: frozenset(
        (PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, PINGRESP, DISCONNECT, AUTH)
    ),
}
