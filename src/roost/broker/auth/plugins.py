"""Loading an authentication/authorization plugin named by dotted path in the config.

``auth_plugin = "mypackage.auth:LdapAuth"`` (or ``"mypackage.auth.LdapAuth"``) names an
attribute of an importable module. A class or function there is called with the
``auth_plugin_options`` table (a dict) and must return the plugin object; any other
object is the plugin itself. See ``roost.broker.auth.base`` for the methods it may have.
"""

from __future__ import annotations

from collections.abc import Mapping

from roost.broker.loading import LoadError, instantiate, resolve

__all__ = ["PluginError", "load_plugin"]

_METHODS = ("authenticate", "authorize", "start_auth")


class PluginError(Exception):
    """The configured plugin cannot be loaded; the message says why."""


def load_plugin(path: str, options: Mapping[str, object] | None = None) -> object:
    try:
        plugin = instantiate(resolve(path), options, "auth_plugin_options")
    except LoadError as exc:
        raise PluginError(f"auth_plugin {path!r}: {exc}") from exc
    if not any(callable(getattr(plugin, method, None)) for method in _METHODS):
        raise PluginError(
            f"auth_plugin {path!r}: the plugin has none of the methods {', '.join(_METHODS)}"
        )
    return plugin
