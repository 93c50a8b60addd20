"""A plugin that refuses every user name: Mosquitto 2.x with no password file.

Mosquitto 2.x with ``allow_anonymous false`` and neither a password file nor a plugin
refuses every client, user name or not (its ``mosquitto_unpwd_check``); Roost with no
password file would let in any client that sends a user name. A mosquitto.conf read by
Roost names this plugin in that case (``auth_plugin =
"roost.broker.auth.no_credentials:RefuseCredentials"``), so the broker behaves as
Mosquitto did. Clients named by their certificate (``use_identity_as_username``) are
not asked, as in Mosquitto.
"""

from __future__ import annotations

from roost.broker.auth.base import AuthRequest, AuthResult
from roost.codec import ConnectReasonCode

PLUGIN_PATH = "roost.broker.auth.no_credentials:RefuseCredentials"


class RefuseCredentials:
    """Refuses a CONNECT with a user name; anonymous ones are left to allow_anonymous."""

    def __init__(self, options: dict[str, object]) -> None:
        if options:
            raise ValueError(f"takes no options, got {', '.join(sorted(options))}")

    async def authenticate(self, request: AuthRequest) -> AuthResult:
        if request.username is None:
            return AuthResult.accept()
        return AuthResult.refuse(
            ConnectReasonCode.NOT_AUTHORIZED, "no password file: user names are not accepted"
        )
