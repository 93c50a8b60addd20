"""Loading an authentication/authorization plugin named by dotted path in the config.

``auth_plugin = "mypackage.auth:LdapAuth"`` (or ``"mypackage.auth.LdapAuth"``) names an
attribute of an importable module. A class or function there is called with the
``auth_plugin_options`` table (a dict) and must return the plugin object; any other
object is the plugin itself. See ``roost.broker.auth.base`` for the methods it may have.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import cast

__all__ = ["PluginError", "load_plugin"]

_METHODS = ("authenticate", "authorize", "start_auth")


class PluginError(Exception):
    """The configured plugin cannot be loaded; the message says why."""


def load_plugin(path: str, options: Mapping[str, object] | None = None) -> object:
    module_name, attribute = _split(path)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise PluginError(f"auth_plugin {path!r}: cannot import {module_name!r}: {exc}") from exc
    target: object = module
    for name in attribute.split("."):
        try:
            target = getattr(target, name)
        except AttributeError:
            raise PluginError(
                f"auth_plugin {path!r}: {module_name!r} has no {attribute!r}"
            ) from None
    if inspect.isclass(target) or inspect.isfunction(target):
        try:
            factory = cast("Callable[[dict[str, object]], object]", target)
            plugin = factory(dict(options or {}))
        except Exception as exc:
            raise PluginError(f"auth_plugin {path!r}: creating the plugin failed: {exc}") from exc
    else:
        if options:
            raise PluginError(
                f"auth_plugin {path!r} is an object, not a class or function, so it cannot"
                " take auth_plugin_options"
            )
        plugin = target
    if not any(callable(getattr(plugin, method, None)) for method in _METHODS):
        raise PluginError(
            f"auth_plugin {path!r}: the plugin has none of the methods {', '.join(_METHODS)}"
        )
    return plugin


def _split(path: str) -> tuple[str, str]:
    if ":" in path:
        module_name, _, attribute = path.partition(":")
    else:
        module_name, _, attribute = path.rpartition(".")
    if not module_name or not attribute:
        raise PluginError(f"auth_plugin {path!r}: expected MODULE:ATTRIBUTE or MODULE.ATTRIBUTE")
    return module_name, attribute
