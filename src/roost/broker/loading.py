"""Loading Python objects the configuration names: auth plugins and broker hooks.

``"package.module:Attribute"`` (or ``"package.module.Attribute"``) names an attribute of
an importable module. A class or function there is called with the options table (a
dict) and returns the object; any other object is used as it is, and takes no options.
Each caller puts its own name and error type around the ``LoadError`` raised here.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import cast

__all__ = ["LoadError", "instantiate", "resolve"]


class LoadError(Exception):
    """The object cannot be loaded; the message says why (without naming the path)."""


def resolve(path: str) -> object:
    """The attribute ``path`` names (MODULE:ATTRIBUTE or MODULE.ATTRIBUTE)."""
    if ":" in path:
        module_name, _, attribute = path.partition(":")
    else:
        module_name, _, attribute = path.rpartition(".")
    if not module_name or not attribute:
        raise LoadError("expected MODULE:ATTRIBUTE or MODULE.ATTRIBUTE")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise LoadError(f"cannot import {module_name!r}: {exc}") from exc
    target: object = module
    for name in attribute.split("."):
        try:
            target = getattr(target, name)
        except AttributeError:
            raise LoadError(f"{module_name!r} has no {attribute!r}") from None
    return target


def instantiate(target: object, options: Mapping[str, object] | None, options_name: str) -> object:
    """``target`` called with ``options`` if it is a class or function, else ``target``
    itself (which then may not be given ``options``, named ``options_name`` in errors)."""
    if inspect.isclass(target) or inspect.isfunction(target):
        try:
            factory = cast("Callable[[dict[str, object]], object]", target)
            return factory(dict(options or {}))
        except Exception as exc:
            raise LoadError(f"creating it failed: {exc}") from exc
    if options:
        raise LoadError(f"an object, not a class or function, so it cannot take {options_name}")
    return target
