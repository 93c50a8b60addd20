"""Broker hooks: Python code the broker calls at points of a client's life and a message's.

A hook is an object with some of the methods of ``Hook`` (subclass it, or write the
methods on any class): ``on_connect``, ``on_disconnect``, ``on_subscribe``,
``on_unsubscribe``, ``on_publish`` (may rewrite or drop a message before routing),
``on_deliver`` (per subscriber, may drop), ``on_message_dropped`` and
``on_session_expired``, plus ``start``/``stop`` around the broker's life. The config
names hooks in ``[[hooks]]`` tables, by ``"package.module:Attribute"`` or by the name of
an entry point in the ``roost.hooks`` group; ``load_hooks`` loads them and
``hook_dispatch.Hooks`` calls them. docs/hooks.md is the user's guide.

Only methods a hook overrides are ever called: the no-op defaults here exist for
documentation and typing, and a broker without hooks pays nothing on its hot path.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Protocol, TypeAlias, cast

from roost.broker.loading import LoadError, instantiate, resolve
from roost.broker.message import Keep
from roost.codec import PubackReasonCode

if TYPE_CHECKING:
    from roost.broker.auth.base import ClientInfo
    from roost.broker.config import HookConfig
    from roost.broker.stats import DropReason

__all__ = [
    "ENTRY_POINT_GROUP",
    "HOOK_POINTS",
    "Drop",
    "Hook",
    "HookError",
    "Keep",
    "LoadedHook",
    "MessageView",
    "PublishResult",
    "load_hook",
    "load_hooks",
]

# Where installed packages offer hooks by name (pyproject: [project.entry-points."roost.plugins"]).
ENTRY_POINT_GROUP = "roost.plugins"


class MessageView(Protocol):
    """A routed message as hooks see it: read it, never change it (it is shared by every
    subscriber and may already be encoded); ``replace`` makes a changed copy."""

    @property
    def topic(self) -> str: ...
    @property
    def payload(self) -> bytes: ...
    @property
    def qos(self) -> int: ...
    @property
    def retain(self) -> bool: ...
    @property
    def sender(self) -> str | None:
        """The client id of the publisher (None: the broker's own, e.g. ``$SYS``)."""

    @property
    def payload_format_indicator(self) -> int | None: ...
    @property
    def content_type(self) -> str | None: ...
    @property
    def response_topic(self) -> str | None: ...
    @property
    def correlation_data(self) -> bytes | None: ...
    @property
    def user_properties(self) -> tuple[tuple[str, str], ...]: ...

    def replace(
        self,
        *,
        topic: str | None = None,
        payload: bytes | None = None,
        retain: bool | None = None,
        user_properties: tuple[tuple[str, str], ...] | None = None,
        content_type: str | Keep | None = Keep.KEEP,
        payload_format_indicator: int | Keep | None = Keep.KEEP,
        response_topic: str | Keep | None = Keep.KEEP,
        correlation_data: bytes | Keep | None = Keep.KEEP,
    ) -> MessageView:
        """A copy with these fields changed, the others as they are (None removes a
        property; a message's expiry and QoS stay the publisher's)."""


@dataclass(frozen=True, slots=True)
class Drop:
    """What ``on_publish`` returns to drop a message: it is not routed, and the
    publisher's PUBACK/PUBREC carries ``reason_code`` (MQTT 5; 3.1.x cannot be told)."""

    reason: str = "dropped by a hook"  # for the log
    # 0x83 by default: the publisher learns the message was not taken. A code below
    # 0x80 (0x00, 0x10) drops silently; 0x99 says the payload was the problem.
    reason_code: int = PubackReasonCode.IMPLEMENTATION_SPECIFIC_ERROR


# None: let the message through as it is; a MessageView (from ``message.replace``):
# route this one instead; a Drop: route nothing.
PublishResult: TypeAlias = MessageView | Drop | None


class Hook:
    """Base class of broker hooks: every method is a no-op, override those you need.

    Methods may be plain functions, run inline on the event loop (keep them short: the
    broker does nothing else meanwhile), or coroutine functions (``async def``):

    - ``on_publish`` async pauses only the publishing connection until it answers (its
      later packets wait, in order, as for an authorization plugin); other clients
      carry on;
    - the notifications (``on_connect``, ``on_disconnect``, ``on_subscribe``,
      ``on_unsubscribe``, ``on_message_dropped``, ``on_session_expired``) async run as
      tasks and pause nothing: nothing waits for their answer;
    - ``on_deliver`` must be a plain function: it runs once per subscriber inside the
      fan-out of one message, which cannot pause for one subscriber without holding up
      every other (or reordering their messages).

    A hook that raises (or an async one that takes over its ``timeout``) is logged and
    counted (``$SYS/broker/hooks/errors``) and the broker carries on as if the method
    had not been there: an ``on_publish`` lets the message through unchanged, an
    ``on_deliver`` delivers.
    """

    def __init__(self, options: Mapping[str, object] | None = None) -> None:
        self.options: dict[str, object] = dict(options or {})

    async def start(self) -> None:
        """The broker is starting (on its event loop, before any client connects)."""

    async def stop(self) -> None:
        """The broker is stopping (after every client is gone)."""

    def on_connect(self, client: ClientInfo, session_present: bool) -> Awaitable[None] | None:
        """A client's CONNECT was accepted (just before its CONNACK)."""
        return None

    def on_disconnect(self, client: ClientInfo, clean: bool) -> Awaitable[None] | None:
        """A client's connection ended; ``clean``: by its DISCONNECT, without the will."""
        return None

    def on_subscribe(
        self, client: ClientInfo, topic_filter: str, qos: int
    ) -> Awaitable[None] | None:
        """A subscription was granted (``qos``: the granted maximum), once per filter."""
        return None

    def on_unsubscribe(self, client: ClientInfo, topic_filter: str) -> Awaitable[None] | None:
        """A subscription was removed by UNSUBSCRIBE, once per filter."""
        return None

    def on_publish(
        self, client: ClientInfo, message: MessageView
    ) -> Awaitable[PublishResult] | PublishResult:
        """A client published ``message`` (accepted, not yet routed): return None to let
        it through, ``message.replace(...)`` to route a changed copy, or a ``Drop``."""
        return None

    def on_deliver(self, client_id: str, message: MessageView, qos: int) -> bool:
        """``message`` is about to go to subscriber ``client_id`` at ``qos``: True
        delivers, False drops it for this subscriber only. Plain functions only."""
        return True

    def on_message_dropped(
        self, client_id: str, topic: str, reason: DropReason
    ) -> Awaitable[None] | None:
        """A message on ``topic`` was not delivered to ``client_id`` (for a drop by
        ``on_publish``: not routed from publisher ``client_id``), for ``reason``."""
        return None

    def on_session_expired(self, client_id: str) -> Awaitable[None] | None:
        """An offline session reached its expiry and was ended."""
        return None


HOOK_POINTS = (
    "on_connect",
    "on_disconnect",
    "on_subscribe",
    "on_unsubscribe",
    "on_publish",
    "on_deliver",
    "on_message_dropped",
    "on_session_expired",
)


class HookError(Exception):
    """A configured hook cannot be loaded; the message says which and why."""


@dataclass(slots=True)
class LoadedHook:
    """One hook as the broker runs it: the object, its name in the log, its limits."""

    name: str  # the path or entry point name it was loaded by
    hook: object
    timeout: float = 10.0  # seconds an async method may take
    errors: int = 0  # times one of its methods raised or timed out
    # When a failure at each point may be logged again (hook_dispatch rate-limits the log).
    logged: dict[str, float] = field(default_factory=dict)

    def overrides(self, point: str) -> Callable[..., object] | None:
        """The bound method for ``point`` if this hook has its own, else None."""
        own = getattr(type(self.hook), point, None)
        if own is None or own is getattr(Hook, point):
            return None
        method = getattr(self.hook, point)
        return cast("Callable[..., object]", method) if callable(method) else None


def load_hooks(configs: list[HookConfig]) -> list[LoadedHook]:
    """Every ``[[hooks]]`` table's hook, in order; HookError names the first that fails."""
    return [load_hook(conf.path, conf.options, conf.timeout) for conf in configs]


def load_hook(
    path: str, options: Mapping[str, object] | None = None, timeout: float = 10.0
) -> LoadedHook:
    """Load one hook: ``"package.module:Attribute"`` (or ``package.module.Attribute``), or
    a name in the ``roost.plugins`` entry point group. A class or function found there is
    called with ``options`` (a dict) and returns the hook; any other object is the hook."""
    try:
        hook = instantiate(_resolve(path), options, "options")
    except LoadError as exc:
        raise HookError(f"hook {path!r}: {exc}") from exc
    loaded = LoadedHook(path, hook, timeout)
    points = [point for point in HOOK_POINTS if loaded.overrides(point) is not None]
    if not points:
        raise HookError(f"hook {path!r} has none of the methods {', '.join(HOOK_POINTS)}")
    on_deliver = loaded.overrides("on_deliver")
    if on_deliver is not None and inspect.iscoroutinefunction(on_deliver):
        raise HookError(
            f"hook {path!r}: on_deliver must be a plain function, not async (it runs per"
            " subscriber inside a message's fan-out, which cannot wait; docs/hooks.md)"
        )
    return loaded


def _resolve(path: str) -> object:
    if ":" not in path and "." not in path:
        found = entry_points(group=ENTRY_POINT_GROUP, name=path)
        if not found:
            raise HookError(
                f"hook {path!r}: no entry point of that name in group {ENTRY_POINT_GROUP!r}"
                " (or write it as MODULE:ATTRIBUTE)"
            )
        try:
            return next(iter(found)).load()
        except Exception as exc:
            raise HookError(f"hook {path!r}: loading its entry point failed: {exc}") from exc
    try:
        return resolve(path)
    except LoadError as exc:
        raise HookError(f"hook {path!r}: {exc}") from exc
