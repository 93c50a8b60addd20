"""The one place the broker asks about authentication and authorization.

``AuthManager`` holds the configured backends (password file, ACL file, SCRAM
credentials, plugin), asks them in that order, reloads them on SIGHUP, and keeps each
client's ``ClientAccess`` so a reload can recompile what connected clients may do.

A configuration with none of them costs nothing: ``needs_authentication`` is False
(CONNECT stays synchronous) and ``authorizes`` is False (no client gets a
``ClientAccess``, so publishing and delivery check nothing but the ``$``-topic rule).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from roost.broker.auth.access import Authorize, ClientAccess
from roost.broker.auth.acl import AclFile, AclFileError
from roost.broker.auth.base import AuthRequest, AuthResult, ClientInfo, EnhancedAuthentication
from roost.broker.auth.password_file import PasswordFile, PasswordFileError
from roost.broker.auth.plugins import PluginError, load_plugin
from roost.broker.auth.scram_file import ScramBackend
from roost.codec import ConnectReasonCode
from roost.protocol.topics import topic_matches

if TYPE_CHECKING:
    from roost.broker.config import BrokerConfig
    from roost.broker.sessions import Identity
    from roost.broker.stats import Stats

__all__ = ["AuthManager", "AuthSetupError"]

log = logging.getLogger("roost.broker")


class AuthSetupError(Exception):
    """A password, ACL or SCRAM file, or the plugin, cannot be used; the message says why."""


class AuthManager:
    """The broker's single entry point for authentication and authorization, over
    every configured backend; see the module docstring.
    """

    def __init__(self, config: BrokerConfig, stats: Stats | None = None) -> None:
        self._stats = stats  # given to each ClientAccess: denied deliveries are counted
        self._password_path = config.password_file
        self._acl_path = config.acl_file
        self._sys_filters = tuple(config.allow_sys_publish)
        self.accesses: dict[str, ClientAccess] = {}
        try:
            self.passwords = (
                None if config.password_file is None else PasswordFile.load(config.password_file)
            )
            self.acl = None if config.acl_file is None else AclFile.load(config.acl_file)
            self.scram = None if config.scram_file is None else ScramBackend(config.scram_file)
            self.plugin = (
                None
                if config.auth_plugin is None
                else load_plugin(config.auth_plugin, config.auth_plugin_options)
            )
        except (PasswordFileError, AclFileError, PluginError) as exc:
            raise AuthSetupError(str(exc)) from exc
        plugin = self.plugin
        self._plugin_authenticate: Any = getattr(plugin, "authenticate", None)
        self._plugin_authorize: Authorize | None = getattr(plugin, "authorize", None)
        self._plugin_start_auth: Any = getattr(plugin, "start_auth", None)

    # What is configured.

    @property
    def authorizes(self) -> bool:
        """True if clients get a ``ClientAccess`` (an ACL file or a plugin's authorize)."""
        return self.acl is not None or self._plugin_authorize is not None

    def needs_authentication(self, username: str | None) -> bool:
        """Whether a CONNECT with this username must wait for a backend."""
        if self._plugin_authenticate is not None:
            return True
        return username is not None and self.passwords is not None

    def describe(self) -> str:
        parts = []
        if self.passwords is not None:
            parts.append(f"password file {self._password_path} ({len(self.passwords)} users)")
        if self.scram is not None:
            parts.append(f"SCRAM credentials {self.scram.path}")
        if self.acl is not None:
            parts.append(f"ACL file {self._acl_path}")
        if self.plugin is not None:
            parts.append(f"plugin {type(self.plugin).__module__}.{type(self.plugin).__qualname__}")
        return ", ".join(parts) or "none"

    # Authentication.

    async def authenticate(self, request: AuthRequest) -> AuthResult:
        """Ask the password file, then the plugin; the first that decides wins."""
        username = request.username
        passwords = self.passwords
        if username is not None and passwords is not None:
            # verify() hashes even for unknown users, so timing tells nothing.
            matched = await passwords.verify_async(username, request.password or b"")
            if matched:
                return AuthResult.accept()
            if username in passwords or self._plugin_authenticate is None:
                return AuthResult.refuse(reason_string="bad username or password")
        authenticate = self._plugin_authenticate
        if authenticate is not None:
            try:
                answer = await authenticate(request)
            except Exception:
                log.exception(
                    "auth plugin failed to authenticate client %s.", request.client.client_id
                )
                return AuthResult.refuse(
                    ConnectReasonCode.SERVER_UNAVAILABLE, "authentication failed"
                )
            if isinstance(answer, AuthResult):
                return answer
            if answer is True:
                return AuthResult.accept()
            if answer is False:
                return AuthResult.refuse(reason_string="bad username or password")
        if username is None:
            return AuthResult.accept()  # anonymous, and allowed where it came in
        # The same words as for a wrong password: a refusal must not say who exists.
        return AuthResult.refuse(reason_string="bad username or password")

    def start_auth(self, method: str, client: ClientInfo) -> EnhancedAuthentication | None:
        """An exchange for an MQTT 5 Authentication Method, or None if nothing offers it."""
        if self.scram is not None:
            exchange = self.scram.start_auth(method, client)
            if exchange is not None:
                return exchange
        if self._plugin_start_auth is not None:
            exchange = self._plugin_start_auth(method, client)
            if exchange is not None:
                return exchange  # type: ignore[no-any-return]
        return None

    # Authorization.

    def access_for(self, client: ClientInfo) -> ClientAccess | None:
        """What ``client`` may do, compiled now; None when nothing restricts anyone."""
        if not self.authorizes:
            return None
        access = ClientAccess(
            client,
            self._rules(client),
            self._plugin_authorize,
            self.sys_publish_allowed,
            self._stats,
        )
        self.accesses[client.client_id] = access
        return access

    def in_password_file(self, username: str) -> bool:
        """Whether the password file (if there is one) has ``username``."""
        return self.passwords is not None and username in self.passwords

    def removed(self, identity: Identity) -> bool:
        """Whether the user the password file vouched for is no longer in it: its
        session is then ended, not kept (docs/auth.md, "Sessions across restarts and
        changes")."""
        passwords = self.passwords
        username = identity.client.username
        return (
            identity.password_file
            and passwords is not None
            and (username is None or username not in passwords)
        )

    def forget(self, client_id: str) -> None:
        """The session of ``client_id`` ended: its access goes too."""
        self.accesses.pop(client_id, None)

    def sys_publish_allowed(self, topic: str) -> bool:
        """Clients may publish to a ``$``-topic only if ``allow_sys_publish`` lists it."""
        return any(topic_matches(topic_filter, topic) for topic_filter in self._sys_filters)

    def _rules(self, client: ClientInfo) -> Any:
        acl = self.acl
        return None if acl is None else acl.rules_for(client.username, client.client_id)

    # SIGHUP.

    def reload(self) -> None:
        """Read the files again. A file that fails to load is reported and the old one stays:
        a broken file must never open the broker up."""
        if self._password_path is not None:
            try:
                self.passwords = PasswordFile.load(self._password_path)
                log.info(
                    "Reloaded password file %s (%d users).",
                    self._password_path,
                    len(self.passwords),
                )
            except PasswordFileError as exc:
                log.error("Password file not reloaded, the previous one stays in use: %s", exc)  # noqa: TRY400
        if self.scram is not None:
            try:
                self.scram.reload()
                log.info("Reloaded SCRAM credentials %s.", self.scram.path)
            except PasswordFileError as exc:
                log.error("SCRAM file not reloaded, the previous one stays in use: %s", exc)  # noqa: TRY400
        if self._acl_path is not None:
            try:
                self.acl = AclFile.load(self._acl_path)
                log.info("Reloaded ACL file %s.", self._acl_path)
            except AclFileError as exc:
                log.error("ACL file not reloaded, the previous one stays in use: %s", exc)  # noqa: TRY400
        reload_plugin = getattr(self.plugin, "reload", None)
        if callable(reload_plugin):
            try:
                reload_plugin()
            except Exception:
                log.exception("auth plugin failed to reload.")
        # Connected clients (and kept sessions) follow the new rules from now on.
        for access in self.accesses.values():
            access.update(self._rules(access.client), self._plugin_authorize)
