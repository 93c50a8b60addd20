"""Broker hooks for tests/broker/test_hooks.py, loaded by the broker from its config by
path (``tests.broker.hook_probes:Recorder``) as a user's hooks would be.

The broker runs in a thread of its own; tests read what a hook saw from its ``events``
list (appends are atomic) and reach the instance through ``instance(broker)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TypeVar

from roost.broker import Drop, DropReason, Hook, MessageView
from roost.broker.auth.base import ClientInfo
from tests.support.broker_thread import BrokerThread

H = TypeVar("H")


def instance(broker: BrokerThread, kind: type[H], index: int = 0) -> H:
    """The hook object the broker loaded as its ``index``-th hook."""
    hook = broker.broker.core.hooks.loaded[index].hook
    assert isinstance(hook, kind), hook
    return hook


class Recorder(Hook):
    """Records every hook point with its arguments; drops deliveries on ``t/...`` to the
    client ids in ``options["mute"]``."""

    def __init__(self, options: Mapping[str, object] | None = None) -> None:
        super().__init__(options)
        self.events: list[tuple[object, ...]] = []
        mute = self.options.get("mute", [])
        assert isinstance(mute, list)
        self.mute = frozenset(str(client_id) for client_id in mute)
        self.started = False
        self.stopped = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    def on_connect(self, client: ClientInfo, session_present: bool) -> None:
        self.events.append(("connect", client.client_id, client.username, session_present))

    def on_disconnect(self, client: ClientInfo, clean: bool) -> None:
        self.events.append(("disconnect", client.client_id, clean))

    def on_subscribe(self, client: ClientInfo, topic_filter: str, qos: int) -> None:
        self.events.append(("subscribe", client.client_id, topic_filter, qos))

    def on_unsubscribe(self, client: ClientInfo, topic_filter: str) -> None:
        self.events.append(("unsubscribe", client.client_id, topic_filter))

    def on_publish(self, client: ClientInfo, message: MessageView) -> None:
        self.events.append(
            ("publish", client.client_id, message.topic, message.payload, message.qos)
        )

    def on_deliver(self, client_id: str, message: MessageView, qos: int) -> bool:
        if message.topic.startswith("$"):
            return True
        self.events.append(("deliver", client_id, message.topic, qos))
        return client_id not in self.mute or not message.topic.startswith("t/")

    def on_message_dropped(self, client_id: str, topic: str, reason: DropReason) -> None:
        self.events.append(("dropped", client_id, topic, reason))

    def on_session_expired(self, client_id: str) -> None:
        self.events.append(("expired", client_id))

    def seen(self, kind: str) -> list[tuple[object, ...]]:
        return [event for event in self.events if event[0] == kind]


class Rewriter(Hook):
    """``in/...``: rewritten to ``out/...``, payload upper-cased, a user property added;
    ``drop/...``: dropped with 0x99; ``bad/...``: rewritten to an invalid topic;
    ``odd/...``: answered with something that is not a verdict."""

    def on_publish(self, client: ClientInfo, message: MessageView) -> object:  # type: ignore[override]
        topic = message.topic
        if topic.startswith("in/"):
            return message.replace(
                topic="out/" + topic[3:],
                payload=message.payload.upper(),
                user_properties=(*message.user_properties, ("hooked", client.client_id)),
            )
        if topic.startswith("drop/"):
            return Drop("not wanted", 0x99)
        if topic.startswith("bad/"):
            return message.replace(topic="bad/#")
        if topic.startswith("odd/"):
            return 42
        return None


class Gate(Hook):
    """An async on_publish that holds messages of client ``slow`` until ``open`` is set
    (from the test thread: ``broker.call(gate.open.set)``)."""

    def __init__(self, options: Mapping[str, object] | None = None) -> None:
        super().__init__(options)
        self.open: asyncio.Event | None = None
        self.waiting = 0

    async def start(self) -> None:
        self.open = asyncio.Event()  # on the broker's loop

    async def on_publish(self, client: ClientInfo, message: MessageView) -> None:
        if client.client_id == "slow":
            assert self.open is not None
            self.waiting += 1
            await self.open.wait()

    def release(self) -> None:
        assert self.open is not None
        self.open.set()


class Raiser(Hook):
    """Fails at every point it can (and an async notification that fails later)."""

    def on_connect(self, client: ClientInfo, session_present: bool) -> None:
        raise RuntimeError("on_connect broke")

    async def on_subscribe(self, client: ClientInfo, topic_filter: str, qos: int) -> None:
        await asyncio.sleep(0)
        raise RuntimeError("on_subscribe broke")

    def on_publish(self, client: ClientInfo, message: MessageView) -> None:
        raise RuntimeError("on_publish broke")

    def on_deliver(self, client_id: str, message: MessageView, qos: int) -> bool:
        raise RuntimeError("on_deliver broke")


class AsyncDeliver(Hook):
    """Refused at load time: on_deliver cannot wait."""

    async def on_deliver(self, client_id: str, message: MessageView, qos: int) -> bool:  # type: ignore[override]
        return True


class Nothing:
    """No hook method at all: refused at load time."""

    def __init__(self, options: Mapping[str, object]) -> None:
        self.options = options
